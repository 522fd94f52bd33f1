//! Multipart bodies (document uploads), read as a stream.
//!
//! Guarantees: a body whose declared length is over the limit is refused with 413
//! before a byte of it is read, and counting continues while streaming (multer's
//! whole-stream limit, and the file's own count in `upload`), so a body without a
//! declared length is stopped as soon as it passes the limit. Text parts are small
//! and few. `PostedMultipart` exists only for a signed-in user whose form passed the
//! same-origin check and whose first part is the session's CSRF token: nothing of a
//! file is read before that.
//!
//! multer is used directly (poem's `multipart` feature wraps the same parser) so the
//! body reaches it in the chunks it arrived in rather than re-cut into 4 KiB pieces.

use poem::{FromRequest, Request, RequestBody};

use super::error::AppError;
use super::extract::{Viewer, check_csrf, same_origin, state};

/// Room for the text parts and part headers around the file.
const OVERHEAD: u64 = 256 * 1024;
/// Largest text part.
const TEXT_LIMIT: usize = 16 * 1024;
/// Most parts in one form.
const MAX_PARTS: usize = 32;

pub type Field = multer::Field<'static>;

pub struct Parts {
    inner: multer::Multipart<'static>,
    seen: usize,
}

fn read_error(e: multer::Error) -> AppError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            AppError::TooLarge
        }
        multer::Error::StreamReadFailed(cause) if timed_out(&*cause) => AppError::Stalled,
        _ => AppError::BadRequest("the upload could not be read".into()),
    }
}

/// Whether the body stopped because its connection sat idle (see `deadline`): the
/// cause is somewhere down the chain of wrapped errors.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
            // An io::Error's `source` skips the error it wraps; look inside it.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = err.source();
    }
    false
}

impl Parts {
    /// Starts reading `body` as multipart/form-data carrying a file of at most
    /// `file_limit` bytes.
    pub fn from_body(
        req: &Request,
        body: &mut RequestBody,
        file_limit: u64,
    ) -> Result<Self, AppError> {
        let content_type = req.header("content-type").unwrap_or("");
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| AppError::BadRequest("expected a multipart/form-data body".into()))?;
        let whole = file_limit.saturating_add(OVERHEAD);
        let declared = req
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > whole) {
            return Err(AppError::TooLarge);
        }
        let stream = body
            .take()
            .map_err(|_| AppError::BadRequest("the upload could not be read".into()))?
            .into_bytes_stream();
        let constraints =
            multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(whole));
        Ok(Self {
            inner: multer::Multipart::with_constraints(stream, boundary, constraints),
            seen: 0,
        })
    }

    /// The next part, if any.
    pub async fn next(&mut self) -> Result<Option<Field>, AppError> {
        let field = self.inner.next_field().await.map_err(read_error)?;
        if field.is_some() {
            self.seen += 1;
            if self.seen > MAX_PARTS {
                return Err(AppError::BadRequest("the form has too many parts".into()));
            }
        }
        Ok(field)
    }
}

impl<'a> FromRequest<'a> for Parts {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limit = state(req)?.cfg.upload_limit_bytes();
        Ok(Parts::from_body(req, body, limit)?)
    }
}

/// A text part's value (at most 16 KiB of UTF-8).
pub async fn text(mut field: Field) -> Result<String, AppError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(read_error)? {
        if bytes.len() + chunk.len() > TEXT_LIMIT {
            return Err(AppError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| AppError::BadRequest("a form field is not UTF-8".into()))
}

/// Reads a chunk of a part, mapping parse errors.
pub async fn chunk(field: &mut Field) -> Result<Option<bytes::Bytes>, AppError> {
    field.chunk().await.map_err(read_error)
}

/// A multipart form posted by a signed-in user, CSRF token checked first.
pub struct PostedMultipart {
    pub viewer: Viewer,
    pub parts: Parts,
}

impl<'a> FromRequest<'a> for PostedMultipart {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let viewer = Viewer::from_request(req, body).await?;
        same_origin(req)?;
        let mut parts = Parts::from_request(req, body).await?;
        let csrf = match parts.next().await? {
            Some(field) if field.name() == Some("csrf") => text(field).await?,
            _ => String::new(),
        };
        check_csrf(req, &viewer, &csrf)?;
        Ok(PostedMultipart { viewer, parts })
    }
}
