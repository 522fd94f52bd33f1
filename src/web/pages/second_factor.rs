//! The second factor: enrolment (QR code and secret, confirmed by a first code,
//! ten recovery codes shown once), replacing or turning it off, and an admin
//! removing a lost one. The code step of sign-in is in `signin_code`.
//!
//! Guarantees: a first enrolment needs the password; replacing or turning off a
//! factor needs the password and a current code; turning it off is refused where the
//! factor is required, or while the password is shorter than the minimum without one
//! (12 characters are enough only with a second factor); a replacement is seen and
//! confirmed only by the session that started it; confirming a factor ends the
//! user's other sessions; only an admin removes someone else's. Codes, secrets and
//! passwords are never logged, audited or put in a URL.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::web::{Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;

use crate::auth::totp;
use crate::crypto;
use crate::store::StoreError;
use crate::store::accounts::{AdminScope, User};
use crate::store::audit::{self, Event, Outcome};
use crate::store::second_factor::{self as factors, CodeUse};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{Posted, SignedIn, SignedInPosted, Viewer, id_or_refuse, source, state};

pub(super) fn header(resp: &mut Response, value: String) -> Result<(), AppError> {
    resp.headers_mut().append(
        "set-cookie",
        value
            .parse()
            .map_err(|_| AppError::Internal("cookie".into()))?,
    );
    Ok(())
}

pub(super) fn now_ms(state: &AppState) -> i64 {
    state.clock.now_ms()
}

/// The TOTP check at the app's clock.
pub(super) fn checker(
    state: &AppState,
) -> impl Fn(&[u8], &str, Option<u64>) -> Option<u64> + use<> {
    let now = now_ms(state);
    move |secret, typed, after| totp::accept(secret, typed, now, after)
}

/// Where a user lands after signing in: enrolment while they owe a second factor.
pub fn landing(state: &AppState, user: &User) -> Result<&'static str, AppError> {
    let required =
        crate::domain::second_factor::required(user.role, state.cfg.require_second_factor_for_all);
    if factors::is_owed(&state.store, user.id, required)? {
        Ok("/account/second-factor")
    } else {
        Ok("/orders")
    }
}

/// The blind index the throttle counts a user's failures under (as at sign-in).
pub(super) fn account_key(state: &AppState, user: &User) -> [u8; 32] {
    state.store.keys().blind_index("email", &user.email)
}

// ---------------------------------------------------------------------------
// Enrolment, replacement, turning off.

#[derive(Serialize, Default)]
struct FactorView {
    mode: &'static str,
    qr_svg: String,
    secret: String,
    needs_password: bool,
    replacing: bool,
    required: bool,
    enrolled_at: Option<String>,
    recovery_left: usize,
    recovery_codes: Vec<String>,
    errors: BTreeMap<String, String>,
}

fn render(
    req: &Request,
    viewer: &Viewer,
    mut view: FactorView,
    status: StatusCode,
) -> poem::Result<Response> {
    let state = state(req)?;
    let factor = {
        let tx = state.store.read().map_err(AppError::from)?;
        factors::get(&tx, viewer.user.id).map_err(AppError::from)?
    }
    .unwrap_or_default();
    view.required = crate::domain::second_factor::required(
        viewer.user.role,
        state.cfg.require_second_factor_for_all,
    );
    view.enrolled_at = factor.enrolled_ms.map(crate::web::view::when);
    view.recovery_left = factor.recovery.len();
    if view.recovery_codes.is_empty() {
        let session = crypto::sha256(viewer.token.as_bytes());
        if factor.enrolled() && !factor.pending_for(&session) {
            view.mode = "status";
        } else {
            let secret = factors::enrolment_secret(
                &state.store,
                &viewer.caller,
                &session,
                totp::new_secret().map_err(AppError::from)?,
            )
            .map_err(AppError::from)?;
            let uri = totp::otpauth_uri(&secret, &viewer.user.email)
                .ok_or_else(|| AppError::Internal("otpauth uri".into()))?;
            view.mode = "enrol";
            view.qr_svg = totp::qr_svg(&uri).ok_or_else(|| AppError::Internal("qr".into()))?;
            view.secret = totp::secret_base32(&secret);
            view.needs_password = !factor.enrolled();
            view.replacing = factor.enrolled();
        }
    } else {
        view.mode = "codes";
    }
    let mut base = viewer.base(&state, "Second factor", "second_factor");
    if viewer.owes_second_factor(&state)? {
        base.notice = Some(if view.required {
            "Your role needs a second factor. Set it up to continue; nothing else opens until then."
        } else {
            "An administrator reset your second factor. Set up a new one to continue; nothing else opens until then."
        }.into());
    }
    Ok(state
        .templates
        .render("second_factor.html", &base, view)?
        .with_status(status)
        .into_response())
}

fn error_view(field: &str, message: &str) -> FactorView {
    let mut view = FactorView::default();
    view.errors.insert(field.into(), message.into());
    view
}

#[handler]
pub async fn page(req: &Request, SignedIn(viewer): SignedIn) -> poem::Result<Response> {
    render(req, &viewer, FactorView::default(), StatusCode::OK)
}

/// Checks the caller's password on the argon2 pool; a wrong one counts as a failed
/// sign-in and is audited (`mfa.password_failed`) in the same commit as its count:
/// someone holding a stolen session guesses here. `Err` carries the page to answer
/// with.
async fn password_ok(
    req: &Request,
    state: &AppState,
    viewer: &Viewer,
    typed: &str,
) -> Result<bool, AppError> {
    let key = account_key(state, &viewer.user);
    let _turn = state
        .throttle
        .take_turn(&key, source(req).as_deref())
        .map_err(|wait| AppError::TooMany(wait.as_secs().max(1)))?;
    let ok = state
        .hasher
        .verify(typed, Some(&viewer.user.password_hash))
        .await?;
    if !ok {
        let event = Event::by(
            &viewer.caller,
            "mfa.password_failed",
            Some(viewer.user.id.to_string()),
            Outcome::Failed,
        );
        state
            .throttle
            .record_failure(Some(&key), source(req).as_deref(), Some(event))?;
    }
    Ok(ok)
}

#[handler]
pub async fn confirm(req: &Request, posted: SignedInPosted) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let enrolled = factors::is_enrolled(&state.store, viewer.user.id).map_err(AppError::from)?;
    if !enrolled && !password_ok(req, &state, viewer, posted.form.get("password")).await? {
        let view = error_view("password", "is not your current password");
        return render(req, viewer, view, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let codes = totp::new_recovery_codes().map_err(AppError::from)?;
    let hashes = codes.iter().map(|c| totp::recovery_hash(c)).collect();
    let keep = crypto::sha256(viewer.token.as_bytes());
    let confirmed = factors::confirm(
        &state.store,
        &viewer.caller,
        posted.form.get("code"),
        &checker(&state),
        hashes,
        &keep,
        now_ms(&state),
    );
    let confirmed = match confirmed {
        Ok(c) => c,
        // Nothing waits for confirmation (for example a second submit of the form).
        Err(StoreError::NotFound) => {
            return Ok(Redirect::see_other("/account/second-factor").into_response());
        }
        Err(e) => return Err(AppError::from(e).into()),
    };
    if !confirmed {
        let view = error_view(
            "code",
            "does not match; enter the six digits your app shows now",
        );
        return render(req, viewer, view, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let view = FactorView {
        recovery_codes: codes,
        ..FactorView::default()
    };
    render(req, viewer, view, StatusCode::OK)
}

/// Password and a current code (or recovery code), for replacing or turning off;
/// the two forms share a page, so their fields are named apart by `prefix`.
async fn reauthenticate(
    req: &Request,
    state: &AppState,
    posted: &SignedInPosted,
    prefix: &str,
) -> Result<Option<FactorView>, AppError> {
    let viewer = &posted.viewer;
    let (password_field, code_field) = (format!("{prefix}password"), format!("{prefix}code"));
    if !password_ok(req, state, viewer, posted.form.get(&password_field)).await? {
        return Ok(Some(error_view(
            &password_field,
            "is not your current password",
        )));
    }
    let used = factors::verify_current(
        &state.store,
        &viewer.caller,
        posted.form.get(&code_field),
        &checker(state),
    )?;
    if used == CodeUse::Wrong {
        state
            .throttle
            .fail(&account_key(state, &viewer.user), source(req).as_deref());
        return Ok(Some(error_view(
            &code_field,
            "does not match a current code or an unused recovery code",
        )));
    }
    Ok(None)
}

#[handler]
pub async fn replace(req: &Request, posted: SignedInPosted) -> poem::Result<Response> {
    let state = state(req)?;
    if !factors::is_enrolled(&state.store, posted.viewer.user.id).map_err(AppError::from)? {
        return Ok(Redirect::see_other("/account/second-factor").into_response());
    }
    if let Some(view) = reauthenticate(req, &state, &posted, "").await? {
        return render(req, &posted.viewer, view, StatusCode::UNPROCESSABLE_ENTITY);
    }
    factors::begin_replacement(
        &state.store,
        &posted.viewer.caller,
        &crypto::sha256(posted.viewer.token.as_bytes()),
        totp::new_secret().map_err(AppError::from)?,
    )
    .map_err(AppError::from)?;
    Ok(Redirect::see_other("/account/second-factor").into_response())
}

#[handler]
pub async fn cancel(req: &Request, posted: SignedInPosted) -> poem::Result<Response> {
    let state = state(req)?;
    factors::cancel_replacement(&state.store, &posted.viewer.caller).map_err(AppError::from)?;
    Ok(Redirect::see_other("/account/second-factor").into_response())
}

#[handler]
pub async fn disable(req: &Request, posted: SignedInPosted) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let required = crate::domain::second_factor::required(
        viewer.user.role,
        state.cfg.require_second_factor_for_all,
    );
    if required {
        let view = error_view(
            "code",
            "your role needs a second factor; it cannot be turned off",
        );
        return render(req, viewer, view, StatusCode::FORBIDDEN);
    }
    if !factors::is_enrolled(&state.store, viewer.user.id).map_err(AppError::from)? {
        return Ok(Redirect::see_other("/account/second-factor").into_response());
    }
    if let Some(view) = reauthenticate(req, &state, &posted, "off_").await? {
        return render(req, viewer, view, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // 12 characters are enough only with a second factor: without one the password
    // must meet the longer minimum first.
    let min = crate::domain::password::MIN_WITHOUT_SECOND_FACTOR;
    if posted.form.get("off_password").chars().count() < min {
        let message = format!(
            "must be at least {min} characters without a second factor; change your password first"
        );
        let view = error_view("off_password", &message);
        return render(req, viewer, view, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let keep = crypto::sha256(viewer.token.as_bytes());
    factors::disable(&state.store, &viewer.caller, &keep).map_err(AppError::from)?;
    Ok(Redirect::see_other("/account/second-factor").into_response())
}

/// An admin removes a user's second factor (they lost their phone and recovery
/// codes); audited, and all the user's sessions end.
#[handler]
pub async fn admin_reset(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let caller = &posted.viewer.caller;
    let admin = AdminScope::require(&state.store, caller).map_err(AppError::from)?;
    let id = id_or_refuse(&id, || {
        audit::record(
            &state.store,
            Event::by(caller, "mfa.admin_reset", None, Outcome::Refused),
        )
        .map(|_| ())
    })?;
    match factors::admin_remove(&admin, id) {
        Ok(()) => Ok(Redirect::see_other("/admin/users?done=factor-reset").into_response()),
        Err(StoreError::NotFound) => {
            let event = Event::by(
                caller,
                "mfa.admin_reset",
                Some(id.to_string()),
                Outcome::Refused,
            );
            audit::record(&state.store, event).map_err(AppError::from)?;
            Err(AppError::NotFound.into())
        }
        Err(StoreError::Conflict(why)) => Err(AppError::BadRequest(why.into()).into()),
        Err(e) => Err(AppError::from(e).into()),
    }
}
