//! Sign-in, sign-out and the one-time first-admin setup.
//!
//! Guarantees: a new session id is issued at every sign-in (an id set before
//! sign-in is never reused); failures are throttled per account and address, one
//! attempt per account checked at a time, and audited without the email typed; sign-in answers the same for an unknown email
//! and a wrong password, after the same password-hash work.

use poem::http::StatusCode;
use poem::web::Redirect;
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;

use crate::crypto;
use crate::domain::account::{NewUserInput, normalize_email};
use crate::store::audit::{self, Event, Outcome};
use crate::store::{accounts, second_factor, sessions};
use crate::web::error::AppError;
use crate::web::extract::{
    AnonPosted, PRE_COOKIE, SignedInPosted, anon_csrf, clear_session_cookie, cookie, pre_cookie,
    session_cookie, source, state,
};

#[handler]
pub async fn home(req: &Request) -> Redirect {
    if cookie(req, crate::web::extract::SESSION_COOKIE).is_some() {
        Redirect::see_other("/orders")
    } else {
        Redirect::see_other("/signin")
    }
}

/// The pre-session cookie value for anonymous forms, and a Set-Cookie when new.
pub(crate) fn pre_session(req: &Request) -> Result<(String, Option<String>), AppError> {
    match cookie(req, PRE_COOKIE) {
        Some(v) if v.len() >= 32 && v.len() <= 64 => Ok((v.to_string(), None)),
        _ => {
            let v = crypto::random_token()?;
            let set = pre_cookie(&v);
            Ok((v, Some(set)))
        }
    }
}

#[derive(Serialize)]
struct SigninView<'a> {
    email: &'a str,
    error: Option<&'a str>,
}

fn render_signin(
    req: &Request,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> poem::Result<Response> {
    let state = state(req)?;
    let (pre, set) = pre_session(req)?;
    let mut base = state.anonymous_base("Sign in");
    base.csrf = anon_csrf(&state, &pre);
    let html = state
        .templates
        .render("signin.html", &base, SigninView { email, error })?;
    let mut resp = html.with_status(status).into_response();
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
pub async fn signin_page(req: &Request) -> poem::Result<Response> {
    let state = state(req)?;
    if !accounts::has_admin(&state.store).map_err(AppError::from)? {
        return Ok(Redirect::see_other("/setup").into_response());
    }
    render_signin(req, "", None, StatusCode::OK)
}

#[handler]
pub async fn signin(req: &Request, posted: AnonPosted) -> poem::Result<Response> {
    let state = state(req)?;
    let form = &posted.form;
    let email = normalize_email(form.get("email")).unwrap_or_default();
    let password = form.get("password");
    let from = source(req);
    let account_key = state.store.keys().blind_index("email", &email);
    // Held until this attempt's failure is counted (see `Throttle::turn`).
    let turn = state.throttle.turn(&account_key);
    let wait = match &turn {
        None => Some(crate::auth::throttle::BUSY),
        Some(_) => state
            .throttle
            .check(Some(&account_key), from.as_deref())
            .map_err(AppError::from)?,
    };
    if let Some(wait) = wait {
        audit::record(
            &state.store,
            Event::anonymous("signin.throttled", from, Outcome::Refused),
        )
        .map_err(AppError::from)?;
        let mut message = format!(
            "Too many failed attempts. Try again in {}.",
            crate::web::view::wait_text(wait)
        );
        if wait.as_secs() > 60 {
            message.push_str(" An administrator can unblock the account sooner.");
        }
        let mut resp = render_signin(
            req,
            form.get("email"),
            Some(&message),
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        resp.headers_mut()
            .insert("retry-after", wait.as_secs().max(1).into());
        return Ok(resp);
    }
    let user = accounts::user_by_email(&state.store, &email).map_err(AppError::from)?;
    let active = match &user {
        Some(u) => accounts::may_sign_in(&state.store, u.id).map_err(AppError::from)?,
        None => false,
    };
    let stored = user
        .as_ref()
        .filter(|_| active)
        .map(|u| u.password_hash.as_str());
    let ok = state
        .hasher
        .verify(password, stored)
        .await
        .map_err(AppError::from)?;
    let user = match user {
        Some(u) if ok && active => u,
        other => {
            state
                .metrics
                .signin_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut event = Event::anonymous("signin", from.clone(), Outcome::Failed);
            if let Some(u) = other {
                event = event.object(u.id);
            }
            // The failure, its count and any block it starts commit together.
            state
                .throttle
                .record_failure(Some(&account_key), from.as_deref(), Some(event))
                .map_err(AppError::from)?;
            return render_signin(
                req,
                form.get("email"),
                Some("That email and password do not match an active account."),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    if second_factor::is_enrolled(&state.store, user.id).map_err(AppError::from)? {
        // The account's failure count is cleared only once the code step passes.
        return super::signin_code::start_code_step(&state, &user, from);
    }
    state
        .throttle
        .record_success(&account_key)
        .map_err(AppError::from)?;
    let device = crate::domain::device::summary(req.header("user-agent"));
    let (token, _) =
        sessions::start_session_from(&state.store, &user, from, &device).map_err(AppError::from)?;
    let landing = if user.state.is_pending() {
        "/signup/pending"
    } else {
        super::second_factor::landing(&state, &user)?
    };
    let mut resp = Redirect::see_other(landing).into_response();
    resp.headers_mut().append(
        "set-cookie",
        session_cookie(&token)
            .parse()
            .map_err(|_| AppError::Internal("cookie".into()))?,
    );
    Ok(resp)
}

#[handler]
pub async fn signout(req: &Request, posted: SignedInPosted) -> poem::Result<Response> {
    let state = state(req)?;
    let v = &posted.viewer;
    sessions::end_session(&state.store, &v.token, &v.caller).map_err(AppError::from)?;
    let mut resp = Redirect::see_other("/signin").into_response();
    resp.headers_mut().append(
        "set-cookie",
        clear_session_cookie()
            .parse()
            .map_err(|_| AppError::Internal("cookie".into()))?,
    );
    Ok(resp)
}

#[derive(Serialize, Default)]
struct SetupView {
    values: std::collections::BTreeMap<String, String>,
    errors: std::collections::BTreeMap<String, String>,
    error_list: Vec<ErrorItem>,
}

#[derive(Serialize)]
pub struct ErrorItem {
    pub field: String,
    pub label: String,
    pub message: String,
}

fn render_setup(req: &Request, view: SetupView, status: StatusCode) -> poem::Result<Response> {
    let state = state(req)?;
    let (pre, set) = pre_session(req)?;
    let mut base = state.anonymous_base("Set up IHMS Connect");
    base.csrf = anon_csrf(&state, &pre);
    let mut resp = state
        .templates
        .render("setup.html", &base, view)?
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

fn setup_open(req: &Request) -> Result<bool, AppError> {
    let state = state(req)?;
    let pending = state
        .setup_code
        .lock()
        .map(|c| c.is_some())
        .unwrap_or(false);
    Ok(pending && !accounts::has_admin(&state.store)?)
}

#[handler]
pub async fn setup_page(req: &Request) -> poem::Result<Response> {
    if !setup_open(req)? {
        return Err(AppError::NotFound.into());
    }
    render_setup(req, SetupView::default(), StatusCode::OK)
}

#[handler]
pub async fn setup(req: &Request, posted: AnonPosted) -> poem::Result<Response> {
    if !setup_open(req)? {
        return Err(AppError::NotFound.into());
    }
    let state = state(req)?;
    let form = &posted.form;
    let mut view = SetupView::default();
    for f in ["name", "email"] {
        view.values.insert(f.into(), form.get(f).to_string());
    }
    fn add(view: &mut SetupView, field: &str, label: &str, message: &str) {
        view.errors
            .entry(field.into())
            .or_insert_with(|| message.into());
        view.error_list.push(ErrorItem {
            field: field.into(),
            label: label.into(),
            message: message.into(),
        });
    }
    let code_hash = crypto::sha256(form.get("setup_code").trim().as_bytes());
    let code_ok = state
        .setup_code
        .lock()
        .map(|c| c.is_some_and(|h| crypto::ct_eq(&h, &code_hash)))
        .unwrap_or(false);
    if !code_ok {
        add(
            &mut view,
            "setup_code",
            "Setup code",
            "does not match the code printed when the service started",
        );
    }
    let input = NewUserInput {
        email: form.get("email").into(),
        name: form.get("name").into(),
        role: "admin".into(),
        organization_id: uuid::Uuid::nil().to_string(),
        password: form.get("password").into(),
        phone: String::new(),
    };
    let parsed = input.parse();
    if let Err(errors) = &parsed {
        for e in errors {
            add(&mut view, &e.field, &title_case(&e.field), &e.message);
        }
    }
    if form.get("password") != form.get("password_confirm") {
        add(
            &mut view,
            "password_confirm",
            "Confirm password",
            "does not match the password",
        );
    }
    let new = match parsed {
        Ok(new) if view.errors.is_empty() => new,
        _ => {
            if !code_ok {
                audit::record(
                    &state.store,
                    Event::anonymous("setup.first_admin", source(req), Outcome::Refused),
                )
                .map_err(AppError::from)?;
            }
            return render_setup(req, view, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let hash = state
        .hasher
        .hash(form.get("password"))
        .await
        .map_err(AppError::from)?;
    let user = accounts::system_bootstrap(
        &state.store,
        &state.cfg.agency_name,
        &new,
        hash,
        source(req),
    )
    .map_err(AppError::from)?;
    if let Ok(mut code) = state.setup_code.lock() {
        *code = None;
    }
    tracing::info!(user = %user.id, "first admin created through the setup page");
    let device = crate::domain::device::summary(req.header("user-agent"));
    let (token, _) = sessions::start_session_from(&state.store, &user, source(req), &device)
        .map_err(AppError::from)?;
    let landing = super::second_factor::landing(&state, &user)?;
    let mut resp = Redirect::see_other(landing).into_response();
    resp.headers_mut().append(
        "set-cookie",
        session_cookie(&token)
            .parse()
            .map_err(|_| AppError::Internal("cookie".into()))?,
    );
    Ok(resp)
}

pub fn title_case(field: &str) -> String {
    let words = field.rsplit('.').next().unwrap_or(field).replace('_', " ");
    let mut c = words.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
