//! A fixed-window rate limit kept in memory, for requests that are not sign-ins
//! (sign-up requests per address).
//!
//! Guarantees: after `max` requests for one key (ten times that for an address key)
//! within the window, `blocked` answers how long to wait until the window passes;
//! keys are bytes chosen by the caller (never emails).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    window_start: Instant,
}

pub struct WindowLimit {
    max_failures: u32,
    window: Duration,
    counters: Mutex<HashMap<Vec<u8>, Counter>>,
}

fn account_key(account: &[u8]) -> Vec<u8> {
    let mut k = b"a:".to_vec();
    k.extend_from_slice(account);
    k
}

fn address_key(address: &str) -> Vec<u8> {
    let mut k = b"s:".to_vec();
    k.extend_from_slice(address.as_bytes());
    k
}

impl WindowLimit {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            counters: Mutex::new(HashMap::new()),
        }
    }

    fn limit_for(&self, key: &[u8]) -> u32 {
        if key.starts_with(b"s:") {
            self.max_failures.saturating_mul(10)
        } else {
            self.max_failures
        }
    }

    /// How long the caller must wait before trying again, if blocked.
    pub fn blocked(&self, account: &[u8], address: Option<&str>) -> Option<Duration> {
        let now = Instant::now();
        let Ok(map) = self.counters.lock() else {
            return None;
        };
        let keys = std::iter::once(account_key(account)).chain(address.map(address_key));
        keys.filter_map(|k| {
            let c = map.get(&k)?;
            let elapsed = now.duration_since(c.window_start);
            (c.failures >= self.limit_for(&k) && elapsed < self.window)
                .then(|| self.window - elapsed)
        })
        .max()
    }

    pub fn fail(&self, account: &[u8], address: Option<&str>) {
        let now = Instant::now();
        let Ok(mut map) = self.counters.lock() else {
            return;
        };
        // Forget stale windows so the map cannot grow without bound.
        if map.len() > 100_000 {
            map.retain(|_, c| now.duration_since(c.window_start) < self.window);
        }
        for k in std::iter::once(account_key(account)).chain(address.map(address_key)) {
            let c = map.entry(k).or_insert(Counter {
                failures: 0,
                window_start: now,
            });
            if now.duration_since(c.window_start) >= self.window {
                *c = Counter {
                    failures: 0,
                    window_start: now,
                };
            }
            c.failures += 1;
        }
    }

    pub fn succeed(&self, account: &[u8]) {
        if let Ok(mut map) = self.counters.lock() {
            map.remove(&account_key(account));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_success_clears() {
        let t = WindowLimit::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.blocked(b"acct", Some("10.0.0.1")).is_none());
            t.fail(b"acct", Some("10.0.0.1"));
        }
        assert!(t.blocked(b"acct", Some("10.0.0.1")).is_some());
        assert!(
            t.blocked(b"other", Some("10.0.0.1")).is_none(),
            "address limit is higher"
        );
        t.succeed(b"acct");
        assert!(t.blocked(b"acct", None).is_none());
    }

    #[test]
    fn an_address_is_blocked_after_ten_times_the_limit() {
        let t = WindowLimit::new(2, Duration::from_secs(60));
        for i in 0..20u8 {
            t.fail(&[i], Some("10.0.0.2"));
        }
        assert!(t.blocked(b"fresh", Some("10.0.0.2")).is_some());
        assert!(t.blocked(b"fresh", Some("10.0.0.3")).is_none());
    }
}
