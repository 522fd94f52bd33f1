//! A signed-in user's own sessions: list them, end one of the others, end all others.
//!
//! Guarantees: every function takes the verified caller and reaches only that
//! user's sessions (through the per-user session index), so another user's session
//! answers `NotFound` exactly like one that does not exist, and the refusal is
//! audited. Sessions are named by their random public id, never by the secret
//! cookie value or its hash. The current session is never ended here (signing out
//! does that). Each end commits with its audit entry (`session.end`,
//! `session.end_others`), which carries the public id or a count, nothing secret.

use uuid::Uuid;

use super::accounts::cat;
use super::audit::{self, Event, Outcome};
use super::sessions::{Session, end_other_sessions};
use super::{Result, SESSIONS, Store, StoreError, USER_SESSIONS_IDX, now_ms};
use crate::crypto;
use crate::domain::Caller;

/// One of the caller's live sessions.
#[derive(Debug, Clone)]
pub struct OwnSession {
    pub public_id: Uuid,
    pub device: String,
    pub source: Option<String>,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    /// The session this request came with.
    pub current: bool,
}

fn user_range(user: Uuid) -> (Vec<u8>, Vec<u8>) {
    (
        cat(user.as_bytes(), &[0u8; 32]),
        cat(user.as_bytes(), &[0xffu8; 33]),
    )
}

/// The caller's live sessions (expired ones are left out), most recently seen first.
pub fn list(
    store: &Store,
    caller: &Caller,
    current_token: &str,
    idle_ms: i64,
    absolute_ms: i64,
) -> Result<Vec<OwnSession>> {
    let current = crypto::sha256(current_token.as_bytes());
    let now = now_ms();
    let tx = store.read()?;
    let (lo, hi) = user_range(caller.user_id());
    let mut out = Vec::new();
    for key in tx.keys_desc(USER_SESSIONS_IDX, &lo, &hi, usize::MAX)? {
        let hash = &key[16..];
        let Some(s) = tx.get::<Session>(SESSIONS, hash)? else {
            continue;
        };
        let live = now - s.last_seen_ms <= idle_ms && now - s.created_ms <= absolute_ms;
        if s.user_id != caller.user_id() || !live {
            continue;
        }
        out.push(OwnSession {
            public_id: s.public_id,
            device: s.device,
            source: s.source,
            created_ms: s.created_ms,
            last_seen_ms: s.last_seen_ms,
            current: hash == current.as_slice(),
        });
    }
    out.sort_by_key(|s| (!s.current, std::cmp::Reverse(s.last_seen_ms)));
    Ok(out)
}

/// Ends one of the caller's other sessions, named by its public id. Anything else
/// (another user's session, the current one, an unknown id) is `NotFound`, audited
/// as a refusal.
pub fn end_one(store: &Store, caller: &Caller, current_token: &str, public_id: Uuid) -> Result<()> {
    let current = crypto::sha256(current_token.as_bytes());
    let tx = store.write()?;
    let (lo, hi) = user_range(caller.user_id());
    if !public_id.is_nil() {
        for key in tx.keys_desc(USER_SESSIONS_IDX, &lo, &hi, usize::MAX)? {
            let hash = &key[16..];
            let found = tx
                .get::<Session>(SESSIONS, hash)?
                .is_some_and(|s| s.public_id == public_id && s.user_id == caller.user_id());
            if found && hash != current.as_slice() {
                tx.remove(SESSIONS, hash)?;
                tx.remove(USER_SESSIONS_IDX, &key)?;
                audit::append(
                    &tx,
                    Event::by(
                        caller,
                        "session.end",
                        Some(public_id.to_string()),
                        Outcome::Ok,
                    ),
                )?;
                return tx.commit();
            }
        }
    }
    audit::append(
        &tx,
        Event::by(
            caller,
            "session.end",
            Some(public_id.to_string()),
            Outcome::Refused,
        ),
    )?;
    tx.commit()?;
    Err(StoreError::NotFound)
}

/// Ends every session of the caller but the current one; returns how many ended.
pub fn end_others(store: &Store, caller: &Caller, current_token: &str) -> Result<usize> {
    let current = crypto::sha256(current_token.as_bytes());
    let tx = store.write()?;
    let ended = end_other_sessions(&tx, caller.user_id(), Some(&current))?;
    audit::append(
        &tx,
        Event::by(
            caller,
            "session.end_others",
            Some(ended.to_string()),
            Outcome::Ok,
        ),
    )?;
    tx.commit()?;
    Ok(ended)
}
