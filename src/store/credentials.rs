//! Password changes and one-time reset links.
//!
//! Guarantees: a password change ends the user's other sessions, and any sign-in
//! still waiting for its second-factor code, in the same commit; a reset link is
//! stored only as the SHA-256 of its secret, is issued only through `AdminScope` and
//! only for an active account, replaces any earlier link of that user, works once
//! and until `RESET_LINK_MS` after issue, and using it ends every session and
//! waiting sign-in of the user in the same commit as the new password. Hashing and
//! the password policy happen one layer up; this module only stores. Every step is
//! audited by ids.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::{AdminScope, Standing, User, active_user, standing};
use super::audit::{self, Event, Outcome};
use super::{
    ORGS, RESET_LINKS, Result, Store, StoreError, USERS, WriteTx, second_factor, sessions,
};
use crate::crypto;
use crate::domain::Caller;

/// How long a reset link works after it is issued.
pub const RESET_LINK_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResetLink {
    user_id: Uuid,
    issued_by: Uuid,
    created_ms: i64,
    expires_ms: i64,
}

/// Replaces the caller's password hash and ends their other sessions (all but
/// `keep`, the hash of the current session), in one commit.
pub fn change_own_password(
    store: &Store,
    caller: &Caller,
    password_hash: String,
    keep: &[u8; 32],
) -> Result<usize> {
    let id = caller.user_id();
    let tx = store.write()?;
    let mut user: User = tx.get(USERS, id.as_bytes())?.ok_or(StoreError::NotFound)?;
    user.password_hash = password_hash;
    tx.put(USERS, id.as_bytes(), &user)?;
    let ended = sessions::end_other_sessions(&tx, id, Some(keep))?;
    second_factor::end_pending_signins(&tx, id)?;
    audit::append(
        &tx,
        Event::by(caller, "password.change", Some(id.to_string()), Outcome::Ok),
    )?;
    tx.commit()?;
    Ok(ended)
}

/// Issues a reset link for `user_id`: returns the secret, which is shown once.
pub fn issue_reset_link(admin: &AdminScope<'_>, user_id: Uuid, now_ms: i64) -> Result<String> {
    let (store, caller) = (admin.store(), admin.caller());
    let secret = crypto::random_token()?;
    let hash = crypto::sha256(secret.as_bytes());
    let tx = store.write()?;
    let user: User = tx
        .get(USERS, user_id.as_bytes())?
        .ok_or(StoreError::NotFound)?;
    if user.disabled {
        return Err(StoreError::Conflict("the user is disabled"));
    }
    // A link for an account that cannot sign in (waiting for approval, rejected, in
    // a disabled organization) would only ever answer 404 to the person given it.
    let org = tx.get(ORGS, user.org_id.as_bytes())?;
    if standing(&user, org.as_ref()) != Standing::Active {
        return Err(StoreError::Conflict(
            "only an active account can be given a reset link",
        ));
    }
    // One live link per user: an earlier one stops working.
    for key in tx.keys_desc(RESET_LINKS, &[0u8; 32], &[0xffu8; 33], usize::MAX)? {
        let drop = tx
            .get::<ResetLink>(RESET_LINKS, &key)?
            .is_none_or(|l| l.user_id == user_id || l.expires_ms <= now_ms);
        if drop {
            tx.remove(RESET_LINKS, &key)?;
        }
    }
    let link = ResetLink {
        user_id,
        issued_by: caller.user_id(),
        created_ms: now_ms,
        expires_ms: now_ms + RESET_LINK_MS,
    };
    tx.put(RESET_LINKS, &hash, &link)?;
    audit::append(
        &tx,
        Event::by(
            caller,
            "password.reset_link",
            Some(user_id.to_string()),
            Outcome::Ok,
        ),
    )?;
    tx.commit()?;
    Ok(secret)
}

/// Drops every reset link of `user` (inside the caller's transaction).
pub(crate) fn drop_links_of(tx: &WriteTx<'_>, user: Uuid) -> Result<()> {
    for key in tx.keys_desc(RESET_LINKS, &[0u8; 32], &[0xffu8; 33], usize::MAX)? {
        if tx
            .get::<ResetLink>(RESET_LINKS, &key)?
            .is_some_and(|l| l.user_id == user)
        {
            tx.remove(RESET_LINKS, &key)?;
        }
    }
    Ok(())
}

/// The active user a live reset link is for, if any.
pub fn reset_link_user(store: &Store, secret: &str, now_ms: i64) -> Result<Option<User>> {
    let hash = crypto::sha256(secret.as_bytes());
    let tx = store.read()?;
    let Some(link) = tx.get::<ResetLink>(RESET_LINKS, &hash)? else {
        return Ok(None);
    };
    if link.expires_ms <= now_ms {
        return Ok(None);
    }
    active_user(&tx, link.user_id)
}

/// Uses a reset link: sets the new password hash, removes the link and ends every
/// session of the user, in one commit. `NotFound` (audited) for a link that is
/// unknown, used, expired or whose user is no longer active.
pub fn use_reset_link(
    store: &Store,
    secret: &str,
    password_hash: String,
    source: Option<String>,
    now_ms: i64,
) -> Result<User> {
    let hash = crypto::sha256(secret.as_bytes());
    let live = reset_link_user(store, secret, now_ms)?;
    let tx = store.write()?;
    let link = tx.get::<ResetLink>(RESET_LINKS, &hash)?;
    let (Some(link), Some(live)) = (link, live) else {
        audit::append(
            &tx,
            Event::anonymous("password.reset", source, Outcome::Refused),
        )?;
        tx.commit()?;
        return Err(StoreError::NotFound);
    };
    let mut user: User = tx
        .get(USERS, link.user_id.as_bytes())?
        .filter(|u: &User| u.id == live.id && !u.disabled)
        .ok_or(StoreError::NotFound)?;
    user.password_hash = password_hash;
    tx.put(USERS, user.id.as_bytes(), &user)?;
    tx.remove(RESET_LINKS, &hash)?;
    sessions::end_other_sessions(&tx, user.id, None)?;
    second_factor::end_pending_signins(&tx, user.id)?;
    audit::append(
        &tx,
        Event::anonymous("password.reset", source, Outcome::Ok)
            .actor(user.id)
            .object(user.id),
    )?;
    tx.commit()?;
    Ok(user)
}
