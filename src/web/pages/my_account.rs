//! The signed-in user's own account page: correct name and phone, change email (the
//! current password is checked first, and failures count toward the sign-in
//! throttle), download a copy of their data, ask for the account to be deleted.
//!
//! Guarantees: every handler acts on the caller's own record (no id is read from the
//! request); the download is JSON sent as an attachment with `no-store`, holds no
//! password hash, session id, CSRF token or token secret, and nothing of anyone
//! else; every change and the download are audited.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::web::Redirect;
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;
use serde_json::json;

use crate::domain::account::normalize_email;
use crate::domain::signup::parse_profile;
use crate::store::StoreError;
use crate::store::audit::{self, Event, Outcome};
use crate::store::self_service;
use crate::web::error::AppError;
use crate::web::extract::{Posted, Viewer, source, state};
use crate::web::pages::session::{ErrorItem, title_case};
use crate::web::view::{rfc3339, when};

#[derive(Serialize, Default)]
struct AccountView {
    profile: BTreeMap<String, String>,
    email_values: BTreeMap<String, String>,
    errors: BTreeMap<String, String>,
    error_list: Vec<ErrorItem>,
    email: String,
    role_label: &'static str,
    org_name: String,
    deletion_requested_at: Option<String>,
}

fn render(
    req: &Request,
    viewer: &Viewer,
    mut view: AccountView,
    notice: Option<&str>,
    status: StatusCode,
) -> poem::Result<Response> {
    let state = state(req)?;
    if view.profile.is_empty() {
        view.profile.insert("name".into(), viewer.user.name.clone());
        view.profile
            .insert("phone".into(), viewer.user.phone.clone());
    }
    view.email = viewer.user.email.clone();
    view.role_label = viewer.user.role.label();
    view.org_name = viewer.org_name.clone();
    view.deletion_requested_at = self_service::deletion_requested(&state.store, &viewer.caller)
        .map_err(AppError::from)?
        .map(when);
    let mut base = viewer.base(&state, "Your account", "account");
    base.notice = notice.map(str::to_string);
    Ok(state
        .templates
        .render("account.html", &base, view)?
        .with_status(status)
        .into_response())
}

fn with_errors(view: &mut AccountView, errors: Vec<crate::domain::order::FieldError>) {
    for e in errors {
        view.error_list.push(ErrorItem {
            label: title_case(&e.field),
            field: e.field.clone(),
            message: e.message.clone(),
        });
        view.errors.entry(e.field).or_insert(e.message);
    }
}

#[handler]
pub async fn account_page(req: &Request, viewer: Viewer) -> poem::Result<Response> {
    let notice = match req.uri().query() {
        Some("saved") => Some("Your account was updated."),
        Some("requested") => Some("Your request to delete your account was sent to the agency."),
        _ => None,
    };
    render(req, &viewer, AccountView::default(), notice, StatusCode::OK)
}

#[handler]
pub async fn update_profile(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let (name, phone) = (posted.form.get("name"), posted.form.get("phone"));
    match parse_profile(name, phone) {
        Ok(change) => {
            self_service::update_profile(&state.store, &posted.viewer.caller, &change)
                .map_err(AppError::from)?;
            Ok(Redirect::see_other("/account?saved").into_response())
        }
        Err(errors) => {
            let mut view = AccountView::default();
            view.profile.insert("name".into(), name.into());
            view.profile.insert("phone".into(), phone.into());
            with_errors(&mut view, errors);
            render(
                req,
                &posted.viewer,
                view,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

#[handler]
pub async fn change_email(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let typed = posted.form.get("new_email");
    let from = source(req);
    // Guessing the password here counts like guessing it at sign-in.
    let account_key = state.store.keys().blind_index("email", &viewer.user.email);
    let fail = |field: &str, message: &str| {
        let mut view = AccountView::default();
        view.email_values.insert("new_email".into(), typed.into());
        with_errors(
            &mut view,
            vec![crate::domain::order::FieldError {
                field: field.into(),
                message: message.into(),
            }],
        );
        render(req, viewer, view, None, StatusCode::UNPROCESSABLE_ENTITY)
    };
    let _turn = state
        .throttle
        .take_turn(&account_key, from.as_deref())
        .map_err(|wait| AppError::TooMany(wait.as_secs().max(1)))?;
    let ok = state
        .hasher
        .verify(
            posted.form.get("current_password"),
            Some(&viewer.user.password_hash),
        )
        .await
        .map_err(AppError::from)?;
    if !ok {
        state.throttle.fail(&account_key, from.as_deref());
        audit::record(
            &state.store,
            Event::by(
                &viewer.caller,
                "account.update",
                Some(viewer.user.id.to_string()),
                Outcome::Failed,
            ),
        )
        .map_err(AppError::from)?;
        return fail("current_password", "does not match your current password");
    }
    state.throttle.succeed(&account_key);
    let Some(email) = normalize_email(typed) else {
        return fail("new_email", "must be an email address");
    };
    match self_service::change_email(&state.store, &viewer.caller, &email) {
        Ok(()) => Ok(Redirect::see_other("/account?saved").into_response()),
        Err(StoreError::Conflict(_)) => fail("new_email", "cannot be used for this account"),
        Err(e) => Err(AppError::from(e).into()),
    }
}

#[handler]
pub async fn export(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let data = self_service::export(&state.store, &posted.viewer.caller).map_err(AppError::from)?;
    let u = &data.user;
    let body = json!({
        "generated_at": rfc3339(crate::store::now_ms()),
        "profile": {
            "id": u.id,
            "name": u.name,
            "email": u.email,
            "phone": u.phone,
            "role": u.role,
            "state": u.state.code(),
            "created_at": rfc3339(u.created_ms),
        },
        "organization": data.organization.as_ref().map(|o| json!({
            "id": o.id, "name": o.name, "kind": o.kind,
        })),
        "sessions": data.sessions.iter().map(|s| json!({
            "started_at": rfc3339(s.created_ms),
            "last_seen_at": rfc3339(s.last_seen_ms),
            "source": s.source,
        })).collect::<Vec<_>>(),
        "api_tokens": data.tokens.iter().map(|t| json!({
            "id": t.id,
            "name": t.name,
            "created_at": rfc3339(t.created_ms),
            "last_used_at": t.last_used_ms.map(rfc3339),
            "expires_at": t.expires_ms.map(rfc3339),
        })).collect::<Vec<_>>(),
        "deletion_requested_at": data.deletion_requested_ms.map(rfc3339),
        "audit": data.audit.iter().map(|e| json!({
            "seq": e.seq,
            "at": rfc3339(e.at_ms),
            "action": e.action,
            "object": e.object,
            "outcome": e.outcome,
            "source": e.source,
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec_pretty(&body).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Response::builder()
        .content_type("application/json")
        .header(
            "content-disposition",
            "attachment; filename=\"ihms-connect-my-account.json\"",
        )
        .header("cache-control", "no-store")
        .body(bytes))
}

#[handler]
pub async fn request_deletion(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    self_service::request_deletion(&state.store, &posted.viewer.caller).map_err(AppError::from)?;
    Ok(Redirect::see_other("/account?requested").into_response())
}
