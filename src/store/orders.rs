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
use super::placement::{TimelineEvent, Workflow};
use super::{
    META, ORDER_IDX, ORDERS, Result, SEARCH_IDX, Store, StoreError, WriteTx, now_ms, search, stats,
};
use crate::domain::conversation::Thread;
use crate::domain::order::{FieldWarning, OrderData};
use crate::domain::placement::OfferStatus;
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
    /// Coverage, lines, offers and the timeline.
    #[serde(default)]
    pub workflow: Workflow,
    /// While set, the retention job keeps this order whatever its age.
    #[serde(default)]
    pub legal_hold: Option<LegalHold>,
}

/// A legal hold: who placed it, when, and why (staff-only text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegalHold {
    pub by: Uuid,
    pub at_ms: i64,
    pub reason: String,
}

/// The visibility rule of the domain, written once.
pub fn visible_to(party: Party, rec: &OrderRecord) -> bool {
    match party {
        Party::Agency => true,
        Party::Facility(org) => rec.facility_id == org,
        Party::Provider(org) => rec.provider_access.contains(&org),
    }
}

/// What `party` may see of an order it can see: providers get the header and only
/// their own lines, offers and timeline steps; facilities get lines with their
/// award and start but not individual offers; coverage notes stay with the agency.
/// Returns the projected record and, for each line kept, its index in the order.
pub fn project(party: Party, rec: &OrderRecord) -> (OrderRecord, Vec<usize>) {
    let mut out = rec.clone();
    let lines = rec.data.services.len();
    out.workflow.lines.resize(lines, Default::default());
    match party {
        Party::Agency => (out, (0..lines).collect()),
        Party::Facility(_) => {
            for line in &mut out.workflow.lines {
                line.offers.clear();
            }
            out.workflow.coverage.clear();
            out.workflow.coverage_override = None;
            out.workflow.events.retain(|e| {
                !e.internal
                    && (e.provider.is_none()
                        || matches!(e.what.as_str(), "Awarded" | "Care started"))
            });
            out.provider_access.clear();
            (out, (0..lines).collect())
        }
        Party::Provider(me) => {
            let keep: Vec<usize> = (0..lines)
                .filter(|i| {
                    rec.workflow
                        .lines
                        .get(*i)
                        .is_some_and(|l| l.offers.iter().any(|o| o.provider == me))
                })
                .collect();
            out.data.services = keep
                .iter()
                .filter_map(|i| rec.data.services.get(*i).cloned())
                .collect();
            out.workflow.lines = keep
                .iter()
                .filter_map(|i| out.workflow.lines.get(*i).cloned())
                .map(|mut l| {
                    l.offers.retain(|o| o.provider == me);
                    if l.awarded != Some(me) {
                        l.awarded = None;
                        l.start_date = None;
                    }
                    l
                })
                .collect();
            out.workflow.coverage.clear();
            out.workflow.coverage_override = None;
            out.workflow.question = None;
            // Timeline steps keep the order's line index, like `lines[].line`.
            out.workflow
                .events
                .retain(|e| e.provider == Some(me) && !e.internal);
            out.provider_access = vec![me];
            (out, keep)
        }
    }
}

/// Whether `caller` may see order `id` right now, without auditing a view (used to
/// decide where to send someone after a step that may have ended their access).
pub fn visible_now(store: &Store, caller: &Caller, id: Uuid) -> Result<bool> {
    let tx = store.read()?;
    Ok(tx
        .get::<OrderRecord>(ORDERS, id.as_bytes())?
        .is_some_and(|r| visible_to(caller.party(), &r)))
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
/// Listed under a provider while an offer to it is open on the order: its inbox.
const AWAITING: u8 = 0xfe;
/// Set once every stored order has its `AWAITING` entries (stores from before them).
const AWAITING_BUILT: &[u8] = b"idx:awaiting:v1";

pub(crate) fn scope_prefix(party: Party) -> [u8; 17] {
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

pub(crate) fn idx_key(party: Party, status: u8, id: &Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(34);
    k.extend_from_slice(&scope_prefix(party));
    k.push(status);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Every party that may see an order: the scopes it is indexed and counted under.
pub(crate) fn scope_parties(rec: &OrderRecord) -> Vec<Party> {
    let parties: Vec<Party> = [Party::Agency, Party::Facility(rec.facility_id)]
        .into_iter()
        .chain(rec.provider_access.iter().map(|p| Party::Provider(*p)))
        .collect();
    debug_assert!(parties.iter().all(|p| visible_to(*p, rec)));
    parties
}

/// Every index key an order is listed under: one per party that may see it, both
/// unfiltered and under its current status, plus its search terms in that party's
/// scope.
pub(crate) fn index_keys(
    keys: &crate::crypto::Keys,
    rec: &OrderRecord,
) -> Vec<(super::Def, Vec<u8>)> {
    let mut out = Vec::new();
    let terms = search::terms(rec);
    for party in scope_parties(rec) {
        out.push((ORDER_IDX, idx_key(party, ANY_STATUS, &rec.id)));
        out.push((ORDER_IDX, idx_key(party, rec.status.code(), &rec.id)));
        if let Party::Provider(org) = party
            && awaits(rec, org)
        {
            out.push((ORDER_IDX, idx_key(party, AWAITING, &rec.id)));
        }
        for term in &terms {
            out.push((SEARCH_IDX, search::key(keys, party, term, &rec.id)));
        }
    }
    out
}

/// Whether an offer on `rec` is open to the provider organization `org`.
fn awaits(rec: &OrderRecord, org: Uuid) -> bool {
    rec.workflow
        .lines
        .iter()
        .flat_map(|l| l.offers.iter())
        .any(|o| o.provider == org && o.status == OfferStatus::Open)
}

/// Gives every stored order the index entries of a newer build (once per store; the
/// service runs it at start, so a restore's checks see the store as it was saved).
pub fn backfill_indexes(store: &Store) -> Result<()> {
    let tx = store.write()?;
    if tx.exists(META, AWAITING_BUILT)? {
        return Ok(());
    }
    let lo = idx_key(Party::Agency, ANY_STATUS, &Uuid::nil());
    let hi = idx_key(Party::Agency, ANY_STATUS, &Uuid::max());
    for key in tx.keys_desc(ORDER_IDX, &lo, &hi, usize::MAX)? {
        let Some(rec) = tx.get::<OrderRecord>(ORDERS, &key[18..])? else {
            continue;
        };
        for (def, k) in index_keys(tx.keys(), &rec) {
            tx.index_put(def, &k)?;
        }
    }
    tx.put(META, AWAITING_BUILT, &true)?;
    tx.commit()
}

/// Writes a record and its index entries (replacing the old entries on update).
pub(crate) fn put_record(tx: &WriteTx<'_>, rec: &OrderRecord) -> Result<()> {
    let old = tx.get::<OrderRecord>(ORDERS, rec.id.as_bytes())?;
    if let Some(old) = &old {
        for (def, k) in index_keys(tx.keys(), old) {
            tx.remove(def, &k)?;
        }
    }
    tx.put(ORDERS, rec.id.as_bytes(), rec)?;
    for (def, k) in index_keys(tx.keys(), rec) {
        tx.index_put(def, &k)?;
    }
    stats::recount(tx, old.as_ref(), rec)
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
        self.list_under(status.map_or(ANY_STATUS, Status::code), cursor, limit)
    }

    /// A provider's orders with an offer open to it, newest first (empty for
    /// everyone else).
    pub fn awaiting(&self, cursor: Option<Uuid>, limit: usize) -> Result<Page> {
        match self.party() {
            Party::Provider(_) => self.list_under(AWAITING, cursor, limit),
            _ => Ok(Page {
                items: Vec::new(),
                next: None,
            }),
        }
    }

    fn list_under(&self, status: u8, cursor: Option<Uuid>, limit: usize) -> Result<Page> {
        let party = self.party();
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

    /// Orders the caller may see whose number, last name, full name, MRN or date of
    /// birth equals `query` (normalized), newest first; the search is audited without
    /// its text.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<OrderRecord>> {
        let party = self.party();
        let tx = self.store.write()?;
        let prefix = search::prefix(self.store.keys(), party, query);
        let mut lo = prefix.clone();
        lo.extend_from_slice(&[0u8; 16]);
        let mut hi = prefix;
        hi.extend_from_slice(&[0xffu8; 17]);
        let keys = tx.keys_desc(SEARCH_IDX, &lo, &hi, limit)?;
        let mut out = Vec::new();
        for k in keys {
            let id = &k[k.len() - 16..];
            if let Some(rec) = tx.get::<OrderRecord>(ORDERS, id)?
                && visible_to(party, &rec)
            {
                out.push(rec);
            }
        }
        audit::append(
            &tx,
            Event::by(self.caller, "order.search", None, Outcome::Ok),
        )?;
        tx.commit()?;
        Ok(out)
    }

    /// The caller's open orders that have waited longest (oldest first).
    pub fn oldest_open(&self, limit: usize) -> Result<Vec<OrderRecord>> {
        let party = self.party();
        let tx = self.store.read()?;
        let mut ids: Vec<Vec<u8>> = Vec::new();
        for status in Status::ALL.into_iter().filter(|s| s.is_open()) {
            let lo = idx_key(party, status.code(), &Uuid::nil());
            let hi = idx_key(party, status.code(), &Uuid::max());
            ids.extend(
                tx.keys_asc(ORDER_IDX, &lo, &hi, limit)?
                    .into_iter()
                    .map(|k| k[18..].to_vec()),
            );
        }
        ids.sort();
        let mut out = Vec::new();
        for id in ids.iter().take(limit) {
            if let Some(rec) = tx.get::<OrderRecord>(ORDERS, id)?
                && visible_to(party, &rec)
            {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every order of a list (for export), audited as one export.
    pub fn export(&self, status: Option<Status>) -> Result<Vec<OrderRecord>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list(status, cursor, 500)?;
            out.extend(page.items);
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let detail = format!("{} orders", out.len());
        audit::record(
            self.store,
            Event::by(self.caller, "order.export", Some(detail), Outcome::Ok),
        )?;
        Ok(out)
    }

    /// One order the caller may see, audited as a view; anything else is
    /// `NotFound` and audited as a refusal.
    pub fn get(&self, id: Uuid) -> Result<OrderRecord> {
        let tx = self.store.write()?;
        // The caller's own index answers first, so an order of another party costs
        // the same as one that does not exist (nothing is opened for either).
        let listed = tx.exists(ORDER_IDX, &idx_key(self.party(), ANY_STATUS, &id))?;
        let rec = match listed {
            true => tx
                .get::<OrderRecord>(ORDERS, id.as_bytes())?
                .filter(|r| visible_to(self.party(), r)),
            false => None,
        };
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
            workflow: Workflow {
                events: vec![TimelineEvent {
                    at_ms: now,
                    by: self.caller.user_id(),
                    role: self.caller.role(),
                    what: "Submitted".into(),
                    line: None,
                    provider: None,
                    note: None,
                    internal: false,
                }],
                ..Workflow::default()
            },
            legal_hold: None,
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
