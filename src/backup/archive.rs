//! The plaintext inside a backup: a tar stream with a fixed layout.
//!
//! ```text
//! ihms-backup/FORMAT             {"format":1,"app_version":"…"}   (always first)
//! ihms-backup/store/000001.bin   sealed store records, ≤ 4 MiB per segment
//! ihms-backup/documents/<id>.age document files, still age-encrypted
//! ihms-backup/master.key         the master key the store records are sealed under
//! ihms-backup/config.toml        the configuration in force
//! ihms-backup/manifest.json      counts, audit head, checkpoint, BLAKE3 checksum of every entry (always last)
//! ```
//!
//! Guarantees: the store records and the list of documents come from ONE read
//! transaction, so the snapshot is consistent while writes go on; memory stays flat
//! (one segment buffer, streamed files); the reader accepts exactly this layout —
//! the format entry first, known names only (no paths outside the layout), every
//! entry's size and BLAKE3 checksum equal to the manifest's, no name twice, the
//! manifest last — and reports anything else as a damaged backup. Store records stay sealed under the data key
//! throughout: the tar never holds a plaintext record.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::BackupError;
use crate::store::checkpoint::{self, Checkpoint};
use crate::store::{Store, StoreError, documents};

pub const FORMAT: u32 = 1;
const ROOT: &str = "ihms-backup/";
const FORMAT_NAME: &str = "ihms-backup/FORMAT";
const MANIFEST_NAME: &str = "ihms-backup/manifest.json";
const MASTER_KEY_NAME: &str = "ihms-backup/master.key";
const CONFIG_NAME: &str = "ihms-backup/config.toml";
const STORE_PREFIX: &str = "ihms-backup/store/";
const DOCS_PREFIX: &str = "ihms-backup/documents/";
const SEGMENT_BYTES: usize = 4 * 1024 * 1024;
/// Largest accepted small entry (format, manifest, key, config) when reading.
const SMALL_LIMIT: u64 = 64 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct FormatEntry {
    format: u32,
    app_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub name: String,
    pub size: u64,
    /// BLAKE3 of the entry, hex.
    pub blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub app_version: String,
    pub created_ms: i64,
    /// Records per store table.
    pub tables: BTreeMap<String, u64>,
    pub documents: u64,
    pub document_bytes: u64,
    pub audit_entries: u64,
    pub audit_head: String,
    /// The chain head as of the snapshot, signed by the appliance.
    pub checkpoint: Checkpoint,
    /// Every entry before the manifest, in order.
    pub files: Vec<FileSum>,
}

impl Manifest {
    pub fn records(&self) -> u64 {
        self.tables.values().sum()
    }
}

/// What a snapshot is taken from besides the store.
pub struct Extras {
    pub master_key: zeroize::Zeroizing<Vec<u8>>,
    pub config_toml: String,
}

/// Counts bytes handed to the writer, for progress.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

struct Hashing<R> {
    inner: R,
    hash: blake3::Hasher,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h
}

struct Writer<'p, W: Write> {
    tar: tar::Builder<W>,
    files: Vec<FileSum>,
    progress: Progress<'p>,
    done: u64,
}

impl<W: Write> Writer<'_, W> {
    fn add(&mut self, name: &str, size: u64, data: impl Read) -> io::Result<()> {
        let mut reader = Hashing {
            inner: data.take(size),
            hash: blake3::Hasher::new(),
            size: 0,
        };
        let mut h = header(size);
        self.tar.append_data(&mut h, name, &mut reader)?;
        if reader.size != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name} changed size while it was copied"),
            ));
        }
        self.files.push(FileSum {
            name: name.to_string(),
            size,
            blake3: reader.hash.finalize().to_hex().to_string(),
        });
        self.done += size;
        (self.progress)(self.done);
        Ok(())
    }

    fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.add(name, bytes.len() as u64, bytes)
    }
}

fn put_record(buf: &mut Vec<u8>, table: &str, key: &[u8], value: &[u8]) {
    buf.extend_from_slice(&(table.len() as u16).to_be_bytes());
    buf.extend_from_slice(table.as_bytes());
    buf.extend_from_slice(&(key.len() as u32).to_be_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&(value.len() as u32).to_be_bytes());
    buf.extend_from_slice(value);
}

/// Roughly how many bytes a snapshot of `store` will be (for progress bars).
pub fn estimate(store: &Store) -> u64 {
    let docs = std::fs::read_dir(store.dir().join(crate::documents::DIR))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum::<u64>()
        })
        .unwrap_or(0);
    docs + store.size_on_disk()
}

/// Writes a snapshot of `store` (and its document files) as the tar stream above.
/// Returns the manifest written last.
pub fn write_snapshot<W: Write>(
    store: &Store,
    extras: &Extras,
    out: W,
    progress: Progress<'_>,
) -> Result<Manifest, BackupError> {
    let tx = store.read()?;
    let mut w = Writer {
        tar: tar::Builder::new(out),
        files: Vec::new(),
        progress,
        done: 0,
    };
    let format = serde_json::to_vec(&FormatEntry {
        format: FORMAT,
        app_version: env!("CARGO_PKG_VERSION").into(),
    })
    .map_err(|e| BackupError::Io(e.into()))?;
    w.add_bytes(FORMAT_NAME, &format)?;

    // Store records, in segments.
    let mut tables: BTreeMap<String, u64> = BTreeMap::new();
    let mut segment = Vec::with_capacity(SEGMENT_BYTES + 64 * 1024);
    let mut segments = 0u32;
    let mut failed: Option<io::Error> = None;
    let scanned = tx.system_scan_all(|table, key, value| {
        *tables.entry(table.to_string()).or_default() += 1;
        put_record(&mut segment, table, key, value);
        if segment.len() >= SEGMENT_BYTES {
            segments += 1;
            if let Err(e) = w.add_bytes(&format!("{STORE_PREFIX}{segments:06}.bin"), &segment) {
                failed = Some(e);
                return Err(StoreError::Db("backup output failed".into()));
            }
            segment.clear();
        }
        Ok(())
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    scanned?;
    if !segment.is_empty() {
        segments += 1;
        w.add_bytes(&format!("{STORE_PREFIX}{segments:06}.bin"), &segment)?;
    }
    drop(segment);

    // Document files of the documents live in this snapshot.
    let docs_dir = store.dir().join(crate::documents::DIR);
    let ids = documents::system_live_ids(&tx)?;
    let mut document_bytes = 0;
    for id in &ids {
        let path = docs_dir.join(format!("{id}.age"));
        let file = std::fs::File::open(&path).map_err(|e| {
            BackupError::Source(format!("the file of document {id} cannot be read: {e}"))
        })?;
        let size = file.metadata()?.len();
        w.add(&format!("{DOCS_PREFIX}{id}.age"), size, file)?;
        document_bytes += size;
    }

    w.add_bytes(MASTER_KEY_NAME, &extras.master_key)?;
    w.add_bytes(CONFIG_NAME, extras.config_toml.as_bytes())?;

    let checkpoint = checkpoint::make(store, &tx)?;
    let manifest = Manifest {
        format: FORMAT,
        app_version: env!("CARGO_PKG_VERSION").into(),
        created_ms: crate::store::now_ms(),
        tables,
        documents: ids.len() as u64,
        document_bytes,
        audit_entries: checkpoint.entries,
        audit_head: checkpoint.head.clone(),
        checkpoint,
        files: std::mem::take(&mut w.files),
    };
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io(e.into()))?;
    let mut h = header(bytes.len() as u64);
    w.tar.append_data(&mut h, MANIFEST_NAME, bytes.as_slice())?;
    w.tar.into_inner()?.flush()?;
    Ok(manifest)
}

/// What the reader hands over, entry by entry, in archive order.
pub trait Sink {
    fn store_segment(&mut self, bytes: &[u8]) -> Result<(), BackupError>;
    fn document(&mut self, id: Uuid, data: &mut dyn Read) -> Result<(), BackupError>;
    fn master_key(&mut self, bytes: &[u8]) -> Result<(), BackupError>;
    fn config(&mut self, bytes: &[u8]) -> Result<(), BackupError>;
}

/// A sink that keeps nothing (verification).
pub struct Discard;

impl Sink for Discard {
    fn store_segment(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        for_each_record(bytes, |_, _, _| Ok(()))
    }
    fn document(&mut self, _: Uuid, data: &mut dyn Read) -> Result<(), BackupError> {
        io::copy(data, &mut io::sink())?;
        Ok(())
    }
    fn master_key(&mut self, _: &[u8]) -> Result<(), BackupError> {
        Ok(())
    }
    fn config(&mut self, _: &[u8]) -> Result<(), BackupError> {
        Ok(())
    }
}

/// Splits a store segment into its (table, key, value) records.
pub fn for_each_record(
    mut bytes: &[u8],
    mut f: impl FnMut(&str, &[u8], &[u8]) -> Result<(), BackupError>,
) -> Result<(), BackupError> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], BackupError> {
        if bytes.len() < n {
            return Err(BackupError::Damaged("a store segment is cut short".into()));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn len(bytes: &mut &[u8], width: usize) -> Result<usize, BackupError> {
        let raw = take(bytes, width)?;
        Ok(raw
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
    }
    while !bytes.is_empty() {
        let n = len(&mut bytes, 2)?;
        let table = std::str::from_utf8(take(&mut bytes, n)?)
            .map_err(|_| BackupError::Damaged("a table name is not text".into()))?;
        let n = len(&mut bytes, 4)?;
        let key = take(&mut bytes, n)?;
        let n = len(&mut bytes, 4)?;
        let value = take(&mut bytes, n)?;
        f(table, key, value)?;
    }
    Ok(())
}

fn read_small(entry: &mut impl Read, size: u64, name: &str) -> Result<Vec<u8>, BackupError> {
    if size > SMALL_LIMIT {
        return Err(BackupError::Damaged(format!("{name} is implausibly large")));
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut buf)?;
    Ok(buf)
}

fn doc_id(name: &str) -> Option<Uuid> {
    let file = name.strip_prefix(DOCS_PREFIX)?.strip_suffix(".age")?;
    let id = Uuid::parse_str(file).ok()?;
    // Only the canonical spelling, so one document cannot appear under two names.
    (id.to_string() == file).then_some(id)
}

fn is_segment(name: &str) -> bool {
    name.strip_prefix(STORE_PREFIX)
        .and_then(|s| s.strip_suffix(".bin"))
        .is_some_and(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads a backup's tar stream into `sink`, checking the layout and every checksum
/// against the manifest. Returns the manifest.
pub fn read_archive(
    input: impl Read,
    sink: &mut dyn Sink,
    progress: Progress<'_>,
) -> Result<Manifest, BackupError> {
    let mut archive = tar::Archive::new(input);
    let mut seen: Vec<FileSum> = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut manifest: Option<Manifest> = None;
    let mut done = 0u64;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(|e| match seen.is_empty() {
            true => BackupError::Damaged(
                "this is not an IHMS Connect backup (no format entry first)".into(),
            ),
            false => damaged(e),
        })?;
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| BackupError::Damaged("an entry name is not text".into()))?;
        let size = entry.header().size().map_err(damaged)?;
        if manifest.is_some() {
            return Err(BackupError::Damaged(format!(
                "unexpected entry {name} after the manifest"
            )));
        }
        if seen.is_empty() && name != FORMAT_NAME {
            return Err(BackupError::Damaged(
                "this is not an IHMS Connect backup (no format entry first)".into(),
            ));
        }
        if !name.starts_with(ROOT) || entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BackupError::Damaged(format!("unexpected entry {name}")));
        }
        if !names.insert(name.clone()) {
            return Err(BackupError::Damaged(format!("{name} appears twice")));
        }
        if name == MANIFEST_NAME {
            let bytes = read_small(&mut entry, size, &name)?;
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| BackupError::Damaged(format!("the manifest cannot be read: {e}")))?;
            if m.files != seen {
                return Err(BackupError::Damaged(
                    "the contents do not match the manifest (altered or incomplete)".into(),
                ));
            }
            manifest = Some(m);
            continue;
        }
        let mut hashing = Hashing {
            inner: (&mut entry).take(size),
            hash: blake3::Hasher::new(),
            size: 0,
        };
        if name == FORMAT_NAME {
            let bytes = read_small(&mut hashing, size, &name)?;
            let f: FormatEntry = serde_json::from_slice(&bytes)
                .map_err(|_| BackupError::Damaged("the format entry cannot be read".into()))?;
            if f.format != FORMAT {
                return Err(BackupError::UnknownFormat(f.format, f.app_version));
            }
        } else if is_segment(&name) {
            let bytes = read_small(&mut hashing, size, &name)?;
            sink.store_segment(&bytes)?;
        } else if let Some(id) = doc_id(&name) {
            sink.document(id, &mut hashing)?;
            // Drain what the sink left, so the checksum covers the whole entry.
            io::copy(&mut hashing, &mut io::sink())?;
        } else if name == MASTER_KEY_NAME {
            let bytes = zeroize::Zeroizing::new(read_small(&mut hashing, size, &name)?);
            sink.master_key(&bytes)?;
        } else if name == CONFIG_NAME {
            let bytes = read_small(&mut hashing, size, &name)?;
            sink.config(&bytes)?;
        } else {
            return Err(BackupError::Damaged(format!("unexpected entry {name}")));
        }
        if hashing.size != size {
            return Err(BackupError::Damaged(format!("{name} is cut short")));
        }
        seen.push(FileSum {
            name,
            size,
            blake3: hashing.hash.finalize().to_hex().to_string(),
        });
        done += size;
        progress(done);
    }
    manifest.ok_or_else(|| {
        BackupError::Damaged("the backup ends before its manifest (truncated)".into())
    })
}

/// A tar-level error in authentic plaintext: the layout is wrong, not the
/// decryption (with_plaintext reports a failed decryption before this).
fn damaged(e: io::Error) -> BackupError {
    BackupError::Damaged(e.to_string())
}

/// Whether `path` names a document file inside a restored documents directory.
pub fn document_path(dir: &Path, id: Uuid) -> std::path::PathBuf {
    dir.join(crate::documents::DIR).join(format!("{id}.age"))
}
