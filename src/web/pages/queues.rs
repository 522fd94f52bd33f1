//! The agency's account queues: sign-ups awaiting approval (admin and staff) and
//! deletion requests (admin). Handlers reach the store only through `SignupScope`
//! and `Deletions`, which refuse anyone else with an audited 404; an id that names
//! no account waiting in the queue gets the same audited 404.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::web::{Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::signup::{AccountState, parse_reason};
use crate::store::StoreError;
use crate::store::audit::{self, Event, Outcome};
use crate::store::self_service::Deletions;
use crate::store::signups::{Link, SignupScope};
use crate::web::error::AppError;
use crate::web::extract::{Posted, Viewer, state};
use crate::web::view::{Choice, when};

#[derive(Serialize)]
struct SignupRow {
    id: String,
    name: String,
    email: String,
    phone: String,
    kind_label: &'static str,
    organization: String,
    requested_at: String,
    orgs: Vec<Choice>,
    error: Option<String>,
    reason: String,
}

/// The queue page; `problem` is (account id, message, typed reason) after a failed post.
fn render_signups(
    req: &Request,
    viewer: &Viewer,
    problem: Option<(Uuid, String, String)>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let scope = SignupScope::require(&state.store, &viewer.caller).map_err(AppError::from)?;
    let mut rows = Vec::new();
    for u in scope.pending().map_err(AppError::from)? {
        let AccountState::Pending {
            kind,
            organization,
            requested_ms,
        } = &u.state
        else {
            continue;
        };
        let mut fitting = scope.fitting_orgs(*kind).map_err(AppError::from)?;
        let named = |o: &crate::store::accounts::Org| {
            o.kind == *kind && o.name.eq_ignore_ascii_case(organization.trim())
        };
        // The organization named as asked, then the requested kind, then the rest (the
        // sort is stable: by name within). Nothing is preselected: anyone can type an
        // existing organization's name, so staff choose deliberately.
        fitting.sort_by_key(|o| (!named(o), o.kind != *kind));
        let orgs: Vec<Choice> = fitting
            .into_iter()
            .map(|o| Choice {
                label: if named(&o) {
                    format!("{} ({}), the name given", o.name, o.kind.label())
                } else {
                    format!("{} ({})", o.name, o.kind.label())
                },
                value: o.id.to_string(),
                selected: false,
            })
            .collect();
        let (error, reason) = match &problem {
            Some((id, msg, reason)) if *id == u.id => (Some(msg.clone()), reason.clone()),
            _ => (None, String::new()),
        };
        rows.push(SignupRow {
            id: u.id.to_string(),
            name: u.name,
            email: u.email,
            phone: u.phone,
            kind_label: kind.label(),
            organization: organization.clone(),
            requested_at: when(*requested_ms),
            orgs,
            error,
            reason,
        });
    }
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let base = viewer.base(&state, "Sign-ups", "signups");
    Ok(state
        .templates
        .render(
            "admin_signups.html",
            &base,
            serde_json::json!({ "rows": rows }),
        )?
        .with_status(status)
        .into_response())
}

#[handler]
pub async fn signups_page(req: &Request, viewer: Viewer) -> poem::Result<Response> {
    render_signups(req, &viewer, None)
}

/// An id that does not parse, or names no account waiting in the queue: the same 404
/// as a missing page, with the refusal of `action` audited.
fn refuse(req: &Request, viewer: &Viewer, action: &'static str, id: Option<Uuid>) -> poem::Error {
    let event = Event::by(
        &viewer.caller,
        action,
        id.map(|i| i.to_string()),
        Outcome::Refused,
    );
    let recorded =
        state(req).and_then(|state| audit::record(&state.store, event).map_err(AppError::from));
    match recorded {
        Ok(_) => AppError::NotFound.into(),
        Err(e) => e.into(),
    }
}

fn path_id(
    req: &Request,
    viewer: &Viewer,
    action: &'static str,
    id: &str,
) -> Result<Uuid, poem::Error> {
    Uuid::parse_str(id).map_err(|_| refuse(req, viewer, action, None))
}

#[handler]
pub async fn approve(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let scope = SignupScope::require(&state.store, &viewer.caller).map_err(AppError::from)?;
    let id = path_id(req, viewer, "signup.approve", &id)?;
    let link = match posted.form.get("organization_id") {
        "new" => Some(Link::New),
        other => Uuid::parse_str(other).ok().map(Link::Existing),
    };
    let problem = "Choose an active organization that fits the requested role.";
    let Some(link) = link else {
        return render_signups(req, viewer, Some((id, problem.into(), String::new())));
    };
    match scope.approve(id, link) {
        Ok(_) => Ok(Redirect::see_other("/admin/signups").into_response()),
        Err(StoreError::NotFound) => Err(refuse(req, viewer, "signup.approve", Some(id))),
        Err(StoreError::Conflict(_)) => {
            render_signups(req, viewer, Some((id, problem.into(), String::new())))
        }
        Err(e) => Err(AppError::from(e).into()),
    }
}

#[handler]
pub async fn reject(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let scope = SignupScope::require(&state.store, &viewer.caller).map_err(AppError::from)?;
    let id = path_id(req, viewer, "signup.reject", &id)?;
    let typed = posted.form.get("reason");
    match parse_reason(typed) {
        Ok(reason) => {
            match scope.reject(id, &reason) {
                Ok(()) => {}
                Err(StoreError::NotFound) => {
                    return Err(refuse(req, viewer, "signup.reject", Some(id)));
                }
                Err(e) => return Err(AppError::from(e).into()),
            }
            Ok(Redirect::see_other("/admin/signups").into_response())
        }
        Err(e) => render_signups(
            req,
            viewer,
            Some((id, format!("Reason {}.", e.message), typed.to_string())),
        ),
    }
}

#[derive(Serialize)]
struct DeletionRow {
    id: String,
    name: String,
    email: String,
    role_label: &'static str,
    requested_at: String,
    own: bool,
}

#[handler]
pub async fn deletions_page(req: &Request, viewer: Viewer) -> poem::Result<Response> {
    let state = state(req)?;
    let scope = Deletions::require(&state.store, &viewer.caller).map_err(AppError::from)?;
    let rows: Vec<DeletionRow> = scope
        .requests()
        .map_err(AppError::from)?
        .into_iter()
        .map(|(u, at)| DeletionRow {
            own: u.id == viewer.user.id,
            id: u.id.to_string(),
            name: u.name,
            email: u.email,
            role_label: u.role.label(),
            requested_at: when(at),
        })
        .collect();
    let base = viewer.base(&state, "Deletion requests", "deletions");
    let view: BTreeMap<&str, Vec<DeletionRow>> = [("rows", rows)].into_iter().collect();
    Ok(state
        .templates
        .render("admin_deletions.html", &base, view)?
        .into_response())
}

#[handler]
pub async fn process_deletion(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let scope = Deletions::require(&state.store, &viewer.caller).map_err(AppError::from)?;
    let id = path_id(req, viewer, "account.delete", &id)?;
    match scope.process(id) {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(refuse(req, viewer, "account.delete", Some(id))),
        Err(StoreError::Conflict(why)) => return Err(AppError::BadRequest(why.to_string()).into()),
        Err(e) => return Err(AppError::from(e).into()),
    }
    Ok(Redirect::see_other("/admin/deletions").into_response())
}
