//! Getting backup and restore writes onto the disk while the CPU keeps working.
//!
//! Guarantees: nothing here weakens durability. `Flushing` only starts the disk
//! early (an `fdatasync` on a second handle while encryption goes on), and hands
//! back the first error that flush met, so the caller's final `fsync` cannot hide
//! it; `Syncer` fsyncs each restored file on its own thread and reports the first
//! failure when it finishes, before the restore may be called done. Without them
//! the kernel would hold a whole backup in the page cache until the final `fsync`,
//! and the disk would sit idle during encryption and busy during nothing else.
//! `widen_pipe` lets the two threads of a backup or restore hand over bigger pieces.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

/// Starts writeback after this many bytes have been written since the last start.
const FLUSH_EVERY: u64 = 32 * 1024 * 1024;

/// Asks for a 1 MiB pipe buffer (allowed unprivileged by Linux's default
/// `pipe-max-size`), so the two threads of a backup or restore hand over 1 MiB
/// writes in one go rather than in 64 KiB pieces. Best effort: a smaller pipe only
/// costs speed.
pub fn widen_pipe(end: impl AsFd) {
    let _ = nix::fcntl::fcntl(end, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
}

/// Runs `each` on every item received until the sender goes away; the first error.
fn drain<T>(rx: Receiver<T>, each: impl Fn(T) -> io::Result<()>) -> io::Result<()> {
    let mut first = Ok(());
    for item in rx {
        if let Err(e) = each(item)
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    first
}

fn joined(thread: Option<JoinHandle<io::Result<()>>>) -> io::Result<()> {
    match thread.map(JoinHandle::join) {
        None => Ok(()),
        Some(Ok(result)) => result,
        Some(Err(_)) => Err(io::Error::other("the flushing thread failed")),
    }
}

/// A file being written that asks a second thread to flush it every
/// `FLUSH_EVERY` bytes.
pub struct Flushing {
    file: File,
    since: u64,
    tick: Option<SyncSender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Flushing {
    pub fn new(file: File) -> io::Result<Self> {
        let handle = file.try_clone()?;
        // One pending request at most: if the disk is behind, later ones are
        // dropped, since one flush covers every page dirty when it runs.
        let (tick, rx) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("backup-flush".into())
            .spawn(move || drain(rx, |()| handle.sync_data()))?;
        Ok(Self {
            file,
            since: 0,
            tick: Some(tick),
            thread: Some(thread),
        })
    }

    /// Stops the flushing thread; the file, or the first error a flush met.
    pub fn into_file(mut self) -> io::Result<File> {
        self.tick = None;
        joined(self.thread.take())?;
        self.file.try_clone()
    }
}

impl Write for Flushing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= FLUSH_EVERY {
            self.since = 0;
            if let Some(tick) = &self.tick
                && let Err(TrySendError::Disconnected(())) = tick.try_send(())
            {
                return Err(joined(self.thread.take())
                    .err()
                    .unwrap_or_else(|| io::Error::other("the flushing thread stopped")));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Flushing {
    fn drop(&mut self) {
        self.tick = None;
        let _ = joined(self.thread.take());
    }
}

/// Fsyncs files handed to it on a thread of its own, a few at a time.
pub struct Syncer {
    queue: Option<SyncSender<File>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Syncer {
    pub fn start() -> io::Result<Self> {
        // A short queue: restoring never runs far ahead of the disk, and only a few
        // files are open at once.
        let (queue, rx) = sync_channel::<File>(4);
        let thread = std::thread::Builder::new()
            .name("restore-sync".into())
            .spawn(move || drain(rx, |file| file.sync_all()))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues a completely written file for its fsync.
    pub fn sync(&mut self, file: File) -> io::Result<()> {
        let sent = match &self.queue {
            Some(queue) => queue.send(file).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        self.queue = None;
        Err(joined(self.thread.take())
            .err()
            .unwrap_or_else(|| io::Error::other("the sync thread stopped")))
    }

    /// Waits for every queued fsync; the first error any met.
    pub fn finish(mut self) -> io::Result<()> {
        self.queue = None;
        joined(self.thread.take())
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.queue = None;
        let _ = joined(self.thread.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_flushing_file_keeps_every_byte_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        let mut w = Flushing::new(File::create(&path).expect("create")).expect("flushing");
        let block = vec![7u8; 1024 * 1024];
        for _ in 0..(FLUSH_EVERY / block.len() as u64) * 2 + 3 {
            w.write_all(&block).expect("write");
        }
        w.into_file().expect("file").sync_all().expect("sync");
        let mut got = Vec::new();
        File::open(&path)
            .expect("open")
            .read_to_end(&mut got)
            .expect("read");
        assert_eq!(got.len() as u64, FLUSH_EVERY * 2 + 3 * 1024 * 1024);
        assert!(got.iter().all(|b| *b == 7));
    }

    #[test]
    fn the_syncer_syncs_every_queued_file_and_then_finishes() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut syncer = Syncer::start().expect("syncer");
        for i in 0..10 {
            let mut f = File::create(dir.path().join(i.to_string())).expect("create");
            f.write_all(b"data").expect("write");
            syncer.sync(f).expect("queued");
        }
        syncer.finish().expect("all synced");
    }
}
