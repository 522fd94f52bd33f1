//! Aggregates kept up to date in the same transaction as each order change, so the
//! dashboard costs the same at 100 or 100,000 orders.
//!
//! Guarantees: counts by state are adjusted by `recount` from the old and new record
//! for every party that sees the order (the same parties as the list indexes), so a
//! party's counts are exactly what its lists hold; answer and placement times sit in
//! index keys so medians are read without opening records. Nothing here holds PHI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::orders::{OrderRecord, scope_parties, scope_prefix};
use super::placement::Offer;
use super::{ANSWER_TIME_IDX, OPEN_OFFERS_IDX, PLACEMENT_TIME_IDX, ReadTx, Result, STATS, WriteTx};
use crate::domain::placement::OfferStatus;
use crate::domain::{Party, Status};

pub(crate) fn count_key(party: Party, status: Status) -> Vec<u8> {
    let mut k = b"count:".to_vec();
    k.extend_from_slice(&scope_prefix(party));
    k.push(status.code());
    k
}

fn bump(tx: &WriteTx<'_>, key: &[u8], by: i64) -> Result<()> {
    let n: i64 = tx.get(STATS, key)?.unwrap_or(0);
    tx.put(STATS, key, &(n + by).max(0))
}

/// Moves an order's counts from its old state to its new one.
pub(crate) fn recount(
    tx: &WriteTx<'_>,
    old: Option<&OrderRecord>,
    new: &OrderRecord,
) -> Result<()> {
    if let Some(old) = old {
        for party in scope_parties(old) {
            bump(tx, &count_key(party, old.status), -1)?;
        }
    }
    for party in scope_parties(new) {
        bump(tx, &count_key(party, new.status), 1)?;
    }
    Ok(())
}

/// How many orders a party sees in each state.
pub fn counts(tx: &ReadTx<'_>, party: Party) -> Result<Vec<(Status, u64)>> {
    Status::ALL
        .iter()
        .map(|s| {
            Ok((
                *s,
                tx.get::<i64>(STATS, &count_key(party, *s))?
                    .unwrap_or(0)
                    .max(0) as u64,
            ))
        })
        .collect()
}

/// Per-provider offer figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderStats {
    pub offers: u64,
    pub answered: u64,
    pub accepted: u64,
    pub declined: u64,
    pub reasons: BTreeMap<String, u64>,
}

fn provider_key(provider: Uuid) -> Vec<u8> {
    let mut k = b"provider:".to_vec();
    k.extend_from_slice(provider.as_bytes());
    k
}

fn open_offer_key(offer: &Offer, order: Uuid) -> Vec<u8> {
    let mut k = offer.offered_ms.to_be_bytes().to_vec();
    k.extend_from_slice(order.as_bytes());
    k.extend_from_slice(offer.id.as_bytes());
    k
}

fn time_key(owner: Uuid, secs: i64, id: Uuid) -> Vec<u8> {
    let mut k = owner.as_bytes().to_vec();
    k.extend_from_slice(&(secs.max(0) as u64).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn update_provider(
    tx: &WriteTx<'_>,
    provider: Uuid,
    f: impl FnOnce(&mut ProviderStats),
) -> Result<()> {
    let key = provider_key(provider);
    let mut stats: ProviderStats = tx.get(STATS, &key)?.unwrap_or_default();
    f(&mut stats);
    tx.put(STATS, &key, &stats)
}

pub(crate) fn offer_opened(tx: &WriteTx<'_>, rec: &OrderRecord, offer: &Offer) -> Result<()> {
    tx.index_put(OPEN_OFFERS_IDX, &open_offer_key(offer, rec.id))?;
    update_provider(tx, offer.provider, |s| s.offers += 1)
}

/// Records an offer's change (an answer, a withdrawal, a close).
pub(crate) fn offer_answered(
    tx: &WriteTx<'_>,
    rec: &OrderRecord,
    before: &Offer,
    after: &Offer,
    first_answer: bool,
) -> Result<()> {
    if before.status == OfferStatus::Open && before.answered_ms.is_none() {
        tx.remove(OPEN_OFFERS_IDX, &open_offer_key(before, rec.id))?;
    }
    if first_answer && let Some(at) = after.answered_ms {
        let secs = (at - after.offered_ms) / 1000;
        tx.index_put(ANSWER_TIME_IDX, &time_key(after.provider, secs, after.id))?;
    }
    update_provider(tx, after.provider, |s| {
        if first_answer {
            s.answered += 1;
        }
        if after.status == OfferStatus::Accepted && !before.counted_accept {
            s.accepted += 1;
        }
        if after.status == OfferStatus::Declined && before.status != OfferStatus::Declined {
            s.declined += 1;
            if let Some(r) = after.decline_reason {
                *s.reasons.entry(r.code().to_string()).or_default() += 1;
            }
        }
    })
}

fn placed_key(facility: Uuid) -> Vec<u8> {
    let mut k = b"placed:".to_vec();
    k.extend_from_slice(facility.as_bytes());
    k
}

pub(crate) fn placed(tx: &WriteTx<'_>, rec: &OrderRecord) -> Result<()> {
    let secs = (rec.workflow.placed_ms.unwrap_or(rec.created_ms) - rec.created_ms) / 1000;
    tx.index_put(PLACEMENT_TIME_IDX, &time_key(rec.facility_id, secs, rec.id))?;
    bump(tx, &placed_key(rec.facility_id), 1)
}

pub fn provider_stats(tx: &ReadTx<'_>, provider: Uuid) -> Result<ProviderStats> {
    Ok(tx.get(STATS, &provider_key(provider))?.unwrap_or_default())
}

/// The median of the seconds stored under `owner` in a time index, if any.
fn median_secs(tx: &ReadTx<'_>, table: super::Def, owner: Uuid, count: u64) -> Result<Option<u64>> {
    if count == 0 {
        return Ok(None);
    }
    let lo = owner.as_bytes().to_vec();
    let mut hi = lo.clone();
    hi.extend_from_slice(&[0xff; 33]);
    let key = tx.nth_key(table, &lo, &hi, (count / 2) as usize)?;
    Ok(key
        .and_then(|k| k.get(16..24).and_then(|b| <[u8; 8]>::try_from(b).ok()))
        .map(u64::from_be_bytes))
}

pub fn median_answer_secs(tx: &ReadTx<'_>, provider: Uuid, answered: u64) -> Result<Option<u64>> {
    median_secs(tx, ANSWER_TIME_IDX, provider, answered)
}

pub fn median_placement_secs(tx: &ReadTx<'_>, facility: Uuid) -> Result<(u64, Option<u64>)> {
    let placed = tx
        .get::<i64>(STATS, &placed_key(facility))?
        .unwrap_or(0)
        .max(0) as u64;
    Ok((
        placed,
        median_secs(tx, PLACEMENT_TIME_IDX, facility, placed)?,
    ))
}

/// Open offers with no answer that were made before `before_ms`, oldest first:
/// (order id, offer id, offered at).
pub fn overdue(tx: &ReadTx<'_>, before_ms: i64, limit: usize) -> Result<Vec<(Uuid, Uuid, i64)>> {
    let hi = before_ms.max(0).to_be_bytes();
    let keys = tx.keys_asc(OPEN_OFFERS_IDX, &[0u8; 8], &hi, limit)?;
    Ok(keys
        .iter()
        .filter_map(|k| {
            let at = i64::from_be_bytes(<[u8; 8]>::try_from(k.get(..8)?).ok()?);
            let order = Uuid::from_slice(k.get(8..24)?).ok()?;
            let offer = Uuid::from_slice(k.get(24..40)?).ok()?;
            Some((order, offer, at))
        })
        .collect())
}
