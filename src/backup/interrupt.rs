//! Stopping a backup command cleanly on Ctrl-C, `kill` or a closed terminal.
//!
//! Guarantees: once `watch` runs, the first SIGINT, SIGTERM or SIGHUP does not end
//! the process where it stands; it asks the export or restore to stop, which then
//! fails at its next chunk with "stopped by a signal" and, through the usual error
//! path, removes its `.partial` file or everything it restored. A second signal ends
//! the process at once (for a command stuck waiting on something), naming what it
//! leaves behind for the operator to remove. The flag is process-wide because
//! signals are; the service never sets it.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
/// What a command ended at once would leave half-written.
static LEAVING: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Names what an abrupt end (a second signal) would leave half-written.
pub fn leaving(path: &Path) {
    if let Ok(mut slot) = LEAVING.lock() {
        *slot = Some(path.to_path_buf());
    }
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The error a stopped command fails with.
pub fn stopped() -> io::Error {
    io::Error::other("stopped by a signal; nothing was kept")
}

/// Fails once a stop was asked for.
pub fn check() -> io::Result<()> {
    match requested() {
        true => Err(stopped()),
        false => Ok(()),
    }
}

/// A reader that fails once a stop was asked for.
pub struct Stoppable<R>(pub R);

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        check()?;
        self.0.read(buf)
    }
}

/// Starts listening for SIGINT, SIGTERM and SIGHUP on a thread of its own.
pub fn watch() -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registering inside the runtime replaces the default action (ending the
    // process) before this function returns.
    let mut signals = rt.block_on(async {
        Ok::<_, io::Error>([
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ])
    })?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                let [int, term, hup] = &mut signals;
                loop {
                    tokio::select! {
                        _ = int.recv() => {},
                        _ = term.recv() => {},
                        _ = hup.recv() => {},
                    }
                    // The command then fails with its one `error:` line.
                    if REQUESTED.swap(true, Ordering::SeqCst) {
                        let left = LEAVING.lock().ok().and_then(|slot| slot.clone());
                        match left {
                            Some(path) => eprintln!(
                                "error: stopped at once by a second signal; {} may hold partly written data: remove it before trying again",
                                path.display()
                            ),
                            None => eprintln!("error: stopped at once by a second signal"),
                        }
                        std::process::exit(130);
                    }
                }
            })
        })?;
    Ok(())
}
