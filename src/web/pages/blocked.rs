//! Admin page of accounts and addresses blocked after failed sign-ins, and the
//! unblock action.
//!
//! Guarantees: only an admin reaches either (`AdminCap`, `AdminScope`); a blocked
//! record is named in the unblock form by its keyed-hash key, never by an email;
//! admins see the account's name and email only when the email belongs to a user
//! (an email typed for no account is never stored); unblocking is a CSRF-checked
//! post, audited as `signin.unblocked` with the admin as actor.

use poem::web::{Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use crate::domain::guard::GuardKind;
use crate::store::accounts::AdminScope;
use crate::web::error::AppError;
use crate::web::extract::{AdminCap, Posted, state};
use crate::web::view::when;

#[derive(Serialize)]
struct Row {
    key: String,
    kind: &'static str,
    name: Option<String>,
    email: Option<String>,
    address: Option<String>,
    /// What the unblock button names for a screen reader.
    label: String,
    failures: u32,
    since: String,
    until: String,
}

#[derive(Deserialize)]
pub struct PageQuery {
    unblocked: Option<u8>,
}

#[handler]
pub async fn blocked_page(
    req: &Request,
    AdminCap(viewer): AdminCap,
    Query(q): Query<PageQuery>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let policy = state.throttle.policy();
    let blocked = AdminScope::require(&state.store, &viewer.caller)
        .and_then(|admin| admin.blocked_signins(policy, state.throttle.now_ms()))
        .map_err(AppError::from)?;
    let rows: Vec<Row> = blocked
        .into_iter()
        .map(|b| {
            let (kind, label) = match (b.kind, &b.user, &b.address) {
                (GuardKind::Address, _, a) => {
                    ("address", format!("address {}", a.as_deref().unwrap_or("")))
                }
                (GuardKind::Account, Some(u), _) => ("account", u.name.clone()),
                (GuardKind::Account, None, _) => ("account", "an email with no account".into()),
            };
            Row {
                key: hex::encode(&b.key),
                kind,
                name: b.user.as_ref().map(|u| u.name.clone()),
                email: b.user.as_ref().map(|u| u.email.clone()),
                address: b.address,
                label,
                failures: b.failures,
                since: when(b.blocked_since_ms),
                until: when(b.until_ms),
            }
        })
        .collect();
    let view = serde_json::json!({
        "blocked": rows,
        "unblocked": q.unblocked.is_some(),
        "max_failures": policy.max(GuardKind::Account),
        "address_max": policy.max(GuardKind::Address),
        "cooldown_minutes": state.cfg.signin_cooldown_minutes,
    });
    let base = viewer.base(&state, "Blocked sign-ins", "blocked");
    Ok(state
        .templates
        .render("admin_blocked.html", &base, view)?
        .into_response())
}

#[handler]
pub async fn unblock(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let admin = AdminScope::require(&state.store, &posted.viewer.caller).map_err(AppError::from)?;
    let key = hex::decode(posted.form.get("key")).map_err(|_| AppError::NotFound)?;
    admin
        .unblock_signin(state.throttle.policy(), &key, state.throttle.now_ms())
        .map_err(AppError::from)?;
    Ok(Redirect::see_other("/admin/blocked?unblocked=1").into_response())
}
