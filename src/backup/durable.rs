//! Getting backup and restore writes onto the disk while the CPU keeps working.
//!
//! Guarantees: nothing here weakens durability. `Syncer` fsyncs each restored file
//! on its own thread and reports the first failure when it finishes, before the
//! restore may be called done. (The bytes themselves go to the disk as they are
//! written, through `crate::direct`.) `widen_pipe` lets the two threads of a backup
//! or restore hand over bigger pieces.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

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
    use std::io::Write;

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
