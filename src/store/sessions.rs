//! Sessions and API tokens.
//!
//! Guarantees: session ids and API tokens are stored only as SHA-256 hashes; a
//! session or token of a closed account (disabled, rejected, deleted) is never
//! honoured; a pending account gets no token and its session is marked pending;
//! expired sessions are deleted when met; sign-in and sign-out are audited in the
//! same commit as the session change; a token's last use is recorded at most once a
//! minute.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::{Org, Standing, User, active_user, cat, standing, user_standing};
use super::audit::{self, Event, Outcome};
use super::{
    ORGS, Result, SESSIONS, Store, StoreError, TOKENS, USER_SESSIONS_IDX, USER_TOKENS_IDX, USERS,
    WriteTx, now_ms,
};
use crate::crypto;
use crate::domain::Caller;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: Uuid,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub csrf: String,
    pub source: Option<String>,
    /// Names the session on the user's sessions page; the secret id never leaves the
    /// cookie. Nil for sessions started before it existed.
    #[serde(default)]
    pub public_id: Uuid,
    /// A short browser and system summary from the User-Agent at sign-in.
    #[serde(default)]
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    #[serde(default)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    /// After this instant the token is refused (None: no expiry).
    #[serde(default)]
    pub expires_ms: Option<i64>,
}

pub const TOKEN_PREFIX: &str = "ihms_";

/// Removes every session and token of `user` (inside the caller's transaction).
pub(crate) fn revoke_all(tx: &WriteTx<'_>, user: Uuid) -> Result<()> {
    for (idx, table) in [(USER_SESSIONS_IDX, SESSIONS), (USER_TOKENS_IDX, TOKENS)] {
        let (lo, hi) = (
            cat(user.as_bytes(), &[0u8; 32]),
            cat(user.as_bytes(), &[0xffu8; 33]),
        );
        for key in tx.keys_desc(idx, &lo, &hi, usize::MAX)? {
            tx.remove(table, &key[16..])?;
            tx.remove(idx, &key)?;
        }
    }
    Ok(())
}

/// Removes every session of `user` except the one whose hash is `keep` (inside the
/// caller's transaction); returns how many ended. Tokens are left alone.
pub(crate) fn end_other_sessions(
    tx: &WriteTx<'_>,
    user: Uuid,
    keep: Option<&[u8; 32]>,
) -> Result<usize> {
    let (lo, hi) = (
        cat(user.as_bytes(), &[0u8; 32]),
        cat(user.as_bytes(), &[0xffu8; 33]),
    );
    let mut ended = 0;
    for key in tx.keys_desc(USER_SESSIONS_IDX, &lo, &hi, usize::MAX)? {
        if keep.is_some_and(|k| key[16..] == k[..]) {
            continue;
        }
        tx.remove(SESSIONS, &key[16..])?;
        tx.remove(USER_SESSIONS_IDX, &key)?;
        ended += 1;
    }
    Ok(ended)
}

// ---------------------------------------------------------------------------
// Sessions.

/// Starts a session for `user`; returns the secret cookie value. The sign-in is
/// audited in the same commit.
pub fn start_session(
    store: &Store,
    user: &User,
    source: Option<String>,
) -> Result<(String, Session)> {
    start_session_from(store, user, source, "")
}

/// `start_session` that also records the device summary shown on the sessions page.
pub fn start_session_from(
    store: &Store,
    user: &User,
    source: Option<String>,
    device: &str,
) -> Result<(String, Session)> {
    let token = crypto::random_token()?;
    let hash = crypto::sha256(token.as_bytes());
    let now = now_ms();
    let session = Session {
        user_id: user.id,
        created_ms: now,
        last_seen_ms: now,
        csrf: crypto::random_token()?,
        source: source.clone(),
        public_id: uuid::Builder::from_random_bytes(crypto::random_bytes()?).into_uuid(),
        device: device.to_string(),
    };
    let tx = store.write()?;
    tx.put(SESSIONS, &hash, &session)?;
    tx.index_put(USER_SESSIONS_IDX, &cat(user.id.as_bytes(), &hash))?;
    audit::append(
        &tx,
        Event::by(&user.caller(source), "signin", None, Outcome::Ok),
    )?;
    tx.commit()?;
    Ok((token, session))
}

/// A live session, its user and the user's standing (active, or pending: the web
/// layer lets a pending user reach only the waiting page), or None (unknown or
/// expired session, or a closed account; such sessions are removed).
pub fn session(
    store: &Store,
    token: &str,
    idle_ms: i64,
    absolute_ms: i64,
) -> Result<Option<(Session, User, Standing)>> {
    let hash = crypto::sha256(token.as_bytes());
    let now = now_ms();
    let (session, user) = {
        let tx = store.read()?;
        let Some(session) = tx.get::<Session>(SESSIONS, &hash)? else {
            return Ok(None);
        };
        let user = user_standing(&tx, session.user_id)?;
        (session, user)
    };
    let expired = now - session.last_seen_ms > idle_ms || now - session.created_ms > absolute_ms;
    let (user, standing) = match user {
        Some((u, s)) if !expired && s != Standing::Closed => (u, s),
        _ => {
            end_session_hash(store, &hash, session.user_id)?;
            return Ok(None);
        }
    };
    // Refresh the idle clock at most once a minute to keep reads cheap.
    if now - session.last_seen_ms > 60_000 {
        let tx = store.write()?;
        if let Some(mut s) = tx.get::<Session>(SESSIONS, &hash)? {
            s.last_seen_ms = now;
            tx.put(SESSIONS, &hash, &s)?;
        }
        tx.commit()?;
    }
    Ok(Some((session, user, standing)))
}

fn end_session_hash(store: &Store, hash: &[u8; 32], user: Uuid) -> Result<()> {
    let tx = store.write()?;
    tx.remove(SESSIONS, hash)?;
    tx.remove(USER_SESSIONS_IDX, &cat(user.as_bytes(), hash))?;
    tx.commit()
}

/// Signs out: the session is deleted and the sign-out audited in one commit.
pub fn end_session(store: &Store, token: &str, caller: &Caller) -> Result<()> {
    let hash = crypto::sha256(token.as_bytes());
    let tx = store.write()?;
    tx.remove(SESSIONS, &hash)?;
    tx.remove(USER_SESSIONS_IDX, &cat(caller.user_id().as_bytes(), &hash))?;
    audit::append(&tx, Event::by(caller, "signout", None, Outcome::Ok))?;
    tx.commit()
}

// ---------------------------------------------------------------------------
// API tokens.

/// Creates an API token for `user_id`; returns the secret, shown once.
pub fn create_token(store: &Store, user_id: Uuid, name: &str, actor: Event) -> Result<String> {
    create_token_until(store, user_id, name, None, actor)
}

/// Creates an API token that expires at `expires_ms` (if given).
pub fn create_token_until(
    store: &Store,
    user_id: Uuid,
    name: &str,
    expires_ms: Option<i64>,
    actor: Event,
) -> Result<String> {
    let secret = format!("{TOKEN_PREFIX}{}", crypto::random_token()?);
    let hash = crypto::sha256(secret.as_bytes());
    let tx = store.write()?;
    let user: User = tx
        .get(USERS, user_id.as_bytes())?
        .ok_or(StoreError::NotFound)?;
    let org: Option<Org> = tx.get(ORGS, user.org_id.as_bytes())?;
    if standing(&user, org.as_ref()) != Standing::Active {
        return Err(StoreError::Conflict("the user is not active"));
    }
    let token = ApiToken {
        id: Uuid::now_v7(),
        user_id,
        name: name.to_string(),
        created_ms: now_ms(),
        last_used_ms: None,
        expires_ms,
    };
    tx.put(TOKENS, &hash, &token)?;
    tx.index_put(USER_TOKENS_IDX, &cat(user_id.as_bytes(), &hash))?;
    audit::append(&tx, actor.object(user_id))?;
    tx.commit()?;
    Ok(secret)
}

/// The active user behind a bearer token, if any.
pub fn token_user(store: &Store, secret: &str) -> Result<Option<User>> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = crypto::sha256(secret.as_bytes());
    let (token, user) = {
        let tx = store.read()?;
        let Some(token) = tx.get::<ApiToken>(TOKENS, &hash)? else {
            return Ok(None);
        };
        if token.expires_ms.is_some_and(|t| now_ms() >= t) {
            return Ok(None);
        }
        let user = active_user(&tx, token.user_id)?;
        (token, user)
    };
    // Record use at most once a minute, so reads stay cheap.
    let now = now_ms();
    if user.is_some() && token.last_used_ms.is_none_or(|t| now - t > 60_000) {
        let tx = store.write()?;
        if let Some(mut t) = tx.get::<ApiToken>(TOKENS, &hash)? {
            t.last_used_ms = Some(now);
            tx.put(TOKENS, &hash, &t)?;
        }
        tx.commit()?;
    }
    Ok(user)
}

/// The caller's own API tokens (metadata only; secrets are never stored).
pub fn own_tokens(store: &Store, caller: &Caller) -> Result<Vec<ApiToken>> {
    let tx = store.read()?;
    let user = caller.user_id();
    let (lo, hi) = (
        cat(user.as_bytes(), &[0u8; 32]),
        cat(user.as_bytes(), &[0xffu8; 33]),
    );
    let mut out = Vec::new();
    for key in tx.keys_desc(USER_TOKENS_IDX, &lo, &hi, usize::MAX)? {
        if let Some(t) = tx.get::<ApiToken>(TOKENS, &key[16..])? {
            out.push(t);
        }
    }
    Ok(out)
}

/// Revokes one of the caller's own tokens, by id; audited in the same commit.
/// Anything else (another user's token, an unknown id) is `NotFound`, exactly like a
/// token that does not exist, and the refusal is audited.
pub fn revoke_own_token(store: &Store, caller: &Caller, id: Uuid) -> Result<()> {
    let user = caller.user_id();
    let tx = store.write()?;
    let (lo, hi) = (
        cat(user.as_bytes(), &[0u8; 32]),
        cat(user.as_bytes(), &[0xffu8; 33]),
    );
    for key in tx.keys_desc(USER_TOKENS_IDX, &lo, &hi, usize::MAX)? {
        if tx
            .get::<ApiToken>(TOKENS, &key[16..])?
            .is_some_and(|t| t.id == id)
        {
            tx.remove(TOKENS, &key[16..])?;
            tx.remove(USER_TOKENS_IDX, &key)?;
            audit::append(
                &tx,
                Event::by(caller, "token.revoke", Some(id.to_string()), Outcome::Ok),
            )?;
            return tx.commit();
        }
    }
    audit::append(
        &tx,
        Event::by(
            caller,
            "token.revoke",
            Some(id.to_string()),
            Outcome::Refused,
        ),
    )?;
    tx.commit()?;
    Err(StoreError::NotFound)
}
