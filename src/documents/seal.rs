//! Writing an upload: plaintext chunks in, an age file on disk out.
//!
//! Guarantees: chunks go, in batches of about 256 KiB, through a small bounded
//! channel to one blocking thread that encrypts them into a standard age file
//! ([`AgeWriter`], X25519 to the document identity) straight into a new temp file
//! (mode 0600) in the documents directory, so memory stays flat whatever the size
//! and no plaintext byte reaches the disk. The plaintext's SHA-256 is computed on
//! the receiving task as each chunk arrives, while it is still in cache. `finish`
//! returns only after the file is complete and fsynced; anything else (an error,
//! `abort`, or dropping the `Sealer`) removes the temp file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::age_writer::AgeWriter;

/// How many bytes at the start of a stored file `head_sha256` covers: the age
/// header (the file key wrapped to our identity) and the payload nonce, both unique
/// to the file, plus the start of the payload.
pub const HEAD_LEN: usize = 4096;
const CHANNEL_DEPTH: usize = 4;
pub const TEMP_SUFFIX: &str = ".tmp";

enum Msg {
    Chunks(Vec<Bytes>),
    Finish,
}

/// Chunks are handed to the writer in batches of about this many bytes, so the
/// writer thread wakes a few hundred times for 100 MiB rather than thousands.
const BATCH: usize = 256 * 1024;
/// After each this many bytes, the kernel is asked (from a helper thread) to start
/// writing the file out, so the fsync at the end has little left to do.
const FLUSH_EVERY: u64 = 8 * 1024 * 1024;

/// A finished, fsynced temp file. Dropped before `Documents::keep` moved it into
/// place (the request failed or its client went away), it removes the temp file.
pub struct Sealed {
    pub temp: PathBuf,
    pub head_sha256: [u8; 32],
    /// SHA-256 of the plaintext (zero until `finish` fills it in).
    pub sha256: [u8; 32],
    /// Set once the file is renamed to its stored name.
    pub(super) kept: bool,
}

impl Drop for Sealed {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

pub struct Sealer {
    tx: Option<mpsc::Sender<Msg>>,
    task: Option<tokio::task::JoinHandle<io::Result<Sealed>>>,
    /// The plaintext digest, computed as chunks arrive (while they are in cache).
    hasher: Sha256,
    pending: Vec<Bytes>,
    pending_len: usize,
}

/// A helper thread that runs `sync_data` on a second handle of the file while the
/// writer goes on writing.
struct Flusher {
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(file: File) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                // Only an early start of write-back; the final fsync decides.
                let _ = file.sync_data();
            }
        });
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Asks for a flush unless one is already pending.
    fn nudge(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(());
        }
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Hashes the first `HEAD_LEN` bytes written through it.
struct HeadHasher<W> {
    inner: W,
    hasher: Sha256,
    seen: usize,
}

impl<W: Write> Write for HeadHasher<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if self.seen < HEAD_LEN {
            let take = n.min(HEAD_LEN - self.seen);
            self.hasher.update(&buf[..take]);
            self.seen += take;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_all(
    temp: &Path,
    recipient: &age::x25519::Recipient,
    rx: &mut mpsc::Receiver<Msg>,
) -> io::Result<Sealed> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)?;
    let mut flusher = Flusher::start(file.try_clone()?);
    let mut written = 0u64;
    let head = HeadHasher {
        // age hands over whole 64 KiB chunks: no buffer (and no copy) needed.
        inner: file,
        hasher: Sha256::new(),
        seen: 0,
    };
    let mut out = AgeWriter::new(recipient, head)?;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Chunks(chunks)) => {
                for bytes in chunks {
                    out.write_all(&bytes)?;
                    let before = written;
                    written += bytes.len() as u64;
                    if before / FLUSH_EVERY != written / FLUSH_EVERY {
                        flusher.nudge();
                    }
                }
            }
            Some(Msg::Finish) => break,
            None => return Err(io::Error::other("upload abandoned")),
        }
    }
    let head = out.finish()?;
    let file: File = head.inner;
    flusher.stop();
    file.sync_all()?;
    Ok(Sealed {
        temp: temp.to_path_buf(),
        head_sha256: head.hasher.finalize().into(),
        sha256: [0; 32],
        kept: false,
    })
}

impl Sealer {
    /// Starts a new temp file in `dir` encrypted to `recipient`.
    pub fn start(dir: &Path, recipient: age::x25519::Recipient) -> io::Result<Self> {
        let name = crate::crypto::random_bytes::<16>().map_err(io::Error::other)?;
        let temp = dir.join(format!("{}{TEMP_SUFFIX}", hex::encode(name)));
        let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
        let task = tokio::task::spawn_blocking(move || {
            let result = write_all(&temp, &recipient, &mut rx);
            if result.is_err() {
                let _ = fs::remove_file(&temp);
            }
            result
        });
        Ok(Self {
            tx: Some(tx),
            task: Some(task),
            hasher: Sha256::new(),
            pending: Vec::new(),
            pending_len: 0,
        })
    }

    async fn send(&mut self, msg: Msg) -> io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(msg).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: report its error. A file it finished anyway is
        // removed when its `Sealed` drops here.
        match self.join().await {
            Err(e) => Err(e),
            Ok(_unkept) => Err(io::Error::other("writer stopped early")),
        }
    }

    async fn send_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending_len = 0;
        let batch = std::mem::take(&mut self.pending);
        self.send(Msg::Chunks(batch)).await
    }

    async fn join(&mut self) -> io::Result<Sealed> {
        self.tx = None;
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Err(io::Error::other("upload already finished")),
        }
    }

    /// Encrypts one more chunk (waits while the writer is behind).
    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        self.hasher.update(&chunk);
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= BATCH {
            self.send_pending().await?;
        }
        Ok(())
    }

    /// Completes the file: encrypted, flushed and fsynced, with the plaintext's
    /// SHA-256.
    pub async fn finish(mut self) -> io::Result<Sealed> {
        self.send_pending().await?;
        let sha256 = std::mem::take(&mut self.hasher).finalize().into();
        self.send(Msg::Finish).await?;
        let mut sealed = self.join().await?;
        sealed.sha256 = sha256;
        Ok(sealed)
    }

    /// Stops and removes the temp file.
    pub async fn abort(mut self) {
        let _ = self.join().await;
    }
}
