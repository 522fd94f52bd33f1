//! Order search through keyed blind indexes, scoped per party.
//!
//! Guarantees: search terms (order number, last name, full name, MRN, date of
//! birth) are stored only as HMACs under the data key, inside the scope of each
//! party that may see the order; a search reads only the caller's own scope, so
//! neither its results nor its timing depend on other parties' orders.

use uuid::Uuid;

use super::orders::{OrderRecord, scope_prefix};
use crate::crypto::Keys;
use crate::domain::Party;

/// Normalizes a term the same way for indexing and for queries.
pub fn normalize(term: &str) -> String {
    term.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The terms an order can be found by.
pub fn terms(rec: &OrderRecord) -> Vec<String> {
    let p = &rec.data.patient;
    let mut out = vec![
        normalize(&rec.number),
        normalize(&p.last_name),
        normalize(&format!("{} {}", p.first_name, p.last_name)),
        normalize(&p.mrn),
        normalize(&p.dob),
    ];
    out.sort();
    out.dedup();
    out.retain(|t| !t.is_empty());
    out
}

pub fn prefix(keys: &Keys, party: Party, term: &str) -> Vec<u8> {
    let mut k = scope_prefix(party).to_vec();
    k.extend_from_slice(&keys.blind_index("search", &normalize(term)));
    k
}

pub fn key(keys: &Keys, party: Party, term: &str, id: &Uuid) -> Vec<u8> {
    let mut k = prefix(keys, party, term);
    k.extend_from_slice(id.as_bytes());
    k
}
