//! Issuing document links and serving documents through them, for pages and API.
//!
//! Guarantees: a document is served only when all of these hold at the time of the
//! request: the caller is signed in, the link was issued to that same user for that
//! document and purpose and has not expired or been altered (checked in constant
//! time), the caller may still see the document (`DocumentScope::open`, which asks
//! the order and thread visibility rule), and the stored file matches its record.
//! Anything else answers 404 (500 for a file that fails its integrity check) and is
//! audited. Responses name the file safely, are never cached or sniffed, run in a
//! CSP sandbox, and stream the decryption, holding one of the caller's transfer
//! slots until the stream ends (a client that takes nothing for
//! `transfer_idle_seconds` has its connection closed, see `deadline`).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Body, Response};

use super::AppState;
use super::error::AppError;
use super::extract::id_or_refuse;
use crate::documents::links::LinkQuery;
use crate::documents::open::{open_checked, plaintext};
use crate::domain::Caller;
use crate::domain::document::content_disposition;
use crate::store::audit::Outcome;
use crate::store::documents::DocumentScope;

/// The CSP of a served document: sandboxed, allowed nothing.
pub const DOCUMENT_CSP: &str =
    "sandbox; default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// A fresh link for the caller to document `id` (404, audited, unless they may see
/// it now). `prefix` is where the content route is mounted (`` or `/api/v1`).
pub fn issue(
    state: &AppState,
    caller: &Caller,
    id: &str,
    prefix: &str,
) -> Result<(String, i64), AppError> {
    let scope = DocumentScope::new(&state.store, caller);
    let id = id_or_refuse(id, || scope.record("document.link", None, Outcome::Refused))?;
    let doc = scope.open(id, "document.link")?;
    let link = state.docs.issue_link(doc.id, caller.user_id());
    Ok((
        format!("{prefix}/documents/{}/content?{}", doc.id, link.query),
        link.expires_ms,
    ))
}

/// Serves document `id` to `caller` through link `q`.
pub async fn serve(
    state: Arc<AppState>,
    caller: &Caller,
    id: &str,
    q: &LinkQuery,
) -> Result<Response, AppError> {
    let scope = DocumentScope::new(&state.store, caller);
    let id = id_or_refuse(id, || {
        scope.record("document.download", None, Outcome::Refused)
    })?;
    if !state.docs.check_link(q, id, caller.user_id()) {
        scope.record("document.download", Some(id), Outcome::Refused)?;
        return Err(AppError::NotFound);
    }
    let doc = scope.open(id, "document.download")?;
    let slot = state.transfers.take(caller.user_id())?;
    let path = state.docs.path_of(id);
    let head = doc.head_sha256.clone();
    let opened = tokio::task::spawn_blocking(move || open_checked(&path, &head))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let file = match opened {
        Ok(file) => file,
        Err(e) => {
            scope.record("document.download", Some(id), Outcome::Failed)?;
            return Err(AppError::Internal(format!("document {id}: {e}")));
        }
    };
    let failed_state = state.clone();
    let failed_caller = caller.clone();
    let on_failure = move |e: &std::io::Error| {
        tracing::error!(document = %id, error = %e, "stored document failed while streaming");
        let scope = DocumentScope::new(&failed_state.store, &failed_caller);
        let _ = scope.record("document.download", Some(id), Outcome::Failed);
    };
    let stream = plaintext(
        file,
        state.docs.identity().clone(),
        doc.sha256.clone(),
        doc.size,
        on_failure,
    );
    // The slot is freed when the body stream is dropped: finished, failed or cut.
    let stream = futures_util::StreamExt::map(stream, move |item| {
        let _held = &slot;
        item
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .content_type(doc.file_type.mime())
        .header("content-length", doc.size)
        .header("content-disposition", content_disposition(&doc.filename))
        .header("content-security-policy", DOCUMENT_CSP)
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-store")
        .body(Body::from_bytes_stream(stream)))
}
