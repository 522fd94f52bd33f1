//! Document files: where they live, the key they are encrypted to, and the links
//! that open them.
//!
//! Guarantees: files live in `<data_dir>/documents/` (mode 0700) under generated
//! names (`<document id>.age`), encrypted with the reference age format to the data
//! directory's X25519 document identity, so the `age` command line decrypts them with
//! the exported identity. The identity and the link keys are sealed in the store (see
//! `store::secrets`): a copy of the data directory without the master key opens no
//! document, and the identity is never a plaintext file. A file is renamed into place
//! and its directory fsynced before its record commits; files without a live record
//! (a crash between the two, or a removal interrupted before shredding) are shredded
//! by `clean_orphans` at start. Shredding overwrites a file's whole length with zeros
//! and fsyncs before unlinking it.

mod age_writer;
pub mod links;
pub mod open;
pub mod seal;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::store::audit::{self, Event, Outcome};
use crate::store::secrets::{self, Secret};
use crate::store::{Store, StoreError, documents};
use links::{Claim, LinkKeys, LinkQuery};
pub use seal::{Sealed, Sealer};

pub const DIR: &str = "documents";
const EXTENSION: &str = "age";
/// The one purpose links are issued for today.
pub const PURPOSE_DOWNLOAD: &str = "document.download";

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("documents directory: {0}")]
    Io(#[from] io::Error),
    #[error("document key material: {0}")]
    Key(String),
}

/// A link issued to one user: the query string and when it stops working.
pub struct IssuedLink {
    pub query: String,
    pub expires_ms: i64,
}

pub struct Documents {
    dir: PathBuf,
    identity: age::x25519::Identity,
    recipient: age::x25519::Recipient,
    links: LinkKeys,
    clock: Arc<dyn Clock>,
    link_ttl_ms: i64,
    holds: std::sync::Mutex<Holds>,
}

/// Backups in progress and the shredding they put off.
#[derive(Default)]
struct Holds {
    count: usize,
    deferred: Vec<Uuid>,
}

/// While one lives, removed documents' files are not shredded (a backup is reading
/// the files of its snapshot); the last one to go shreds what was put off.
pub struct FileHold<'d> {
    docs: &'d Documents,
}

impl Drop for FileHold<'_> {
    fn drop(&mut self) {
        let deferred = match self.docs.holds.lock() {
            Ok(mut h) => {
                h.count = h.count.saturating_sub(1);
                if h.count == 0 {
                    std::mem::take(&mut h.deferred)
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        for id in deferred {
            if let Err(e) = shred_file(&self.docs.path_of(id)) {
                tracing::error!(error = %e, "a removed document's file could not be shredded; it is retried at the next start");
            }
        }
    }
}

fn load_identity(store: &Store) -> Result<age::x25519::Identity, DocError> {
    let text: Zeroizing<String> =
        secrets::load_or_create(store, Secret::DocumentIdentity, || {
            Ok::<_, DocError>(
                age::x25519::Identity::generate()
                    .to_string()
                    .expose_secret()
                    .to_string(),
            )
        })??
        .into();
    text.parse()
        .map_err(|e: &str| DocError::Key(format!("the stored document identity is unusable: {e}")))
}

fn load_links(store: &Store) -> Result<LinkKeys, DocError> {
    secrets::load_or_create(store, Secret::DocumentLinkKeys, || {
        LinkKeys::generate().map_err(|e| DocError::Key(e.to_string()))
    })?
}

impl Documents {
    /// Opens (creating on first use) the documents directory, identity and link keys.
    pub fn open(store: &Store, clock: Arc<dyn Clock>, link_minutes: u64) -> Result<Self, DocError> {
        let dir = store.dir().join(DIR);
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let identity = load_identity(store)?;
        Ok(Self {
            dir,
            recipient: identity.to_public(),
            identity,
            links: load_links(store)?,
            clock,
            link_ttl_ms: i64::try_from(link_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX),
            holds: std::sync::Mutex::new(Holds::default()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file of document `id` is stored.
    pub fn path_of(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.{EXTENSION}"))
    }

    pub fn identity(&self) -> &age::x25519::Identity {
        &self.identity
    }

    /// Starts encrypting a new upload into a temp file.
    pub fn sealer(&self) -> io::Result<Sealer> {
        Sealer::start(&self.dir, self.recipient.clone())
    }

    /// Moves a finished upload into place as document `id` and makes the rename
    /// durable. Call before committing the record.
    pub fn keep(&self, sealed: &mut Sealed, id: Uuid) -> io::Result<()> {
        fs::rename(&sealed.temp, self.path_of(id))?;
        sealed.kept = true;
        File::open(&self.dir)?.sync_all()
    }

    /// A link for `user` to download document `doc`, valid for the configured time.
    pub fn issue_link(&self, doc: Uuid, user: Uuid) -> IssuedLink {
        let expires_ms = self.clock.now_ms().saturating_add(self.link_ttl_ms);
        let claim = Claim {
            doc,
            user,
            purpose: PURPOSE_DOWNLOAD,
            expires_s: expires_ms.div_euclid(1000),
        };
        IssuedLink {
            query: self.links.sign(&claim),
            expires_ms: claim.expires_s * 1000,
        }
    }

    /// Whether `q` is a live, untampered download link for `doc` issued to `user`.
    pub fn check_link(&self, q: &LinkQuery, doc: Uuid, user: Uuid) -> bool {
        self.links
            .verify(q, doc, user, PURPOSE_DOWNLOAD, self.clock.now_ms())
    }

    /// Shreds a document's file (blocking), or puts it off while a backup holds the
    /// files. A file already gone is not an error.
    pub fn shred(&self, id: Uuid) -> io::Result<()> {
        if self.defer_if_held(id) {
            return Ok(());
        }
        shred_file(&self.path_of(id))
    }

    /// Puts off shredding document `id` if a backup holds the files; true if it did.
    /// Otherwise the caller shreds `path_of(id)` now (on a blocking thread).
    pub fn defer_if_held(&self, id: Uuid) -> bool {
        match self.holds.lock() {
            Ok(mut h) if h.count > 0 => {
                h.deferred.push(id);
                true
            }
            _ => false,
        }
    }

    /// Keeps document files from being shredded until the hold is dropped. Take it
    /// before the snapshot's read transaction begins.
    pub fn hold_files(&self) -> FileHold<'_> {
        if let Ok(mut h) = self.holds.lock() {
            h.count += 1;
        }
        FileHold { docs: self }
    }

    /// Shreds every file in the documents directory that is not the file of a live
    /// document: temp files of interrupted uploads, files whose record never
    /// committed, files of removed documents. Audited when anything was removed.
    /// Returns how many files were shredded.
    pub fn clean_orphans(&self, store: &Store) -> Result<usize, DocError> {
        let mut shredded = 0;
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let keep = match name.strip_suffix(&format!(".{EXTENSION}")) {
                Some(id) => match Uuid::parse_str(id) {
                    Ok(id) => documents::system_is_live(store, id)?,
                    Err(_) => true,
                },
                None => !name.ends_with(seal::TEMP_SUFFIX),
            };
            if !keep {
                shred_file(&path)?;
                shredded += 1;
            }
        }
        if shredded > 0 {
            tracing::warn!(
                files = shredded,
                "shredded document files left without a record"
            );
            audit::record(
                store,
                Event::anonymous("document.orphans.shred", None, Outcome::Ok).object(shredded),
            )?;
        }
        Ok(shredded)
    }
}

/// Overwrites a file with zeros, fsyncs it, then unlinks it. (On copy-on-write or
/// flash storage the old blocks may survive the overwrite; they hold only age
/// ciphertext.)
pub fn shred_file(path: &Path) -> io::Result<()> {
    let mut file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let zeros = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    drop(file);
    fs::remove_file(path)
}

/// Operator command: the document identity (`AGE-SECRET-KEY-1…`), audited.
pub fn export_identity(store: &Store) -> Result<String, DocError> {
    load_identity(store)?;
    let event = Event::anonymous("document.identity.export", Some("cli".into()), Outcome::Ok);
    secrets::export::<String>(store, Secret::DocumentIdentity, event)?
        .ok_or_else(|| DocError::Key("no document identity".into()))
}

/// Operator command: a new current link key; the current one stays valid as the
/// previous one, older ones stop working. Audited. Returns the new key id.
pub fn rotate_link_key(store: &Store) -> Result<u32, DocError> {
    let rotated = load_links(store)?
        .rotated()
        .map_err(|e| DocError::Key(e.to_string()))?;
    let event = Event::anonymous("document.link_key.rotate", Some("cli".into()), Outcome::Ok)
        .object(rotated.current_id());
    secrets::replace(store, Secret::DocumentLinkKeys, &rotated, event)?;
    Ok(rotated.current_id())
}
