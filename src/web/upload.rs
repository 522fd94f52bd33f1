//! Reading an upload form (web or API), storing its document, and removing one.
//!
//! Guarantees: the file part is recognised by its first bytes (PDF, PNG, JPEG or
//! TIFF) before anything is written, and refused with 422 naming `file` otherwise;
//! it is counted while streaming and refused with 413 the moment it passes the limit,
//! without reading the rest. Its bytes go straight into the age encryption (which
//! also computes their SHA-256), and memory stays flat. On every failure the temp
//! file is removed; a file is renamed into place before its record commits and
//! shredded if the commit fails. Each file part holds a transfer slot of its user
//! while it is read, and one that sends nothing for `transfer_idle_seconds`, or less
//! than `MIN_PER_IDLE` bytes in any such period, is ended (408) with its temp file
//! removed.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::AppState;
use super::error::AppError;
use super::extract::{FormFields, id_or_refuse};
use super::multipart::{self, Field, Parts};
use crate::documents::{Documents, Sealed, Sealer, shred_file};
use crate::domain::Caller;
use crate::domain::document::{DocKind, FileType, SNIFF_LEN, clean_filename};
use crate::domain::order::FieldError;
use crate::domain::validate::check_text;
use crate::store::audit::Outcome;
use crate::store::documents::{Attach, DocumentRecord, DocumentScope, NewDocument};
use crate::store::threads::Message;

/// A file received and sealed into a temp file, not yet recorded.
pub struct Upload {
    sealed: Sealed,
    file_type: FileType,
    size: u64,
    filename: String,
}

/// The text fields of an upload form and its file, if one was sent.
pub struct UploadForm {
    pub fields: FormFields,
    pub file: Option<Upload>,
    /// Why the file part was refused (not an accepted type, empty); reading stopped
    /// there, so parts after it are missing.
    pub file_errors: Vec<FieldError>,
}

/// The least a file part must bring in each `transfer_idle_seconds`, so that a
/// trickle of bytes cannot hold a transfer slot for ever (about 1 KiB/s by default).
const MIN_PER_IDLE: u64 = 64 * 1024;

fn not_accepted() -> AppError {
    AppError::field("file", "must be a PDF, PNG, JPEG or TIFF file")
}

/// One file part on its way in.
struct Incoming {
    head: Vec<u8>,
    sealer: Option<Sealer>,
    file_type: Option<FileType>,
    size: u64,
}

impl Incoming {
    async fn push(&mut self, docs: &Documents, chunk: Bytes, limit: u64) -> Result<(), AppError> {
        self.size += chunk.len() as u64;
        if self.size > limit {
            return Err(AppError::TooLarge);
        }
        if let Some(sealer) = &mut self.sealer {
            return sealer.write(chunk).await.map_err(io_error);
        }
        self.head.extend_from_slice(&chunk);
        if self.head.len() >= SNIFF_LEN {
            self.start(docs).await?;
        }
        Ok(())
    }

    /// Recognises the content and starts encrypting it.
    async fn start(&mut self, docs: &Documents) -> Result<(), AppError> {
        let file_type = FileType::sniff(&self.head).ok_or_else(not_accepted)?;
        let mut sealer = docs.sealer().map_err(io_error)?;
        // A failed write has already stopped the writer and removed its temp file.
        sealer
            .write(Bytes::from(std::mem::take(&mut self.head)))
            .await
            .map_err(io_error)?;
        self.sealer = Some(sealer);
        self.file_type = Some(file_type);
        Ok(())
    }

    async fn abort(&mut self) {
        if let Some(sealer) = self.sealer.take() {
            sealer.abort().await;
        }
    }
}

/// `read`, unless the client sends nothing for `idle`.
async fn within<T>(
    idle: Duration,
    read: impl Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    tokio::time::timeout(idle, read)
        .await
        .map_err(|_| AppError::Stalled)?
}

fn io_error(e: std::io::Error) -> AppError {
    AppError::Internal(format!("storing an upload: {e}"))
}

/// Reads one file part; `claim` is called before its first byte is taken in (an
/// empty part, as a form's unused file input sends, claims nothing).
async fn read_file(
    docs: &Documents,
    mut field: Field,
    limit: u64,
    idle: Duration,
    mut claim: impl FnMut() -> Result<(), AppError>,
) -> Result<Option<Upload>, AppError> {
    let filename = field.file_name().map(str::to_string);
    let mut incoming = Incoming {
        head: Vec::with_capacity(SNIFF_LEN),
        sealer: None,
        file_type: None,
        size: 0,
    };
    let result = async {
        let (mut since, mut brought) = (std::time::Instant::now(), 0u64);
        while let Some(chunk) = within(idle, multipart::chunk(&mut field)).await? {
            if chunk.is_empty() {
                continue;
            }
            if incoming.size == 0 {
                claim()?;
            }
            brought += chunk.len() as u64;
            if since.elapsed() >= idle {
                if brought < MIN_PER_IDLE {
                    return Err(AppError::Stalled);
                }
                (since, brought) = (std::time::Instant::now(), 0);
            }
            incoming.push(docs, chunk, limit).await?;
        }
        if incoming.size == 0 {
            // A form whose file input was left empty sends an empty, unnamed part.
            return match filename.as_deref() {
                None | Some("") => Ok(None),
                Some(_) => Err(AppError::field("file", "is empty")),
            };
        }
        if incoming.sealer.is_none() {
            incoming.start(docs).await?;
        }
        Ok(Some(()))
    }
    .await;
    match result {
        Ok(Some(())) => {}
        Ok(None) => return Ok(None),
        Err(e) => {
            incoming.abort().await;
            return Err(e);
        }
    }
    let (Some(sealer), Some(file_type)) = (incoming.sealer.take(), incoming.file_type) else {
        return Err(AppError::Internal(
            "upload finished without a writer".into(),
        ));
    };
    let sealed = sealer.finish().await.map_err(io_error)?;
    Ok(Some(Upload {
        sealed,
        file_type,
        size: incoming.size,
        filename: clean_filename(filename.map(browser_filename).as_deref(), file_type),
    }))
}

impl UploadForm {
    /// Reads every remaining part: text fields, and the `file` part sealed to disk
    /// (its filename as browsers encode it, see `browser_filename`) while holding
    /// one of `user`'s transfer slots (429 when they have none free; a form
    /// without a file needs none).
    pub async fn read(mut parts: Parts, state: &AppState, user: Uuid) -> Result<Self, AppError> {
        let mut slot = None;
        let (docs, limit) = (&state.docs, state.cfg.upload_limit_bytes());
        let idle = state.cfg.transfer_idle();
        let mut form = UploadForm {
            fields: FormFields(Vec::new()),
            file: None,
            file_errors: Vec::new(),
        };
        let outcome = async {
            while let Some(field) = within(idle, parts.next()).await? {
                let name = field.name().unwrap_or("").to_string();
                if name == "file" && form.file.is_some() {
                    form.file_errors
                        .push(field_error("file", "must be a single file"));
                    break;
                }
                if name == "file" {
                    let claim = || {
                        if slot.is_none() {
                            slot = Some(state.transfers.take(user)?);
                        }
                        Ok(())
                    };
                    match read_file(docs, field, limit, idle, claim).await {
                        Ok(file) => form.file = file,
                        Err(AppError::Invalid(errors)) => {
                            form.file_errors = errors;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    form.fields
                        .0
                        .push((name, within(idle, multipart::text(field)).await?));
                }
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => Ok(form),
            Err(e) => {
                form.discard().await;
                Err(e)
            }
        }
    }

    /// The file and its kind (from field `kind_field`), or every problem with them
    /// together with `errors` already found in other fields. A kind is asked for
    /// only with a file; the file only when `required`. On any problem the file is
    /// discarded and the answer is 422 naming each field.
    pub async fn file_and_kind(
        &mut self,
        kind_field: &str,
        required: bool,
        mut errors: Vec<FieldError>,
    ) -> Result<Option<(Upload, DocKind)>, AppError> {
        // Reading stopped at a refused file: a kind sent after it was never read.
        let unread =
            !self.file_errors.is_empty() && !self.fields.0.iter().any(|(k, _)| k == kind_field);
        errors.append(&mut self.file_errors);
        let file = self.file.take();
        let kind = match (&file, required) {
            (None, false) => None,
            _ if unread => None,
            _ => parse_kind(kind_field, self.fields.get(kind_field))
                .map_err(|e| errors.push(e))
                .ok(),
        };
        if file.is_none() && required && !errors.iter().any(|e| e.field == "file") {
            errors.push(field_error("file", "is required"));
        }
        if !errors.is_empty() {
            if let Some(file) = file {
                file.discard().await;
            }
            return Err(AppError::Invalid(errors));
        }
        Ok(file.zip(kind))
    }

    /// Removes the temp file of an upload that will not be recorded.
    pub async fn discard(self) {
        if let Some(upload) = self.file {
            upload.discard().await;
        }
    }
}

impl Upload {
    pub async fn discard(self) {
        let temp = self.sealed.temp.clone();
        let _ = tokio::task::spawn_blocking(move || shred_file(&temp)).await;
    }
}

/// Undoes the escaping browsers apply to multipart filenames (the HTML standard
/// replaces LF, CR and `"` with `%0A`, `%0D` and `%22`; curl does the same since
/// 7.81), so a quote in a name survives; the control characters are then dropped
/// by `clean_filename`. API clients get the same reading: a literal `%22` in a
/// name is taken for a quote.
fn browser_filename(raw: String) -> String {
    raw.replace("%22", "\"")
        .replace("%0D", "\r")
        .replace("%0A", "\n")
}

pub fn field_error(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// The document kind named by a form or API field `name`.
pub fn parse_kind(name: &str, raw: &str) -> Result<DocKind, FieldError> {
    if raw.trim().is_empty() {
        return Err(field_error(name, "is required"));
    }
    DocKind::parse(raw).ok_or_else(|| field_error(name, "is not a document kind"))
}

/// Moves an upload into place and records it where `attach` says. When the caller
/// may not share there (any more), the file is shredded and the answer is 404.
pub async fn store(
    state: &AppState,
    caller: &Caller,
    order: Uuid,
    attach: Attach,
    kind: DocKind,
    mut upload: Upload,
) -> Result<(DocumentRecord, Option<Message>), AppError> {
    let id = Uuid::now_v7();
    if let Err(e) = state.docs.keep(&mut upload.sealed, id) {
        upload.discard().await;
        return Err(io_error(e));
    }
    let new = NewDocument {
        id,
        kind,
        file_type: upload.file_type,
        filename: upload.filename,
        size: upload.size,
        sha256: upload.sealed.sha256,
        head_sha256: upload.sealed.head_sha256,
    };
    match DocumentScope::new(&state.store, caller).record_upload(order, attach, new) {
        Ok(done) => Ok(done),
        Err(e) => {
            let path = state.docs.path_of(id);
            let _ = tokio::task::spawn_blocking(move || shred_file(&path)).await;
            Err(e.into())
        }
    }
}

/// Removes document `id` (its uploader or agency staff), keeping a tombstone with
/// `reason`, then shreds its file. A file that cannot be shredded now is shredded at
/// the next start (its record is no longer live).
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    id: &str,
    reason: &str,
) -> Result<DocumentRecord, AppError> {
    let scope = DocumentScope::new(&state.store, caller);
    let id = id_or_refuse(id, || {
        scope.record("document.delete", None, Outcome::Refused)
    })?;
    let reason = match check_text(reason, 4_000, true) {
        Ok(r) if r.is_empty() => return Err(AppError::field("reason", "is required")),
        Ok(r) => r,
        Err(m) => return Err(AppError::field("reason", m)),
    };
    let doc = scope.remove(id, &reason)?;
    if state.docs.defer_if_held(id) {
        return Ok(doc);
    }
    let path = state.docs.path_of(id);
    let shredded = tokio::task::spawn_blocking(move || shred_file(&path)).await;
    if !matches!(shredded, Ok(Ok(()))) {
        tracing::error!(document = %id, "a removed document's file could not be shredded yet");
    }
    Ok(doc)
}
