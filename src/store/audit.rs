//! The tamper-evident audit log.
//!
//! Guarantees: entries are appended only inside the write transaction of the change
//! they record (`append` takes a `WriteTx`), so a change without its entry cannot
//! commit. Each entry carries a keyed hash over its predecessor's hash, its sequence
//! number and its content; `verify` recomputes the chain and names the first entry
//! that was edited, removed, reordered or cannot be opened. Entries hold ids, roles,
//! actions and addresses: never PHI values.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AUDIT, META, ReadTx, Result, Store, WriteTx, now_ms};
use crate::domain::Caller;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Refused,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// What happened, before it is chained.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Option<Uuid>,
    pub role: Option<String>,
    pub org: Option<Uuid>,
    pub source: Option<String>,
    pub action: &'static str,
    pub object: Option<String>,
    pub outcome: Outcome,
}

impl Event {
    /// An event done by a verified caller.
    pub fn by(
        caller: &Caller,
        action: &'static str,
        object: Option<String>,
        outcome: Outcome,
    ) -> Self {
        Self {
            actor: Some(caller.user_id()),
            role: Some(caller.role().as_str().to_string()),
            org: Some(caller.org_id()),
            source: caller.source().map(str::to_string),
            action,
            object,
            outcome,
        }
    }

    /// An event with no signed-in actor (failed sign-in, operator CLI).
    pub fn anonymous(action: &'static str, source: Option<String>, outcome: Outcome) -> Self {
        Self {
            actor: None,
            role: None,
            org: None,
            source,
            action,
            object: None,
            outcome,
        }
    }

    pub fn object(mut self, object: impl ToString) -> Self {
        self.object = Some(object.to_string());
        self
    }

    pub fn actor(mut self, id: Uuid) -> Self {
        self.actor = Some(id);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: Option<Uuid>,
    pub role: Option<String>,
    pub org: Option<Uuid>,
    pub source: Option<String>,
    pub action: String,
    pub object: Option<String>,
    pub outcome: Outcome,
    /// Hex of the previous entry's hash (all zeros for the first).
    pub prev: String,
    /// Hex of this entry's keyed hash.
    pub hash: String,
}

pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn chain_hash(tx_keys: &crate::crypto::Keys, e: &Entry) -> String {
    // Hash everything but `hash` itself, in a fixed JSON encoding.
    let body = serde_json::json!([
        e.seq, e.at_ms, e.actor, e.role, e.org, e.source, e.action, e.object, e.outcome, e.prev
    ]);
    let bytes = body.to_string();
    hex::encode(tx_keys.audit_mac(&[bytes.as_bytes()]))
}

/// Appends `event` to the chain inside `tx`.
pub fn append(tx: &WriteTx<'_>, event: Event) -> Result<u64> {
    let (seq, prev) = match tx.get::<Head>(META, HEAD_KEY)? {
        Some(head) => (head.entries + 1, head.hash),
        None => (1, GENESIS.to_string()),
    };
    let mut entry = Entry {
        seq,
        at_ms: now_ms(),
        actor: event.actor,
        role: event.role,
        org: event.org,
        source: event.source,
        action: event.action.to_string(),
        object: event.object,
        outcome: event.outcome,
        prev,
        hash: String::new(),
    };
    entry.hash = chain_hash(tx.keys(), &entry);
    tx.put(AUDIT, &seq.to_be_bytes(), &entry)?;
    tx.put(
        META,
        HEAD_KEY,
        &Head {
            entries: seq,
            hash: entry.hash.clone(),
        },
    )?;
    Ok(seq)
}

/// The chain's head, sealed beside the log and moved in the same commit as every
/// append, so removing the newest entries (or all of them) is detected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub entries: u64,
    pub hash: String,
}

const HEAD_KEY: &[u8] = b"audit_head";

/// The sealed chain head as seen by `tx` (None before the first entry).
pub fn head(tx: &ReadTx<'_>) -> Result<Option<Head>> {
    tx.get(META, HEAD_KEY)
}

/// Records an event in a transaction of its own (sign-in failures, refusals).
pub fn record(store: &Store, event: Event) -> Result<u64> {
    let tx = store.write()?;
    let seq = append(&tx, event)?;
    tx.commit()?;
    Ok(seq)
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub action: Option<String>,
    pub actor: Option<Uuid>,
    pub outcome: Option<Outcome>,
    /// Only entries with a smaller sequence number (for paging back in time).
    pub before: Option<u64>,
}

/// Newest entries first, filtered, at most `limit`; returns the page and whether
/// more entries match further back.
pub fn list(tx: &ReadTx<'_>, filter: &Filter, limit: usize) -> Result<(Vec<Entry>, bool)> {
    let hi = filter.before.unwrap_or(u64::MAX).to_be_bytes();
    let lo = 0u64.to_be_bytes();
    let mut out = Vec::new();
    let mut cursor = hi;
    // Scan back in chunks so a sparse filter does not load the whole log at once.
    loop {
        let chunk: Vec<(Vec<u8>, Entry)> = tx.entries(AUDIT, &lo, &cursor, true, 512)?;
        let exhausted = chunk.len() < 512;
        for (_, e) in chunk {
            cursor = e.seq.to_be_bytes();
            let keep = filter.action.as_deref().is_none_or(|a| a == e.action)
                && filter.actor.is_none_or(|a| Some(a) == e.actor)
                && filter.outcome.is_none_or(|o| o == e.outcome);
            if keep {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(e);
            }
        }
        if exhausted {
            return Ok((out, false));
        }
    }
}

/// The result of checking the whole chain.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact { entries: u64, head: String },
    Broken { seq: u64, why: String },
}

/// Walks the chain from the first entry and reports the first bad one.
pub fn verify(store: &Store) -> Result<Verdict> {
    let tx = store.read()?;
    let mut expected_seq = 1u64;
    let mut prev = GENESIS.to_string();
    let mut broken: Option<(u64, String)> = None;
    tx.raw_scan(AUDIT, |key, sealed| {
        if broken.is_some() {
            return Ok(());
        }
        let key_seq = <[u8; 8]>::try_from(key)
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let entry: Entry = match tx.open_raw(AUDIT, key, sealed) {
            Ok(e) => e,
            Err(_) => {
                broken = Some((key_seq, "cannot be opened (altered or moved)".into()));
                return Ok(());
            }
        };
        let why = if key_seq != expected_seq || entry.seq != expected_seq {
            Some(format!(
                "expected entry {expected_seq} here (an entry was removed or reordered)"
            ))
        } else if entry.prev != prev {
            Some("does not follow the previous entry (removed or reordered)".into())
        } else if chain_hash(store.keys(), &entry) != entry.hash {
            Some("content does not match its hash (edited)".into())
        } else {
            None
        };
        match why {
            Some(why) => broken = Some((expected_seq.min(key_seq.max(1)), why)),
            None => {
                prev = entry.hash;
                expected_seq += 1;
            }
        }
        Ok(())
    })?;
    let entries = expected_seq - 1;
    if broken.is_none() {
        // The walk was clean; it must also end where the sealed head says.
        let head = match tx.get::<Head>(META, HEAD_KEY) {
            Ok(head) => head,
            Err(_) => {
                return Ok(Verdict::Broken {
                    seq: entries + 1,
                    why: "the chain head cannot be opened".into(),
                });
            }
        };
        let has_accounts = tx.len(super::USERS)? > 0;
        broken = match head {
            Some(h) if h.entries > entries => Some((
                entries + 1,
                format!(
                    "missing: the chain head records {} entries (newest entries removed)",
                    h.entries
                ),
            )),
            Some(h) if h.entries < entries || h.hash != prev => Some((
                h.entries.min(entries).max(1),
                "does not match the recorded chain head".into(),
            )),
            None if entries > 0 || has_accounts => {
                Some((1, "the chain head is missing (log removed)".into()))
            }
            _ => None,
        };
    }
    Ok(match broken {
        Some((seq, why)) => Verdict::Broken { seq, why },
        None => Verdict::Intact {
            entries,
            head: prev,
        },
    })
}

/// Integrity tooling: one entry as stored.
pub fn system_entry(store: &Store, seq: u64) -> Result<Option<Entry>> {
    store.read()?.get(AUDIT, &seq.to_be_bytes())
}

/// Integrity tooling (and tamper tests on copies of a store): writes `entry`, sealed
/// properly, under sequence key `at`, without touching the chain.
pub fn system_put_entry_at(store: &Store, at: u64, entry: &Entry) -> Result<()> {
    let tx = store.write()?;
    tx.put(AUDIT, &at.to_be_bytes(), entry)?;
    tx.commit()
}

/// Integrity tooling: deletes the entry at `seq`.
pub fn system_remove_entry(store: &Store, seq: u64) -> Result<()> {
    let tx = store.write()?;
    tx.remove(AUDIT, &seq.to_be_bytes())?;
    tx.commit()
}

/// Writes every entry, oldest first, as one JSON object per line; returns the count.
pub fn export(store: &Store, out: &mut dyn std::io::Write) -> Result<u64> {
    let tx = store.read()?;
    let mut n = 0u64;
    let mut failed: Option<String> = None;
    tx.raw_scan(AUDIT, |key, sealed| {
        if failed.is_some() {
            return Ok(());
        }
        let entry: Entry = tx.open_raw(AUDIT, key, sealed)?;
        match serde_json::to_string(&entry).map(|line| writeln!(out, "{line}")) {
            Ok(Ok(())) => n += 1,
            Ok(Err(e)) => failed = Some(e.to_string()),
            Err(e) => failed = Some(e.to_string()),
        }
        Ok(())
    })?;
    match failed {
        Some(why) => Err(super::StoreError::Db(why)),
        None => Ok(n),
    }
}
