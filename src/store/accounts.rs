//! Organizations, users, sessions and API tokens.
//!
//! Guarantees: emails are unique ignoring case, found through a keyed blind index
//! (the index never holds an email); session ids and API tokens are stored only as
//! SHA-256 hashes; account changes are only reachable through `AdminScope`, which can
//! only be built for an admin caller; every change commits with its audit entry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, Event, Outcome};
use super::{
    ORGS, ReadTx, Result, SESSIONS, Store, StoreError, TOKENS, USER_EMAIL_IDX, USER_SESSIONS_IDX,
    USER_TOKENS_IDX, USERS, WriteTx, now_ms,
};
use crate::crypto::{self, Keys};
use crate::domain::account::{NewOrg, NewUser};
use crate::domain::{Caller, OrgKind, Role};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub kind: OrgKind,
    pub npi: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub disabled: bool,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub phone: String,
    pub role: Role,
    pub org_id: Uuid,
    pub password_hash: String,
    pub disabled: bool,
    pub created_ms: i64,
}

impl User {
    pub fn caller(&self, source: Option<String>) -> Caller {
        Caller::verified(self.id, self.role, self.org_id, source)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: Uuid,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub csrf: String,
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub user_id: Uuid,
    pub name: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

pub const TOKEN_PREFIX: &str = "ihms_";

fn email_prefix(keys: &Keys, email: &str) -> [u8; 32] {
    keys.blind_index("email", &email.to_lowercase())
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (cat(prefix, &[0u8; 16]), cat(prefix, &[0xffu8; 17]))
}

/// Looks a user up by email inside any transaction.
fn user_id_by_email_in(
    keys_desc: impl Fn(&[u8], &[u8]) -> Result<Vec<Vec<u8>>>,
    keys: &Keys,
    email: &str,
) -> Result<Option<Uuid>> {
    let prefix = email_prefix(keys, email);
    let (lo, hi) = prefix_range(&prefix);
    let found = keys_desc(&lo, &hi)?;
    Ok(found.first().and_then(|k| Uuid::from_slice(&k[32..]).ok()))
}

// ---------------------------------------------------------------------------
// Reads any signed-in code may do about accounts (no listing).

pub fn user(tx: &ReadTx<'_>, id: Uuid) -> Result<Option<User>> {
    tx.get(USERS, id.as_bytes())
}

pub fn org(tx: &ReadTx<'_>, id: Uuid) -> Result<Option<Org>> {
    tx.get(ORGS, id.as_bytes())
}

pub fn user_by_email(store: &Store, email: &str) -> Result<Option<User>> {
    let tx = store.read()?;
    let id = user_id_by_email_in(
        |lo, hi| tx.keys_desc(USER_EMAIL_IDX, lo, hi, 1),
        store.keys(),
        email,
    )?;
    match id {
        Some(id) => user(&tx, id),
        None => Ok(None),
    }
}

/// Every organization, sorted by name (organizations are not PHI; names are shown
/// to agency users and in pickers).
pub fn all_orgs(tx: &ReadTx<'_>) -> Result<Vec<Org>> {
    let mut orgs: Vec<Org> = tx
        .entries(ORGS, &[0u8; 16], &[0xffu8; 17], false, usize::MAX)?
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    orgs.sort_by_key(|o| o.name.to_lowercase());
    Ok(orgs)
}

pub fn agency_org(tx: &ReadTx<'_>) -> Result<Option<Org>> {
    Ok(all_orgs(tx)?
        .into_iter()
        .find(|o| o.kind == OrgKind::Agency))
}

pub fn has_admin(store: &Store) -> Result<bool> {
    let tx = store.read()?;
    Ok(tx
        .entries::<User>(USERS, &[0u8; 16], &[0xffu8; 17], false, usize::MAX)?
        .iter()
        .any(|(_, u)| u.role == Role::Admin && !u.disabled))
}

// ---------------------------------------------------------------------------
// Writes used by first set-up and by admins.

pub(crate) fn insert_org(tx: &WriteTx<'_>, org: &NewOrg) -> Result<Org> {
    let org = Org {
        id: Uuid::now_v7(),
        name: org.name.clone(),
        kind: org.kind,
        npi: org.npi.clone(),
        city: org.city.clone(),
        state: org.state.clone(),
        zip: org.zip.clone(),
        disabled: false,
        created_ms: now_ms(),
    };
    tx.put(ORGS, org.id.as_bytes(), &org)?;
    Ok(org)
}

pub(crate) fn insert_user(tx: &WriteTx<'_>, new: &NewUser, password_hash: String) -> Result<User> {
    let org: Org = tx
        .get(ORGS, new.org_id.as_bytes())?
        .ok_or(StoreError::Conflict("organization_id"))?;
    if org.disabled || !new.role.fits(org.kind) {
        return Err(StoreError::Conflict("organization_id"));
    }
    if user_id_by_email_in(
        |lo, hi| tx.keys_desc(USER_EMAIL_IDX, lo, hi, 1),
        tx.keys(),
        &new.email,
    )?
    .is_some()
    {
        return Err(StoreError::Conflict("email"));
    }
    let user = User {
        id: Uuid::now_v7(),
        email: new.email.clone(),
        name: new.name.clone(),
        phone: new.phone.clone(),
        role: new.role,
        org_id: new.org_id,
        password_hash,
        disabled: false,
        created_ms: now_ms(),
    };
    tx.put(USERS, user.id.as_bytes(), &user)?;
    tx.index_put(
        USER_EMAIL_IDX,
        &cat(&email_prefix(tx.keys(), &user.email), user.id.as_bytes()),
    )?;
    Ok(user)
}

/// First set-up: the agency organization and its first admin, in one transaction.
pub fn system_bootstrap(
    store: &Store,
    agency_name: &str,
    admin: &NewUser,
    password_hash: String,
    source: Option<String>,
) -> Result<User> {
    let tx = store.write()?;
    let existing = tx.last::<User>(USERS)?;
    if existing.is_some() {
        return Err(StoreError::Conflict("already set up"));
    }
    let agency = insert_org(
        &tx,
        &NewOrg {
            name: agency_name.to_string(),
            kind: OrgKind::Agency,
            npi: String::new(),
            city: String::new(),
            state: String::new(),
            zip: String::new(),
        },
    )?;
    let new = NewUser {
        org_id: agency.id,
        role: Role::Admin,
        ..admin.clone()
    };
    let user = insert_user(&tx, &new, password_hash)?;
    let caller = user.caller(source);
    audit::append(
        &tx,
        Event::by(
            &caller,
            "org.create",
            Some(agency.id.to_string()),
            Outcome::Ok,
        ),
    )?;
    audit::append(
        &tx,
        Event::by(
            &caller,
            "setup.first_admin",
            Some(user.id.to_string()),
            Outcome::Ok,
        ),
    )?;
    tx.commit()?;
    Ok(user)
}

/// What only an agency admin may do with accounts. Built only for admin callers.
pub struct AdminScope<'s> {
    store: &'s Store,
    caller: &'s Caller,
}

impl<'s> AdminScope<'s> {
    pub fn new(store: &'s Store, caller: &'s Caller) -> Option<Self> {
        caller.is_admin().then_some(Self { store, caller })
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let tx = self.store.read()?;
        Ok(tx
            .entries(USERS, &[0u8; 16], &[0xffu8; 17], false, usize::MAX)?
            .into_iter()
            .map(|(_, u)| u)
            .collect())
    }

    pub fn create_org(&self, new: &NewOrg) -> Result<Org> {
        let tx = self.store.write()?;
        let org = insert_org(&tx, new)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "org.create",
                Some(org.id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()?;
        Ok(org)
    }

    pub fn create_user(&self, new: &NewUser, password_hash: String) -> Result<User> {
        let tx = self.store.write()?;
        let user = insert_user(&tx, new, password_hash)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "user.create",
                Some(user.id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()?;
        Ok(user)
    }

    /// Disables an organization; the agency itself cannot be disabled.
    pub fn disable_org(&self, id: Uuid) -> Result<()> {
        let tx = self.store.write()?;
        let mut org: Org = tx.get(ORGS, id.as_bytes())?.ok_or(StoreError::NotFound)?;
        if org.kind == OrgKind::Agency {
            return Err(StoreError::Conflict("the agency cannot be disabled"));
        }
        org.disabled = true;
        tx.put(ORGS, id.as_bytes(), &org)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "org.disable",
                Some(id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()
    }

    /// Disables a user and ends all their sessions and tokens in the same commit.
    pub fn disable_user(&self, id: Uuid) -> Result<()> {
        if id == self.caller.user_id() {
            return Err(StoreError::Conflict("you cannot disable your own account"));
        }
        let tx = self.store.write()?;
        let mut user: User = tx.get(USERS, id.as_bytes())?.ok_or(StoreError::NotFound)?;
        user.disabled = true;
        tx.put(USERS, id.as_bytes(), &user)?;
        revoke_all(&tx, id)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "user.disable",
                Some(id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()
    }
}

fn revoke_all(tx: &WriteTx<'_>, user: Uuid) -> Result<()> {
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

// ---------------------------------------------------------------------------
// Sessions.

/// Starts a session for `user`; returns the secret cookie value. The sign-in is
/// audited in the same commit.
pub fn start_session(
    store: &Store,
    user: &User,
    source: Option<String>,
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

/// A live session and its active user, or None (unknown, expired, or disabled user;
/// expired sessions are removed).
pub fn session(
    store: &Store,
    token: &str,
    idle_ms: i64,
    absolute_ms: i64,
) -> Result<Option<(Session, User)>> {
    let hash = crypto::sha256(token.as_bytes());
    let now = now_ms();
    let (session, user) = {
        let tx = store.read()?;
        let Some(session) = tx.get::<Session>(SESSIONS, &hash)? else {
            return Ok(None);
        };
        let user = user(&tx, session.user_id)?;
        (session, user)
    };
    let expired = now - session.last_seen_ms > idle_ms || now - session.created_ms > absolute_ms;
    let user = match user {
        Some(u) if !u.disabled && !expired => u,
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
    Ok(Some((session, user)))
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
    let secret = format!("{TOKEN_PREFIX}{}", crypto::random_token()?);
    let hash = crypto::sha256(secret.as_bytes());
    let tx = store.write()?;
    let user: User = tx
        .get(USERS, user_id.as_bytes())?
        .ok_or(StoreError::NotFound)?;
    if user.disabled {
        return Err(StoreError::Conflict("the user is disabled"));
    }
    let token = ApiToken {
        user_id,
        name: name.to_string(),
        created_ms: now_ms(),
        last_used_ms: None,
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
        let user = user(&tx, token.user_id)?.filter(|u| !u.disabled);
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
