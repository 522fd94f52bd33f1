//! Public sign-up and the waiting page of an account that is not approved yet.
//!
//! Guarantees: the answer to a valid sign-up never depends on whether its email
//! already has an account (the same redirect after the same password-hash and store
//! work); sign-ups are throttled per source address (IPv6 by /64) and carry the
//! double-submit CSRF token; nothing typed is logged or audited; the waiting page
//! shows a pending account its own request and nothing else, and lets it sign out.

use poem::http::StatusCode;
use poem::web::Redirect;
use poem::{FromRequest, IntoResponse, Request, RequestBody, Response, handler};
use serde::Serialize;

use crate::crypto;
use crate::domain::signup::{AccountState, REQUESTABLE, SignupInput};
use crate::store::accounts::{Standing, User};
use crate::store::audit::{self, Event, Outcome};
use crate::store::sessions::{self, Session};
use crate::store::signups;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{
    AnonPosted, FormFields, SESSION_COOKIE, anon_csrf, clear_session_cookie, cookie, read_form,
    same_origin, source, state,
};
use crate::web::pages::session::{ErrorItem, pre_session, title_case};
use crate::web::view::Choice;

#[derive(Serialize, Default)]
struct SignupView {
    values: std::collections::BTreeMap<String, String>,
    errors: std::collections::BTreeMap<String, String>,
    error_list: Vec<ErrorItem>,
    kinds: Vec<Choice>,
    error: Option<&'static str>,
}

fn render_signup(
    req: &Request,
    mut view: SignupView,
    status: StatusCode,
) -> poem::Result<Response> {
    let state = state(req)?;
    let (pre, set) = pre_session(req)?;
    let mut base = state.anonymous_base("Request an account");
    base.csrf = anon_csrf(&state, &pre);
    view.kinds = REQUESTABLE
        .iter()
        .map(|k| Choice {
            value: k.as_str().into(),
            label: k.label().into(),
            selected: false,
        })
        .collect();
    let mut resp = state
        .templates
        .render("signup.html", &base, view)?
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

#[handler]
pub async fn signup_page(req: &Request) -> poem::Result<Response> {
    render_signup(req, SignupView::default(), StatusCode::OK)
}

/// The throttle key of a source address (requests without one share a key). An
/// IPv6 address counts by its /64, as at sign-in, so one host cannot sign up without
/// limit by moving through the addresses it holds.
fn address_key(from: Option<&str>) -> Vec<u8> {
    let mut k = b"signup:".to_vec();
    let bucket = from.map(crate::domain::guard::address_bucket);
    k.extend_from_slice(bucket.as_deref().unwrap_or("unknown").as_bytes());
    k
}

#[handler]
pub async fn signup(req: &Request, posted: AnonPosted) -> poem::Result<Response> {
    let state = state(req)?;
    let form = &posted.form;
    let from = source(req);
    let key = address_key(from.as_deref());
    if let Some(wait) = state.signup_throttle.blocked(&key, None) {
        audit::record(
            &state.store,
            Event::anonymous("signup.throttled", from, Outcome::Refused),
        )
        .map_err(AppError::from)?;
        let view = SignupView {
            values: kept_values(form),
            error: Some("Too many sign-up requests from this network. Try again later."),
            ..SignupView::default()
        };
        let mut resp = render_signup(req, view, StatusCode::TOO_MANY_REQUESTS)?;
        resp.headers_mut()
            .insert("retry-after", wait.as_secs().max(1).into());
        return Ok(resp);
    }
    let input = SignupInput {
        name: form.get("name").into(),
        email: form.get("email").into(),
        phone: form.get("phone").into(),
        kind: form.get("kind").into(),
        organization: form.get("organization").into(),
        password: form.get("password").into(),
        password_confirm: form.get("password_confirm").into(),
    };
    let signup = match input.parse() {
        Ok(s) => s,
        Err(errors) => {
            let mut view = SignupView {
                values: kept_values(form),
                ..SignupView::default()
            };
            for e in errors {
                view.error_list.push(ErrorItem {
                    label: title_case(&e.field),
                    field: e.field.clone(),
                    message: e.message.clone(),
                });
                view.errors.entry(e.field).or_insert(e.message);
            }
            return render_signup(req, view, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    state.signup_throttle.fail(&key, None);
    // Hashed whether or not the email is taken, so both answers take as long.
    let hash = state
        .hasher
        .hash(&input.password)
        .await
        .map_err(AppError::from)?;
    signups::request(&state.store, &signup, hash, from).map_err(AppError::from)?;
    Ok(Redirect::see_other("/signup/pending").into_response())
}

/// What a failed form shows again: everything typed except passwords and the token.
fn kept_values(form: &FormFields) -> std::collections::BTreeMap<String, String> {
    form.0
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "csrf" | "password" | "password_confirm"))
        .cloned()
        .collect()
}

/// A live session of a pending account, as only the waiting page and its sign-out
/// take it.
pub struct PendingSession {
    user: User,
    session: Session,
    token: String,
}

fn pending_session(state: &AppState, req: &Request) -> Result<Option<PendingSession>, AppError> {
    let Some(token) = cookie(req, SESSION_COOKIE) else {
        return Ok(None);
    };
    let cfg = &state.cfg;
    let idle = (cfg.session_idle_minutes * 60_000) as i64;
    let absolute = (cfg.session_absolute_hours * 3_600_000) as i64;
    Ok(
        match sessions::session(&state.store, token, idle, absolute)? {
            Some((session, user, Standing::Pending)) => Some(PendingSession {
                user,
                session,
                token: token.to_string(),
            }),
            _ => None,
        },
    )
}

#[derive(Serialize)]
struct PendingView {
    signed_in: bool,
    name: String,
    organization: String,
    kind_label: &'static str,
    requested_at: String,
}

#[handler]
pub async fn pending_page(req: &Request) -> poem::Result<Response> {
    let state = state(req)?;
    let mut base = state.anonymous_base("Waiting for approval");
    let view = match pending_session(&state, req)? {
        Some(p) => {
            base.csrf = p.session.csrf.clone();
            let (organization, kind_label, requested_at) = match &p.user.state {
                AccountState::Pending {
                    kind,
                    organization,
                    requested_ms,
                } => (
                    organization.clone(),
                    kind.label(),
                    crate::web::view::when(*requested_ms),
                ),
                _ => (String::new(), "", String::new()),
            };
            PendingView {
                signed_in: true,
                name: p.user.name.clone(),
                organization,
                kind_label,
                requested_at,
            }
        }
        None => PendingView {
            signed_in: false,
            name: String::new(),
            organization: String::new(),
            kind_label: "",
            requested_at: String::new(),
        },
    };
    Ok(state
        .templates
        .render("signup_pending.html", &base, view)?
        .into_response())
}

/// The waiting page's sign-out form: the pending session's own CSRF token.
pub struct PendingSignout(PendingSession);

impl<'a> FromRequest<'a> for PendingSignout {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let state = state(req)?;
        let pending = pending_session(&state, req)?.ok_or(AppError::SignInRequired)?;
        same_origin(req)?;
        let form = FormFields(read_form(body).await?);
        if !crypto::ct_eq(form.get("csrf").as_bytes(), pending.session.csrf.as_bytes()) {
            return Err(AppError::Csrf.into());
        }
        Ok(PendingSignout(pending))
    }
}

#[handler]
pub async fn pending_signout(req: &Request, signout: PendingSignout) -> poem::Result<Response> {
    let state = state(req)?;
    let PendingSignout(p) = signout;
    let caller = p.user.caller(source(req));
    sessions::end_session(&state.store, &p.token, &caller).map_err(AppError::from)?;
    let mut resp = Redirect::see_other("/signin").into_response();
    resp.headers_mut().append(
        "set-cookie",
        clear_session_cookie()
            .parse()
            .map_err(|_| AppError::Internal("cookie".into()))?,
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::address_key;

    #[test]
    fn sign_ups_from_one_ipv6_64_share_one_limit() {
        assert_eq!(
            address_key(Some("2001:db8:1:2::1")),
            address_key(Some("2001:db8:1:2:ffff:ffff:ffff:fffe"))
        );
        assert_ne!(
            address_key(Some("2001:db8:1:2::1")),
            address_key(Some("2001:db8:1:3::1"))
        );
        assert_eq!(
            address_key(Some("::ffff:192.0.2.7")),
            address_key(Some("192.0.2.7"))
        );
        assert_ne!(
            address_key(Some("192.0.2.7")),
            address_key(Some("192.0.2.8"))
        );
    }
}
