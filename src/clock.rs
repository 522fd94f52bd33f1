//! The clock that decides when signed document links, password reset links and
//! pending sign-ins expire, and which TOTP step is current.
//!
//! Guarantees: production code reads `SystemClock`; tests may start the server with
//! an `OffsetClock` and move it forward, so expiry is tested without sleeping.
//! Nothing else (sessions, audit timestamps) reads this clock.

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

/// The system clock shifted by an adjustable offset.
#[derive(Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        crate::store::now_ms().saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }
}
