//! The second step of sign-in for a user with a second factor.
//!
//! Guarantees: the code step runs only for a pending sign-in from the same address
//! (`store::second_factor`), never for a session, and a session starts only after
//! a code (or recovery code) is accepted and used up; wrong codes count as failed
//! sign-ins in the throttle and are audited, as are attempts the throttle holds back;
//! codes are never logged or put in a URL.

use poem::http::StatusCode;
use poem::web::Redirect;
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;

use super::second_factor::{account_key, checker, header, landing, now_ms};
use crate::store::accounts::{self, User};
use crate::store::audit::{self, Event, Outcome};
use crate::store::second_factor::{self as factors, SecondStep};
use crate::store::sessions;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{
    AnonPosted, PRE_COOKIE, anon_csrf, cookie, session_cookie, source, state,
};

pub const PENDING_COOKIE: &str = "__Host-ihms_signin";

/// After a right password for an enrolled user: a pending sign-in and its cookie,
/// then the code page. No session exists yet.
pub fn start_code_step(
    state: &AppState,
    user: &User,
    from: Option<String>,
) -> poem::Result<Response> {
    let token =
        factors::start_pending(&state.store, user, from, now_ms(state)).map_err(AppError::from)?;
    let mut resp = Redirect::see_other("/signin/code").into_response();
    let max_age = factors::PENDING_MS / 1000;
    header(
        &mut resp,
        format!(
            "{PENDING_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
        ),
    )?;
    Ok(resp)
}

fn clear_pending_cookie() -> String {
    format!("{PENDING_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn back_to_signin() -> poem::Result<Response> {
    let mut resp = Redirect::see_other("/signin").into_response();
    header(&mut resp, clear_pending_cookie())?;
    Ok(resp)
}

#[derive(Serialize)]
struct CodeView<'a> {
    error: Option<&'a str>,
}

fn render_code(req: &Request, error: Option<&str>, status: StatusCode) -> poem::Result<Response> {
    let state = state(req)?;
    let Some(pre) = cookie(req, PRE_COOKIE) else {
        return back_to_signin();
    };
    let mut base = state.anonymous_base("Enter your code");
    base.csrf = anon_csrf(&state, pre);
    Ok(state
        .templates
        .render("signin_code.html", &base, CodeView { error })?
        .with_status(status)
        .into_response())
}

#[handler]
pub async fn code_page(req: &Request) -> poem::Result<Response> {
    let state = state(req)?;
    let live = match cookie(req, PENDING_COOKIE) {
        Some(token) => {
            factors::pending(&state.store, token, source(req).as_deref(), now_ms(&state))
                .map_err(AppError::from)?
        }
        None => None,
    };
    if live.is_none() {
        return back_to_signin();
    }
    render_code(req, None, StatusCode::OK)
}

#[handler]
pub async fn code(req: &Request, posted: AnonPosted) -> poem::Result<Response> {
    let state = state(req)?;
    let from = source(req);
    let Some(token) = cookie(req, PENDING_COOKIE) else {
        return back_to_signin();
    };
    let Some(pending) = factors::pending(&state.store, token, from.as_deref(), now_ms(&state))
        .map_err(AppError::from)?
    else {
        return back_to_signin();
    };
    let user = {
        let tx = state.store.read().map_err(AppError::from)?;
        accounts::active_user(&tx, pending.user_id).map_err(AppError::from)?
    };
    let Some(user) = user else {
        return back_to_signin();
    };
    let key = account_key(&state, &user);
    // Held until this attempt's failure is counted (see `Throttle::turn`).
    let turn = state.throttle.take_turn(&key, from.as_deref());
    if let Err(wait) = &turn {
        // Audited like a throttled password step, naming the account by id.
        let event = Event::anonymous("signin.throttled", from.clone(), Outcome::Refused)
            .actor(user.id)
            .object(user.id);
        audit::record(&state.store, event).map_err(AppError::from)?;
        // The same words as the password step: the wait may be a second, not minutes.
        let mut message = format!(
            "Too many failed attempts. Try again in {}.",
            crate::web::view::wait_text(*wait)
        );
        if wait.as_secs() > 60 {
            message.push_str(" An administrator can unblock the account sooner.");
        }
        let mut resp = render_code(req, Some(&message), StatusCode::TOO_MANY_REQUESTS)?;
        resp.headers_mut()
            .insert("retry-after", wait.as_secs().max(1).into());
        return Ok(resp);
    }
    let step = factors::second_step(
        &state.store,
        token,
        from.clone(),
        posted.form.get("code"),
        &checker(&state),
        now_ms(&state),
    )
    .map_err(AppError::from)?;
    match step {
        SecondStep::Passed(id, _) if id == user.id => {
            state.throttle.succeed(&key);
            let device = crate::domain::device::summary(req.header("user-agent"));
            let (session, _) = sessions::start_session_from(&state.store, &user, from, &device)
                .map_err(AppError::from)?;
            let mut resp = Redirect::see_other(landing(&state, &user)?).into_response();
            header(&mut resp, session_cookie(&session))?;
            header(&mut resp, clear_pending_cookie())?;
            Ok(resp)
        }
        SecondStep::Wrong { attempts_left, .. } => {
            state.throttle.fail(&key, from.as_deref());
            state
                .metrics
                .signin_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if attempts_left == 0 {
                return back_to_signin();
            }
            render_code(
                req,
                Some(
                    "That code does not match. Enter the current code from your app, or a recovery code.",
                ),
                StatusCode::UNAUTHORIZED,
            )
        }
        _ => back_to_signin(),
    }
}
