//! Failed sign-in throttling, per account and per source address.
//!
//! Guarantees: before a password (or a second-factor code) is checked, `check` says
//! how long the caller must still wait: a growing delay after a few failures, or the
//! rest of the cool-down once `signin_max_failures` failures (ten times that from one
//! address) blocked the key. Nothing sleeps: the caller answers 429 with
//! `Retry-After`. Counts and blocks live sealed in the store (see
//! `store::signin_guard`), keyed by blind-index bytes and keyed hashes of addresses,
//! never by emails, so a block survives a restart. Time comes from the injectable
//! clock, so tests move it instead of sleeping. A success clears the account's count.
//!
//! One attempt per account is checked at a time (`turn`): from `check` to its
//! count, so a burst of parallel guesses cannot all pass `check` first.
//!
//! `blocked`, `fail` and `succeed` are the short forms for callers that cannot
//! handle a store error: `blocked` then answers "wait" (it fails closed) and the
//! others log it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::guard::Policy;
use crate::store::audit::Event;
use crate::store::{Store, StoreError, signin_guard};

/// Stale records are swept at most this often.
const PURGE_EVERY_MS: i64 = 3_600_000;
/// What `blocked` answers when the store cannot say.
const FAIL_CLOSED: Duration = Duration::from_secs(60);

pub struct Throttle {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    last_purge_ms: AtomicI64,
    /// Accounts with an attempt being checked right now (see `turn`).
    in_flight: Mutex<HashSet<Vec<u8>>>,
}

/// One account's turn to have an attempt checked; the turn ends when this is dropped.
pub struct Turn<'t> {
    throttle: &'t Throttle,
    account: Vec<u8>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.throttle.in_flight().remove(&self.account);
    }
}

/// What an attempt that finds another one for the same account in progress waits.
pub const BUSY: Duration = Duration::from_secs(1);

/// Whole seconds to wait, rounded up, at least one.
fn secs(ms: i64) -> Duration {
    Duration::from_secs(u64::try_from(ms.max(1).saturating_add(999) / 1000).unwrap_or(1))
}

impl Throttle {
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        max_failures: u32,
        cooldown: Duration,
    ) -> Self {
        let cooldown_ms = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
        Self {
            store,
            clock,
            policy: Policy::new(max_failures, cooldown_ms),
            last_purge_ms: AtomicI64::new(i64::MIN),
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Now, by the injectable clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Takes `account`'s turn to have one attempt checked, or None while another
    /// attempt for it is being checked (the caller answers "wait `BUSY`"). Holding
    /// the turn from `check` until the failure is counted means parallel requests
    /// cannot all pass `check` before the first failure is recorded, which would let
    /// a burst of guesses through the delays and the block.
    pub fn turn(&self, account: &[u8]) -> Option<Turn<'_>> {
        self.in_flight().insert(account.to_vec()).then(|| Turn {
            throttle: self,
            account: account.to_vec(),
        })
    }

    /// The set of accounts in flight. A poisoned lock is taken over rather than
    /// refused: the set only ever holds keys, so it cannot be left half-changed, and
    /// refusing would turn every later sign-in away.
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `turn`, then `blocked`: the turn, or how long to wait.
    pub fn take_turn(&self, account: &[u8], address: Option<&str>) -> Result<Turn<'_>, Duration> {
        let turn = self.turn(account).ok_or(BUSY)?;
        match self.blocked(account, address) {
            Some(wait) => Err(wait),
            None => Ok(turn),
        }
    }

    /// How long the caller must wait before the next attempt, if at all.
    pub fn check(
        &self,
        account: Option<&[u8]>,
        address: Option<&str>,
    ) -> Result<Option<Duration>, StoreError> {
        let wait =
            signin_guard::wait_ms(&self.store, &self.policy, account, address, self.now_ms())?;
        Ok(wait.map(secs))
    }

    /// Counts a failure, committed with `event` (the failure's own audit entry).
    pub fn record_failure(
        &self,
        account: Option<&[u8]>,
        address: Option<&str>,
        event: Option<Event>,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        signin_guard::record_failure(&self.store, &self.policy, account, address, now, event)?;
        self.purge_now_and_then(now)
    }

    /// Clears the account's count after a success.
    pub fn record_success(&self, account: &[u8]) -> Result<(), StoreError> {
        signin_guard::clear_account(&self.store, account)
    }

    /// Sweeps records that count nothing any more, at most once an hour.
    fn purge_now_and_then(&self, now: i64) -> Result<(), StoreError> {
        let last = self.last_purge_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < PURGE_EVERY_MS
            || self
                .last_purge_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        signin_guard::purge_stale(&self.store, &self.policy, now).map(|_| ())
    }

    /// `check` for one account; a store error answers "wait" rather than "go on".
    pub fn blocked(&self, account: &[u8], address: Option<&str>) -> Option<Duration> {
        self.check(Some(account), address).unwrap_or_else(|e| {
            tracing::error!(error = %e, "sign-in throttle unreadable; refusing the attempt");
            Some(FAIL_CLOSED)
        })
    }

    /// `record_failure` with no audit entry of its own; a store error is logged.
    pub fn fail(&self, account: &[u8], address: Option<&str>) {
        if let Err(e) = self.record_failure(Some(account), address, None) {
            tracing::error!(error = %e, "failed sign-in not counted");
        }
    }

    /// `record_success`; a store error is logged.
    pub fn succeed(&self, account: &[u8]) {
        if let Err(e) = self.record_success(account) {
            tracing::error!(error = %e, "sign-in count not cleared");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_attempt_per_account_is_checked_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let master = crate::crypto::MasterKey::create(&dir.path().join("master.key")).unwrap();
        let store = Arc::new(Store::create(dir.path(), &master).unwrap());
        let t = Throttle::new(
            store,
            Arc::new(crate::clock::SystemClock),
            5,
            Duration::from_secs(60),
        );
        let first = t.turn(b"acct").expect("free");
        assert!(t.turn(b"acct").is_none(), "a second attempt waits");
        assert!(
            matches!(t.take_turn(b"acct", None), Err(BUSY)),
            "and is told to wait a second"
        );
        assert!(t.turn(b"other").is_some(), "other accounts are not held up");
        drop(first);
        assert!(
            t.take_turn(b"acct", None).is_ok(),
            "the turn ends with its guard"
        );
    }

    #[test]
    fn waits_are_whole_seconds_rounded_up() {
        assert_eq!(secs(1), Duration::from_secs(1));
        assert_eq!(secs(0), Duration::from_secs(1));
        assert_eq!(secs(1_000), Duration::from_secs(1));
        assert_eq!(secs(1_001), Duration::from_secs(2));
        assert_eq!(secs(900_000), Duration::from_secs(900));
    }
}
