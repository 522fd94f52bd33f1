//! Discharge orders, reachable only through a party-scoped handle.
//!
//! Guarantees: `OrderScope` is the only way above the store to read or create orders,
//! and it is built from a verified `Caller`. Visibility is decided by one function,
//! `visible_to`; the index keys an order is listed under are derived from the same
//! record by `index_keys`, so a list walks only what its caller may see (its cost
//! follows the caller's orders, not all orders) and can never include anything else.
//! Reads and refusals of single orders are audited in their own commit.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, Event, Outcome};
use super::{META, ORDER_IDX, ORDERS, Result, Store, StoreError, WriteTx, now_ms};
use crate::domain::conversation::Thread;
use crate::domain::order::{FieldWarning, OrderData};
use crate::domain::{Caller, Party, Status};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub id: Uuid,
    pub number: String,
    pub facility_id: Uuid,
    pub status: Status,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub created_by: Uuid,
    pub data: OrderData,
    pub warnings: Vec<FieldWarning>,
    /// Provider organizations with an open or awarded offer on this order.
    #[serde(default)]
    pub provider_access: Vec<Uuid>,
}

/// The visibility rule of the domain, written once.
pub fn visible_to(party: Party, rec: &OrderRecord) -> bool {
    match party {
        Party::Agency => true,
        Party::Facility(org) => rec.facility_id == org,
        Party::Provider(org) => rec.provider_access.contains(&org),
    }
}

/// The same rule for an order's conversations: only a party that sees the order sees
/// any of its threads; the agency sees them all, a facility its facility thread, a
/// provider its own thread (so only while its organization has access).
pub fn thread_visible_to(party: Party, rec: &OrderRecord, thread: Thread) -> bool {
    visible_to(party, rec)
        && match (party, thread) {
            (Party::Agency, _) => true,
            (Party::Facility(_), Thread::Facility) => true,
            (Party::Provider(org), Thread::Provider(p)) => org == p,
            _ => false,
        }
}

/// Where something shared on an order lives: the order itself (`None`: seen by every
/// party that sees the order) or one of its threads (seen by that thread's parties).
pub fn shared_visible_to(party: Party, rec: &OrderRecord, thread: Option<Thread>) -> bool {
    match thread {
        None => visible_to(party, rec),
        Some(t) => thread_visible_to(party, rec, t),
    }
}

const SCOPE_AGENCY: u8 = b'A';
const SCOPE_FACILITY: u8 = b'F';
const SCOPE_PROVIDER: u8 = b'P';
const ANY_STATUS: u8 = 0xff;

fn scope_prefix(party: Party) -> [u8; 17] {
    let (tag, id) = match party {
        Party::Agency => (SCOPE_AGENCY, Uuid::nil()),
        Party::Facility(org) => (SCOPE_FACILITY, org),
        Party::Provider(org) => (SCOPE_PROVIDER, org),
    };
    let mut out = [0u8; 17];
    out[0] = tag;
    out[1..].copy_from_slice(id.as_bytes());
    out
}

fn idx_key(party: Party, status: u8, id: &Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(34);
    k.extend_from_slice(&scope_prefix(party));
    k.push(status);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Every index key an order is listed under: one per party that may see it, both
/// unfiltered and under its current status.
fn index_keys(rec: &OrderRecord) -> Vec<Vec<u8>> {
    let parties = [Party::Agency, Party::Facility(rec.facility_id)]
        .into_iter()
        .chain(rec.provider_access.iter().map(|p| Party::Provider(*p)));
    let mut keys = Vec::new();
    for party in parties {
        debug_assert!(visible_to(party, rec));
        keys.push(idx_key(party, ANY_STATUS, &rec.id));
        keys.push(idx_key(party, rec.status.code(), &rec.id));
    }
    keys
}

/// Writes a record and its index entries (replacing the old entries on update).
pub(crate) fn put_record(tx: &WriteTx<'_>, rec: &OrderRecord) -> Result<()> {
    if let Some(old) = tx.get::<OrderRecord>(ORDERS, rec.id.as_bytes())? {
        for k in index_keys(&old) {
            tx.remove(ORDER_IDX, &k)?;
        }
    }
    tx.put(ORDERS, rec.id.as_bytes(), rec)?;
    for k in index_keys(rec) {
        tx.index_put(ORDER_IDX, &k)?;
    }
    Ok(())
}

/// Allocates the next human-friendly number for `year`, e.g. `DO-2026-000123`.
pub(crate) fn next_number(tx: &WriteTx<'_>, year: i32) -> Result<String> {
    let key = format!("order_counter:{year}");
    let n: u64 = tx.get(META, key.as_bytes())?.unwrap_or(0) + 1;
    tx.put(META, key.as_bytes(), &n)?;
    Ok(format!("DO-{year}-{n:06}"))
}

pub struct Page {
    pub items: Vec<OrderRecord>,
    /// Pass back to get the next (older) page; None on the last page.
    pub next: Option<Uuid>,
}

pub struct OrderScope<'s> {
    store: &'s Store,
    caller: &'s Caller,
}

impl<'s> OrderScope<'s> {
    pub fn new(store: &'s Store, caller: &'s Caller) -> Self {
        Self { store, caller }
    }

    pub fn party(&self) -> Party {
        self.caller.party()
    }

    /// Newest first, optionally filtered by status, starting after `cursor`.
    pub fn list(&self, status: Option<Status>, cursor: Option<Uuid>, limit: usize) -> Result<Page> {
        let party = self.party();
        let status = status.map_or(ANY_STATUS, Status::code);
        let lo = idx_key(party, status, &Uuid::nil());
        let hi = match cursor {
            Some(c) => idx_key(party, status, &c),
            None => idx_key(party, status, &Uuid::max()),
        };
        let tx = self.store.read()?;
        let keys = tx.keys_desc(ORDER_IDX, &lo, &hi, limit + 1)?;
        let more = keys.len() > limit;
        let mut items = Vec::with_capacity(limit);
        for k in keys.iter().take(limit) {
            let id = &k[18..];
            if let Some(rec) = tx.get::<OrderRecord>(ORDERS, id)?
                && visible_to(party, &rec)
            {
                items.push(rec);
            }
        }
        let next = if more {
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// One order the caller may see, audited as a view; anything else is
    /// `NotFound` and audited as a refusal.
    pub fn get(&self, id: Uuid) -> Result<OrderRecord> {
        let tx = self.store.write()?;
        let rec = tx
            .get::<OrderRecord>(ORDERS, id.as_bytes())?
            .filter(|r| visible_to(self.party(), r));
        let outcome = if rec.is_some() {
            Outcome::Ok
        } else {
            Outcome::Refused
        };
        audit::append(
            &tx,
            Event::by(self.caller, "order.view", Some(id.to_string()), outcome),
        )?;
        tx.commit()?;
        rec.ok_or(StoreError::NotFound)
    }

    /// Records a refused attempt at an order id that did not even parse.
    pub fn refuse(&self, action: &'static str) -> Result<()> {
        audit::record(
            self.store,
            Event::by(self.caller, action, None, Outcome::Refused),
        )
        .map(|_| ())
    }

    /// Creates an order for `facility_id`. Facility users may only create orders for
    /// their own facility; agency staff for any active referring facility; providers
    /// never. The caller checks the facility exists and is a referring facility.
    pub fn create(
        &self,
        facility_id: Uuid,
        data: OrderData,
        warnings: Vec<FieldWarning>,
    ) -> Result<OrderRecord> {
        match self.party() {
            Party::Agency => {}
            Party::Facility(own) if own == facility_id => {}
            _ => return Err(StoreError::Conflict("referring_facility")),
        }
        let now = now_ms();
        let year = time::OffsetDateTime::now_utc().year();
        let tx = self.store.write()?;
        let rec = OrderRecord {
            id: Uuid::now_v7(),
            number: next_number(&tx, year)?,
            facility_id,
            status: Status::Submitted,
            created_ms: now,
            updated_ms: now,
            created_by: self.caller.user_id(),
            data,
            warnings,
            provider_access: Vec::new(),
        };
        put_record(&tx, &rec)?;
        audit::append(
            &tx,
            Event::by(
                self.caller,
                "order.create",
                Some(rec.id.to_string()),
                Outcome::Ok,
            ),
        )?;
        tx.commit()?;
        Ok(rec)
    }
}

/// Bulk load for benchmarks and imports: writes records in one transaction with one
/// audit entry. Named `system_` because it bypasses the caller's scope.
pub fn system_import(store: &Store, recs: &[OrderRecord], note: Event) -> Result<()> {
    let tx = store.write()?;
    for rec in recs {
        put_record(&tx, rec)?;
    }
    audit::append(&tx, note)?;
    tx.commit()
}

/// Replaces the provider organizations with access to an order (the offer workflow's
/// job; tests and imports use this until it lands). Audited in the same commit.
/// Named `system_` because it bypasses the caller's scope.
pub fn system_set_provider_access(
    store: &Store,
    order: Uuid,
    providers: Vec<Uuid>,
    note: Event,
) -> Result<()> {
    let tx = store.write()?;
    let mut rec = tx
        .get::<OrderRecord>(ORDERS, order.as_bytes())?
        .ok_or(StoreError::NotFound)?;
    rec.provider_access = providers;
    rec.updated_ms = now_ms();
    put_record(&tx, &rec)?;
    audit::append(&tx, note.object(order))?;
    tx.commit()
}
