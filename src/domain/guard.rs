//! How failed sign-ins slow down, then block, an account or a source address: pure
//! arithmetic on counts and instants, with no clock and no I/O.
//!
//! Guarantees: the first few failures cost nothing; after that each failure makes the
//! next attempt wait twice as long as the one before (1 s, 2 s, 4 s, ... capped at
//! `MAX_DELAY_MS`); the failure that reaches the limit blocks the key for the whole
//! cool-down. An address gets ten times an account's allowance, because several
//! people may sign in from one office address. A count with no failure for a whole
//! cool-down, and a block whose cool-down has passed, start again from zero.

use serde::{Deserialize, Serialize};

/// The longest delay between two attempts before the block itself.
pub const MAX_DELAY_MS: i64 = 60_000;
/// How many times an account's allowance an address gets.
pub const ADDRESS_FACTOR: u32 = 10;
/// Failures per account that cost nothing (an address gets ten times as many).
const FREE_FAILURES: u32 = 2;

/// The address a count is kept for: an IPv4 address as is, an IPv6 address by its
/// /64 network (one host usually holds a whole /64, so counting single IPv6
/// addresses would let it try without limit).
pub fn address_bucket(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        Ok(ip) => ip.to_string(),
        Err(_) => address.to_string(),
    }
}

/// What a count is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    Account,
    Address,
}

/// Failures counted for one account or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counter {
    pub failures: u32,
    pub last_failure_ms: i64,
    /// Set when the count reached the limit; the block lasts one cool-down.
    pub blocked_since_ms: Option<i64>,
}

/// The configured limits: `signin_max_failures` and `signin_cooldown_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    max_failures: u32,
    cooldown_ms: i64,
}

impl Policy {
    pub fn new(max_failures: u32, cooldown_ms: i64) -> Self {
        Self {
            max_failures: max_failures.max(1),
            cooldown_ms: cooldown_ms.max(0),
        }
    }

    pub fn cooldown_ms(&self) -> i64 {
        self.cooldown_ms
    }

    fn factor(kind: GuardKind) -> u32 {
        match kind {
            GuardKind::Account => 1,
            GuardKind::Address => ADDRESS_FACTOR,
        }
    }

    /// The failure that reaches this count blocks the key.
    pub fn max(&self, kind: GuardKind) -> u32 {
        self.max_failures.saturating_mul(Self::factor(kind))
    }

    /// Failures that do not delay the next attempt (always fewer than `max`).
    pub fn free(&self, kind: GuardKind) -> u32 {
        (FREE_FAILURES * Self::factor(kind)).min(self.max(kind) - 1)
    }

    /// How long the next attempt waits after `failures` failures (before the block).
    pub fn delay_ms(&self, kind: GuardKind, failures: u32) -> i64 {
        let free = self.free(kind);
        if failures <= free {
            return 0;
        }
        let doublings = (failures - free - 1).min(20);
        (1_000i64 << doublings).min(MAX_DELAY_MS)
    }

    /// The counter as it stands at `now`: stale counts and ended blocks are forgotten.
    pub fn current(&self, c: Counter, now: i64) -> Counter {
        let since = c.blocked_since_ms.unwrap_or(c.last_failure_ms);
        if now.saturating_sub(since) >= self.cooldown_ms {
            Counter::default()
        } else {
            c
        }
    }

    /// Whether the key is blocked (not merely delayed) at `now`.
    pub fn is_blocked(&self, c: Counter, now: i64) -> bool {
        self.current(c, now).blocked_since_ms.is_some()
    }

    /// How long until the next attempt may be made, if it must wait at all.
    pub fn wait_ms(&self, kind: GuardKind, c: Counter, now: i64) -> Option<i64> {
        let c = self.current(c, now);
        if c.failures == 0 && c.blocked_since_ms.is_none() {
            return None;
        }
        let until = match c.blocked_since_ms {
            Some(since) => since.saturating_add(self.cooldown_ms),
            None => c
                .last_failure_ms
                .saturating_add(self.delay_ms(kind, c.failures)),
        };
        (until > now).then(|| until - now)
    }

    /// The counter after one more failure at `now`, and whether this failure
    /// started a block. A failure while blocked does not lengthen the block.
    pub fn fail(&self, kind: GuardKind, c: Counter, now: i64) -> (Counter, bool) {
        let mut c = self.current(c, now);
        if c.blocked_since_ms.is_some() {
            return (c, false);
        }
        c.failures = c.failures.saturating_add(1);
        c.last_failure_ms = now;
        let crossed = c.failures >= self.max(kind);
        if crossed {
            c.blocked_since_ms = Some(now);
        }
        (c, crossed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const ACCOUNT: GuardKind = GuardKind::Account;

    #[test]
    fn two_free_failures_then_doubling_delays_then_a_block() {
        let p = Policy::new(6, 15 * MIN);
        let mut c = Counter::default();
        let mut now = 1_000_000;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let (next, crossed) = p.fail(ACCOUNT, c, now);
            c = next;
            waits.push((p.wait_ms(ACCOUNT, c, now), crossed));
            now += p.wait_ms(ACCOUNT, c, now).unwrap_or(0);
        }
        assert_eq!(
            waits,
            vec![
                (None, false),
                (None, false),
                (Some(1_000), false),
                (Some(2_000), false),
                (Some(4_000), false),
                (Some(15 * MIN), true),
            ]
        );
        let end = c.blocked_since_ms.unwrap_or_default() + 15 * MIN;
        assert!(p.is_blocked(c, end - 1));
        assert!(!p.is_blocked(c, end), "the cool-down ends the block");
        assert_eq!(p.wait_ms(ACCOUNT, c, end), None);
    }

    #[test]
    fn delays_are_capped_and_addresses_get_ten_times_the_allowance() {
        let p = Policy::new(50, 15 * MIN);
        assert_eq!(p.delay_ms(ACCOUNT, 40), MAX_DELAY_MS);
        let p = Policy::new(5, 15 * MIN);
        assert_eq!(p.max(GuardKind::Address), 50);
        assert_eq!(p.free(GuardKind::Address), 20);
        assert_eq!(p.delay_ms(GuardKind::Address, 20), 0);
        assert_eq!(p.delay_ms(GuardKind::Address, 21), 1_000);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_network() {
        assert_eq!(address_bucket("10.1.2.3"), "10.1.2.3");
        assert_eq!(address_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            address_bucket("2001:db8:1:2:bbbb::9"),
            address_bucket("2001:db8:1:2:aaaa::1")
        );
        assert_eq!(address_bucket("::ffff:10.0.0.7"), "10.0.0.7");
        assert_eq!(address_bucket("::1"), "::/64");
    }

    #[test]
    fn a_limit_of_one_blocks_at_the_first_failure() {
        let p = Policy::new(1, MIN);
        assert_eq!(p.free(ACCOUNT), 0);
        let (c, crossed) = p.fail(ACCOUNT, Counter::default(), 5);
        assert!(crossed && p.is_blocked(c, 5));
        assert_eq!(p.free(GuardKind::Address), 9);
    }

    #[test]
    fn a_quiet_cool_down_forgets_the_count_and_a_blocked_key_stays_put() {
        let p = Policy::new(3, MIN);
        let (c, _) = p.fail(ACCOUNT, Counter::default(), 0);
        let (c, _) = p.fail(ACCOUNT, c, 10);
        let (c, _) = p.fail(ACCOUNT, c, MIN + 10);
        assert_eq!(c.failures, 1, "the earlier failures were a cool-down ago");
        let (c, _) = p.fail(ACCOUNT, c, MIN + 20);
        let (c, crossed) = p.fail(ACCOUNT, c, MIN + 30);
        assert!(crossed);
        let (again, crossed) = p.fail(ACCOUNT, c, MIN + 40);
        assert!(!crossed);
        assert_eq!(
            again, c,
            "a failure while blocked does not lengthen the block"
        );
    }
}
