//! Reading a stored document back: checked against its record, decrypted while
//! streaming.
//!
//! Guarantees: a file whose first bytes (the age header and nonce, unique to each
//! file) do not match the record is refused before anything is sent, so a file
//! swapped on disk, even one encrypted to the same identity, is never served as
//! another document. While streaming, the plaintext is decrypted on a blocking
//! thread in fixed-size chunks through a bounded channel (memory stays flat), its
//! size and SHA-256 are checked against the record, and the last chunk is released
//! only after both matched: a file altered in any other way ends in an error, never
//! in a complete response.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::seal::HEAD_LEN;

const CHUNK: usize = 64 * 1024;
const CHANNEL_DEPTH: usize = 8;
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

/// Fills `buf` as far as the reader allows; returns how many bytes were read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn pump(
    file: File,
    identity: &age::x25519::Identity,
    sha256: &str,
    size: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(READ_BUFFER, file))
        .map_err(io::Error::other)?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(io::Error::other)?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut held: Option<Bytes> = None;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = fill(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        hasher.update(&buf);
        total += n as u64;
        if total > size {
            return Err(io::Error::other("longer than recorded"));
        }
        if let Some(prev) = held.replace(Bytes::from(buf))
            && tx.blocking_send(Ok(prev)).is_err()
        {
            // The client went away.
            return Ok(());
        }
    }
    if total != size || hex::encode(hasher.finalize()) != sha256 {
        return Err(io::Error::other("does not match its record"));
    }
    if let Some(last) = held {
        let _ = tx.blocking_send(Ok(last));
    }
    Ok(())
}

/// The plaintext of `file` as a stream of chunks. `on_failure` runs (on the blocking
/// thread) if decryption or the checks fail part-way.
pub fn plaintext(
    file: File,
    identity: age::x25519::Identity,
    sha256: String,
    size: u64,
    on_failure: impl FnOnce(&io::Error) + Send + 'static,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = pump(file, &identity, &sha256, size, &tx) {
            on_failure(&e);
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
