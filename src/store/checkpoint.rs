//! Signed audit checkpoints: the chain head (entry count and hash) at a moment,
//! signed with the appliance's Ed25519 checkpoint key.
//!
//! Guarantees: the key is derived from the data key, so only this appliance (or a
//! restore of it) signs or accepts its checkpoints; `check` proves the current log
//! extends a saved checkpoint — the entry the checkpoint names is still there with
//! the same hash and the whole chain verifies — so removing the newest entries, or
//! rolling the store back to an older copy, is reported. A checkpoint holds counts and
//! hashes only, never entry contents.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::audit::{self, Entry, Verdict};
use super::{AUDIT, ReadTx, Result, Store, corrupt};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Entries in the log at the checkpoint.
    pub entries: u64,
    /// Hex hash of entry `entries` (zeros when the log was empty).
    pub head: String,
    pub at_ms: i64,
    /// Hex Ed25519 public key of the appliance.
    pub key: String,
    /// Hex Ed25519 signature over `message()`.
    pub signature: String,
}

fn message(entries: u64, head: &str, at_ms: i64) -> Vec<u8> {
    format!("ihms-connect audit checkpoint v1\n{entries}\n{head}\n{at_ms}\n").into_bytes()
}

fn signing_key(store: &Store) -> SigningKey {
    SigningKey::from_bytes(store.keys().checkpoint_seed())
}

/// The appliance's checkpoint public key, hex.
pub fn public_key(store: &Store) -> String {
    hex::encode(signing_key(store).verifying_key().to_bytes())
}

/// A signed checkpoint of the chain head as seen by `tx`.
pub fn make(store: &Store, tx: &ReadTx<'_>) -> Result<Checkpoint> {
    let (entries, head) = match audit::head(tx)? {
        Some(h) => (h.entries, h.hash),
        None => (0, audit::GENESIS.to_string()),
    };
    let at_ms = super::now_ms();
    let key = signing_key(store);
    let signature = key.sign(&message(entries, &head, at_ms));
    Ok(Checkpoint {
        entries,
        head,
        at_ms,
        key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(signature.to_bytes()),
    })
}

/// How the current log relates to a saved checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckpointVerdict {
    /// The log holds the checkpoint's entries unchanged, and `now` entries in all.
    Extends {
        checkpoint: u64,
        now: u64,
    },
    Refused(String),
}

/// Checks that the current log extends `cp`.
pub fn check(store: &Store, cp: &Checkpoint) -> Result<CheckpointVerdict> {
    let ours = signing_key(store).verifying_key();
    let signed_ok = hex::decode(&cp.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
        .map(|b| Signature::from_bytes(&b))
        .is_some_and(|sig| {
            ours.verify(&message(cp.entries, &cp.head, cp.at_ms), &sig)
                .is_ok()
        });
    let key_ok = hex::decode(&cp.key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .is_some_and(|k| k == ours);
    if !key_ok {
        return Ok(CheckpointVerdict::Refused(
            "the checkpoint was signed by another appliance's key".into(),
        ));
    }
    if !signed_ok {
        return Ok(CheckpointVerdict::Refused(
            "the checkpoint's signature does not match (altered checkpoint)".into(),
        ));
    }
    let now = match audit::verify(store)? {
        Verdict::Intact { entries, .. } => entries,
        Verdict::Broken { seq, why } => {
            return Ok(CheckpointVerdict::Refused(format!(
                "the audit chain is broken at entry {seq}: {why}"
            )));
        }
    };
    if now < cp.entries {
        return Ok(CheckpointVerdict::Refused(format!(
            "the log has {now} entries but the checkpoint recorded {}: the newest entries were removed or the store was rolled back",
            cp.entries
        )));
    }
    if cp.entries > 0 {
        let tx = store.read()?;
        let entry: Option<Entry> = tx.get(AUDIT, &cp.entries.to_be_bytes())?;
        if entry.map(|e| e.hash) != Some(cp.head.clone()) {
            return Ok(CheckpointVerdict::Refused(format!(
                "entry {} differs from the checkpoint: the log was rewritten after it",
                cp.entries
            )));
        }
    }
    Ok(CheckpointVerdict::Extends {
        checkpoint: cp.entries,
        now,
    })
}

/// Parses a checkpoint file's text.
pub fn parse(text: &str) -> Result<Checkpoint> {
    serde_json::from_str(text).map_err(|e| corrupt("checkpoint", &e.to_string()))
}
