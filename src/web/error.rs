//! The web layer's one error type and its mapping to HTTP, written once.
//!
//! Pages get an HTML error page, the API gets `application/problem+json`; both say
//! the same status. A 500 logs its cause (which never holds PHI: store and crypto
//! errors carry table names and reasons only) and shows the user nothing of it.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::password::HashError;
use crate::domain::order::FieldError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("sign-in required")]
    SignInRequired,
    /// A signed-up account not yet approved: pages send it to the waiting page.
    #[error("this account is waiting for approval")]
    AwaitingApproval,
    #[error("set up a second factor first")]
    SecondFactorRequired,
    #[error("the form expired or came from another site; go back, reload and try again")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("some fields need attention")]
    Invalid(Vec<FieldError>),
    #[error("too many attempts; try again later")]
    TooMany(u64),
    #[error("the request body is too large")]
    TooLarge,
    /// The caller (or the service) already runs as many uploads and downloads as
    /// it may at once.
    #[error("too many document uploads or downloads at once; try again when one has finished")]
    Transfers,
    /// The client stopped sending the request body, or sent it too slowly.
    #[error("the upload stopped or was too slow; try again")]
    Stalled,
    #[error("the server is busy; try again in a moment")]
    Busy,
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::SignInRequired => StatusCode::UNAUTHORIZED,
            AppError::AwaitingApproval => StatusCode::FORBIDDEN,
            AppError::SecondFactorRequired => StatusCode::FORBIDDEN,
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Transfers => StatusCode::TOO_MANY_REQUESTS,
            AppError::Stalled => StatusCode::REQUEST_TIMEOUT,
            AppError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn field(field: &str, message: &str) -> Self {
        AppError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// Seconds a client should wait before trying again, for a 429.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooMany(secs) => Some(*secs),
            AppError::Transfers => Some(5),
            _ => None,
        }
    }

    /// The message shown to a person (never the cause of a 500).
    pub fn public_message(&self) -> String {
        self.to_string()
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<HashError> for AppError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => AppError::Busy,
            HashError::Internal(m) => AppError::Internal(m),
        }
    }
}

impl From<crate::crypto::CryptoError> for AppError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl poem::error::ResponseError for AppError {
    fn status(&self) -> StatusCode {
        AppError::status(self)
    }
}

/// RFC 9457 problem details with a per-field `errors` list.
#[derive(Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

pub fn problem_response(
    status: StatusCode,
    title: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
) -> Response {
    let body = Problem {
        kind: "about:blank",
        title,
        status: status.as_u16(),
        errors,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(json);
    if let Some(secs) = retry_after {
        resp.headers_mut().insert("retry-after", secs.into());
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            "www-authenticate",
            poem::http::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

/// Turns any error reaching the API router into problem JSON.
pub fn api_error(err: poem::Error) -> Response {
    if let Some(app) = err.downcast_ref::<AppError>() {
        log_internal(app);
        let errors = match app {
            AppError::Invalid(list) => list.clone(),
            _ => Vec::new(),
        };
        return problem_response(
            app.status(),
            app.public_message(),
            errors,
            app.retry_after(),
        );
    }
    let status = err.status();
    let title = status.canonical_reason().unwrap_or("error").to_string();
    problem_response(status, title, Vec::new(), None)
}

pub fn log_internal(err: &AppError) {
    if let AppError::Internal(cause) = err {
        tracing::error!(%cause, "request failed");
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        problem_response(status, self.title, self.errors, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_status_and_hides_internal_causes() {
        let cases = [
            (AppError::NotFound, 404),
            (AppError::SignInRequired, 401),
            (AppError::AwaitingApproval, 403),
            (AppError::SecondFactorRequired, 403),
            (AppError::Csrf, 403),
            (AppError::BadRequest("x".into()), 400),
            (AppError::field("patient.dob", "is required"), 422),
            (AppError::TooMany(30), 429),
            (AppError::TooLarge, 413),
            (AppError::Transfers, 429),
            (AppError::Stalled, 408),
            (AppError::Busy, 503),
            (AppError::Internal("table orders: secret cause".into()), 500),
        ];
        for (err, code) in cases {
            assert_eq!(err.status().as_u16(), code);
            assert!(!err.public_message().contains("secret"));
        }
    }
}
