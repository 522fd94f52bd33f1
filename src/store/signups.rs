//! Sign-up requests and the agency's approval queue.
//!
//! Guarantees: a sign-up for an email that already has an account creates nothing
//! and is audited as a neutral `signup.duplicate` (no email, no id), in a commit that
//! costs the same as a real one; a new account starts `Pending` with no organization,
//! so no session or token of it can reach data until staff approve it; only agency
//! staff (admin or staff) can build `SignupScope`, anyone else is refused (audited);
//! approval links the account to an active organization that fits its role (or
//! creates one from the requested name) and rejection records a reason, each in one
//! commit with its audit entry and ending the account's sessions.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::{self, Org, User, cat, email_prefix, insert_org, user_id_by_email_in};
use super::audit::{self, Event, Outcome};
use super::{
    ACCOUNT_QUEUE, ORGS, ReadTx, Result, Store, StoreError, USER_EMAIL_IDX, USERS, WriteTx, now_ms,
};
use crate::domain::account::NewOrg;
use crate::domain::signup::{AccountState, Signup, role_for};
use crate::domain::{Caller, OrgKind};

/// Which queue an account waits in (the first byte of a queue key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Signup = 1,
    Deletion = 2,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Queued {
    pub at_ms: i64,
}

pub(super) fn queue_key(queue: Queue, user: Uuid) -> Vec<u8> {
    cat(&[queue as u8], user.as_bytes())
}

pub(super) fn enqueue(tx: &WriteTx<'_>, queue: Queue, user: Uuid) -> Result<()> {
    tx.put(
        ACCOUNT_QUEUE,
        &queue_key(queue, user),
        &Queued { at_ms: now_ms() },
    )
}

pub(super) fn dequeue(tx: &WriteTx<'_>, queue: Queue, user: Uuid) -> Result<bool> {
    tx.remove(ACCOUNT_QUEUE, &queue_key(queue, user))
}

/// The ids waiting in `queue`, oldest request first, with when they asked.
pub(super) fn queued(tx: &ReadTx<'_>, queue: Queue) -> Result<Vec<(Uuid, i64)>> {
    let (lo, hi) = (
        cat(&[queue as u8], &[0u8; 16]),
        cat(&[queue as u8], &[0xffu8; 17]),
    );
    let mut out: Vec<(Uuid, i64)> = tx
        .entries::<Queued>(ACCOUNT_QUEUE, &lo, &hi, false, usize::MAX)?
        .into_iter()
        .filter_map(|(k, q)| Uuid::from_slice(&k[1..]).ok().map(|id| (id, q.at_ms)))
        .collect();
    out.sort_by_key(|(_, at)| *at);
    Ok(out)
}

/// How many accounts wait for approval and for deletion (counts only: no names).
pub fn queue_counts(store: &Store) -> Result<(usize, usize)> {
    let tx = store.read()?;
    let count = |q: Queue| {
        tx.keys_asc(
            ACCOUNT_QUEUE,
            &[q as u8],
            &cat(&[q as u8], &[0xffu8; 17]),
            usize::MAX,
        )
        .map(|k| k.len())
    };
    Ok((count(Queue::Signup)?, count(Queue::Deletion)?))
}

/// Files a sign-up. The caller has already spent the password-hash work, so a taken
/// email and a fresh one cost the same; the answer is the same either way.
pub fn request(
    store: &Store,
    signup: &Signup,
    password_hash: String,
    source: Option<String>,
) -> Result<()> {
    let tx = store.write()?;
    let taken = user_id_by_email_in(
        |lo, hi| tx.keys_desc(USER_EMAIL_IDX, lo, hi, 1),
        tx.keys(),
        &signup.email,
    )?
    .is_some();
    if taken {
        audit::append(
            &tx,
            Event::anonymous("signup.duplicate", source, Outcome::Refused),
        )?;
        return tx.commit();
    }
    let now = now_ms();
    let user = User {
        id: Uuid::now_v7(),
        email: signup.email.clone(),
        name: signup.name.clone(),
        phone: signup.phone.clone(),
        role: role_for(signup.kind),
        // No organization until staff link one: `standing` can never say Active.
        org_id: Uuid::nil(),
        password_hash,
        disabled: false,
        created_ms: now,
        state: AccountState::Pending {
            kind: signup.kind,
            organization: signup.organization.clone(),
            requested_ms: now,
        },
    };
    tx.put(USERS, user.id.as_bytes(), &user)?;
    tx.index_put(
        USER_EMAIL_IDX,
        &cat(&email_prefix(tx.keys(), &user.email), user.id.as_bytes()),
    )?;
    enqueue(&tx, Queue::Signup, user.id)?;
    audit::append(
        &tx,
        Event::anonymous("signup.request", source, Outcome::Ok)
            .actor(user.id)
            .object(user.id),
    )?;
    tx.commit()
}

/// Which organization an approved account joins.
#[derive(Debug, Clone, Copy)]
pub enum Link {
    Existing(Uuid),
    /// A new organization of the requested kind, named as the person asked.
    New,
}

/// What agency staff (admin or staff) may do with sign-ups.
pub struct SignupScope<'s> {
    store: &'s Store,
    caller: &'s Caller,
}

impl<'s> SignupScope<'s> {
    /// Staff's powers, or `NotFound` for anyone else, with the refusal audited.
    pub fn require(store: &'s Store, caller: &'s Caller) -> Result<Self> {
        if caller.is_agency() {
            return Ok(Self { store, caller });
        }
        audit::record(
            store,
            Event::by(caller, "signup.access", None, Outcome::Refused),
        )?;
        Err(StoreError::NotFound)
    }

    /// Accounts waiting for approval, oldest first.
    pub fn pending(&self) -> Result<Vec<User>> {
        let tx = self.store.read()?;
        let mut out = Vec::new();
        for (id, _) in queued(&tx, Queue::Signup)? {
            if let Some(u) = accounts::user(&tx, id)?.filter(|u| u.state.is_pending()) {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Active organizations a pending account of `kind` may join.
    pub fn fitting_orgs(&self, kind: OrgKind) -> Result<Vec<Org>> {
        let role = role_for(kind);
        Ok(accounts::all_orgs(&self.store.read()?)?
            .into_iter()
            .filter(|o| !o.disabled && role.fits(o.kind))
            .collect())
    }

    fn pending_user(tx: &WriteTx<'_>, id: Uuid) -> Result<(User, OrgKind, String)> {
        let user: User = tx.get(USERS, id.as_bytes())?.ok_or(StoreError::NotFound)?;
        match &user.state {
            AccountState::Pending {
                kind, organization, ..
            } if !user.disabled => {
                let (kind, organization) = (*kind, organization.clone());
                Ok((user, kind, organization))
            }
            _ => Err(StoreError::NotFound),
        }
    }

    /// Approves a pending account into an organization; returns the organization.
    pub fn approve(&self, id: Uuid, link: Link) -> Result<Org> {
        let tx = self.store.write()?;
        let (mut user, kind, organization) = Self::pending_user(&tx, id)?;
        let org = match link {
            Link::Existing(org_id) => {
                let org: Org = tx
                    .get(ORGS, org_id.as_bytes())?
                    .ok_or(StoreError::Conflict("organization_id"))?;
                if org.disabled || !user.role.fits(org.kind) {
                    return Err(StoreError::Conflict("organization_id"));
                }
                org
            }
            Link::New => {
                let org = insert_org(
                    &tx,
                    &NewOrg {
                        name: organization,
                        kind,
                        npi: String::new(),
                        city: String::new(),
                        state: String::new(),
                        zip: String::new(),
                        profile: Default::default(),
                    },
                )?;
                audit::append(
                    &tx,
                    Event::by(
                        self.caller,
                        "org.create",
                        Some(org.id.to_string()),
                        Outcome::Ok,
                    ),
                )?;
                org
            }
        };
        user.org_id = org.id;
        user.state = AccountState::Active;
        tx.put(USERS, id.as_bytes(), &user)?;
        dequeue(&tx, Queue::Signup, id)?;
        // A session started while pending does not carry over into the approved role.
        super::sessions::revoke_all(&tx, id)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "signup.approve",
                Some(id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()?;
        Ok(org)
    }

    /// Rejects a pending account; it can reach nothing from now on.
    pub fn reject(&self, id: Uuid, reason: &str) -> Result<()> {
        let tx = self.store.write()?;
        let (mut user, _, _) = Self::pending_user(&tx, id)?;
        user.state = AccountState::Rejected {
            reason: reason.to_string(),
            at_ms: now_ms(),
        };
        tx.put(USERS, id.as_bytes(), &user)?;
        dequeue(&tx, Queue::Signup, id)?;
        super::sessions::revoke_all(&tx, id)?;
        // The reason stays in the sealed record; the audit entry holds ids only.
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "signup.reject",
                Some(id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use crate::store::accounts::{Standing, standing};

    fn user(state: AccountState, disabled: bool) -> User {
        User {
            id: Uuid::now_v7(),
            email: String::new(),
            name: String::new(),
            phone: String::new(),
            role: Role::FacilityUser,
            org_id: Uuid::nil(),
            password_hash: String::new(),
            disabled,
            created_ms: 0,
            state,
        }
    }

    fn org(disabled: bool) -> Org {
        Org {
            id: Uuid::nil(),
            name: String::new(),
            kind: OrgKind::ReferringFacility,
            npi: String::new(),
            city: String::new(),
            state: String::new(),
            zip: String::new(),
            disabled,
            created_ms: 0,
            profile: Default::default(),
        }
    }

    #[test]
    fn only_an_approved_enabled_account_in_an_active_organization_may_act() {
        let pending = AccountState::Pending {
            kind: OrgKind::Dme,
            organization: "Bay DME".into(),
            requested_ms: 0,
        };
        let rejected = AccountState::Rejected {
            reason: "no".into(),
            at_ms: 0,
        };
        let deleted = AccountState::Deleted { at_ms: 0 };
        let (live, closed) = (org(false), org(true));
        let cases = [
            (
                user(AccountState::Active, false),
                Some(&live),
                Standing::Active,
            ),
            (
                user(AccountState::Active, false),
                Some(&closed),
                Standing::Closed,
            ),
            (user(AccountState::Active, false), None, Standing::Closed),
            (
                user(AccountState::Active, true),
                Some(&live),
                Standing::Closed,
            ),
            (user(pending.clone(), false), None, Standing::Pending),
            (user(pending, true), None, Standing::Closed),
            (user(rejected, false), Some(&live), Standing::Closed),
            (user(deleted, false), Some(&live), Standing::Closed),
        ];
        for (u, o, expected) in cases {
            assert_eq!(standing(&u, o), expected, "{:?}", u.state);
        }
    }
}
