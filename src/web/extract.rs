//! Typed extractors: the only ways a handler learns who is calling.
//!
//! Guarantees: `Viewer` exists only for a live session of an active user who owes
//! no second factor (one who does is sent to enrol; only `SignedIn` and
//! `SignedInPosted`, used by enrolment and sign-out, accept them; a pending
//! account's session gets `AwaitingApproval`, which pages turn into a redirect to
//! the waiting page); `AdminCap` only for an admin (anyone else gets the same 404 as
//! a missing page, audited); `ApiCaller` only for a valid bearer token (wrong tokens
//! count against the address like failed sign-ins, and a throttled address gets
//! 429); `Posted` (the only way to read a form from a signed-in user) checks the
//! session's CSRF token and refuses cross-site posts; `AnonPosted` does the same for
//! sign-in and setup with a double-submit cookie. Form bodies are read with a size
//! limit.

use std::sync::Arc;

use poem::{FromRequest, Request, RequestBody};

use super::AppState;
use super::error::AppError;
use super::view::{Base, UserView};
use crate::crypto;
use crate::domain::Caller;
use crate::store::accounts::{self, AdminScope, Standing, User};
use crate::store::audit::{self, Event, Outcome};
use crate::store::second_factor;
use crate::store::sessions::{self, Session};

pub const SESSION_COOKIE: &str = "__Host-ihms_session";
pub const PRE_COOKIE: &str = "__Host-ihms_pre";
const FORM_LIMIT: usize = 256 * 1024;

pub fn state(req: &Request) -> Result<Arc<AppState>, AppError> {
    req.data::<Arc<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal("application state missing".into()))
}

pub fn source(req: &Request) -> Option<String> {
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
}

pub fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// An id from a request path. One that does not even parse is refused like any
/// other party's object: `refuse` audits it and the answer is 404.
pub fn id_or_refuse(
    raw: &str,
    refuse: impl FnOnce() -> Result<(), crate::store::StoreError>,
) -> Result<uuid::Uuid, AppError> {
    match uuid::Uuid::parse_str(raw) {
        Ok(id) => Ok(id),
        Err(_) => {
            refuse()?;
            Err(AppError::NotFound)
        }
    }
}

/// A signed-in person using the web pages.
pub struct Viewer {
    pub caller: Caller,
    pub user: User,
    pub org_name: String,
    pub session: Session,
    pub token: String,
}

impl Viewer {
    pub fn base(&self, state: &AppState, title: impl Into<String>, active: &'static str) -> Base {
        Base {
            title: title.into(),
            agency_name: state.cfg.agency_name.clone(),
            user: Some(UserView {
                id: self.user.id.to_string(),
                name: self.user.name.clone(),
                email: self.user.email.clone(),
                role: self.user.role.as_str(),
                role_label: self.user.role.label(),
                org_name: self.org_name.clone(),
            }),
            csrf: self.session.csrf.clone(),
            active,
            notice: None,
            inbox_count: super::pages::dashboard::awaiting(state, self)
                .map(|o| o.len())
                .unwrap_or(0),
            queues: self
                .caller
                .is_agency()
                .then(|| crate::store::signups::queue_counts(&state.store).ok())
                .flatten()
                .map(|(signups, deletions)| super::view::QueueCounts { signups, deletions })
                .unwrap_or_default(),
            ops_alert: (self.user.role == crate::domain::Role::Admin)
                .then(|| state.jobs.failure())
                .flatten()
                .map(|why| format!("the last scheduled backup failed ({why}). It is retried within the hour; see /healthz.")),
        }
    }
}

impl Viewer {
    /// The signed-in person, whether or not they still owe a second factor (only the
    /// second-factor pages and sign-out take this; see `SignedIn`).
    async fn load(req: &Request) -> poem::Result<Self> {
        let state = state(req)?;
        let token = cookie(req, SESSION_COOKIE).ok_or(AppError::SignInRequired)?;
        let cfg = &state.cfg;
        let idle = (cfg.session_idle_minutes * 60_000) as i64;
        let absolute = (cfg.session_absolute_hours * 3_600_000) as i64;
        let (session, user, standing) = sessions::session(&state.store, token, idle, absolute)
            .map_err(AppError::from)?
            .ok_or(AppError::SignInRequired)?;
        // The one place a pending account is stopped: every page and form built on
        // `Viewer` (and so `Posted`, `AdminCap`) sends it to the waiting page.
        if standing != Standing::Active {
            return Err(AppError::AwaitingApproval.into());
        }
        let org_name = {
            let tx = state.store.read().map_err(AppError::from)?;
            accounts::org(&tx, user.org_id)
                .map_err(AppError::from)?
                .map(|o| o.name)
                .unwrap_or_default()
        };
        Ok(Viewer {
            caller: user.caller(source(req)),
            user,
            org_name,
            session,
            token: token.to_string(),
        })
    }

    /// Whether this user must enrol a second factor before reaching anything else.
    pub fn owes_second_factor(&self, state: &AppState) -> Result<bool, AppError> {
        let required = crate::domain::second_factor::required(
            self.user.role,
            state.cfg.require_second_factor_for_all,
        );
        Ok(second_factor::is_owed(
            &state.store,
            self.user.id,
            required,
        )?)
    }
}

impl<'a> FromRequest<'a> for Viewer {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let viewer = Viewer::load(req).await?;
        if viewer.owes_second_factor(&*state(req)?)? {
            return Err(AppError::SecondFactorRequired.into());
        }
        Ok(viewer)
    }
}

/// A signed-in person who may still owe a second factor: only for enrolling one and
/// for signing out.
pub struct SignedIn(pub Viewer);

impl<'a> FromRequest<'a> for SignedIn {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Ok(SignedIn(Viewer::load(req).await?))
    }
}

/// A form posted by a `SignedIn` person, with its CSRF token checked.
pub struct SignedInPosted {
    pub viewer: Viewer,
    pub form: FormFields,
}

impl<'a> FromRequest<'a> for SignedInPosted {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let viewer = Viewer::load(req).await?;
        same_origin(req)?;
        let form = FormFields(read_form(body).await?);
        check_csrf(req, &viewer, form.get("csrf"))?;
        Ok(SignedInPosted { viewer, form })
    }
}

/// An agency admin. Anyone else is refused with 404 and the refusal is audited.
pub struct AdminCap(pub Viewer);

impl<'a> FromRequest<'a> for AdminCap {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let viewer = Viewer::from_request(req, body).await?;
        let state = state(req)?;
        AdminScope::require(&state.store, &viewer.caller).map_err(AppError::from)?;
        Ok(AdminCap(viewer))
    }
}

/// A caller of the JSON API, authenticated by `Authorization: Bearer <token>`.
pub struct ApiCaller {
    pub caller: Caller,
    pub user: User,
}

impl<'a> FromRequest<'a> for ApiCaller {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = state(req)?;
        let secret = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(AppError::SignInRequired)?;
        // Token guesses count against the address like failed sign-ins do.
        let from = source(req);
        if let Some(wait) = state
            .throttle
            .check(None, from.as_deref())
            .map_err(AppError::from)?
        {
            let event = audit::Event::anonymous("api.throttled", from, Outcome::Refused);
            audit::record(&state.store, event).map_err(AppError::from)?;
            return Err(AppError::TooMany(wait.as_secs().max(1)).into());
        }
        let Some(user) = sessions::token_user(&state.store, secret).map_err(AppError::from)? else {
            let event = audit::Event::anonymous("api.auth", from.clone(), Outcome::Failed);
            state
                .throttle
                .record_failure(None, from.as_deref(), Some(event))
                .map_err(AppError::from)?;
            return Err(AppError::SignInRequired.into());
        };
        Ok(ApiCaller {
            caller: user.caller(source(req)),
            user,
        })
    }
}

/// Refuses a state change that a browser marks as coming from another site.
pub(crate) fn same_origin(req: &Request) -> Result<(), AppError> {
    match req.header("sec-fetch-site") {
        Some("cross-site" | "same-site") => return Err(AppError::Csrf),
        // The browser itself vouches for the origin. It may still send `Origin: null`:
        // browsers do on every form post under `Referrer-Policy: no-referrer`.
        Some("same-origin") => return Ok(()),
        _ => {}
    }
    // HTTP/2 carries the host in the URI's authority rather than a Host header.
    let host = req
        .header("host")
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if let (Some(origin), Some(host)) = (req.header("origin"), host) {
        let expected = format!("https://{host}");
        if origin != expected {
            return Err(AppError::Csrf);
        }
    }
    Ok(())
}

pub(crate) async fn read_form(body: &mut RequestBody) -> Result<Vec<(String, String)>, AppError> {
    let bytes = body
        .take()
        .map_err(|_| AppError::BadRequest("the form could not be read".into()))?
        .into_bytes_limit(FORM_LIMIT)
        .await
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => AppError::TooLarge,
            _ => AppError::BadRequest("the form could not be read".into()),
        })?;
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| AppError::BadRequest("the form could not be read".into()))
}

/// Form fields, in order, with helpers for single values.
pub struct FormFields(pub Vec<(String, String)>);

impl FormFields {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A form posted by a signed-in user, with its CSRF token checked.
pub struct Posted {
    pub viewer: Viewer,
    pub form: FormFields,
}

impl<'a> FromRequest<'a> for Posted {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let viewer = Viewer::from_request(req, body).await?;
        same_origin(req)?;
        let form = FormFields(read_form(body).await?);
        check_csrf(req, &viewer, form.get("csrf"))?;
        Ok(Posted { viewer, form })
    }
}

/// Compares a posted CSRF token with the session's; a mismatch is audited.
pub(crate) fn check_csrf(req: &Request, viewer: &Viewer, given: &str) -> Result<(), AppError> {
    if crypto::ct_eq(given.as_bytes(), viewer.session.csrf.as_bytes()) {
        return Ok(());
    }
    let state = state(req)?;
    audit::record(
        &state.store,
        Event::by(&viewer.caller, "csrf.reject", None, Outcome::Refused),
    )?;
    Err(AppError::Csrf)
}

/// The token an anonymous form must carry: a MAC of the pre-session cookie.
pub fn anon_csrf(state: &AppState, pre_cookie: &str) -> String {
    hex::encode(state.store.keys().csrf_mac(pre_cookie.as_bytes()))
}

/// A form posted before sign-in (sign-in, first set-up): double-submit check.
pub struct AnonPosted {
    pub form: FormFields,
}

impl<'a> FromRequest<'a> for AnonPosted {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let state = state(req)?;
        same_origin(req)?;
        let pre = cookie(req, PRE_COOKIE).ok_or(AppError::Csrf)?;
        let form = FormFields(read_form(body).await?);
        if !crypto::ct_eq(
            form.get("csrf").as_bytes(),
            anon_csrf(&state, pre).as_bytes(),
        ) {
            return Err(AppError::Csrf.into());
        }
        Ok(AnonPosted { form })
    }
}

pub fn session_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

pub fn pre_cookie(value: &str) -> String {
    format!("{PRE_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict")
}
