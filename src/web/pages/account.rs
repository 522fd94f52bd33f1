//! The signed-in user's own API tokens: list and create (the secret is shown once).

use poem::http::StatusCode;
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;

use crate::domain::validate::check_text;
use crate::store::audit::{Event, Outcome};
use crate::store::sessions;
use crate::web::error::AppError;
use crate::web::extract::{Posted, Viewer, state};
use crate::web::view::when;

#[derive(Serialize)]
struct TokenRow {
    name: String,
    created_at: String,
    last_used_at: Option<String>,
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
            name: t.name,
            created_at: when(t.created_ms),
            last_used_at: t.last_used_ms.map(when),
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
    let event = Event::by(&viewer.caller, "token.create", None, Outcome::Ok);
    let secret = sessions::create_token(&state.store, viewer.user.id, &name, event)
        .map_err(AppError::from)?;
    render(req, viewer, Some(secret), None)
}
