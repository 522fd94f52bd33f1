//! Checking and restoring a backup file.
//!
//! Guarantees: `verify` reads the whole file (age authentication of every chunk,
//! layout, checksums against the manifest) and writes nothing; `restore` writes only
//! into an empty (or new) directory, and when anything fails it removes everything it
//! wrote there; a restore is reported done only after the restored store opens with
//! the restored master key, its audit chain verifies and ends at the manifest's head,
//! every table holds the manifest's record count and every live document has its
//! file. The restore itself is then recorded in the restored audit log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::archive::{self, Manifest, Sink};
use super::durable::Syncer;
use super::interrupt::{self, Stoppable};
use super::{BackupError, Unlock};
use crate::crypto::MasterKey;
use crate::direct::DirectFile;
use crate::store::audit::{self, Event, Outcome, Verdict};
use crate::store::{RawLoader, Store, documents};

/// Decrypts on a second thread and hands the plaintext to `read` on this one.
fn with_plaintext<T>(
    file: &Path,
    unlock: &Unlock,
    read: impl FnOnce(&mut dyn Read) -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    let mut plain = unlock.open(file)?;
    let (reader, mut writer) = io::pipe()?;
    super::durable::widen_pipe(&writer);
    std::thread::scope(|scope| {
        let decrypting = scope.spawn(move || {
            let copied = io::copy(&mut plain, &mut writer);
            drop(writer);
            copied
        });
        let mut reader = BufReader::with_capacity(1 << 20, Stoppable(reader));
        let result = read(&mut reader);
        if result.is_ok() {
            // Read to the end of the age stream, so its last chunk is authenticated
            // even when the tar's end-of-archive block came before it.
            let _ = io::copy(&mut reader, &mut io::sink());
        }
        drop(reader);
        let decrypted = decrypting
            .join()
            .map_err(|_| BackupError::Decrypt("the decryption thread failed".into()))?;
        match (result, decrypted) {
            // An authentication failure explains whatever the reader saw.
            (_, Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => {
                Err(BackupError::Decrypt(e.to_string()))
            }
            (Err(_), _) if interrupt::requested() => Err(BackupError::Stopped),
            // The plaintext was authentic: what failed is its layout (reported as
            // damaged by the reader) or writing the restored data, never decryption.
            (result, _) => result,
        }
    })
}

/// Checks a backup without restoring it; returns its manifest.
pub fn verify(
    file: &Path,
    unlock: &Unlock,
    progress: archive::Progress<'_>,
) -> Result<Manifest, BackupError> {
    with_plaintext(file, unlock, |r| {
        archive::read_archive(r, &mut archive::Discard, progress)
    })
}

struct Restoring {
    dir: PathBuf,
    loader: Option<RawLoader>,
    has_key: bool,
    documents: Vec<Uuid>,
    syncer: Option<Syncer>,
}

impl Sink for Restoring {
    fn store_segment(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        let loader = self
            .loader
            .as_ref()
            .ok_or_else(|| BackupError::Damaged("store records after the store closed".into()))?;
        let tx = loader.begin()?;
        archive::for_each_record(bytes, |t, k, v| Ok(tx.put(t, k, v)?))?;
        tx.commit()?;
        Ok(())
    }

    fn document(&mut self, id: Uuid, data: &mut dyn Read) -> Result<(), BackupError> {
        let path = archive::document_path(&self.dir, id);
        // Straight to the disk as it is decrypted: the fsync below finds little left.
        let mut w = DirectFile::create_new(&path, 0o600).map_err(|e| writing(&path, e))?;
        let file = io::copy(data, &mut w)
            .and_then(|_| w.finish())
            .map_err(|e| writing(&path, e))?;
        // Fsynced on another thread while the next entries are decrypted; the
        // restore waits for every fsync before it checks the result.
        match self.syncer.as_mut() {
            Some(syncer) => syncer.sync(file),
            None => file.sync_all(),
        }
        .map_err(|e| writing(&path, e))?;
        self.documents.push(id);
        Ok(())
    }

    fn master_key(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        write_new(&self.dir.join("master.key"), bytes)?;
        self.has_key = true;
        Ok(())
    }

    fn config(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        write_new(&self.dir.join(CONFIG_COPY), bytes)
    }
}

/// Writes a new 0600 file durably.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| writing(path, e))
}

/// A failure to write restored data: the restore target's problem (full disk,
/// permissions), never the backup's.
fn writing(path: &Path, e: io::Error) -> BackupError {
    if interrupt::requested() {
        return BackupError::Stopped;
    }
    BackupError::Usage(format!("cannot write {}: {e}", path.display()))
}

/// The configuration in force when the backup was taken, restored for reference.
pub const CONFIG_COPY: &str = "config.from-backup.toml";

/// What a finished restore reports.
pub struct Restored {
    pub manifest: Manifest,
    pub audit_entries: u64,
}

/// Removes what a failed restore wrote.
struct Cleanup<'a> {
    dir: &'a Path,
    /// The outermost directory the restore created (`dir` or one of its parents).
    created: Option<PathBuf>,
    armed: bool,
}

/// The outermost directory that creating `dir` with its parents makes.
fn outermost_missing(dir: &Path) -> PathBuf {
    let mut top = dir.to_path_buf();
    for parent in dir.ancestors().skip(1) {
        if parent.as_os_str().is_empty() || parent.symlink_metadata().is_ok() {
            break;
        }
        top = parent.to_path_buf();
    }
    top
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(created) = &self.created {
            let _ = fs::remove_dir_all(created);
        } else if let Ok(entries) = fs::read_dir(self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
    }
}

/// Restores `file` into `dir`, which must be empty or not exist yet.
pub fn restore(
    file: &Path,
    unlock: &Unlock,
    dir: &Path,
    progress: archive::Progress<'_>,
) -> Result<Restored, BackupError> {
    let created = match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Usage(format!(
                    "{} is not empty; restore into an empty directory",
                    dir.display()
                )));
            }
            None
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let top = outermost_missing(dir);
            fs::create_dir_all(dir)
                .map_err(|e| BackupError::Usage(format!("cannot create {}: {e}", dir.display())))?;
            Some(top)
        }
        Err(e) => {
            return Err(BackupError::Usage(format!(
                "cannot read {}: {e}",
                dir.display()
            )));
        }
    };
    // Open the backup before writing anything, so a wrong key leaves no trace.
    interrupt::leaving(dir);
    let mut cleanup = Cleanup {
        dir,
        created,
        armed: true,
    };
    unlock.open(file)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let docs_dir = dir.join(crate::documents::DIR);
    fs::create_dir(&docs_dir)?;
    fs::set_permissions(&docs_dir, fs::Permissions::from_mode(0o700))?;

    let mut sink = Restoring {
        dir: dir.to_path_buf(),
        loader: Some(RawLoader::create(dir)?),
        has_key: false,
        documents: Vec::new(),
        syncer: Some(Syncer::start()?),
    };
    let manifest = with_plaintext(file, unlock, |r| {
        archive::read_archive(r, &mut sink, progress)
    })?;
    sink.loader = None;
    if let Some(syncer) = sink.syncer.take() {
        syncer.finish()?;
    }
    File::open(&docs_dir)?.sync_all()?;
    if !sink.has_key {
        return Err(BackupError::Damaged(
            "the backup holds no master key".into(),
        ));
    }

    let audit_entries = check_restored(dir, &manifest, &sink.documents)?;
    File::open(dir)?.sync_all()?;
    interrupt::check().map_err(|_| BackupError::Stopped)?;
    cleanup.armed = false;
    Ok(Restored {
        manifest,
        audit_entries,
    })
}

fn check_restored(dir: &Path, manifest: &Manifest, files: &[Uuid]) -> Result<u64, BackupError> {
    let bad = |why: String| BackupError::Restored(why);
    let master = MasterKey::load(&dir.join("master.key"))
        .map_err(|e| bad(format!("the master key: {e}")))?;
    let store = Store::open(dir, &master).map_err(|e| bad(e.to_string()))?;
    match audit::verify(&store)? {
        Verdict::Intact { entries, head }
            if entries == manifest.audit_entries && head == manifest.audit_head => {}
        Verdict::Intact { entries, .. } => {
            return Err(bad(format!(
                "the audit log has {entries} entries, the manifest {}",
                manifest.audit_entries
            )));
        }
        Verdict::Broken { seq, why } => {
            return Err(bad(format!("audit chain broken at entry {seq}: {why}")));
        }
    }
    let tx = store.read()?;
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    tx.system_scan_all(|t, _, _| {
        *counts.entry(t.to_string()).or_default() += 1;
        Ok(())
    })?;
    // Opening the store creates any missing empty tables; compare non-empty ones.
    counts.retain(|_, n| *n > 0);
    let mut expected = manifest.tables.clone();
    expected.retain(|_, n| *n > 0);
    if counts != expected {
        return Err(bad(
            "the store's record counts differ from the manifest".into()
        ));
    }
    let mut live = documents::system_live_ids(&tx)?;
    let mut got = files.to_vec();
    live.sort();
    got.sort();
    if live != got {
        return Err(bad(
            "the document files do not match the store's documents".into()
        ));
    }
    drop(tx);
    let entries = manifest.audit_entries + 1;
    crate::store::backups::record_restore(
        &store,
        Event::anonymous("backup.restore", Some("cli".into()), Outcome::Ok)
            .object(manifest.created_ms),
    )?;
    Ok(entries)
}
