//! The running service's local control socket, `<data_dir>/control.sock`, through
//! which the command line takes a backup or a checkpoint without stopping it.
//!
//! Guarantees: the socket lives in the data directory (mode 0700) and is itself mode
//! 0600, so only the service user and root can open it; it answers two requests
//! (`backup`, `checkpoint`) and nothing else; a backup is streamed as length-framed
//! plaintext tar ending with a status line, so the command line can tell a complete
//! snapshot from a cut-off one and never keeps the latter. Each request is audited.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BackupError, Manifest, archive};
use crate::store::audit::{self, Event, Outcome};
use crate::store::backups::{self, LastBackup};
use crate::store::checkpoint::Checkpoint;
use crate::web::AppState;

pub const SOCKET: &str = "control.sock";
const FRAME: usize = 256 * 1024;
/// How long the service waits on a silent control client.
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    op: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    estimate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest: Option<Manifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<Checkpoint>,
}

/// Binds the control socket (replacing a stale one) and serves it until the
/// process ends.
pub fn listen(state: Arc<AppState>) -> io::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(state.store.dir());
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    continue;
                }
            };
            let state = state.clone();
            tokio::spawn(async move {
                let handled = async {
                    let std = stream.into_std()?;
                    std.set_nonblocking(false)?;
                    // A client that sends nothing, or stops reading, is dropped rather
                    // than holding a thread, a read transaction and the document files.
                    std.set_read_timeout(Some(CLIENT_TIMEOUT))?;
                    std.set_write_timeout(Some(CLIENT_TIMEOUT))?;
                    tokio::task::spawn_blocking(move || handle(&state, std))
                        .await
                        .map_err(io::Error::other)?
                };
                if let Err(e) = handled.await {
                    tracing::warn!(error = %e, "control request failed");
                }
            });
        }
    }))
}

fn handle(state: &AppState, stream: UnixStream) -> io::Result<()> {
    let mut line = String::new();
    BufReader::new((&stream).take(1024)).read_line(&mut line)?;
    let mut out = BufWriter::new(&stream);
    let reply_line = |out: &mut BufWriter<&UnixStream>, reply: &Reply| -> io::Result<()> {
        serde_json::to_writer(&mut *out, reply)?;
        out.write_all(b"\n")?;
        out.flush()
    };
    let op = serde_json::from_str::<Request>(&line)
        .map(|r| r.op)
        .unwrap_or_default();
    match op.as_str() {
        "backup" => {
            reply_line(
                &mut out,
                &Reply {
                    ok: true,
                    estimate: Some(archive::estimate(&state.store)),
                    ..Reply::default()
                },
            )?;
            let result = snapshot(state, &mut out);
            // End of frames, then the status.
            out.write_all(&0u32.to_be_bytes())?;
            reply_line(&mut out, &answer(result, |r, m| r.manifest = Some(m)))
        }
        "checkpoint" => {
            let result = super::schedule::checkpoint_now(state);
            reply_line(&mut out, &answer(result, |r, cp| r.checkpoint = Some(cp)))
        }
        _ => reply_line(
            &mut out,
            &Reply {
                ok: false,
                error: Some("unknown request".into()),
                ..Reply::default()
            },
        ),
    }
}

/// The status line for a finished request: its result, or its error.
fn answer<T>(result: Result<T, BackupError>, put: impl FnOnce(&mut Reply, T)) -> Reply {
    let mut reply = Reply::default();
    match result {
        Ok(value) => {
            reply.ok = true;
            put(&mut reply, value);
        }
        Err(e) => reply.error = Some(e.to_string()),
    }
    reply
}

/// Writes the framed snapshot and audits it.
fn snapshot(state: &AppState, out: &mut dyn Write) -> Result<Manifest, BackupError> {
    let extras = super::extras(&state.cfg)?;
    let hold = state.docs.hold_files();
    let mut framed = Framed {
        out,
        buf: Vec::with_capacity(FRAME),
    };
    let result = archive::write_snapshot(&state.store, &extras, &mut framed, &|_| {})
        .and_then(|m| framed.flush().map(|()| m).map_err(BackupError::from));
    drop(hold);
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            audit::record(
                &state.store,
                Event::anonymous("backup.snapshot", Some("control".into()), Outcome::Failed),
            )?;
            return Err(e);
        }
    };
    backups::record(
        &state.store,
        &LastBackup {
            at_ms: manifest.created_ms,
            audit_entries: manifest.audit_entries,
            how: "command".into(),
        },
        Event::anonymous("backup.snapshot", Some("control".into()), Outcome::Ok)
            .object(manifest.records()),
    )?;
    super::keep_backup_checkpoint(&state.store, &state.cfg, &manifest.checkpoint);
    Ok(manifest)
}

struct Framed<'a> {
    out: &'a mut dyn Write,
    buf: Vec<u8>,
}

impl Write for Framed<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(FRAME - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == FRAME {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&(self.buf.len() as u32).to_be_bytes())?;
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.out.flush()
    }
}

// ---------------------------------------------------------------------------
// The command line's side.

/// Connects to the running service of `data_dir`, or None when none is running
/// (no socket, or a stale one).
pub fn connect(data_dir: &Path) -> Result<Option<UnixStream>, BackupError> {
    match UnixStream::connect(socket_path(data_dir)) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        // Denied before reaching the socket says nothing about whether the service
        // runs (the data directory itself is closed to other users).
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(BackupError::Usage(format!(
            "permission denied on {}: only root and the service user may use the data directory; run this command as one of them",
            socket_path(data_dir).display()
        ))),
        Err(e) => Err(BackupError::Usage(format!(
            "cannot reach the running service: {e}"
        ))),
    }
}

fn send<'s>(stream: &'s UnixStream, op: &str) -> Result<BufReader<&'s UnixStream>, BackupError> {
    let mut w = stream;
    serde_json::to_writer(&mut w, &Request { op: op.into() }).map_err(io::Error::from)?;
    w.write_all(b"\n")?;
    Ok(BufReader::with_capacity(1 << 20, stream))
}

fn read_reply(r: &mut impl BufRead) -> Result<Reply, BackupError> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let reply: Reply = serde_json::from_str(&line)
        .map_err(|_| BackupError::Source("the service's answer was cut off".into()))?;
    match reply.ok {
        true => Ok(reply),
        false => Err(BackupError::Source(
            reply.error.unwrap_or_else(|| "the service refused".into()),
        )),
    }
}

/// Asks the service for a checkpoint; it is saved in the service's checkpoint
/// directory and returned.
pub fn request_checkpoint(stream: &UnixStream) -> Result<Checkpoint, BackupError> {
    let mut r = send(stream, "checkpoint")?;
    read_reply(&mut r)?
        .checkpoint
        .ok_or_else(|| BackupError::Source("no checkpoint in the answer".into()))
}

/// A snapshot streaming from the service: read it to the end, then call `finish`.
pub struct Remote<'s> {
    reader: BufReader<&'s UnixStream>,
    left: usize,
    ended: bool,
    pub estimate: u64,
}

pub fn request_backup(stream: &UnixStream) -> Result<Remote<'_>, BackupError> {
    let mut reader = send(stream, "backup")?;
    let estimate = read_reply(&mut reader)?.estimate.unwrap_or(0);
    Ok(Remote {
        reader,
        left: 0,
        ended: false,
        estimate,
    })
}

impl Read for Remote<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut len = [0u8; 4];
            self.reader.read_exact(&mut len).map_err(cut_off)?;
            self.left = u32::from_be_bytes(len) as usize;
            if self.left == 0 {
                self.ended = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(cut_off(io::ErrorKind::UnexpectedEof.into()));
        }
        self.left -= n;
        Ok(n)
    }
}

/// The service went away mid-snapshot (stopped, restarted or crashed).
fn cut_off(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            e.kind(),
            "the service closed the connection before the snapshot was complete (was it stopped?); run the export again",
        ),
        _ => e,
    }
}

impl Remote<'_> {
    /// The service's verdict once the stream ended: its manifest, or its error.
    pub fn finish(mut self) -> Result<Manifest, BackupError> {
        if !self.ended {
            return Err(BackupError::Source(
                "the snapshot stream ended early".into(),
            ));
        }
        read_reply(&mut self.reader)?
            .manifest
            .ok_or_else(|| BackupError::Source("no manifest in the answer".into()))
    }
}
