//! Changing one's own password, and one-time reset links issued by an admin.
//!
//! Guarantees: every new password passes `domain::password::check` (with the
//! user's own name, email and second factor); changing it needs the current password
//! (checked on the argon2 pool, wrong ones throttled like failed sign-ins) and ends
//! the user's other sessions; a reset link is shown to the admin once, in the answer
//! to the post that issued it, and never again; the reset form posts the secret in
//! its body, not its address. Passwords and link secrets are never logged.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::web::{Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;

use crate::crypto;
use crate::domain::password::{self, PasswordContext};
use crate::store::accounts::{AdminScope, User};
use crate::store::audit::{self, Event, Outcome};
use crate::store::{StoreError, credentials, second_factor};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{AnonPosted, Posted, Viewer, anon_csrf, id_or_refuse, source, state};

use super::session::pre_session;

#[derive(Serialize, Default)]
struct PasswordView {
    errors: BTreeMap<String, String>,
    min: usize,
}

/// The policy for `user`, as a field error list (empty when the password is fine).
fn policy_errors(
    state: &AppState,
    user: &User,
    new: &str,
    confirm: &str,
) -> Result<BTreeMap<String, String>, AppError> {
    let mut errors = BTreeMap::new();
    let context = PasswordContext {
        name: &user.name,
        email: &user.email,
        has_second_factor: second_factor::is_enrolled(&state.store, user.id)?,
    };
    if let Err(e) = password::check(new, &context) {
        errors.insert("password".to_string(), e.to_string());
    }
    if new != confirm {
        errors.insert(
            "password_confirm".to_string(),
            "does not match the new password".to_string(),
        );
    }
    Ok(errors)
}

fn min_for(state: &AppState, user: &User) -> Result<usize, AppError> {
    Ok(if second_factor::is_enrolled(&state.store, user.id)? {
        password::MIN_WITH_SECOND_FACTOR
    } else {
        password::MIN_WITHOUT_SECOND_FACTOR
    })
}

fn render(
    req: &Request,
    viewer: &Viewer,
    errors: BTreeMap<String, String>,
    notice: Option<String>,
    status: StatusCode,
) -> poem::Result<Response> {
    let state = state(req)?;
    let mut base = viewer.base(&state, "Password", "password");
    base.notice = notice;
    let view = PasswordView {
        errors,
        min: min_for(&state, &viewer.user)?,
    };
    Ok(state
        .templates
        .render("account_password.html", &base, view)?
        .with_status(status)
        .into_response())
}

#[handler]
pub async fn page(req: &Request, viewer: Viewer) -> poem::Result<Response> {
    render(req, &viewer, BTreeMap::new(), None, StatusCode::OK)
}

#[handler]
pub async fn change(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let form = &posted.form;
    let key = state.store.keys().blind_index("email", &viewer.user.email);
    let from = source(req);
    let _turn = state
        .throttle
        .take_turn(&key, from.as_deref())
        .map_err(|wait| AppError::TooMany(wait.as_secs().max(1)))?;
    let current_ok = state
        .hasher
        .verify(
            form.get("current_password"),
            Some(&viewer.user.password_hash),
        )
        .await
        .map_err(AppError::from)?;
    if !current_ok {
        state.throttle.fail(&key, from.as_deref());
        audit::record(
            &state.store,
            Event::by(&viewer.caller, "password.change", None, Outcome::Refused),
        )
        .map_err(AppError::from)?;
        let mut errors = BTreeMap::new();
        errors.insert(
            "current_password".to_string(),
            "is not your current password".to_string(),
        );
        return render(req, viewer, errors, None, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let errors = policy_errors(
        &state,
        &viewer.user,
        form.get("password"),
        form.get("password_confirm"),
    )?;
    if !errors.is_empty() {
        return render(req, viewer, errors, None, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let hash = state
        .hasher
        .hash(form.get("password"))
        .await
        .map_err(AppError::from)?;
    let keep = crypto::sha256(viewer.token.as_bytes());
    credentials::change_own_password(&state.store, &viewer.caller, hash, &keep)
        .map_err(AppError::from)?;
    let notice = "Your password was changed. Your other sessions were signed out.";
    render(
        req,
        viewer,
        BTreeMap::new(),
        Some(notice.into()),
        StatusCode::OK,
    )
}

// ---------------------------------------------------------------------------
// Reset links.

#[handler]
pub async fn issue_link(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let admin = AdminScope::require(&state.store, &viewer.caller).map_err(AppError::from)?;
    let id = id_or_refuse(&id, || {
        audit::record(
            &state.store,
            Event::by(
                &viewer.caller,
                "password.reset_link",
                None,
                Outcome::Refused,
            ),
        )
        .map(|_| ())
    })?;
    let secret = match credentials::issue_reset_link(&admin, id, state.clock.now_ms()) {
        Ok(s) => s,
        Err(StoreError::NotFound) => {
            let event = Event::by(
                &viewer.caller,
                "password.reset_link",
                Some(id.to_string()),
                Outcome::Refused,
            );
            audit::record(&state.store, event).map_err(AppError::from)?;
            return Err(AppError::NotFound.into());
        }
        Err(StoreError::Conflict(why)) => return Err(AppError::BadRequest(why.into()).into()),
        Err(e) => return Err(AppError::from(e).into()),
    };
    let user = admin
        .users()
        .map_err(AppError::from)?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or(AppError::NotFound)?;
    let host = req
        .header("host")
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let view = serde_json::json!({
        "link": format!("https://{host}/reset/{secret}"),
        "name": user.name,
        "email": user.email,
        "hours": credentials::RESET_LINK_MS / 3_600_000,
    });
    let base = viewer.base(&state, "Password reset link", "users");
    Ok(state
        .templates
        .render("admin_reset_link.html", &base, view)?
        .into_response())
}

fn render_reset(
    req: &Request,
    secret: &str,
    min: usize,
    errors: BTreeMap<String, String>,
    status: StatusCode,
) -> poem::Result<Response> {
    let state = state(req)?;
    let (pre, set) = pre_session(req)?;
    let mut base = state.anonymous_base("Choose a new password");
    base.csrf = anon_csrf(&state, &pre);
    let view = serde_json::json!({ "secret": secret, "errors": errors, "min": min });
    let mut resp = state
        .templates
        .render("reset_password.html", &base, view)?
        .with_status(status)
        .into_response();
    if let Some(set) = set {
        resp.headers_mut().append(
            "set-cookie",
            set.parse()
                .map_err(|_| AppError::Internal("cookie".into()))?,
        );
    }
    Ok(resp)
}

/// A link that is unknown, used or expired: audited, and the same 404 as any page
/// that does not exist.
fn refuse_link(state: &AppState, req: &Request) -> poem::Result<Response> {
    audit::record(
        &state.store,
        Event::anonymous("password.reset", source(req), Outcome::Refused),
    )
    .map_err(AppError::from)?;
    Err(AppError::NotFound.into())
}

#[handler]
pub async fn reset_page(req: &Request, Path(secret): Path<String>) -> poem::Result<Response> {
    let state = state(req)?;
    let user = credentials::reset_link_user(&state.store, &secret, state.clock.now_ms())
        .map_err(AppError::from)?;
    let Some(user) = user else {
        return refuse_link(&state, req);
    };
    render_reset(
        req,
        &secret,
        min_for(&state, &user)?,
        BTreeMap::new(),
        StatusCode::OK,
    )
}

#[handler]
pub async fn reset(req: &Request, posted: AnonPosted) -> poem::Result<Response> {
    let state = state(req)?;
    let form = &posted.form;
    let secret = form.get("secret");
    let now = state.clock.now_ms();
    let user = credentials::reset_link_user(&state.store, secret, now).map_err(AppError::from)?;
    let Some(user) = user else {
        return refuse_link(&state, req);
    };
    let errors = policy_errors(
        &state,
        &user,
        form.get("password"),
        form.get("password_confirm"),
    )?;
    if !errors.is_empty() {
        let min = min_for(&state, &user)?;
        return render_reset(req, secret, min, errors, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let hash = state
        .hasher
        .hash(form.get("password"))
        .await
        .map_err(AppError::from)?;
    match credentials::use_reset_link(&state.store, secret, hash, source(req), now) {
        Ok(_) => Ok(Redirect::see_other("/signin").into_response()),
        Err(StoreError::NotFound) => Err(AppError::NotFound.into()),
        Err(e) => Err(AppError::from(e).into()),
    }
}
