//! The record of the newest backup, kept beside the audit entry that reports it.
//!
//! Guarantees: a backup is recorded (sealed `last_backup` record and audit entry) in
//! one commit, so health checks and the audit log never disagree; a restored store
//! never claims the source's backups as its own.

use serde::{Deserialize, Serialize};

use super::audit::{self, Event};
use super::{META, ReadTx, Result, Store};

const LAST_BACKUP: &[u8] = b"last_backup";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBackup {
    pub at_ms: i64,
    /// Audit entries in the snapshot.
    pub audit_entries: u64,
    /// How it was taken: `scheduled`, `command` or `control`.
    pub how: String,
}

/// Records a finished backup and audits it in the same commit.
pub fn record(store: &Store, last: &LastBackup, event: Event) -> Result<()> {
    let tx = store.write()?;
    tx.put(META, LAST_BACKUP, last)?;
    audit::append(&tx, event)?;
    tx.commit()
}

/// Records a restore. The restored copy holds the source's record of an earlier
/// backup, which says nothing of this box: it is forgotten in the same commit, so
/// health shows no backup (and a schedule takes one) until this box has its own.
pub fn record_restore(store: &Store, event: Event) -> Result<()> {
    let tx = store.write()?;
    tx.remove(META, LAST_BACKUP)?;
    audit::append(&tx, event)?;
    tx.commit()
}

pub fn last(tx: &ReadTx<'_>) -> Result<Option<LastBackup>> {
    tx.get(META, LAST_BACKUP)
}
