//! Second factors (TOTP secrets, the last accepted step, recovery code hashes) and
//! half-finished sign-ins.
//!
//! Guarantees: secrets and recovery hashes are sealed like every stored value; a
//! code is checked and its step (or recovery code) used up in the same write
//! transaction, so concurrent requests cannot both spend it; enrolling, replacing or
//! turning off a factor ends the user's other sessions in the same commit; a
//! replacement is seen and confirmed only from the session that started it; a pending
//! sign-in is not a session: it is found only by the hash of its cookie, from the
//! address it started at, for `PENDING_MS`, for `PENDING_ATTEMPTS` wrong codes, and
//! until the user's password changes or the account is disabled or deleted.
//! Every step is audited, by ids only.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::{AdminScope, User};
use super::audit::{self, Event, Outcome};
use super::{
    PENDING_SIGNINS, ReadTx, Result, SECOND_FACTORS, Store, StoreError, USERS, WriteTx, sessions,
};
use crate::crypto;
use crate::domain::Caller;

/// How long the code step may follow the password step.
pub const PENDING_MS: i64 = 5 * 60_000;
/// Wrong codes allowed per pending sign-in before the password is needed again.
pub const PENDING_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecondFactor {
    /// The confirmed TOTP secret (None until a first code confirms enrolment).
    pub secret: Option<Vec<u8>>,
    /// A secret shown for enrolment or replacement, not yet confirmed.
    pub pending: Option<Vec<u8>>,
    /// For a replacement: the hash of the session that started it (after the
    /// password and a current code). Only that session sees and confirms the new
    /// secret, so another session of the user (a stolen cookie, say) cannot finish
    /// a replacement the owner left open.
    #[serde(default)]
    pub pending_session: Option<[u8; 32]>,
    /// The last TOTP step accepted: that step and earlier ones are refused.
    pub last_step: Option<u64>,
    /// SHA-256 of each unused recovery code.
    pub recovery: Vec<[u8; 32]>,
    pub enrolled_ms: Option<i64>,
    /// Set by an admin's reset: a new factor is owed at the next sign-in whatever
    /// the role, since the password may be one allowed only with a second factor.
    #[serde(default)]
    pub owed: bool,
}

impl SecondFactor {
    pub fn enrolled(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether the session with hash `session` may see and confirm the pending
    /// secret: any session for a first enrolment (confirming it needs the password),
    /// only the starting session for a replacement.
    pub fn pending_for(&self, session: &[u8; 32]) -> bool {
        self.pending.is_some()
            && (!self.enrolled() || self.pending_session.is_some_and(|s| &s == session))
    }
}

/// Checks a TOTP code against a secret and the last accepted step; gives the
/// step the code is for when it is accepted.
pub trait CodeCheck: Fn(&[u8], &str, Option<u64>) -> Option<u64> {}
impl<F: Fn(&[u8], &str, Option<u64>) -> Option<u64>> CodeCheck for F {}

/// What a code typed by a person turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeUse {
    Totp,
    /// A recovery code, now used up; how many are left.
    Recovery(usize),
    Wrong,
}

pub fn get(tx: &ReadTx<'_>, user: Uuid) -> Result<Option<SecondFactor>> {
    tx.get(SECOND_FACTORS, user.as_bytes())
}

/// Whether `user` has a confirmed second factor.
pub fn is_enrolled(store: &Store, user: Uuid) -> Result<bool> {
    Ok(get(&store.read()?, user)?.is_some_and(|f| f.enrolled()))
}

/// Whether `user` must set up a second factor before anything else opens: their
/// role needs one (`required`) or an admin reset theirs, and none is confirmed yet.
pub fn is_owed(store: &Store, user: Uuid, required: bool) -> Result<bool> {
    Ok(match get(&store.read()?, user)? {
        Some(f) => !f.enrolled() && (required || f.owed),
        None => required,
    })
}

/// Checks `typed` (a TOTP code or a recovery code) and uses it up inside `tx`.
fn spend(tx: &WriteTx<'_>, user: Uuid, typed: &str, check: &impl CodeCheck) -> Result<CodeUse> {
    let Some(mut factor) = tx.get::<SecondFactor>(SECOND_FACTORS, user.as_bytes())? else {
        return Ok(CodeUse::Wrong);
    };
    let Some(secret) = factor.secret.clone() else {
        return Ok(CodeUse::Wrong);
    };
    if let Some(step) = check(&secret, typed, factor.last_step) {
        factor.last_step = Some(step);
        tx.put(SECOND_FACTORS, user.as_bytes(), &factor)?;
        return Ok(CodeUse::Totp);
    }
    let hash = crate::auth::totp::recovery_hash(typed);
    let before = factor.recovery.len();
    factor.recovery.retain(|h| !crypto::ct_eq(h, &hash));
    if factor.recovery.len() == before {
        return Ok(CodeUse::Wrong);
    }
    tx.put(SECOND_FACTORS, user.as_bytes(), &factor)?;
    Ok(CodeUse::Recovery(factor.recovery.len()))
}

/// The secret to show for enrolment: the one already pending (for a replacement,
/// only to the session that started it), or a new one when the caller has no second
/// factor yet. An enrolled caller otherwise gets `Conflict` (replacing needs
/// `begin_replacement`, after the password and a current code).
pub fn enrolment_secret(
    store: &Store,
    caller: &Caller,
    session: &[u8; 32],
    fresh: Vec<u8>,
) -> Result<Vec<u8>> {
    let user = caller.user_id();
    let tx = store.write()?;
    let mut factor: SecondFactor = tx.get(SECOND_FACTORS, user.as_bytes())?.unwrap_or_default();
    if let (true, Some(pending)) = (factor.pending_for(session), &factor.pending) {
        return Ok(pending.clone());
    }
    if factor.enrolled() {
        return Err(StoreError::Conflict("already enrolled"));
    }
    factor.pending = Some(fresh.clone());
    tx.put(SECOND_FACTORS, user.as_bytes(), &factor)?;
    tx.commit()?;
    Ok(fresh)
}

/// Checks a current code of an enrolled caller (for replacing or turning off the
/// factor); a wrong one is audited as `mfa.code_failed`.
pub fn verify_current(
    store: &Store,
    caller: &Caller,
    typed: &str,
    check: &impl CodeCheck,
) -> Result<CodeUse> {
    let tx = store.write()?;
    let used = spend(&tx, caller.user_id(), typed, check)?;
    audit_use(&tx, caller, used, "mfa.code_failed")?;
    tx.commit()?;
    Ok(used)
}

fn audit_use(tx: &WriteTx<'_>, caller: &Caller, used: CodeUse, failed: &'static str) -> Result<()> {
    let object = Some(caller.user_id().to_string());
    match used {
        CodeUse::Totp => Ok(()),
        CodeUse::Recovery(_) => audit::append(
            tx,
            Event::by(caller, "mfa.recovery_used", object, Outcome::Ok),
        )
        .map(|_| ()),
        CodeUse::Wrong => {
            audit::append(tx, Event::by(caller, failed, object, Outcome::Failed)).map(|_| ())
        }
    }
}

/// Starts replacing an enrolled caller's factor from the session with hash
/// `session`: `fresh` becomes the pending secret, for that session only (the current
/// one keeps working until the new one is confirmed).
pub fn begin_replacement(
    store: &Store,
    caller: &Caller,
    session: &[u8; 32],
    fresh: Vec<u8>,
) -> Result<()> {
    let user = caller.user_id();
    let tx = store.write()?;
    let mut factor: SecondFactor = tx
        .get(SECOND_FACTORS, user.as_bytes())?
        .ok_or(StoreError::NotFound)?;
    factor.pending = Some(fresh);
    factor.pending_session = Some(*session);
    tx.put(SECOND_FACTORS, user.as_bytes(), &factor)?;
    audit::append(
        &tx,
        Event::by(
            caller,
            "mfa.replace_started",
            Some(user.to_string()),
            Outcome::Ok,
        ),
    )?;
    tx.commit()
}

/// Drops a replacement that was started but not confirmed; the current factor stays.
pub fn cancel_replacement(store: &Store, caller: &Caller) -> Result<()> {
    let user = caller.user_id();
    let tx = store.write()?;
    let Some(mut factor) = tx.get::<SecondFactor>(SECOND_FACTORS, user.as_bytes())? else {
        return Ok(());
    };
    if factor.enrolled() && factor.pending.take().is_some() {
        factor.pending_session = None;
        tx.put(SECOND_FACTORS, user.as_bytes(), &factor)?;
        tx.commit()?;
    }
    Ok(())
}

/// Confirms the pending secret with a first code from it: it becomes the factor,
/// `recovery` (hashes) replace any earlier codes, and the caller's other sessions end
/// (all but `keep`, the current session), in one commit. False (audited) when the
/// code is wrong; `NotFound` when nothing waits for this session (see
/// `SecondFactor::pending_for`).
pub fn confirm(
    store: &Store,
    caller: &Caller,
    typed: &str,
    check: &impl CodeCheck,
    recovery: Vec<[u8; 32]>,
    keep: &[u8; 32],
    now_ms: i64,
) -> Result<bool> {
    let user = caller.user_id();
    let tx = store.write()?;
    let mut factor: SecondFactor = tx
        .get(SECOND_FACTORS, user.as_bytes())?
        .ok_or(StoreError::NotFound)?;
    if !factor.pending_for(keep) {
        return Err(StoreError::NotFound);
    }
    let pending = factor.pending.clone().ok_or(StoreError::NotFound)?;
    let object = Some(user.to_string());
    let Some(step) = check(&pending, typed, None) else {
        audit::append(&tx, Event::by(caller, "mfa.enrol", object, Outcome::Failed))?;
        tx.commit()?;
        return Ok(false);
    };
    factor = SecondFactor {
        secret: Some(pending),
        pending: None,
        pending_session: None,
        last_step: Some(step),
        recovery,
        enrolled_ms: Some(now_ms),
        owed: false,
    };
    tx.put(SECOND_FACTORS, user.as_bytes(), &factor)?;
    sessions::end_other_sessions(&tx, user, Some(keep))?;
    audit::append(&tx, Event::by(caller, "mfa.enrol", object, Outcome::Ok))?;
    tx.commit()?;
    Ok(true)
}

/// Turns the caller's factor off and ends their other sessions, in one commit. The
/// web layer checks the password, a current code and that the role allows it.
pub fn disable(store: &Store, caller: &Caller, keep: &[u8; 32]) -> Result<()> {
    let user = caller.user_id();
    let tx = store.write()?;
    if !tx.remove(SECOND_FACTORS, user.as_bytes())? {
        return Err(StoreError::NotFound);
    }
    sessions::end_other_sessions(&tx, user, Some(keep))?;
    audit::append(
        &tx,
        Event::by(caller, "mfa.disable", Some(user.to_string()), Outcome::Ok),
    )?;
    tx.commit()
}

/// An admin removes another user's second factor (lost phone and recovery codes):
/// all their sessions end in the same commit, and the user sets up a new one at the
/// next sign-in (then may turn it off where the role and password allow).
pub fn admin_remove(admin: &AdminScope<'_>, user: Uuid) -> Result<()> {
    let caller = admin.caller();
    if user == caller.user_id() {
        return Err(StoreError::Conflict(
            "use your own second-factor page to change yours",
        ));
    }
    let tx = admin.store().write()?;
    if tx.get::<User>(USERS, user.as_bytes())?.is_none() {
        return Err(StoreError::NotFound);
    }
    let owed = SecondFactor {
        owed: true,
        ..SecondFactor::default()
    };
    tx.put(SECOND_FACTORS, user.as_bytes(), &owed)?;
    sessions::end_other_sessions(&tx, user, None)?;
    audit::append(
        &tx,
        Event::by(
            caller,
            "mfa.admin_reset",
            Some(user.to_string()),
            Outcome::Ok,
        ),
    )?;
    tx.commit()
}

// ---------------------------------------------------------------------------
// Sign-in in two steps.

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSignin {
    pub user_id: Uuid,
    pub source: Option<String>,
    pub created_ms: i64,
    pub attempts: u32,
}

/// After a right password for an enrolled user: a pending sign-in, found by the
/// returned cookie value. Expired ones are swept in the same commit.
pub fn start_pending(
    store: &Store,
    user: &User,
    source: Option<String>,
    now_ms: i64,
) -> Result<String> {
    let token = crypto::random_token()?;
    let hash = crypto::sha256(token.as_bytes());
    let tx = store.write()?;
    for key in tx.keys_desc(PENDING_SIGNINS, &[0u8; 32], &[0xffu8; 33], usize::MAX)? {
        let stale = tx
            .get::<PendingSignin>(PENDING_SIGNINS, &key)?
            .is_none_or(|p| now_ms - p.created_ms > PENDING_MS || p.user_id == user.id);
        if stale {
            tx.remove(PENDING_SIGNINS, &key)?;
        }
    }
    let pending = PendingSignin {
        user_id: user.id,
        source: source.clone(),
        created_ms: now_ms,
        attempts: 0,
    };
    tx.put(PENDING_SIGNINS, &hash, &pending)?;
    audit::append(
        &tx,
        Event::by(
            &user.caller(source),
            "signin.password_ok",
            None,
            Outcome::Ok,
        ),
    )?;
    tx.commit()?;
    Ok(token)
}

/// Ends every half-finished sign-in of `user` (inside the caller's transaction), so
/// one started with a password that was since changed or reset, or by an account
/// since disabled or deleted, can never finish.
pub(crate) fn end_pending_signins(tx: &WriteTx<'_>, user: Uuid) -> Result<()> {
    for key in tx.keys_desc(PENDING_SIGNINS, &[0u8; 32], &[0xffu8; 33], usize::MAX)? {
        if tx
            .get::<PendingSignin>(PENDING_SIGNINS, &key)?
            .is_some_and(|p| p.user_id == user)
        {
            tx.remove(PENDING_SIGNINS, &key)?;
        }
    }
    Ok(())
}

/// The live pending sign-in behind a cookie value, from the same address.
pub fn pending(
    store: &Store,
    token: &str,
    source: Option<&str>,
    now_ms: i64,
) -> Result<Option<PendingSignin>> {
    let hash = crypto::sha256(token.as_bytes());
    let found: Option<PendingSignin> = store.read()?.get(PENDING_SIGNINS, &hash)?;
    Ok(found.filter(|p| now_ms - p.created_ms <= PENDING_MS && p.source.as_deref() == source))
}

/// The outcome of the code step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondStep {
    /// The sign-in may complete for this user.
    Passed(Uuid, CodeUse),
    /// Wrong code; the pending sign-in is gone when `attempts_left` is 0.
    Wrong { user: Uuid, attempts_left: u32 },
    /// No live pending sign-in (unknown, expired, another address).
    Gone,
}

/// Checks the code of a pending sign-in and, in the same commit, uses it up and ends
/// the pending sign-in (passed), or counts the failure (wrong). Audited either way.
pub fn second_step(
    store: &Store,
    token: &str,
    source: Option<String>,
    typed: &str,
    check: &impl CodeCheck,
    now_ms: i64,
) -> Result<SecondStep> {
    let hash = crypto::sha256(token.as_bytes());
    let tx = store.write()?;
    let Some(mut pending) = tx.get::<PendingSignin>(PENDING_SIGNINS, &hash)? else {
        return Ok(SecondStep::Gone);
    };
    if now_ms - pending.created_ms > PENDING_MS || pending.source != source {
        tx.remove(PENDING_SIGNINS, &hash)?;
        tx.commit()?;
        return Ok(SecondStep::Gone);
    }
    let user = pending.user_id;
    let used = spend(&tx, user, typed, check)?;
    let event = |action, outcome| Event::anonymous(action, source.clone(), outcome).actor(user);
    let result = match used {
        CodeUse::Wrong => {
            pending.attempts += 1;
            let attempts_left = PENDING_ATTEMPTS.saturating_sub(pending.attempts);
            if attempts_left == 0 {
                tx.remove(PENDING_SIGNINS, &hash)?;
            } else {
                tx.put(PENDING_SIGNINS, &hash, &pending)?;
            }
            audit::append(
                &tx,
                event("signin.code_failed", Outcome::Failed).object(user),
            )?;
            SecondStep::Wrong {
                user,
                attempts_left,
            }
        }
        used => {
            tx.remove(PENDING_SIGNINS, &hash)?;
            if let CodeUse::Recovery(_) = used {
                audit::append(&tx, event("mfa.recovery_used", Outcome::Ok).object(user))?;
            }
            SecondStep::Passed(user, used)
        }
    };
    tx.commit()?;
    Ok(result)
}
