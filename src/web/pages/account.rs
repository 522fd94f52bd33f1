//! The signed-in user's own API tokens: list and create (the secret is shown once),
//! and revoke. Only the caller's own tokens can be revoked; any other id answers 404
//! like one that does not exist, and the refusal is audited.

use poem::http::StatusCode;
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;

use crate::domain::validate::check_text;
use crate::store::audit::{Event, Outcome};
use crate::store::sessions;
use crate::web::error::AppError;
use crate::web::extract::{Posted, Viewer, id_or_refuse, state};
use crate::web::view::when;

#[derive(Serialize)]
struct TokenRow {
    id: String,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
    expired: bool,
}

fn render(
    req: &Request,
    viewer: &Viewer,
    new_token: Option<String>,
    error: Option<&str>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let tokens: Vec<TokenRow> = sessions::own_tokens(&state.store, &viewer.caller)
        .map_err(AppError::from)?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            name: t.name,
            created_at: when(t.created_ms),
            last_used_at: t.last_used_ms.map(when),
            expires_at: t.expires_ms.map(when),
            expired: t.expires_ms.is_some_and(|e| e <= crate::store::now_ms()),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let view = serde_json::json!({ "tokens": tokens, "new_token": new_token, "error": error });
    let base = viewer.base(&state, "API tokens", "tokens");
    Ok(state
        .templates
        .render("account_tokens.html", &base, view)?
        .with_status(status)
        .into_response())
}

#[handler]
pub async fn tokens_page(req: &Request, viewer: Viewer) -> poem::Result<Response> {
    render(req, &viewer, None, None)
}

#[handler]
pub async fn create_token(req: &Request, posted: Posted) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let name = match check_text(posted.form.get("name"), 100, false) {
        Ok(n) if !n.is_empty() => n,
        _ => {
            return render(
                req,
                viewer,
                None,
                Some("Give the token a name of up to 100 characters."),
            );
        }
    };
    let days: i64 = match posted.form.get("expires_days") {
        "" | "90" => 90,
        "30" => 30,
        "365" => 365,
        _ => return render(req, viewer, None, Some("Choose when the token expires.")),
    };
    let expires = crate::store::now_ms() + days * 86_400_000;
    let event = Event::by(&viewer.caller, "token.create", None, Outcome::Ok);
    let secret =
        sessions::create_token_until(&state.store, viewer.user.id, &name, Some(expires), event)
            .map_err(AppError::from)?;
    render(req, viewer, Some(secret), None)
}

#[handler]
pub async fn revoke_token(
    req: &Request,
    posted: Posted,
    poem::web::Path(id): poem::web::Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let caller = &posted.viewer.caller;
    let id = id_or_refuse(&id, || {
        crate::store::audit::record(
            &state.store,
            Event::by(caller, "token.revoke", None, Outcome::Refused),
        )
        .map(|_| ())
    })?;
    sessions::revoke_own_token(&state.store, caller, id).map_err(AppError::from)?;
    Ok(poem::web::Redirect::see_other("/account/tokens").into_response())
}
