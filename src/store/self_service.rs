//! A user's own account: corrections, a copy of their data, and deletion requests,
//! as the privacy notice promises; and the admins' processing of those requests.
//!
//! Guarantees: every function here acts on the caller's own record only (the user
//! id comes from the verified `Caller`, never from the request); the copy holds the
//! caller's profile, organization, sessions (no secrets), token metadata and the
//! audit entries where the caller is the actor, nothing of anyone else; only admins
//! can build `Deletions`; processing a request disables the account, ends its
//! sessions and tokens, erases its personal fields, its email index entry, its second
//! factor, reset links, waiting sign-ins and sign-in throttle record, keeps its id
//! (so the audit chain stays whole), all in one commit with its audit entry.

use uuid::Uuid;

use super::accounts::{self, AdminScope, Org, User, cat, email_prefix, user_id_by_email_in};
use super::audit::{self, Entry, Event, Filter, Outcome};
use super::sessions::{self, ApiToken, Session};
use super::signups::{Queue, dequeue, enqueue, queue_key, queued};
use super::{
    ACCOUNT_QUEUE, Result, SECOND_FACTORS, SESSIONS, Store, StoreError, USER_EMAIL_IDX,
    USER_SESSIONS_IDX, USERS, WriteTx, now_ms,
};
use crate::domain::Caller;
use crate::domain::signup::{AccountState, DELETED_NAME, ProfileChange};

fn own_record(tx: &WriteTx<'_>, caller: &Caller) -> Result<User> {
    tx.get(USERS, caller.user_id().as_bytes())?
        .ok_or(StoreError::NotFound)
}

/// Corrects the caller's name and phone.
pub fn update_profile(store: &Store, caller: &Caller, change: &ProfileChange) -> Result<User> {
    let tx = store.write()?;
    let mut user = own_record(&tx, caller)?;
    user.name = change.name.clone();
    user.phone = change.phone.clone();
    tx.put(USERS, user.id.as_bytes(), &user)?;
    audit::append(
        &tx,
        Event::by(
            caller,
            "account.update",
            Some(user.id.to_string()),
            Outcome::Ok,
        ),
    )?;
    tx.commit()?;
    Ok(user)
}

/// Moves the caller to a new email (already normalized; the caller's password was
/// checked by the web layer). `Conflict("email")` when another account has it.
pub fn change_email(store: &Store, caller: &Caller, email: &str) -> Result<()> {
    let tx = store.write()?;
    let mut user = own_record(&tx, caller)?;
    let holder = user_id_by_email_in(
        |lo, hi| tx.keys_desc(USER_EMAIL_IDX, lo, hi, 1),
        tx.keys(),
        email,
    )?;
    match holder {
        Some(id) if id == user.id => return Ok(()),
        Some(_) => return Err(StoreError::Conflict("email")),
        None => {}
    }
    tx.remove(
        USER_EMAIL_IDX,
        &cat(&email_prefix(tx.keys(), &user.email), user.id.as_bytes()),
    )?;
    tx.index_put(
        USER_EMAIL_IDX,
        &cat(&email_prefix(tx.keys(), email), user.id.as_bytes()),
    )?;
    user.email = email.to_string();
    tx.put(USERS, user.id.as_bytes(), &user)?;
    audit::append(
        &tx,
        Event::by(
            caller,
            "account.update",
            Some(user.id.to_string()),
            Outcome::Ok,
        ),
    )?;
    tx.commit()
}

/// Everything the portal holds about the caller's account. Not `Serialize`: the web
/// layer picks the fields it shows, leaving out hashes and CSRF secrets.
#[derive(Debug)]
pub struct AccountData {
    pub user: User,
    pub organization: Option<Org>,
    pub sessions: Vec<Session>,
    pub tokens: Vec<ApiToken>,
    pub deletion_requested_ms: Option<i64>,
    pub audit: Vec<Entry>,
}

/// The caller's own data; the export itself is audited.
pub fn export(store: &Store, caller: &Caller) -> Result<AccountData> {
    let me = caller.user_id();
    let data = {
        let tx = store.read()?;
        let user = accounts::user(&tx, me)?.ok_or(StoreError::NotFound)?;
        let organization = accounts::org(&tx, user.org_id)?;
        let (lo, hi) = (
            cat(me.as_bytes(), &[0u8; 32]),
            cat(me.as_bytes(), &[0xffu8; 33]),
        );
        let mut sessions = Vec::new();
        for key in tx.keys_asc(USER_SESSIONS_IDX, &lo, &hi, usize::MAX)? {
            if let Some(s) = tx.get::<Session>(SESSIONS, &key[16..])? {
                sessions.push(s);
            }
        }
        let deletion_requested_ms = tx
            .get::<super::signups::Queued>(ACCOUNT_QUEUE, &queue_key(Queue::Deletion, me))?
            .map(|q| q.at_ms);
        let filter = Filter {
            actor: Some(me),
            ..Filter::default()
        };
        let (mut audit, _) = audit::list(&tx, &filter, usize::MAX)?;
        audit.reverse();
        AccountData {
            user,
            organization,
            sessions,
            tokens: Vec::new(),
            deletion_requested_ms,
            audit,
        }
    };
    let data = AccountData {
        tokens: sessions::own_tokens(store, caller)?,
        ..data
    };
    audit::record(
        store,
        Event::by(caller, "account.export", Some(me.to_string()), Outcome::Ok),
    )?;
    Ok(data)
}

/// When the caller asked for their account to be deleted, if they did.
pub fn deletion_requested(store: &Store, caller: &Caller) -> Result<Option<i64>> {
    Ok(store
        .read()?
        .get::<super::signups::Queued>(
            ACCOUNT_QUEUE,
            &queue_key(Queue::Deletion, caller.user_id()),
        )?
        .map(|q| q.at_ms))
}

/// Files the caller's request to delete their account (once; asking again keeps the
/// first request).
pub fn request_deletion(store: &Store, caller: &Caller) -> Result<()> {
    let tx = store.write()?;
    let me = caller.user_id();
    if !tx.exists(ACCOUNT_QUEUE, &queue_key(Queue::Deletion, me))? {
        enqueue(&tx, Queue::Deletion, me)?;
    }
    audit::append(
        &tx,
        Event::by(
            caller,
            "account.delete_request",
            Some(me.to_string()),
            Outcome::Ok,
        ),
    )?;
    tx.commit()
}

/// What an admin may do with deletion requests.
pub struct Deletions<'s> {
    store: &'s Store,
    caller: &'s Caller,
}

impl<'s> Deletions<'s> {
    /// The admin's powers, or `NotFound` (audited) for anyone else.
    pub fn require(store: &'s Store, caller: &'s Caller) -> Result<Self> {
        AdminScope::require(store, caller)?;
        Ok(Self { store, caller })
    }

    /// Accounts whose deletion was asked, oldest request first, with when.
    pub fn requests(&self) -> Result<Vec<(User, i64)>> {
        let tx = self.store.read()?;
        let mut out = Vec::new();
        for (id, at) in queued(&tx, Queue::Deletion)? {
            if let Some(u) = accounts::user(&tx, id)? {
                out.push((u, at));
            }
        }
        Ok(out)
    }

    /// Processes a request: disables the account, ends its sessions and tokens and
    /// erases its personal fields. Only accounts that asked can be processed.
    pub fn process(&self, id: Uuid) -> Result<()> {
        if id == self.caller.user_id() {
            return Err(StoreError::Conflict(
                "another admin processes your own request",
            ));
        }
        let tx = self.store.write()?;
        if !dequeue(&tx, Queue::Deletion, id)? {
            return Err(StoreError::NotFound);
        }
        let mut user: User = tx.get(USERS, id.as_bytes())?.ok_or(StoreError::NotFound)?;
        tx.remove(
            USER_EMAIL_IDX,
            &cat(&email_prefix(tx.keys(), &user.email), id.as_bytes()),
        )?;
        dequeue(&tx, Queue::Signup, id)?;
        // Credentials and sign-in records go with the person: the TOTP secret and
        // recovery code hashes, reset links, waiting sign-ins, and the throttle's
        // record under the email's blind index (it names the user).
        tx.remove(SECOND_FACTORS, id.as_bytes())?;
        super::second_factor::end_pending_signins(&tx, id)?;
        super::credentials::drop_links_of(&tx, id)?;
        super::signin_guard::forget_account(&tx, &email_prefix(tx.keys(), &user.email))?;
        user.name = DELETED_NAME.to_string();
        user.email = String::new();
        user.phone = String::new();
        user.password_hash = String::new();
        user.disabled = true;
        user.state = AccountState::Deleted { at_ms: now_ms() };
        tx.put(USERS, id.as_bytes(), &user)?;
        sessions::revoke_all(&tx, id)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "account.delete",
                Some(id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()
    }
}
