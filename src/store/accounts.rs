//! Organizations and users.
//!
//! Guarantees: emails are unique ignoring case, found through a keyed blind index
//! (the index never holds an email); account changes are only reachable through
//! `AdminScope`, which can only be built for an admin caller; every change commits
//! with its audit entry. Disabling a user ends their sessions, tokens and any sign-in
//! waiting for its second-factor code in the same commit. Whether an account may act is decided by `standing` alone (approved, not
//! disabled, organization active); sessions, tokens and sign-in all ask it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, Event, Outcome};
use super::{ORGS, ReadTx, Result, Store, StoreError, USER_EMAIL_IDX, USERS, WriteTx, now_ms};
use crate::crypto::Keys;
use crate::domain::account::{NewOrg, NewUser};
use crate::domain::placement::ProviderProfile;
use crate::domain::signup::AccountState;
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
    /// The directory entry of a provider (empty for others).
    #[serde(default)]
    pub profile: ProviderProfile,
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
    /// Pending sign-up, active, rejected or deleted (older records: active).
    #[serde(default)]
    pub state: AccountState,
}

impl User {
    pub fn caller(&self, source: Option<String>) -> Caller {
        Caller::verified(self.id, self.role, self.org_id, source)
    }
}

/// What an account may do now. Decided by `standing` alone, which every session,
/// token and sign-in check goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// May act as its role in its organization.
    Active,
    /// Signed up and not yet approved: may only see the waiting page.
    Pending,
    /// Disabled, rejected, deleted, or in a disabled organization: nothing.
    Closed,
}

/// The one rule: an account acts only when approved, not disabled, and its
/// organization exists and is not disabled.
pub fn standing(user: &User, org: Option<&Org>) -> Standing {
    if user.disabled {
        return Standing::Closed;
    }
    match user.state {
        AccountState::Active if org.is_some_and(|o| !o.disabled) => Standing::Active,
        AccountState::Pending { .. } => Standing::Pending,
        _ => Standing::Closed,
    }
}

pub(super) fn email_prefix(keys: &Keys, email: &str) -> [u8; 32] {
    keys.blind_index("email", &email.to_lowercase())
}

pub(super) fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (cat(prefix, &[0u8; 16]), cat(prefix, &[0xffu8; 17]))
}

/// Looks a user up by email inside any transaction.
pub(super) fn user_id_by_email_in(
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

/// A user and their standing (see `standing`), or None for an unknown id.
pub fn user_standing(tx: &ReadTx<'_>, id: Uuid) -> Result<Option<(User, Standing)>> {
    let Some(user) = user(tx, id)? else {
        return Ok(None);
    };
    let standing = standing(&user, org(tx, user.org_id)?.as_ref());
    Ok(Some((user, standing)))
}

/// A user who may act now (`Standing::Active`).
pub fn active_user(tx: &ReadTx<'_>, id: Uuid) -> Result<Option<User>> {
    Ok(user_standing(tx, id)?.and_then(|(u, s)| (s == Standing::Active).then_some(u)))
}

/// `active_user` in a transaction of its own.
pub fn is_active(store: &Store, id: Uuid) -> Result<bool> {
    Ok(active_user(&store.read()?, id)?.is_some())
}

/// Whether a sign-in with the right password may start a session: active users,
/// and pending ones (whose session reaches only the waiting page).
pub fn may_sign_in(store: &Store, id: Uuid) -> Result<bool> {
    Ok(user_standing(&store.read()?, id)?.is_some_and(|(_, s)| s != Standing::Closed))
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
        profile: org.profile.clone(),
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
        state: AccountState::Active,
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
            profile: Default::default(),
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
    pub(super) store: &'s Store,
    pub(super) caller: &'s Caller,
}

impl<'s> AdminScope<'s> {
    pub fn new(store: &'s Store, caller: &'s Caller) -> Option<Self> {
        caller.is_admin().then_some(Self { store, caller })
    }

    /// The admin's powers, or `NotFound` for anyone else, with the refusal audited.
    pub fn require(store: &'s Store, caller: &'s Caller) -> Result<Self> {
        match Self::new(store, caller) {
            Some(scope) => Ok(scope),
            None => {
                audit::record(
                    store,
                    Event::by(caller, "admin.access", None, Outcome::Refused),
                )?;
                Err(StoreError::NotFound)
            }
        }
    }

    pub(crate) fn store(&self) -> &'s Store {
        self.store
    }

    pub(crate) fn caller(&self) -> &'s Caller {
        self.caller
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

    /// Replaces a provider's directory entry.
    pub fn set_profile(&self, id: Uuid, profile: ProviderProfile) -> Result<Org> {
        let tx = self.store.write()?;
        let mut org: Org = tx.get(ORGS, id.as_bytes())?.ok_or(StoreError::NotFound)?;
        if !org.kind.is_provider() {
            return Err(StoreError::Conflict(
                "only providers have a directory entry",
            ));
        }
        org.profile = profile;
        tx.put(ORGS, id.as_bytes(), &org)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "org.profile",
                Some(id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()?;
        Ok(org)
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

    /// Disables a user and ends all their sessions and tokens in the same commit. An
    /// unknown id is `NotFound`, audited as a refusal.
    pub fn disable_user(&self, id: Uuid) -> Result<()> {
        if id == self.caller.user_id() {
            return Err(StoreError::Conflict("you cannot disable your own account"));
        }
        let tx = self.store.write()?;
        let Some(mut user) = tx.get::<User>(USERS, id.as_bytes())? else {
            // An id that names no user: the same NotFound, with the refusal audited.
            audit::append(
                &tx,
                Event::by(
                    self.caller,
                    "user.disable",
                    Some(id.to_string()),
                    Outcome::Refused,
                ),
            )?;
            tx.commit()?;
            return Err(StoreError::NotFound);
        };
        user.disabled = true;
        tx.put(USERS, id.as_bytes(), &user)?;
        super::sessions::revoke_all(&tx, id)?;
        super::second_factor::end_pending_signins(&tx, id)?;
        // A disabled sign-up no longer waits for approval.
        super::signups::dequeue(&tx, super::signups::Queue::Signup, id)?;
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
