//! Document records: what was uploaded, where on the order it is shared, and the
//! tombstone left when it is removed.
//!
//! Guarantees: `DocumentScope`, built from a verified `Caller`, is the only way above
//! the store to list, record, open or remove documents, and every one of those
//! decides with `orders::shared_visible_to` against the order as it is now. A record
//! (the user's filename included) is sealed like every other value; the index holds
//! ids only. Removal keeps a sealed tombstone (who, when, why) and drops the
//! filename and hashes. Uploads, link issues, downloads, removals and refusals are
//! audited with ids only, in the commit of the change.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, Event, Outcome};
use super::orders::{OrderRecord, shared_visible_to};
use super::threads::{Message, insert_message, open_thread};
use super::{
    DOCUMENTS, MESSAGES, ORDER_DOCS_IDX, ORDERS, ReadTx, Result, Store, StoreError, WriteTx, now_ms,
};
use crate::domain::conversation::{MessageBody, THREAD_KEY_LEN, Thread};
use crate::domain::document::{DocKind, FileType};
use crate::domain::{Caller, Party};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub id: Uuid,
    pub order_id: Uuid,
    /// `None`: shared with everyone who sees the order; else one thread's parties.
    pub thread: Option<Thread>,
    pub message_id: Option<Uuid>,
    pub kind: DocKind,
    pub file_type: FileType,
    /// The name the uploader gave (cleaned); empty once removed.
    pub filename: String,
    pub size: u64,
    /// Hex SHA-256 of the plaintext; empty once removed.
    pub sha256: String,
    /// Hex SHA-256 of the stored file's first bytes (the age header and nonce, which
    /// are unique to this file); empty once removed.
    pub head_sha256: String,
    pub uploaded_by: Uuid,
    pub uploader_org: Uuid,
    pub uploaded_ms: i64,
    pub removed: Option<Tombstone>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    pub by: Uuid,
    pub at_ms: i64,
    pub reason: String,
}

/// What an upload produced, before it is recorded.
pub struct NewDocument {
    pub id: Uuid,
    pub kind: DocKind,
    pub file_type: FileType,
    pub filename: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub head_sha256: [u8; 32],
}

/// Where a new document goes on its order.
pub enum Attach {
    /// Shared with everyone who sees the order (agency and facility uploads only).
    Order,
    Thread(Thread),
    /// Beside an existing message, in that message's thread.
    Message(Uuid),
    /// With a new message posted in the same commit.
    NewMessage(Thread, MessageBody),
}

fn idx_key(order: Uuid, doc: Uuid) -> Vec<u8> {
    [order.as_bytes().as_slice(), doc.as_bytes()].concat()
}

/// The thread of message `id` on `order`, found by its key (no message is opened).
fn message_thread(tx: &WriteTx<'_>, order: Uuid, id: Uuid) -> Result<Option<Thread>> {
    let lo = order.as_bytes().to_vec();
    let hi = [order.as_bytes().as_slice(), &[0xff; 65]].concat();
    let keys = tx.keys_desc(MESSAGES, &lo, &hi, usize::MAX)?;
    Ok(keys
        .iter()
        .find(|k| k.get(16 + THREAD_KEY_LEN..32 + THREAD_KEY_LEN) == Some(id.as_bytes()))
        .and_then(|k| Thread::from_key(&k[16..16 + THREAD_KEY_LEN])))
}

/// A live (not removed) document and its order, if `party` may see it now.
fn visible_doc(tx: &WriteTx<'_>, party: Party, id: Uuid) -> Result<Option<DocumentRecord>> {
    let Some(doc) = tx.get::<DocumentRecord>(DOCUMENTS, id.as_bytes())? else {
        return Ok(None);
    };
    let order = tx.get::<OrderRecord>(ORDERS, doc.order_id.as_bytes())?;
    Ok(order
        .filter(|o| doc.removed.is_none() && shared_visible_to(party, o, doc.thread))
        .map(|_| doc))
}

pub struct DocumentScope<'s> {
    store: &'s Store,
    caller: &'s Caller,
}

impl<'s> DocumentScope<'s> {
    pub fn new(store: &'s Store, caller: &'s Caller) -> Self {
        Self { store, caller }
    }

    fn party(&self) -> Party {
        self.caller.party()
    }

    fn audit(&self, tx: &WriteTx<'_>, action: &'static str, id: Uuid, ok: bool) -> Result<()> {
        let outcome = if ok { Outcome::Ok } else { Outcome::Refused };
        audit::append(
            tx,
            Event::by(self.caller, action, Some(id.to_string()), outcome),
        )?;
        Ok(())
    }

    /// Records a refusal (or, with `Outcome::Failed`, an integrity failure) on its
    /// own; `id` is None when the id did not even parse.
    pub fn record(&self, action: &'static str, id: Option<Uuid>, outcome: Outcome) -> Result<()> {
        let event = Event::by(self.caller, action, id.map(|i| i.to_string()), outcome);
        audit::record(self.store, event).map(|_| ())
    }

    /// Whether the caller may upload to `order` at all, checked before any byte of
    /// the file is read; a refusal is audited.
    pub fn may_upload(&self, order: Uuid) -> Result<()> {
        let visible = self
            .store
            .read()?
            .get::<OrderRecord>(ORDERS, order.as_bytes())?
            .is_some_and(|o| shared_visible_to(self.party(), &o, None));
        if !visible {
            self.record("document.upload", Some(order), Outcome::Refused)?;
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records an uploaded file (already stored under `new.id`) where `attach` says,
    /// after checking the caller may share there now. `NotFound` (audited) when not.
    pub fn record_upload(
        &self,
        order: Uuid,
        attach: Attach,
        new: NewDocument,
    ) -> Result<(DocumentRecord, Option<Message>)> {
        let party = self.party();
        let tx = self.store.write()?;
        let (thread, message_id, body) = match attach {
            Attach::Order => (None, None, None),
            Attach::Thread(t) => (Some(t), None, None),
            Attach::Message(m) => match message_thread(&tx, order, m)? {
                Some(t) => (Some(t), Some(m), None),
                None => return self.refuse_upload(tx, order),
            },
            Attach::NewMessage(t, body) => (Some(t), None, Some(body)),
        };
        let allowed = match thread {
            // Providers share through their own thread only.
            None => {
                !matches!(party, Party::Provider(_))
                    && tx
                        .get::<OrderRecord>(ORDERS, order.as_bytes())?
                        .is_some_and(|o| shared_visible_to(party, &o, None))
            }
            Some(t) => open_thread(&tx, party, order, t)?.is_some(),
        };
        if !allowed {
            return self.refuse_upload(tx, order);
        }
        let message = match (thread, body) {
            (Some(t), Some(body)) => Some(insert_message(&tx, self.caller, order, t, &body)?),
            _ => None,
        };
        let rec = DocumentRecord {
            id: new.id,
            order_id: order,
            thread,
            message_id: message.as_ref().map(|m| m.id).or(message_id),
            kind: new.kind,
            file_type: new.file_type,
            filename: new.filename,
            size: new.size,
            sha256: hex::encode(new.sha256),
            head_sha256: hex::encode(new.head_sha256),
            uploaded_by: self.caller.user_id(),
            uploader_org: self.caller.org_id(),
            uploaded_ms: now_ms(),
            removed: None,
        };
        tx.put(DOCUMENTS, rec.id.as_bytes(), &rec)?;
        tx.index_put(ORDER_DOCS_IDX, &idx_key(order, rec.id))?;
        self.audit(&tx, "document.upload", rec.id, true)?;
        tx.commit()?;
        Ok((rec, message))
    }

    fn refuse_upload<T>(&self, tx: WriteTx<'_>, order: Uuid) -> Result<T> {
        self.audit(&tx, "document.upload", order, false)?;
        tx.commit()?;
        Err(StoreError::NotFound)
    }

    /// The documents of `rec` the caller sees (removed ones as tombstones), newest
    /// first. The caller must already have been allowed to see `rec`.
    pub fn list(&self, rec: &OrderRecord) -> Result<Vec<DocumentRecord>> {
        let tx = self.store.read()?;
        let lo = rec.id.as_bytes().to_vec();
        let hi = [rec.id.as_bytes().as_slice(), &[0xff; 17]].concat();
        let mut out = Vec::new();
        for key in tx.keys_desc(ORDER_DOCS_IDX, &lo, &hi, usize::MAX)? {
            if let Some(doc) = tx.get::<DocumentRecord>(DOCUMENTS, &key[16..])?
                && shared_visible_to(self.party(), rec, doc.thread)
            {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// A live document the caller may see now, audited as `action` (`document.link`
    /// or `document.download`); anything else is `NotFound`, audited as a refusal.
    pub fn open(&self, id: Uuid, action: &'static str) -> Result<DocumentRecord> {
        let tx = self.store.write()?;
        let doc = visible_doc(&tx, self.party(), id)?;
        self.audit(&tx, action, id, doc.is_some())?;
        tx.commit()?;
        doc.ok_or(StoreError::NotFound)
    }

    /// Removes a document: its uploader or agency staff may; anyone else gets
    /// `NotFound` (audited). Leaves a tombstone with the reason; the caller shreds
    /// the file once this has committed.
    pub fn remove(&self, id: Uuid, reason: &str) -> Result<DocumentRecord> {
        let tx = self.store.write()?;
        let doc = visible_doc(&tx, self.party(), id)?
            .filter(|d| self.caller.is_agency() || d.uploaded_by == self.caller.user_id());
        let Some(mut doc) = doc else {
            self.audit(&tx, "document.delete", id, false)?;
            tx.commit()?;
            return Err(StoreError::NotFound);
        };
        doc.removed = Some(Tombstone {
            by: self.caller.user_id(),
            at_ms: now_ms(),
            reason: reason.to_string(),
        });
        doc.filename.clear();
        doc.sha256.clear();
        doc.head_sha256.clear();
        tx.put(DOCUMENTS, id.as_bytes(), &doc)?;
        self.audit(&tx, "document.delete", id, true)?;
        tx.commit()?;
        Ok(doc)
    }
}

/// Whether `id` names a live document record (for start-up cleaning of files a crash
/// left behind). Named `system_` because it answers for every party.
/// The ids of every live (not removed) document as of `tx`, for backups.
pub fn system_live_ids(tx: &ReadTx<'_>) -> Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    tx.raw_scan(DOCUMENTS, |key, sealed| {
        let rec: DocumentRecord = tx.open_raw(DOCUMENTS, key, sealed)?;
        if rec.removed.is_none() {
            if let Ok(id) = Uuid::from_slice(key) {
                ids.push(id);
            }
        }
        Ok(())
    })?;
    Ok(ids)
}

pub fn system_is_live(store: &Store, id: Uuid) -> Result<bool> {
    let tx = store.read()?;
    Ok(tx
        .get::<DocumentRecord>(DOCUMENTS, id.as_bytes())?
        .is_some_and(|d| d.removed.is_none()))
}
