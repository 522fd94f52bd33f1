//! Transactions that seal on the way in and open on the way out.
//!
//! `WriteTx` and `ReadTx` expose the same typed reads; only `WriteTx` can change
//! anything. Values are JSON inside the seal, bound to `table \0 key`.

use redb::{ReadableTable, ReadableTableMetadata, TableHandle};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Def, Result, StoreError, corrupt};
use crate::crypto::Keys;

fn aad(def: Def, key: &[u8]) -> Vec<u8> {
    let name = def.name();
    let mut out = Vec::with_capacity(name.len() + 1 + key.len());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(key);
    out
}

fn open_value<T: DeserializeOwned>(keys: &Keys, def: Def, key: &[u8], sealed: &[u8]) -> Result<T> {
    let plain = keys
        .open(sealed, &aad(def, key))
        .map_err(|_| corrupt(def.name(), "a value failed to open"))?;
    serde_json::from_slice(&plain).map_err(|e| corrupt(def.name(), &e.to_string()))
}

fn get_in<T: DeserializeOwned>(
    keys: &Keys,
    def: Def,
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<T>> {
    match table.get(key)? {
        Some(v) => open_value(keys, def, key, v.value()).map(Some),
        None => Ok(None),
    }
}

/// Keys of an index table between `lo` (inclusive) and `hi` (exclusive), newest
/// (largest) first, at most `limit`.
fn keys_desc_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    lo: &[u8],
    hi: &[u8],
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for item in table.range(lo..hi)?.rev() {
        let (k, _) = item?;
        out.push(k.value().to_vec());
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Keys between `lo` and `hi`, oldest (smallest) first, at most `limit`.
fn keys_asc_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    lo: &[u8],
    hi: &[u8],
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for item in table.range(lo..hi)?.take(limit) {
        let (k, _) = item?;
        out.push(k.value().to_vec());
    }
    Ok(out)
}

/// The `n`th key (from 0, ascending) between `lo` and `hi`, without collecting.
fn nth_key_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    lo: &[u8],
    hi: &[u8],
    n: usize,
) -> Result<Option<Vec<u8>>> {
    match table.range(lo..hi)?.nth(n) {
        Some(item) => Ok(Some(item?.0.value().to_vec())),
        None => Ok(None),
    }
}

/// Sealed (key, value) pairs between `lo` and `hi`, in the direction asked.
fn entries_in<T: DeserializeOwned>(
    keys: &Keys,
    def: Def,
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    lo: &[u8],
    hi: &[u8],
    desc: bool,
    limit: usize,
) -> Result<Vec<(Vec<u8>, T)>> {
    let range = table.range(lo..hi)?;
    let items: Box<dyn Iterator<Item = _>> = if desc {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut out = Vec::new();
    for item in items.take(limit) {
        let (k, v) = item?;
        let key = k.value().to_vec();
        let value = open_value(keys, def, &key, v.value())?;
        out.push((key, value));
    }
    Ok(out)
}

pub struct WriteTx<'s> {
    tx: redb::WriteTransaction,
    keys: &'s Keys,
}

impl<'s> WriteTx<'s> {
    pub(super) fn new(tx: redb::WriteTransaction, keys: &'s Keys) -> Self {
        Self { tx, keys }
    }

    /// Every raw (key, sealed value) of a table as this transaction sees it. Collect
    /// what to change and change it after the scan returns.
    pub fn raw_scan_write(
        &self,
        def: Def,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let table = self.tx.open_table(def)?;
        for item in table.iter()? {
            let (k, v) = item?;
            f(k.value(), v.value())?;
        }
        Ok(())
    }

    /// Opens one raw value read by `raw_scan_write`.
    pub fn open_raw<T: DeserializeOwned>(&self, def: Def, key: &[u8], sealed: &[u8]) -> Result<T> {
        open_value(self.keys, def, key, sealed)
    }

    pub fn keys(&self) -> &Keys {
        self.keys
    }

    pub fn put<T: Serialize>(&self, def: Def, key: &[u8], value: &T) -> Result<()> {
        let plain = serde_json::to_vec(value).map_err(|e| StoreError::Db(e.to_string()))?;
        let sealed = self.keys.seal(&plain, &aad(def, key))?;
        self.tx.open_table(def)?.insert(key, sealed.as_slice())?;
        Ok(())
    }

    pub fn get<T: DeserializeOwned>(&self, def: Def, key: &[u8]) -> Result<Option<T>> {
        get_in(self.keys, def, &self.tx.open_table(def)?, key)
    }

    /// Whether a key is present (index tables).
    pub fn exists(&self, def: Def, key: &[u8]) -> Result<bool> {
        Ok(self.tx.open_table(def)?.get(key)?.is_some())
    }

    pub fn remove(&self, def: Def, key: &[u8]) -> Result<bool> {
        Ok(self.tx.open_table(def)?.remove(key)?.is_some())
    }

    /// Adds a key with no value to an index table.
    pub fn index_put(&self, def: Def, key: &[u8]) -> Result<()> {
        self.tx.open_table(def)?.insert(key, [].as_slice())?;
        Ok(())
    }

    pub fn keys_desc(&self, def: Def, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Vec<u8>>> {
        keys_desc_in(&self.tx.open_table(def)?, lo, hi, limit)
    }

    /// The last (largest-key) entry of a sealed table.
    pub fn last<T: DeserializeOwned>(&self, def: Def) -> Result<Option<(Vec<u8>, T)>> {
        let table = self.tx.open_table(def)?;
        let last = table.last()?;
        match last {
            Some((k, v)) => {
                let key = k.value().to_vec();
                Ok(Some((
                    key.clone(),
                    open_value(self.keys, def, &key, v.value())?,
                )))
            }
            None => Ok(None),
        }
    }

    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

pub struct ReadTx<'s> {
    tx: redb::ReadTransaction,
    keys: &'s Keys,
}

impl<'s> ReadTx<'s> {
    pub(super) fn new(tx: redb::ReadTransaction, keys: &'s Keys) -> Self {
        Self { tx, keys }
    }

    pub fn get<T: DeserializeOwned>(&self, def: Def, key: &[u8]) -> Result<Option<T>> {
        get_in(self.keys, def, &self.tx.open_table(def)?, key)
    }

    pub fn keys_desc(&self, def: Def, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Vec<u8>>> {
        keys_desc_in(&self.tx.open_table(def)?, lo, hi, limit)
    }

    pub fn keys_asc(&self, def: Def, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Vec<u8>>> {
        keys_asc_in(&self.tx.open_table(def)?, lo, hi, limit)
    }

    pub fn nth_key(&self, def: Def, lo: &[u8], hi: &[u8], n: usize) -> Result<Option<Vec<u8>>> {
        nth_key_in(&self.tx.open_table(def)?, lo, hi, n)
    }

    pub fn entries<T: DeserializeOwned>(
        &self,
        def: Def,
        lo: &[u8],
        hi: &[u8],
        desc: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>> {
        entries_in(
            self.keys,
            def,
            &self.tx.open_table(def)?,
            lo,
            hi,
            desc,
            limit,
        )
    }

    pub fn len(&self, def: Def) -> Result<u64> {
        Ok(self.tx.open_table(def)?.len()?)
    }

    /// Every raw (key, sealed value) of a table, for integrity checks.
    pub fn raw_scan(&self, def: Def, mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        let table = self.tx.open_table(def)?;
        for item in table.range(..)? {
            let (k, v) = item?;
            f(k.value(), v.value())?;
        }
        Ok(())
    }

    /// Every raw (key, sealed value) of the table called `name`, for integrity tooling.
    pub fn raw_scan_table(&self, name: &str, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let def = super::table_named(name).ok_or(StoreError::NotFound)?;
        self.raw_scan(def, |k, v| {
            f(k, v);
            Ok(())
        })
    }

    /// Every raw (table name, key, sealed value) of every table in the file, table by
    /// table in name order, from this one transaction: the consistent snapshot a
    /// backup is made of. Tables are found in the file, not in a list, so a table
    /// added later is never left out.
    pub fn system_scan_all(
        &self,
        mut f: impl FnMut(&str, &[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut names: Vec<String> = self
            .tx
            .list_tables()?
            .map(|h| h.name().to_string())
            .collect();
        names.sort();
        for name in names {
            let def: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new(&name);
            let table = self.tx.open_table(def)?;
            for item in table.iter()? {
                let (k, v) = item?;
                f(&name, k.value(), v.value())?;
            }
        }
        Ok(())
    }

    /// Opens one raw value read by `raw_scan`.
    pub fn open_raw<T: DeserializeOwned>(&self, def: Def, key: &[u8], sealed: &[u8]) -> Result<T> {
        open_value(self.keys, def, key, sealed)
    }
}
