//! Service secrets kept in the store: the document identity (the age key that
//! stored files are encrypted to) and the keys that sign document links.
//!
//! Guarantees: secrets are sealed like every other value, so they are exactly as safe
//! as the rest of the data directory and no safer to copy: a copy of the data
//! directory without the master key opens none of them. Creating, replacing and
//! exporting a secret each commit with an audit entry; the entry never holds the
//! secret.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::audit::{self, Event, Outcome};
use super::{META, Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    DocumentIdentity,
    DocumentLinkKeys,
}

impl Secret {
    fn key(self) -> &'static [u8] {
        match self {
            Secret::DocumentIdentity => b"secret:document_identity",
            Secret::DocumentLinkKeys => b"secret:document_link_keys",
        }
    }

    fn created(self) -> &'static str {
        match self {
            Secret::DocumentIdentity => "document.identity.create",
            Secret::DocumentLinkKeys => "document.link_key.create",
        }
    }
}

/// The secret, created by `make` (and audited) on first use.
pub fn load_or_create<T, E>(
    store: &Store,
    secret: Secret,
    make: impl FnOnce() -> std::result::Result<T, E>,
) -> Result<std::result::Result<T, E>>
where
    T: Serialize + DeserializeOwned,
{
    if let Some(v) = store.read()?.get::<T>(META, secret.key())? {
        return Ok(Ok(v));
    }
    let tx = store.write()?;
    // Another opener may have created it between the two transactions.
    if let Some(v) = tx.get::<T>(META, secret.key())? {
        return Ok(Ok(v));
    }
    let value = match make() {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    tx.put(META, secret.key(), &value)?;
    audit::append(&tx, Event::anonymous(secret.created(), None, Outcome::Ok))?;
    tx.commit()?;
    Ok(Ok(value))
}

/// Replaces a secret, audited by `event` in the same commit.
pub fn replace<T: Serialize>(store: &Store, secret: Secret, value: &T, event: Event) -> Result<()> {
    let tx = store.write()?;
    tx.put(META, secret.key(), value)?;
    audit::append(&tx, event)?;
    tx.commit()
}

/// Reads a secret for export, audited by `event` in its own commit first, so an
/// export that the audit cannot record does not happen.
pub fn export<T: DeserializeOwned>(
    store: &Store,
    secret: Secret,
    event: Event,
) -> Result<Option<T>> {
    let tx = store.write()?;
    let value = tx.get::<T>(META, secret.key())?;
    if value.is_some() {
        audit::append(&tx, event)?;
        tx.commit()?;
    }
    Ok(value)
}
