//! Admin pages: users, organizations and the audit log. Every handler takes
//! `AdminCap`, and account changes go through `AdminScope`.

use std::collections::{BTreeMap, HashMap};

use poem::http::StatusCode;
use poem::web::{Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::account::{NewOrgInput, NewUserInput};
use crate::domain::order::FieldError;
use crate::domain::{OrgKind, Role};
use crate::store::StoreError;
use crate::store::accounts::{self, AdminScope};
use crate::store::audit::{self, Filter, Outcome};
use crate::store::second_factor;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{AdminCap, FormFields, Posted, Viewer, id_or_refuse, state};
use crate::web::pages::session::{ErrorItem, title_case};
use crate::web::view::{Choice, when};

/// The admin's powers, or a 404 (audited as a refusal) for anyone else.
fn scope<'a>(state: &'a AppState, viewer: &'a Viewer) -> Result<AdminScope<'a>, AppError> {
    Ok(AdminScope::require(&state.store, &viewer.caller)?)
}

/// Turns a store conflict on a form into a field error.
fn conflict_to_field(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict("email") => {
            AppError::field("email", "is already used by another account")
        }
        StoreError::Conflict("organization_id") => AppError::field(
            "organization_id",
            "must be an active organization that fits the role",
        ),
        StoreError::Conflict(why) => AppError::BadRequest(why.to_string()),
        other => other.into(),
    }
}

#[derive(Serialize, Default)]
struct FormState {
    values: BTreeMap<String, String>,
    errors: BTreeMap<String, String>,
    error_list: Vec<ErrorItem>,
}

impl FormState {
    fn from_errors(form: &FormFields, errors: Vec<FieldError>) -> Self {
        let mut s = FormState {
            values: form
                .0
                .iter()
                .filter(|(k, _)| k != "csrf" && k != "password")
                .cloned()
                .collect(),
            ..Self::default()
        };
        for e in errors {
            s.error_list.push(ErrorItem {
                label: title_case(&e.field),
                field: e.field.clone(),
                message: e.message.clone(),
            });
            s.errors.entry(e.field).or_insert(e.message);
        }
        s
    }
}

#[derive(Serialize)]
struct UserRow {
    id: String,
    name: String,
    email: String,
    role_label: &'static str,
    org_name: String,
    disabled: bool,
    state: &'static str,
    state_label: &'static str,
    has_second_factor: bool,
}

/// What the users page confirms after an action redirected to it.
#[derive(Deserialize, Default)]
pub struct UsersQuery {
    done: Option<String>,
}

impl UsersQuery {
    fn notice(&self) -> Option<&'static str> {
        Some(match self.done.as_deref()? {
            "added" => "User added. They can sign in now.",
            "disabled" => "Account disabled. Its sessions and API tokens have ended.",
            "factor-reset" => {
                "Second factor removed and their sessions ended. They set up a new one at their next sign-in."
            }
            _ => return None,
        })
    }
}

fn render_users(
    req: &Request,
    viewer: &Viewer,
    form: FormState,
    status: StatusCode,
    notice: Option<&'static str>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let tx = state.store.read().map_err(AppError::from)?;
    let orgs = accounts::all_orgs(&tx).map_err(AppError::from)?;
    let names: HashMap<Uuid, String> = orgs.iter().map(|o| (o.id, o.name.clone())).collect();
    let has_factor =
        |id: Uuid| second_factor::get(&tx, id).map(|f| f.is_some_and(|f| f.enrolled()));
    let users: Vec<UserRow> = scope(&state, viewer)?
        .users()
        .map_err(AppError::from)?
        .into_iter()
        .map(|u| {
            Ok(UserRow {
                id: u.id.to_string(),
                has_second_factor: has_factor(u.id)?,
                name: u.name,
                email: u.email,
                role_label: u.role.label(),
                org_name: names.get(&u.org_id).cloned().unwrap_or_default(),
                disabled: u.disabled,
                state: u.state.code(),
                state_label: u.state.label(),
            })
        })
        .collect::<Result<_, StoreError>>()
        .map_err(AppError::from)?;
    drop(tx);
    let view = serde_json::json!({
        "users": users,
        "orgs": orgs.iter().filter(|o| !o.disabled).map(|o| serde_json::json!({
            "id": o.id.to_string(), "name": o.name, "kind_label": o.kind.label(),
        })).collect::<Vec<_>>(),
        "roles": Role::ALL.iter().map(|r| Choice { value: r.as_str().into(), label: r.label().into(), selected: false }).collect::<Vec<_>>(),
        "values": form.values,
        "errors": form.errors,
        "error_list": form.error_list,
    });
    let mut base = viewer.base(&state, "Users", "users");
    base.notice = notice.map(Into::into);
    Ok(state
        .templates
        .render("admin_users.html", &base, view)?
        .with_status(status)
        .into_response())
}

#[handler]
pub async fn users_page(
    req: &Request,
    AdminCap(viewer): AdminCap,
    Query(q): Query<UsersQuery>,
) -> poem::Result<Response> {
    render_users(
        req,
        &viewer,
        FormState::default(),
        StatusCode::OK,
        q.notice(),
    )
}

#[handler]
pub async fn create_user(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let admin = scope(&state, viewer)?;
    let input = NewUserInput {
        email: posted.form.get("email").into(),
        name: posted.form.get("name").into(),
        role: posted.form.get("role").into(),
        organization_id: posted.form.get("organization_id").into(),
        password: posted.form.get("password").into(),
        phone: posted.form.get("phone").into(),
    };
    let result = match input.parse() {
        Ok(new) => {
            let hash = state
                .hasher
                .hash(&input.password)
                .await
                .map_err(AppError::from)?;
            admin.create_user(&new, hash).map_err(conflict_to_field)
        }
        Err(errors) => Err(AppError::Invalid(errors)),
    };
    match result {
        Ok(_) => Ok(Redirect::see_other("/admin/users?done=added").into_response()),
        Err(AppError::Invalid(errors)) => render_users(
            req,
            viewer,
            FormState::from_errors(&posted.form, errors),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        Err(e) => Err(e.into()),
    }
}

fn parse_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

#[handler]
pub async fn disable_user(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let admin = scope(&state, &posted.viewer)?;
    let id = id_or_refuse(&id, || {
        audit::record(
            &state.store,
            audit::Event::by(
                &posted.viewer.caller,
                "user.disable",
                None,
                Outcome::Refused,
            ),
        )
        .map(|_| ())
    })?;
    admin.disable_user(id).map_err(conflict_to_field)?;
    Ok(Redirect::see_other("/admin/users?done=disabled").into_response())
}

#[derive(Serialize)]
struct OrgRow {
    id: String,
    name: String,
    kind: &'static str,
    kind_label: &'static str,
    npi: String,
    city: String,
    state: String,
    zip: String,
    disabled: bool,
}

fn render_orgs(
    req: &Request,
    viewer: &Viewer,
    form: FormState,
    status: StatusCode,
) -> poem::Result<Response> {
    let state = state(req)?;
    scope(&state, viewer)?;
    let tx = state.store.read().map_err(AppError::from)?;
    let orgs: Vec<OrgRow> = accounts::all_orgs(&tx)
        .map_err(AppError::from)?
        .into_iter()
        .map(|o| OrgRow {
            id: o.id.to_string(),
            name: o.name,
            kind: o.kind.as_str(),
            kind_label: o.kind.label(),
            npi: o.npi,
            city: o.city,
            state: o.state,
            zip: o.zip,
            disabled: o.disabled,
        })
        .collect();
    let view = serde_json::json!({
        "orgs": orgs,
        "kinds": OrgKind::ALL.iter().filter(|k| **k != OrgKind::Agency)
            .map(|k| Choice { value: k.as_str().into(), label: k.label().into(), selected: false }).collect::<Vec<_>>(),
        "values": form.values,
        "errors": form.errors,
        "error_list": form.error_list,
    });
    let base = viewer.base(&state, "Organizations", "organizations");
    Ok(state
        .templates
        .render("admin_orgs.html", &base, view)?
        .with_status(status)
        .into_response())
}

#[handler]
pub async fn orgs_page(req: &Request, AdminCap(viewer): AdminCap) -> poem::Result<Response> {
    render_orgs(req, &viewer, FormState::default(), StatusCode::OK)
}

#[handler]
pub async fn create_org(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let admin = scope(&state, viewer)?;
    let input = NewOrgInput {
        name: posted.form.get("name").into(),
        kind: posted.form.get("kind").into(),
        npi: posted.form.get("npi").into(),
        city: posted.form.get("city").into(),
        state: posted.form.get("state").into(),
        zip: posted.form.get("zip").into(),
        profile: Default::default(),
    };
    match input.parse() {
        Ok(new) => {
            admin.create_org(&new).map_err(AppError::from)?;
            Ok(Redirect::see_other("/admin/organizations").into_response())
        }
        Err(errors) => render_orgs(
            req,
            viewer,
            FormState::from_errors(&posted.form, errors),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    }
}

#[handler]
pub async fn disable_org(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    scope(&state, &posted.viewer)?
        .disable_org(parse_id(&id)?)
        .map_err(conflict_to_field)?;
    Ok(Redirect::see_other("/admin/organizations").into_response())
}

#[derive(Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    outcome: Option<String>,
    before: Option<u64>,
}

pub const AUDIT_ACTIONS: &[&str] = &[
    "signin",
    "signin.throttled",
    "signin.blocked",
    "signin.unblocked",
    "signin.purge",
    "session.end",
    "session.end_others",
    "api.throttled",
    "signout",
    "setup.first_admin",
    "org.create",
    "org.disable",
    "user.create",
    "user.disable",
    "token.create",
    "token.revoke",
    "order.create",
    "order.view",
    "order.list",
    "order.fit",
    "inbox.view",
    "order.search",
    "order.export",
    "order.review",
    "order.ask",
    "order.answer",
    "order.coverage",
    "order.coverage_override",
    "offer.create",
    "offer.respond",
    "offer.reply",
    "offer.withdraw",
    "offer.award",
    "order.start",
    "order.complete",
    "order.cancel",
    "org.profile",
    "api.auth",
    "admin.access",
    "csrf.reject",
    "service.start",
    "thread.view",
    "message.post",
    "document.upload",
    "document.link",
    "document.download",
    "document.delete",
    "document.orphans.shred",
    "document.identity.create",
    "document.identity.export",
    "document.link_key.create",
    "document.link_key.rotate",
    "signup.request",
    "signup.duplicate",
    "signup.throttled",
    "signup.access",
    "signup.approve",
    "signup.reject",
    "account.update",
    "account.export",
    "account.delete_request",
    "account.delete",
    "signin.password_ok",
    "signin.code_failed",
    "password.change",
    "password.reset_link",
    "password.reset",
    "mfa.enrol",
    "mfa.code_failed",
    "mfa.password_failed",
    "mfa.recovery_used",
    "mfa.replace_started",
    "mfa.disable",
    "mfa.admin_reset",
    "backup.export",
    "backup.restore",
    "backup.scheduled",
    "backup.snapshot",
    "audit.checkpoint",
];

#[handler]
pub async fn audit_log(
    req: &Request,
    AdminCap(viewer): AdminCap,
    Query(q): Query<AuditQuery>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let outcome = match nonempty(&q.outcome).as_deref() {
        None => None,
        Some("ok") => Some(Outcome::Ok),
        Some("refused") => Some(Outcome::Refused),
        Some("failed") => Some(Outcome::Failed),
        Some(_) => return Err(AppError::BadRequest("unknown outcome".into()).into()),
    };
    let actor = match nonempty(&q.actor) {
        Some(a) => Some(
            Uuid::parse_str(&a)
                .map_err(|_| AppError::BadRequest("the actor must be a user id".into()))?,
        ),
        None => None,
    };
    let filter = Filter {
        action: nonempty(&q.action),
        actor,
        outcome,
        before: q.before,
    };
    let tx = state.store.read().map_err(AppError::from)?;
    let (entries, more) = audit::list(&tx, &filter, 50).map_err(AppError::from)?;
    let params = |before: Option<u64>| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(a) = &filter.action {
            pairs.push(("action", a.clone()));
        }
        if let Some(a) = &filter.actor {
            pairs.push(("actor", a.to_string()));
        }
        if let Some(o) = &filter.outcome {
            pairs.push(("outcome", o.as_str().into()));
        }
        if let Some(b) = before {
            pairs.push(("before", b.to_string()));
        }
        format!(
            "/admin/audit?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let view = serde_json::json!({
        "entries": entries.iter().map(|e| serde_json::json!({
            "seq": e.seq,
            "at": when(e.at_ms),
            "actor": e.actor.map(|a| a.to_string()).unwrap_or_else(|| "—".into()),
            "actor_role": e.role.clone().unwrap_or_default(),
            "action": e.action,
            "object": e.object.clone().unwrap_or_default(),
            "outcome": e.outcome.as_str(),
            "source": e.source.clone().unwrap_or_default(),
        })).collect::<Vec<_>>(),
        "filters": {
            "action": filter.action.clone().unwrap_or_default(),
            "actor": filter.actor.map(|a| a.to_string()).unwrap_or_default(),
            "outcome": filter.outcome.map(|o| o.as_str()).unwrap_or(""),
        },
        "actions": AUDIT_ACTIONS,
        "next_url": if more { entries.last().map(|e| params(Some(e.seq))) } else { None },
        "first_url": q.before.map(|_| params(None)),
    });
    let base = viewer.base(&state, "Audit log", "audit");
    Ok(state
        .templates
        .render("audit.html", &base, view)?
        .into_response())
}

fn render_profile(
    req: &Request,
    viewer: &Viewer,
    id: Uuid,
    form: Option<(&FormFields, Vec<FieldError>)>,
) -> poem::Result<Response> {
    let state = state(req)?;
    scope(&state, viewer)?;
    let tx = state.store.read().map_err(AppError::from)?;
    let org = accounts::org(&tx, id)
        .map_err(AppError::from)?
        .filter(|o| o.kind.is_provider())
        .ok_or(AppError::NotFound)?;
    drop(tx);
    let p = &org.profile;
    let plan_code = |t: &crate::domain::order::PlanType| {
        serde_json::to_value(t)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let (zips, hcpcs, payers, disciplines, paused, status, errs) = match &form {
        Some((f, errors)) => (
            f.get("service_zips").to_string(),
            f.get("hcpcs").to_string(),
            f.all("payers_accepted"),
            f.all("disciplines"),
            f.get("paused") == "on",
            StatusCode::UNPROCESSABLE_ENTITY,
            FormState::from_errors(f, errors.clone()),
        ),
        None => (
            p.service_zips.join(", "),
            p.hcpcs.join(", "),
            p.payers_accepted.iter().map(plan_code).collect(),
            p.disciplines.iter().map(|d| format!("{d:?}")).collect(),
            p.paused,
            StatusCode::OK,
            FormState::default(),
        ),
    };
    let plans = [
        ("medicare", "Medicare"),
        ("medicare_advantage", "Medicare Advantage"),
        ("medicaid", "Medicaid"),
        ("commercial", "Commercial"),
        ("va", "VA"),
        ("self_pay", "Self-pay"),
    ];
    let discs = [
        ("SN", "Skilled nursing"),
        ("PT", "Physical therapy"),
        ("OT", "Occupational therapy"),
        ("ST", "Speech therapy"),
        ("MSW", "Medical social work"),
        ("HHA", "Home health aide"),
    ];
    let view = serde_json::json!({
        "org": { "id": org.id.to_string(), "name": org.name, "kind": org.kind.as_str(), "kind_label": org.kind.label() },
        "values": { "service_zips": zips, "hcpcs": hcpcs },
        "payers": plans.iter().map(|(v, l)| serde_json::json!({"value": v, "label": l, "checked": payers.iter().any(|p| p == v)})).collect::<Vec<_>>(),
        "disciplines": discs.iter().map(|(v, l)| serde_json::json!({"value": v, "label": l, "checked": disciplines.iter().any(|d| d == v)})).collect::<Vec<_>>(),
        "paused": paused,
        "errors": errs.errors,
        "error_list": errs.error_list,
    });
    let base = viewer.base(&state, format!("Directory: {}", org.name), "organizations");
    Ok(state
        .templates
        .render("org_profile.html", &base, view)?
        .with_status(status)
        .into_response())
}

#[handler]
pub async fn profile_page(
    req: &Request,
    AdminCap(viewer): AdminCap,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    render_profile(req, &viewer, parse_id(&id)?, None)
}

#[handler]
pub async fn save_profile(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let id = parse_id(&id)?;
    let admin = scope(&state, &posted.viewer)?;
    let f = &posted.form;
    let input = crate::domain::account::ProfileInput {
        service_zips: crate::domain::account::ProfileInput::split(f.get("service_zips")),
        payers_accepted: f.all("payers_accepted"),
        disciplines: f.all("disciplines"),
        hcpcs: crate::domain::account::ProfileInput::split(f.get("hcpcs")),
        paused: f.get("paused") == "on",
    };
    match input.parse() {
        Ok(profile) => {
            admin.set_profile(id, profile).map_err(conflict_to_field)?;
            Ok(Redirect::see_other("/admin/organizations").into_response())
        }
        Err(errors) => render_profile(req, &posted.viewer, id, Some((f, errors))),
    }
}
