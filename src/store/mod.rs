//! The encrypted store: one redb file in the data directory.
//!
//! Guarantees: every value written through this module is sealed with the data
//! directory's key and bound to its table and record key (see `crypto::Keys::seal`);
//! the only table holding unsealed values is `bootstrap` (the format version and the
//! already-wrapped data key). Index tables carry ids and states in their keys and no
//! values. Nothing above this module sees ciphertext, nothing below it sees plaintext.
//! Read and write transactions are different types; an audit entry is appended inside
//! the write transaction of the change it records.

pub mod accounts;
pub mod audit;
pub mod backups;
pub mod checkpoint;
pub mod credentials;
pub mod documents;
pub mod orders;
pub mod own_sessions;
pub mod placement;
pub mod retention;
pub mod search;
pub mod second_factor;
pub mod secrets;
pub mod self_service;
pub mod sessions;
pub mod signin_guard;
pub mod signups;
pub mod stats;
pub mod threads;
mod tx;

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::crypto::{CryptoError, Keys, MasterKey};

pub use tx::{ReadTx, WriteTx};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
pub const STORE_FILE: &str = "store.redb";

type Bytes = &'static [u8];
pub(crate) type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

pub(crate) const BOOTSTRAP: Def = TableDefinition::new("bootstrap");
pub(crate) const META: Def = TableDefinition::new("meta");
pub(crate) const ORGS: Def = TableDefinition::new("orgs");
pub(crate) const USERS: Def = TableDefinition::new("users");
pub(crate) const USER_EMAIL_IDX: Def = TableDefinition::new("user_email_idx");
pub(crate) const SESSIONS: Def = TableDefinition::new("sessions");
pub(crate) const USER_SESSIONS_IDX: Def = TableDefinition::new("user_sessions_idx");
pub(crate) const TOKENS: Def = TableDefinition::new("tokens");
pub(crate) const USER_TOKENS_IDX: Def = TableDefinition::new("user_tokens_idx");
pub(crate) const ORDERS: Def = TableDefinition::new("orders");
pub(crate) const ORDER_IDX: Def = TableDefinition::new("order_idx");
pub(crate) const AUDIT: Def = TableDefinition::new("audit");
pub(crate) const STATS: Def = TableDefinition::new("stats");
pub(crate) const OPEN_OFFERS_IDX: Def = TableDefinition::new("open_offers_idx");
pub(crate) const ANSWER_TIME_IDX: Def = TableDefinition::new("answer_time_idx");
pub(crate) const PLACEMENT_TIME_IDX: Def = TableDefinition::new("placement_time_idx");
pub(crate) const SEARCH_IDX: Def = TableDefinition::new("search_idx");
/// Messages, keyed by order, thread, message id and author (ids only).
pub(crate) const MESSAGES: Def = TableDefinition::new("messages");
/// Which threads of an order have messages: order ‖ thread.
pub(crate) const THREAD_IDX: Def = TableDefinition::new("thread_idx");
/// The last message each user has read in a thread: user ‖ order ‖ thread.
pub(crate) const READ_MARKS: Def = TableDefinition::new("read_marks");
pub(crate) const DOCUMENTS: Def = TableDefinition::new("documents");
/// An order's documents: order ‖ document.
pub(crate) const ORDER_DOCS_IDX: Def = TableDefinition::new("order_docs_idx");
/// Accounts waiting for agency staff: queue kind ‖ user id → when it was asked.
pub(crate) const ACCOUNT_QUEUE: Def = TableDefinition::new("account_queue");
/// Failed sign-in counts and blocks, keyed by kind ‖ keyed hash (no emails).
pub(crate) const SIGNIN_GUARD: Def = TableDefinition::new("signin_guard");
/// Second factors by user id; pending sign-ins and reset links by the SHA-256 of
/// their secret.
pub(crate) const SECOND_FACTORS: Def = TableDefinition::new("second_factors");
pub(crate) const PENDING_SIGNINS: Def = TableDefinition::new("pending_signins");
pub(crate) const RESET_LINKS: Def = TableDefinition::new("reset_links");

const ALL_TABLES: [Def; 27] = [
    BOOTSTRAP,
    META,
    ORGS,
    USERS,
    USER_EMAIL_IDX,
    SESSIONS,
    USER_SESSIONS_IDX,
    TOKENS,
    USER_TOKENS_IDX,
    ORDERS,
    ORDER_IDX,
    AUDIT,
    STATS,
    OPEN_OFFERS_IDX,
    ANSWER_TIME_IDX,
    PLACEMENT_TIME_IDX,
    SEARCH_IDX,
    MESSAGES,
    THREAD_IDX,
    READ_MARKS,
    DOCUMENTS,
    ORDER_DOCS_IDX,
    ACCOUNT_QUEUE,
    SIGNIN_GUARD,
    SECOND_FACTORS,
    PENDING_SIGNINS,
    RESET_LINKS,
];

const K_FORMAT: Bytes = b"format_version";
const K_WRAPPED: Bytes = b"wrapped_data_key";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{0} is not an initialised data directory (no {STORE_FILE}); run `ihms-connect serve` or `ihms-connect init` first"
    )]
    NotInitialised(String),
    #[error("{0} is already initialised")]
    AlreadyInitialised(String),
    #[error("the data directory has format version {0}, this build reads version {FORMAT_VERSION}")]
    UnknownVersion(u32),
    #[error("the data directory is in use by another process (is the service running?)")]
    Locked,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("stored value {table} is damaged: {why}")]
    Corrupt { table: String, why: String },
    #[error("storage: {0}")]
    Db(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(&'static str),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            other => StoreError::Db(other.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub struct Store {
    db: Database,
    keys: Keys,
    dir: PathBuf,
}

impl Store {
    /// Whether `dir` already holds a store.
    pub fn exists(dir: &Path) -> bool {
        dir.join(STORE_FILE).exists()
    }

    /// Creates a new store in `dir` with a fresh data key wrapped by `master`.
    pub fn create(dir: &Path, master: &MasterKey) -> Result<Self> {
        if Self::exists(dir) {
            return Err(StoreError::AlreadyInitialised(dir.display().to_string()));
        }
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(e.to_string()))?;
        let db = Database::create(dir.join(STORE_FILE))?;
        let (wrapped, keys) = master.new_data_key()?;
        let tx = db.begin_write()?;
        {
            for def in ALL_TABLES {
                tx.open_table(def)?;
            }
            let mut boot = tx.open_table(BOOTSTRAP)?;
            boot.insert(K_FORMAT, FORMAT_VERSION.to_be_bytes().as_slice())?;
            boot.insert(K_WRAPPED, wrapped.as_slice())?;
        }
        tx.commit()?;
        Ok(Self {
            db,
            keys,
            dir: dir.to_path_buf(),
        })
    }

    /// Opens an existing store, checking its format version and the master key.
    pub fn open(dir: &Path, master: &MasterKey) -> Result<Self> {
        if !Self::exists(dir) {
            return Err(StoreError::NotInitialised(dir.display().to_string()));
        }
        let db = Database::open(dir.join(STORE_FILE))?;
        let (version, wrapped) = {
            let tx = db.begin_read()?;
            let boot = tx.open_table(BOOTSTRAP)?;
            let version = boot
                .get(K_FORMAT)?
                .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| corrupt("bootstrap", "no format version"))?;
            let wrapped = boot
                .get(K_WRAPPED)?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| corrupt("bootstrap", "no data key"))?;
            (version, wrapped)
        };
        if version != FORMAT_VERSION {
            return Err(StoreError::UnknownVersion(version));
        }
        let keys = master.open_data_key(&wrapped)?;
        // Tables added by later builds of the same format start empty.
        let tx = db.begin_write()?;
        for def in ALL_TABLES {
            tx.open_table(def)?;
        }
        tx.commit()?;
        Ok(Self {
            db,
            keys,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn write(&self) -> Result<WriteTx<'_>> {
        Ok(WriteTx::new(self.db.begin_write()?, &self.keys))
    }

    pub fn read(&self) -> Result<ReadTx<'_>> {
        Ok(ReadTx::new(self.db.begin_read()?, &self.keys))
    }

    /// Bytes used by the store file on disk.
    pub fn size_on_disk(&self) -> u64 {
        std::fs::metadata(self.dir.join(STORE_FILE))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Raw access to one table's sealed bytes, for integrity tooling and tests that
    /// tamper with a copy of a store. Named `system_` so every use can be found.
    pub fn system_raw_put(&self, table: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let def = table_named(table).ok_or(StoreError::NotFound)?;
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(def)?;
            match value {
                Some(v) => {
                    t.insert(key, v)?;
                }
                None => {
                    t.remove(key)?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Loads raw sealed records into a new store file (a restore). The values are
/// written exactly as they were read from another store with `system_scan_all`, so
/// they stay sealed under that store's data key; open the result with `Store::open`
/// and that store's master key.
pub struct RawLoader {
    db: Database,
}

impl RawLoader {
    /// Creates the store file in `dir`, which must not hold one yet.
    pub fn create(dir: &Path) -> Result<Self> {
        if Store::exists(dir) {
            return Err(StoreError::AlreadyInitialised(dir.display().to_string()));
        }
        Ok(Self {
            db: Database::create(dir.join(STORE_FILE))?,
        })
    }

    /// Starts one commit's worth of records; `LoadTx::put` each, then `commit`.
    pub fn begin(&self) -> Result<LoadTx> {
        Ok(LoadTx {
            tx: self.db.begin_write()?,
        })
    }
}

/// Records being loaded by a `RawLoader`, written straight through (nothing is
/// gathered in memory, so a segment of many tiny records costs no more than its
/// bytes).
pub struct LoadTx {
    tx: redb::WriteTransaction,
}

impl LoadTx {
    /// Writes one record. Table names are checked (lowercase letters, digits and `_`).
    pub fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        if table.is_empty()
            || table.len() > 64
            || !table
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(corrupt("backup", "a table name is not valid"));
        }
        let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(table);
        let mut t = self.tx.open_table(def)?;
        t.insert(key, value)?;
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

pub(crate) fn table_named(name: &str) -> Option<Def> {
    ALL_TABLES
        .into_iter()
        .find(|d| redb::TableHandle::name(d) == name)
}

pub(crate) fn corrupt(table: &str, why: &str) -> StoreError {
    StoreError::Corrupt {
        table: table.to_string(),
        why: why.to_string(),
    }
}

/// Milliseconds since the Unix epoch, UTC.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
