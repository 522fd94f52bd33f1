//! The signed-in user's sessions page: each browser signed in as them (device,
//! address, signed in, last seen, the current one marked), and signing out one or
//! all of the others.
//!
//! Guarantees: sessions are named in forms by their public id, never by the cookie
//! value, and never in a URL; every change is a CSRF-checked post (`Posted`) that
//! reaches only the caller's own sessions (`store::own_sessions`).

use poem::web::{Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use crate::store::audit::{self, Event, Outcome};
use crate::store::own_sessions;
use crate::web::error::AppError;
use crate::web::extract::{Posted, Viewer, id_or_refuse, state};
use crate::web::view::when;

#[derive(Serialize)]
struct Row {
    id: String,
    device: String,
    address: String,
    signed_in: String,
    last_seen: String,
    current: bool,
}

#[derive(Deserialize)]
pub struct PageQuery {
    ended: Option<usize>,
}

#[handler]
pub async fn sessions_page(
    req: &Request,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let cfg = &state.cfg;
    let idle = (cfg.session_idle_minutes * 60_000) as i64;
    let absolute = (cfg.session_absolute_hours * 3_600_000) as i64;
    let rows: Vec<Row> =
        own_sessions::list(&state.store, &viewer.caller, &viewer.token, idle, absolute)
            .map_err(AppError::from)?
            .into_iter()
            .map(|s| Row {
                id: if s.public_id.is_nil() {
                    String::new()
                } else {
                    s.public_id.to_string()
                },
                device: if s.device.is_empty() {
                    crate::domain::device::UNKNOWN.to_string()
                } else {
                    s.device
                },
                address: s.source.unwrap_or_else(|| "Unknown".into()),
                signed_in: when(s.created_ms),
                last_seen: when(s.last_seen_ms),
                current: s.current,
            })
            .collect();
    let view = serde_json::json!({
        "sessions": rows,
        "ended": q.ended,
        "idle_minutes": cfg.session_idle_minutes,
        "absolute_hours": cfg.session_absolute_hours,
    });
    let base = viewer.base(&state, "Sessions", "sessions");
    Ok(state
        .templates
        .render("account_sessions.html", &base, view)?
        .into_response())
}

#[handler]
pub async fn end_session(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let v = &posted.viewer;
    let id = id_or_refuse(posted.form.get("session"), || {
        audit::record(
            &state.store,
            Event::by(&v.caller, "session.end", None, Outcome::Refused),
        )
        .map(|_| ())
    })?;
    own_sessions::end_one(&state.store, &v.caller, &v.token, id).map_err(AppError::from)?;
    Ok(Redirect::see_other("/account/sessions?ended=1").into_response())
}

#[handler]
pub async fn end_others(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let v = &posted.viewer;
    let ended =
        own_sessions::end_others(&state.store, &v.caller, &v.token).map_err(AppError::from)?;
    Ok(Redirect::see_other(format!("/account/sessions?ended={ended}")).into_response())
}
