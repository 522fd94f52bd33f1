//! Progress for long operator commands: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Reporter {
    bar: Option<ProgressBar>,
    total: AtomicU64,
    last_tenth: AtomicU64,
    done: AtomicU64,
    label: &'static str,
}

impl Reporter {
    /// A reporter writing to standard error; `quiet` prints nothing.
    pub fn new(label: &'static str, total: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total.max(1));
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label);
            bar
        });
        Self {
            bar,
            total: AtomicU64::new(total.max(1)),
            last_tenth: AtomicU64::new(if quiet { u64::MAX } else { 0 }),
            done: AtomicU64::new(0),
            label,
        }
    }

    /// Records that `done` bytes are through.
    pub fn update(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        if done > total {
            self.total.store(done, Ordering::Relaxed);
            if let Some(bar) = &self.bar {
                bar.set_length(done);
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        // The total is an estimate (the file's size, say): 100% is said by `finish`.
        let tenth = (done.saturating_mul(10) / total.max(1)).min(9);
        let last = self.last_tenth.load(Ordering::Relaxed);
        if last != u64::MAX && tenth > last {
            self.last_tenth.store(tenth, Ordering::Relaxed);
            eprintln!(
                "{}: {} MiB ({}%)",
                self.label,
                done / (1024 * 1024),
                tenth * 10
            );
        }
    }

    /// Ends the bar, or says the last plain line: everything is through.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        } else if self.last_tenth.load(Ordering::Relaxed) != u64::MAX {
            eprintln!(
                "{}: {} MiB (100%)",
                self.label,
                self.done.load(Ordering::Relaxed) / (1024 * 1024)
            );
        }
    }
}
