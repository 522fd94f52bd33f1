//! Failed sign-in counts and blocks, per account and per source address, kept in the
//! store so that a block survives a restart.
//!
//! Guarantees: records are keyed by a kind tag and a keyed hash: an account by the
//! blind index of the normalized email (the same for an email with and without an
//! account, so both are treated alike), an address by a blind index of its bucket
//! (an IPv6 address counts by its /64).
//! The email typed is never stored; the address is kept only inside the sealed value,
//! so admins can see which one is blocked. A failure, its own audit entry and, when it
//! reaches the limit, `signin.blocked` commit together; an admin's unblock commits
//! with `signin.unblocked`. Records that no longer count anything are purged, and the
//! purge is audited. Only `AdminScope` lists or unblocks.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::{self, AdminScope, User, cat};
use super::audit::{self, Event, Outcome};
use super::{Result, SIGNIN_GUARD, Store, StoreError, USER_EMAIL_IDX, WriteTx};
use crate::crypto::Keys;
use crate::domain::guard::{Counter, GuardKind, Policy, address_bucket};

const ACCOUNT_TAG: u8 = b'a';
const ADDRESS_TAG: u8 = b's';

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    kind: GuardKind,
    counter: Counter,
    /// The user whose email was typed, when it belongs to one.
    user_id: Option<Uuid>,
    /// The source address itself, for address records only.
    address: Option<String>,
}

fn account_key(account: &[u8]) -> Vec<u8> {
    cat(&[ACCOUNT_TAG], account)
}

fn address_key(keys: &Keys, bucket: &str) -> Vec<u8> {
    cat(&[ADDRESS_TAG], &keys.blind_index("signin-address", bucket))
}

fn keys_of(
    keys: &Keys,
    account: Option<&[u8]>,
    address: Option<&str>,
) -> Vec<(GuardKind, Vec<u8>)> {
    let mut out = Vec::with_capacity(2);
    if let Some(a) = account {
        out.push((GuardKind::Account, account_key(a)));
    }
    if let Some(a) = address {
        out.push((GuardKind::Address, address_key(keys, &address_bucket(a))));
    }
    out
}

/// The user behind an email's blind index, found through the email index.
fn user_for(tx: &WriteTx<'_>, account: &[u8]) -> Result<Option<Uuid>> {
    if account.len() != 32 {
        return Ok(None);
    }
    let found = tx.keys_desc(
        USER_EMAIL_IDX,
        &cat(account, &[0u8; 16]),
        &cat(account, &[0xffu8; 17]),
        1,
    )?;
    Ok(found.first().and_then(|k| Uuid::from_slice(&k[32..]).ok()))
}

/// What an audit entry names as blocked: a user id, never an email.
fn subject(r: &Record) -> String {
    match (r.kind, r.user_id, &r.address) {
        (GuardKind::Account, Some(id), _) => id.to_string(),
        (GuardKind::Account, None, _) => "unknown account".into(),
        (GuardKind::Address, _, Some(a)) => format!("address {a}"),
        (GuardKind::Address, _, None) => "address".into(),
    }
}

/// How long the next attempt for this account and address must wait (the longer of
/// the two), if at all.
pub fn wait_ms(
    store: &Store,
    policy: &Policy,
    account: Option<&[u8]>,
    address: Option<&str>,
    now: i64,
) -> Result<Option<i64>> {
    let tx = store.read()?;
    let mut wait = None;
    for (kind, key) in keys_of(store.keys(), account, address) {
        if let Some(r) = tx.get::<Record>(SIGNIN_GUARD, &key)? {
            wait = wait.max(policy.wait_ms(kind, r.counter, now));
        }
    }
    Ok(wait)
}

/// Counts one failed attempt against the account and the address in one commit with
/// `event` (the failure's own audit entry). A count that reaches its limit starts a
/// block and appends `signin.blocked` in the same commit.
pub fn record_failure(
    store: &Store,
    policy: &Policy,
    account: Option<&[u8]>,
    address: Option<&str>,
    now: i64,
    event: Option<Event>,
) -> Result<()> {
    let tx = store.write()?;
    if let Some(e) = event {
        audit::append(&tx, e)?;
    }
    for (kind, key) in keys_of(store.keys(), account, address) {
        let mut r = tx.get::<Record>(SIGNIN_GUARD, &key)?.unwrap_or(Record {
            kind,
            counter: Counter::default(),
            user_id: None,
            address: None,
        });
        match (kind, account) {
            (GuardKind::Account, Some(a)) => r.user_id = user_for(&tx, a)?,
            _ => r.address = address.map(address_bucket),
        }
        let (counter, crossed) = policy.fail(kind, r.counter, now);
        r.counter = counter;
        tx.put(SIGNIN_GUARD, &key, &r)?;
        if crossed {
            let event =
                Event::anonymous("signin.blocked", address.map(str::to_string), Outcome::Ok)
                    .object(subject(&r));
            audit::append(&tx, event)?;
        }
    }
    tx.commit()
}

/// Forgets the account's failures after a successful sign-in. The address keeps its
/// count, so one good account cannot reset an address that is guessing others.
pub fn clear_account(store: &Store, account: &[u8]) -> Result<()> {
    let key = account_key(account);
    if store.read()?.get::<Record>(SIGNIN_GUARD, &key)?.is_none() {
        return Ok(());
    }
    let tx = store.write()?;
    tx.remove(SIGNIN_GUARD, &key)?;
    tx.commit()
}

/// Forgets an account's record inside the caller's transaction (its deletion: the
/// record names the user).
pub(crate) fn forget_account(tx: &WriteTx<'_>, account: &[u8]) -> Result<()> {
    tx.remove(SIGNIN_GUARD, &account_key(account))?;
    Ok(())
}

/// Removes records that no longer count anything (quiet for a cool-down, or a block
/// that has ended), so rate-limit data is kept no longer than it is useful. Audited
/// when anything was removed; returns how many were.
pub fn purge_stale(store: &Store, policy: &Policy, now: i64) -> Result<usize> {
    let stale: Vec<Vec<u8>> = store
        .read()?
        .entries::<Record>(SIGNIN_GUARD, &[0u8], &[0xffu8; 34], false, usize::MAX)?
        .into_iter()
        .filter(|(_, r)| policy.current(r.counter, now) == Counter::default())
        .map(|(k, _)| k)
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    let tx = store.write()?;
    let mut removed = 0;
    for key in stale {
        // A failure may have landed in between: only remove what is still stale.
        let still = tx
            .get::<Record>(SIGNIN_GUARD, &key)?
            .is_some_and(|r| policy.current(r.counter, now) == Counter::default());
        if still && tx.remove(SIGNIN_GUARD, &key)? {
            removed += 1;
        }
    }
    if removed > 0 {
        audit::append(
            &tx,
            Event::anonymous("signin.purge", None, Outcome::Ok).object(removed),
        )?;
    }
    tx.commit()?;
    Ok(removed)
}

/// A blocked account or address as an admin sees it.
#[derive(Debug, Clone)]
pub struct Blocked {
    /// Names the record in an unblock request (a keyed hash, never an email).
    pub key: Vec<u8>,
    pub kind: GuardKind,
    /// The account's user, when the email typed belongs to one.
    pub user: Option<User>,
    pub address: Option<String>,
    pub failures: u32,
    pub blocked_since_ms: i64,
    pub until_ms: i64,
}

impl AdminScope<'_> {
    /// Every account and address blocked now, most recent first.
    pub fn blocked_signins(&self, policy: &Policy, now: i64) -> Result<Vec<Blocked>> {
        let tx = self.store.read()?;
        let mut out = Vec::new();
        for (key, r) in
            tx.entries::<Record>(SIGNIN_GUARD, &[0u8], &[0xffu8; 34], false, usize::MAX)?
        {
            let c = policy.current(r.counter, now);
            let Some(since) = c.blocked_since_ms else {
                continue;
            };
            let user = match r.user_id {
                Some(id) => accounts::user(&tx, id)?,
                None => None,
            };
            out.push(Blocked {
                key,
                kind: r.kind,
                user,
                address: r.address,
                failures: c.failures,
                blocked_since_ms: since,
                until_ms: since.saturating_add(policy.cooldown_ms()),
            });
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.blocked_since_ms));
        Ok(out)
    }

    /// Lifts a block now; `NotFound` unless `key` names a record blocked now.
    pub fn unblock_signin(&self, policy: &Policy, key: &[u8], now: i64) -> Result<()> {
        let tx = self.store.write()?;
        let record = tx
            .get::<Record>(SIGNIN_GUARD, key)?
            .filter(|r| policy.is_blocked(r.counter, now))
            .ok_or(StoreError::NotFound)?;
        tx.remove(SIGNIN_GUARD, key)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "signin.unblocked",
                Some(subject(&record)),
                Outcome::Ok,
            ),
        )?;
        tx.commit()
    }
}
