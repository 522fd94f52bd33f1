//! What the service does on timers: scheduled backups to the configured directory
//! (keeping the newest `backup_keep`), signed audit checkpoints, and the daily
//! retention job (`crate::retention`).
//!
//! Guarantees: a failed scheduled backup leaves no file behind, is logged and
//! audited, and shows on `/healthz` and the admin audit page until the next success;
//! only files this service named (`ihms-backup-<UTC time>.age`, and their
//! `.partial` files a killed service left) are ever pruned;
//! the jobs run on blocking threads and never hold up requests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{BackupError, Protect};
use crate::store::audit::{self, Event, Outcome};
use crate::store::backups::{self, LastBackup};
use crate::store::checkpoint::{self, Checkpoint};
use crate::web::AppState;

const PREFIX: &str = "ihms-backup-";
const SUFFIX: &str = ".age";

/// The outcome of the most recent scheduled backup attempt, while it failed.
#[derive(Debug, Default, Clone)]
pub struct Jobs {
    pub last_failure: Arc<Mutex<Option<String>>>,
}

impl Jobs {
    pub fn failure(&self) -> Option<String> {
        self.last_failure.lock().ok().and_then(|f| f.clone())
    }

    fn set_failure(&self, f: Option<String>) {
        if let Ok(mut slot) = self.last_failure.lock() {
            *slot = f;
        }
    }
}

/// Takes a checkpoint now: saved to the checkpoint directory and audited.
pub fn checkpoint_now(state: &AppState) -> Result<Checkpoint, BackupError> {
    let cp = {
        let tx = state.store.read()?;
        checkpoint::make(&state.store, &tx)?
    };
    super::write_checkpoint_to(&super::checkpoint_dir(&state.store, &state.cfg), &cp)?;
    audit::record(
        &state.store,
        Event::anonymous("audit.checkpoint", None, Outcome::Ok).object(cp.entries),
    )?;
    Ok(cp)
}

fn backup_name(now_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
    );
    format!(
        "{PREFIX}{}{SUFFIX}",
        at.format(&fmt).unwrap_or_else(|_| now_ms.to_string())
    )
}

/// The backups this service wrote in `dir`, oldest first.
pub fn listed(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(PREFIX)
                            && n.ends_with(SUFFIX)
                            && n.len() == PREFIX.len() + 20 + SUFFIX.len()
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `.partial` files of scheduled backups a killed service left behind. Scheduled
/// backups run one at a time, so none of them is being written now.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(PREFIX)
                            && n.ends_with(".partial")
                            && n.len() == PREFIX.len() + 20 + SUFFIX.len() + ".partial".len()
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes one backup into the configured directory now and prunes old ones.
pub fn backup_now(state: &AppState) -> Result<PathBuf, BackupError> {
    let dir = state
        .cfg
        .backup_dir
        .clone()
        .ok_or_else(|| BackupError::Usage("no backup_dir is configured".into()))?;
    std::fs::create_dir_all(&dir)?;
    for stale in leftovers(&dir) {
        if let Err(e) = std::fs::remove_file(&stale) {
            tracing::warn!(error = %e, "a killed backup's partial file could not be removed");
        }
    }
    let protect = Protect::choose(&[], None, &state.cfg)?;
    let extras = super::extras(&state.cfg)?;
    let now = crate::store::now_ms();
    let out = dir.join(backup_name(now));
    let hold = state.docs.hold_files();
    let manifest = super::export_store(&state.store, &extras, &out, &protect, &|_| {});
    drop(hold);
    let manifest = manifest?;
    super::keep_backup_checkpoint(&state.store, &state.cfg, &manifest.checkpoint);
    backups::record(
        &state.store,
        &LastBackup {
            at_ms: manifest.created_ms,
            audit_entries: manifest.audit_entries,
            how: "scheduled".into(),
        },
        Event::anonymous("backup.scheduled", None, Outcome::Ok).object(manifest.records()),
    )?;
    let all = listed(&dir);
    let keep = state.cfg.backup_keep.max(1);
    if all.len() > keep {
        for old in &all[..all.len() - keep] {
            if let Err(e) = std::fs::remove_file(old) {
                tracing::warn!(error = %e, "an old backup could not be removed");
            }
        }
    }
    Ok(out)
}

/// One scheduled run: a backup, with its failure kept for `/healthz`.
pub fn run_backup(state: &AppState) {
    match backup_now(state) {
        Ok(_) => {
            tracing::info!("scheduled backup written");
            state.jobs.set_failure(None);
        }
        Err(e) => {
            tracing::error!(error = %e, "scheduled backup failed");
            state.jobs.set_failure(Some(e.to_string()));
            let _ = audit::record(
                &state.store,
                Event::anonymous("backup.scheduled", None, Outcome::Failed),
            );
        }
    }
}

/// Whether a scheduled backup is due now.
fn backup_due(state: &AppState, now_ms: i64) -> bool {
    if state.cfg.backup_dir.is_none() {
        return false;
    }
    let interval = i64::try_from(state.cfg.backup_interval_hours.saturating_mul(3_600_000))
        .unwrap_or(i64::MAX);
    let last = state
        .store
        .read()
        .ok()
        .and_then(|tx| backups::last(&tx).ok().flatten())
        .map(|b| b.at_ms);
    match last {
        Some(at) => now_ms - at >= interval,
        None => true,
    }
}

/// Starts the timers. `tick` is how often they look at the clock.
pub fn spawn(state: Arc<AppState>, tick: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_checkpoint = crate::store::now_ms();
        let mut last_retention: Option<i64> = None;
        let mut failed_at: Option<i64> = None;
        loop {
            tokio::time::sleep(tick).await;
            let now = crate::store::now_ms();
            // After a failure, wait an hour before trying again.
            let retry_ok = failed_at.is_none_or(|f| now - f >= 3_600_000);
            if retry_ok && backup_due(&state, now) {
                let s = state.clone();
                let _ = tokio::task::spawn_blocking(move || run_backup(&s)).await;
                failed_at = state.jobs.failure().map(|_| now);
            }
            let cp_interval = i64::try_from(
                state
                    .cfg
                    .checkpoint_interval_hours
                    .saturating_mul(3_600_000),
            )
            .unwrap_or(i64::MAX);
            if now - last_checkpoint >= cp_interval {
                last_checkpoint = now;
                let s = state.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = checkpoint_now(&s) {
                        tracing::error!(error = %e, "audit checkpoint failed");
                    }
                })
                .await;
            }
            if last_retention.is_none_or(|r| now - r >= 86_400_000) {
                last_retention = Some(now);
                let s = state.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let shred = |id| {
                        if let Err(e) = s.docs.shred(id) {
                            tracing::error!(error = %e, "a purged document's file could not be shredded; it is retried at the next start");
                        }
                    };
                    if let Err(e) =
                        crate::retention::run(&s.store, &s.cfg, crate::store::now_ms(), &shred)
                    {
                        tracing::error!(error = %e, "retention job failed");
                    }
                })
                .await;
            }
        }
    })
}
