//! Purges the retention rules call for (domain.md, "Retention and requests").
//!
//! Guarantees: an order is purged only when it is completed or cancelled, its last
//! change is older than the cut-off and it is not on legal hold; purging removes the
//! order with everything hanging off it (index and search entries, state counts,
//! open-offer entries, messages, thread entries, read marks, document records) and
//! appends its audit entry in the same commit, so nothing is left half-purged; the
//! audit log itself is never purged. Document files are named for the caller to
//! shred after the commit. Technical records (sessions, expired API tokens) older
//! than their cut-off go in one audited commit.

use uuid::Uuid;

use super::accounts::cat;
use super::audit::{self, Event, Outcome};
use super::orders::{LegalHold, OrderRecord, idx_key, index_keys, scope_parties};
use super::sessions::{ApiToken, Session};
use super::{
    DOCUMENTS, MESSAGES, OPEN_OFFERS_IDX, ORDER_DOCS_IDX, ORDER_IDX, ORDERS, READ_MARKS, ReadTx,
    Result, SESSIONS, STATS, Store, StoreError, THREAD_IDX, TOKENS, USER_SESSIONS_IDX,
    USER_TOKENS_IDX, USERS, WriteTx,
};
use crate::domain::{Caller, Party, Status};

/// Whether an order may be purged at `cutoff_ms`: closed before it, not on hold.
fn purgeable(rec: &OrderRecord, cutoff_ms: i64) -> bool {
    matches!(rec.status, Status::Completed | Status::Cancelled)
        && rec.updated_ms < cutoff_ms
        && rec.legal_hold.is_none()
}

/// Orders due for purging at `cutoff_ms` (closed before it, not on hold).
pub fn due_orders(tx: &ReadTx<'_>, cutoff_ms: i64) -> Result<Vec<Uuid>> {
    let mut due = Vec::new();
    for status in [Status::Completed, Status::Cancelled] {
        let lo = idx_key(Party::Agency, status.code(), &Uuid::nil());
        let hi = idx_key(Party::Agency, status.code(), &Uuid::max());
        for key in tx.keys_asc(ORDER_IDX, &lo, &hi, usize::MAX)? {
            let Ok(id) = Uuid::from_slice(&key[key.len() - 16..]) else {
                continue;
            };
            if let Some(rec) = tx.get::<OrderRecord>(ORDERS, id.as_bytes())?
                && purgeable(&rec, cutoff_ms)
            {
                due.push(id);
            }
        }
    }
    Ok(due)
}

fn remove_prefixed(tx: &WriteTx<'_>, def: super::Def, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
    let hi = cat(prefix, &[0xffu8; 64]);
    let keys = tx.keys_desc(def, prefix, &hi, usize::MAX)?;
    for k in &keys {
        tx.remove(def, k)?;
    }
    Ok(keys)
}

/// Purges one order and what hangs off it, audited in the same commit, if it is
/// still due at `cutoff_ms` — checked again inside this commit, so a legal hold
/// placed (or the order reopened) after `due_orders` listed it keeps it. Returns the
/// ids of its documents, whose files the caller shreds once this has committed, or
/// None when nothing was purged.
pub fn purge_order(
    store: &Store,
    id: Uuid,
    cutoff_ms: i64,
    why: &'static str,
) -> Result<Option<Vec<Uuid>>> {
    let tx = store.write()?;
    let Some(rec) = tx
        .get::<OrderRecord>(ORDERS, id.as_bytes())?
        .filter(|rec| purgeable(rec, cutoff_ms))
    else {
        return Ok(None);
    };
    for (def, k) in index_keys(tx.keys(), &rec) {
        tx.remove(def, &k)?;
    }
    tx.remove(ORDERS, id.as_bytes())?;
    for party in scope_parties(&rec) {
        let key = super::stats::count_key(party, rec.status);
        let n: i64 = tx.get(STATS, &key)?.unwrap_or(0);
        tx.put(STATS, &key, &(n - 1).max(0))?;
    }
    for line in &rec.workflow.lines {
        for offer in &line.offers {
            let mut k = offer.offered_ms.to_be_bytes().to_vec();
            k.extend_from_slice(id.as_bytes());
            k.extend_from_slice(offer.id.as_bytes());
            tx.remove(OPEN_OFFERS_IDX, &k)?;
        }
    }
    remove_prefixed(&tx, MESSAGES, id.as_bytes())?;
    remove_prefixed(&tx, THREAD_IDX, id.as_bytes())?;
    // Read marks are keyed user ‖ order ‖ thread: one short range per user (ids
    // of users are never removed), rather than a scan of every mark.
    for user in tx.keys_desc(USERS, &[], &[0xffu8; 17], usize::MAX)? {
        remove_prefixed(&tx, READ_MARKS, &cat(&user, id.as_bytes()))?;
    }
    let mut docs = Vec::new();
    for k in remove_prefixed(&tx, ORDER_DOCS_IDX, id.as_bytes())? {
        if let Ok(doc) = Uuid::from_slice(&k[16..]) {
            tx.remove(DOCUMENTS, doc.as_bytes())?;
            docs.push(doc);
        }
    }
    audit::append(&tx, Event::anonymous(why, None, Outcome::Ok).object(id))?;
    tx.commit()?;
    Ok(Some(docs))
}

/// Removes sessions last seen before `cutoff_ms` and API tokens that expired before
/// it; one audited commit. Returns how many records went.
pub fn purge_technical(store: &Store, cutoff_ms: i64) -> Result<usize> {
    let tx = store.write()?;
    let mut gone = 0;
    let mut stale = Vec::new();
    tx.raw_scan_write(SESSIONS, |key, sealed| {
        let s: Session = tx.open_raw(SESSIONS, key, sealed)?;
        if s.last_seen_ms < cutoff_ms {
            stale.push((SESSIONS, USER_SESSIONS_IDX, s.user_id, key.to_vec()));
        }
        Ok(())
    })?;
    tx.raw_scan_write(TOKENS, |key, sealed| {
        let t: ApiToken = tx.open_raw(TOKENS, key, sealed)?;
        if t.expires_ms.is_some_and(|e| e < cutoff_ms) {
            stale.push((TOKENS, USER_TOKENS_IDX, t.user_id, key.to_vec()));
        }
        Ok(())
    })?;
    for (table, idx, user, key) in stale {
        tx.remove(table, &key)?;
        tx.remove(idx, &cat(user.as_bytes(), &key))?;
        gone += 1;
    }
    if gone > 0 {
        audit::append(
            &tx,
            Event::anonymous("retention.purge_technical", None, Outcome::Ok).object(gone),
        )?;
    }
    tx.commit()?;
    Ok(gone)
}

/// Places or lifts a legal hold (agency admins only), audited in the same commit.
pub fn set_legal_hold(
    store: &Store,
    caller: &Caller,
    id: Uuid,
    reason: Option<String>,
) -> Result<OrderRecord> {
    super::accounts::AdminScope::require(store, caller)?;
    let tx = store.write()?;
    let mut rec = tx
        .get::<OrderRecord>(ORDERS, id.as_bytes())?
        .ok_or(StoreError::NotFound)?;
    let action = match reason {
        Some(reason) => {
            rec.legal_hold = Some(LegalHold {
                by: caller.user_id(),
                at_ms: super::now_ms(),
                reason,
            });
            "order.legal_hold.place"
        }
        None => {
            rec.legal_hold = None;
            "order.legal_hold.lift"
        }
    };
    // The hold does not change the order's state, lists or counts.
    tx.put(ORDERS, id.as_bytes(), &rec)?;
    audit::append(
        &tx,
        Event::by(caller, action, Some(id.to_string()), Outcome::Ok),
    )?;
    tx.commit()?;
    Ok(rec)
}
