//! Backups: one age-encrypted file holding a consistent snapshot of the store, every
//! document, the configuration and a manifest (see `archive` for the layout).
//!
//! Guarantees: a backup file appears under its final name only once it is complete
//! and fsynced (it is written to a `.partial` file first and removed on any failure),
//! and an existing file is never overwritten; it is encrypted with the reference age
//! format to age X25519 recipients or to a passphrase (scrypt), so the `age` command
//! line decrypts it; reading one checks the age authentication of every chunk, the
//! layout and every checksum, and a wrong key, a truncated or altered file and an
//! unknown format version are each refused with their own message. A restore writes
//! only into an empty directory and leaves it empty again when anything fails.

pub mod archive;
pub mod control;
pub mod durable;
pub mod interrupt;
mod output;
pub mod progress;
pub mod restore;
pub mod schedule;

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::store::{Store, StoreError};
pub use archive::Manifest;
pub use output::Output;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Usage(String),
    #[error("the backup cannot be written: {0}")]
    Source(String),
    #[error("the backup file is damaged or was altered: {0}")]
    Damaged(String),
    #[error("the backup is truncated or was altered (decryption failed: {0})")]
    Decrypt(String),
    #[error("{0}")]
    WrongKey(String),
    #[error(
        "the backup has format version {0} (written by IHMS Connect {1}); this build reads version {FORMAT}",
        FORMAT = archive::FORMAT
    )]
    UnknownFormat(u32, String),
    #[error("stopped by a signal; nothing was kept")]
    Stopped,
    #[error("the restored data failed its checks: {0}")]
    Restored(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How a new backup is encrypted.
pub enum Protect {
    Recipients(Vec<age::x25519::Recipient>),
    Passphrase(SecretString),
}

impl Protect {
    /// From the command line, falling back to the configuration: recipients given
    /// as age public keys (`age1…`), or one passphrase file.
    pub fn choose(
        recipients: &[String],
        passphrase_file: Option<&Path>,
        cfg: &Config,
    ) -> Result<Self, BackupError> {
        let (recipients, passphrase_file) = if recipients.is_empty() && passphrase_file.is_none() {
            (
                cfg.backup_recipients.as_slice(),
                cfg.backup_passphrase_file.as_deref(),
            )
        } else {
            (recipients, passphrase_file)
        };
        match (recipients.is_empty(), passphrase_file) {
            (false, Some(_)) => Err(BackupError::Usage(
                "give either --recipient or --passphrase-file, not both".into(),
            )),
            (false, None) => Ok(Protect::Recipients(parse_recipients(recipients)?)),
            (true, Some(file)) => Ok(Protect::Passphrase(new_passphrase(file)?)),
            (true, None) => Err(BackupError::Usage(
                "no backup key: give --recipient AGE_PUBLIC_KEY or --passphrase-file FILE, or set backup_recipients in the configuration".into(),
            )),
        }
    }

    fn encryptor(&self) -> Result<age::Encryptor, BackupError> {
        match self {
            Protect::Recipients(list) => {
                age::Encryptor::with_recipients(list.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|e| {
                        BackupError::Usage(format!("cannot encrypt to these recipients: {e}"))
                    })
            }
            Protect::Passphrase(p) => Ok(age::Encryptor::with_user_passphrase(p.clone())),
        }
    }
}

/// Parses age public keys. A bad entry is named by its position; its text is shown
/// only when it looks like a public key, because a secret key (an identity pasted in
/// the wrong place) must not reach a terminal or the journal.
pub fn parse_recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>, BackupError> {
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.trim();
            r.parse::<age::x25519::Recipient>().map_err(|_| {
                let n = i + 1;
                BackupError::Usage(if r.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
                    format!(
                        "recipient {n} is an age identity (a secret key), not a public key: keep the identity off this machine and give its public key (age1…)"
                    )
                } else if r.starts_with("age1") && r.is_ascii() {
                    format!(
                        "recipient {n} ({:?}) is not a valid age public key",
                        r.chars().take(80).collect::<String>()
                    )
                } else {
                    format!("recipient {n} is not an age public key (age1…)")
                })
            })
        })
        .collect()
}

/// Checks the backup settings `config check` can check beyond their syntax: the
/// passphrase file is readable and acceptable for a new backup.
pub fn check_settings(cfg: &Config) -> Result<(), BackupError> {
    match &cfg.backup_passphrase_file {
        Some(file) => new_passphrase(file).map(|_| ()),
        None => Ok(()),
    }
}

fn read_passphrase(file: &Path) -> Result<SecretString, BackupError> {
    let text = Zeroizing::new(fs::read_to_string(file).map_err(|e| {
        BackupError::Usage(format!(
            "cannot read passphrase file {}: {e}",
            file.display()
        ))
    })?);
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() < 12 {
        return Err(BackupError::Usage(format!(
            "the passphrase in {} must be at least 12 characters",
            file.display()
        )));
    }
    Ok(SecretString::from(line.to_string()))
}

/// The passphrase a new backup is encrypted with: one line without spaces at either
/// end, which an editor or a copy-and-paste would silently add or drop, making the
/// backup impossible to open with the passphrase as the operator knows it.
fn new_passphrase(file: &Path) -> Result<SecretString, BackupError> {
    let passphrase = read_passphrase(file)?;
    let text = Zeroizing::new(fs::read_to_string(file)?);
    let mut lines = text.lines();
    let line = lines.next().unwrap_or("");
    if line.trim() != line {
        return Err(BackupError::Usage(format!(
            "the passphrase in {} begins or ends with spaces; remove them",
            file.display()
        )));
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(BackupError::Usage(format!(
            "the passphrase file {} must hold one line",
            file.display()
        )));
    }
    Ok(passphrase)
}

/// How an existing backup is opened.
pub enum Unlock {
    Identities(Vec<age::x25519::Identity>),
    Passphrase(SecretString),
}

impl Unlock {
    pub fn choose(
        identity: Option<&Path>,
        passphrase_file: Option<&Path>,
    ) -> Result<Self, BackupError> {
        match (identity, passphrase_file) {
            (Some(_), Some(_)) => Err(BackupError::Usage(
                "give either --identity or --passphrase-file, not both".into(),
            )),
            (Some(file), None) => {
                let text = Zeroizing::new(fs::read_to_string(file).map_err(|e| {
                    BackupError::Usage(format!("cannot read identity file {}: {e}", file.display()))
                })?);
                let ids: Vec<age::x25519::Identity> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .filter_map(|l| l.parse().ok())
                    .collect();
                if ids.is_empty() {
                    return Err(BackupError::Usage(format!(
                        "{} holds no age identity (AGE-SECRET-KEY-1…)",
                        file.display()
                    )));
                }
                Ok(Unlock::Identities(ids))
            }
            (None, Some(file)) => Ok(Unlock::Passphrase(read_passphrase(file)?)),
            (None, None) => Err(BackupError::Usage(
                "give --identity FILE or --passphrase-file FILE".into(),
            )),
        }
    }

    /// The decrypted plaintext of a backup file.
    pub fn open(&self, file: &Path) -> Result<impl Read + use<>, BackupError> {
        let input = File::open(file)
            .map_err(|e| BackupError::Usage(format!("cannot open {}: {e}", file.display())))?;
        if input.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(BackupError::Usage(format!(
                "{} is a directory; give the backup file",
                file.display()
            )));
        }
        let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(1 << 20, input))
            .map_err(|e| match e {
                age::DecryptError::Io(e) => BackupError::Damaged(e.to_string()),
                _ => BackupError::Damaged(
                    "this is not an age-encrypted backup, or its header was altered".into(),
                ),
            })?;
        let scrypt = decryptor.is_scrypt();
        let result = match self {
            Unlock::Identities(ids) => {
                if scrypt {
                    return Err(BackupError::WrongKey(
                        "this backup is protected by a passphrase; use --passphrase-file".into(),
                    ));
                }
                decryptor.decrypt(ids.iter().map(|i| i as &dyn age::Identity))
            }
            Unlock::Passphrase(p) => {
                if !scrypt {
                    return Err(BackupError::WrongKey(
                        "this backup is encrypted to age recipients; use --identity".into(),
                    ));
                }
                let id = age::scrypt::Identity::new(p.clone());
                decryptor.decrypt(std::iter::once(&id as &dyn age::Identity))
            }
        };
        result.map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => {
                BackupError::WrongKey("the identity does not open this backup (wrong key)".into())
            }
            age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
                BackupError::WrongKey("the passphrase does not open this backup (wrong key)".into())
            }
            age::DecryptError::InvalidMac | age::DecryptError::InvalidHeader => {
                BackupError::Damaged("the backup's header was altered".into())
            }
            other => BackupError::Decrypt(other.to_string()),
        })
    }
}

/// What a snapshot needs beside the store: the master key and the configuration.
pub fn extras(cfg: &Config) -> Result<archive::Extras, BackupError> {
    let path = cfg.master_key_path();
    let master_key = Zeroizing::new(fs::read(&path).map_err(|e| {
        BackupError::Source(format!(
            "cannot read the master key {}: {e}",
            path.display()
        ))
    })?);
    let config_toml = toml::to_string(cfg).map_err(|e| BackupError::Source(e.to_string()))?;
    Ok(archive::Extras {
        master_key,
        config_toml,
    })
}

/// Writes a backup of an open store to `out`, producing the snapshot on a second
/// thread while this one encrypts (the two halves run in parallel). A running
/// service takes `Documents::hold_files` around this call.
pub fn export_store(
    store: &Store,
    extras: &archive::Extras,
    out: &Path,
    protect: &Protect,
    progress: archive::Progress<'_>,
) -> Result<Manifest, BackupError> {
    let mut output = Output::create(out)?;
    let (mut reader, writer) = io::pipe()?;
    durable::widen_pipe(&writer);
    let manifest = std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let w = BufWriter::with_capacity(1 << 20, writer);
            archive::write_snapshot(store, extras, w, &|_| {})
        });
        let encrypted = output.encrypt_from(protect, &mut reader, progress);
        drop(reader);
        let produced = producer
            .join()
            .map_err(|_| BackupError::Source("the snapshot thread failed".into()))?;
        match (produced, encrypted) {
            (Ok(manifest), Ok(_)) => Ok(manifest),
            // The snapshot stopped because the encrypting side did (full disk, a
            // signal): that side's error is the one that explains it.
            (Err(BackupError::Io(e)), Err(why)) if e.kind() == io::ErrorKind::BrokenPipe => {
                Err(why)
            }
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    })?;
    output.finish()?;
    Ok(manifest)
}

/// Where checkpoint files go.
pub fn checkpoint_dir(store: &Store, cfg: &Config) -> PathBuf {
    cfg.checkpoint_dir
        .clone()
        .unwrap_or_else(|| store.dir().join("checkpoints"))
}

/// Saves the checkpoint a backup recorded beside the other checkpoints. The backup
/// is complete without it (its manifest holds the checkpoint too), so a failure is
/// reported on stderr and in the log rather than failing the backup.
pub fn keep_backup_checkpoint(
    store: &Store,
    cfg: &Config,
    cp: &crate::store::checkpoint::Checkpoint,
) {
    let dir = checkpoint_dir(store, cfg);
    if let Err(e) = write_checkpoint_to(&dir, cp) {
        tracing::warn!(error = %e, "the backup's checkpoint could not be saved");
        eprintln!(
            "warning: the backup's checkpoint could not be saved in {}: {e}",
            dir.display()
        );
    }
}

/// Saves a checkpoint as `checkpoint-<entries>-<ms>.json` in `dir` (mode 0700).
pub fn write_checkpoint_to(
    dir: &Path,
    cp: &crate::store::checkpoint::Checkpoint,
) -> Result<PathBuf, BackupError> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let path = dir.join(format!("checkpoint-{:010}-{}.json", cp.entries, cp.at_ms));
    let text = serde_json::to_string_pretty(cp).map_err(|e| BackupError::Io(e.into()))?;
    let tmp = path.with_extension("json.partial");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}
