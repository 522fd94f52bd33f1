//! Reading a stored document back: checked against its record, decrypted while
//! streaming.
//!
//! Guarantees: a file whose first bytes (the age header and nonce, unique to each
//! file) do not match the record is refused before anything is sent, so a file
//! swapped on disk, even one encrypted to the same identity, is never served as
//! another document. While streaming, the plaintext is decrypted on a blocking
//! thread in fixed-size chunks through a bounded channel (memory stays flat), and
//! checked on the way out (a second stage, so hashing runs beside decryption): its
//! size and SHA-256 must match the record, and the last chunk is released only
//! after both did. A file altered in any other way ends in an error, never in a
//! complete response.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::seal::HEAD_LEN;

const CHUNK: usize = 256 * 1024;
const CHANNEL_DEPTH: usize = 4;
const READ_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the stored file is missing")]
    Missing,
    #[error("the stored file does not match its record")]
    Mismatch,
    #[error("the stored file cannot be read: {0}")]
    Io(#[from] io::Error),
}

/// Opens the stored file at `path` if its head hashes to `head_sha256` (hex).
/// Blocking: call from a blocking thread.
pub fn open_checked(path: &Path, head_sha256: &str) -> Result<File, OpenError> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => OpenError::Missing,
        _ => OpenError::Io(e),
    })?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    (&file).take(HEAD_LEN as u64).read_to_end(&mut head)?;
    if hex::encode(Sha256::digest(&head)) != head_sha256 {
        return Err(OpenError::Mismatch);
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Decrypts `file` into the channel in `CHUNK`-sized pieces; stops quietly when the
/// receiver is gone (the client went away, or its connection was closed for taking
/// nothing, see `web::deadline`).
fn decrypt(
    file: File,
    identity: &age::x25519::Identity,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(READ_BUFFER, file))
        .map_err(io::Error::other)?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(io::Error::other)?;
    loop {
        let mut buf = Vec::with_capacity(CHUNK);
        let n = (&mut reader).take(CHUNK as u64).read_to_end(&mut buf)?;
        if n == 0 || tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return Ok(());
        }
    }
}

/// The second stage: hashes and counts what the decryptor produced, and holds the
/// newest chunk back until the end proved the whole plaintext matches the record.
struct Check<F> {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    hasher: Sha256,
    total: u64,
    held: Option<Bytes>,
    sha256: String,
    size: u64,
    on_failure: Option<F>,
}

impl<F: FnOnce(&io::Error)> Check<F> {
    fn fail(&mut self, e: io::Error) -> Option<io::Result<Bytes>> {
        if let Some(f) = self.on_failure.take() {
            f(&e);
        }
        self.held = None;
        Some(Err(e))
    }

    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        self.on_failure.as_ref()?;
        loop {
            match self.rx.recv().await {
                Some(Ok(chunk)) => {
                    self.hasher.update(&chunk);
                    self.total += chunk.len() as u64;
                    if self.total > self.size {
                        return self.fail(io::Error::other("longer than recorded"));
                    }
                    if let Some(prev) = self.held.replace(chunk) {
                        return Some(Ok(prev));
                    }
                }
                Some(Err(e)) => return self.fail(e),
                None => {
                    let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
                    if self.total != self.size || digest != self.sha256 {
                        return self.fail(io::Error::other("does not match its record"));
                    }
                    // Complete and intact: release the last chunk and stop.
                    self.on_failure = None;
                    return self.held.take().map(Ok);
                }
            }
        }
    }
}

/// The plaintext of `file` as a stream of chunks, decrypted on a blocking thread
/// and checked on the way out. `on_failure` runs if decryption or the checks fail
/// part-way; the stream then ends with that error.
pub fn plaintext(
    file: File,
    identity: age::x25519::Identity,
    sha256: String,
    size: u64,
    on_failure: impl FnOnce(&io::Error) + Send + 'static,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = decrypt(file, &identity, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let check = Check {
        rx,
        hasher: Sha256::new(),
        total: 0,
        held: None,
        sha256,
        size,
        on_failure: Some(on_failure),
    };
    futures_util::stream::unfold(check, |mut check| async move {
        check.next().await.map(|item| (item, check))
    })
}
