//! The clock that decides when signed document links, password reset links and
//! pending sign-ins expire, which TOTP step is current, and when sign-in delays and
//! blocks end.
//!
//! Guarantees: production code reads `SystemClock`; tests may start the server with
//! an `OffsetClock` and move it forward, so expiry and cool-downs are tested without
//! sleeping. Nothing else (sessions, audit timestamps) reads this clock.

use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch, UTC.
    fn now_ms(&self) -> i64;
}

/// The operating system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::store::now_ms()
    }
}

/// The system clock shifted by an adjustable offset, or stopped.
#[derive(Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
    /// When non-zero, the instant the clock stopped at (then only `advance` moves it).
    frozen_ms: AtomicI64,
}

impl OffsetClock {
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Stops the clock where it is, so a test's own slowness cannot move time.
    pub fn freeze(&self) {
        let now = self.now_ms();
        self.offset_ms.store(0, Ordering::SeqCst);
        self.frozen_ms.store(now, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        let base = match self.frozen_ms.load(Ordering::SeqCst) {
            0 => crate::store::now_ms(),
            frozen => frozen,
        };
        base.saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }
}
