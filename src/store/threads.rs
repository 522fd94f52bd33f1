//! Conversations: per-order threads of messages, read marks and unread counts.
//!
//! Guarantees: `ThreadScope`, built from a verified `Caller`, is the only way above
//! the store to read or post messages, and every thread it touches passes
//! `orders::thread_visible_to` against the order as it is now (a provider that lost
//! access to an order loses its thread on the next request). Message bodies are
//! sealed like every other value; message keys hold only ids (order, thread,
//! message, author), so unread counts are computed without opening any message.
//! Views, posts and refusals are audited with ids only, in the commit of the change.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, Event, Outcome};
use super::orders::{OrderRecord, thread_visible_to};
use super::{
    MESSAGES, ORDERS, READ_MARKS, ReadTx, Result, Store, StoreError, THREAD_IDX, WriteTx, now_ms,
};
use crate::domain::conversation::{MessageBody, THREAD_KEY_LEN, Thread};
use crate::domain::{Caller, Party};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub order_id: Uuid,
    pub thread: Thread,
    pub author_id: Uuid,
    pub author_org: Uuid,
    pub body: String,
    pub created_ms: i64,
}

/// A thread as listed for one user.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadSummary {
    pub thread: Thread,
    /// When its newest message was posted, if it has any.
    pub last_ms: Option<i64>,
    /// Messages by others since the user last read it (counted up to `UNREAD_CAP`).
    pub unread: u32,
}

/// Unread counts stop here; pages show "99+".
pub const UNREAD_CAP: usize = 100;
const PREFIX_LEN: usize = 16 + THREAD_KEY_LEN;
const MSG_AT: usize = PREFIX_LEN;
const AUTHOR_AT: usize = PREFIX_LEN + 16;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// order ‖ thread: the prefix of a thread's message keys and its `THREAD_IDX` key.
pub(crate) fn thread_prefix(order: Uuid, thread: Thread) -> Vec<u8> {
    cat(&[order.as_bytes(), &thread.key()])
}

fn msg_key(msg: &Message) -> Vec<u8> {
    cat(&[
        &thread_prefix(msg.order_id, msg.thread),
        msg.id.as_bytes(),
        msg.author_id.as_bytes(),
    ])
}

fn mark_key(user: Uuid, order: Uuid, thread: Thread) -> Vec<u8> {
    cat(&[user.as_bytes(), &thread_prefix(order, thread)])
}

/// The whole key range of one thread's messages.
fn thread_range(order: Uuid, thread: Thread) -> (Vec<u8>, Vec<u8>) {
    let prefix = thread_prefix(order, thread);
    (prefix.clone(), cat(&[&prefix, &[0xff; 33]]))
}

fn id_at(key: &[u8], at: usize) -> Option<Uuid> {
    key.get(at..at + 16).and_then(|b| Uuid::from_slice(b).ok())
}

fn ms_of(id: Uuid) -> Option<i64> {
    id.get_timestamp().map(|t| {
        let (secs, nanos) = t.to_unix();
        (secs as i64) * 1000 + i64::from(nanos / 1_000_000)
    })
}

/// Message keys, newest first, from either transaction kind.
trait MessageKeys {
    fn message_keys(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Vec<u8>>>;
}
impl MessageKeys for ReadTx<'_> {
    fn message_keys(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Vec<u8>>> {
        self.keys_desc(MESSAGES, lo, hi, limit)
    }
}
impl MessageKeys for WriteTx<'_> {
    fn message_keys(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Vec<u8>>> {
        self.keys_desc(MESSAGES, lo, hi, limit)
    }
}

/// The newest message id of a thread.
fn newest(tx: &impl MessageKeys, order: Uuid, thread: Thread) -> Result<Option<Uuid>> {
    let (lo, hi) = thread_range(order, thread);
    Ok(tx
        .message_keys(&lo, &hi, 1)?
        .first()
        .and_then(|k| id_at(k, MSG_AT)))
}

fn thread_exists(tx: &WriteTx<'_>, order: Uuid, thread: Thread) -> Result<bool> {
    let key = thread_prefix(order, thread);
    let hi = cat(&[&key, &[0]]);
    Ok(!tx.keys_desc(THREAD_IDX, &key, &hi, 1)?.is_empty())
}

/// Whether `party` may open `thread` of `rec`: it must be visible to them, and a
/// provider thread only exists for a provider with access or one that already has
/// messages (so the agency cannot start a thread with an arbitrary id).
fn may_open(tx: &WriteTx<'_>, party: Party, rec: &OrderRecord, thread: Thread) -> Result<bool> {
    if !thread_visible_to(party, rec, thread) {
        return Ok(false);
    }
    match thread {
        Thread::Provider(p) if !rec.provider_access.contains(&p) => {
            thread_exists(tx, rec.id, thread)
        }
        _ => Ok(true),
    }
}

/// Writes a new message (inside the caller's transaction) and audits it.
pub(crate) fn insert_message(
    tx: &WriteTx<'_>,
    caller: &Caller,
    order: Uuid,
    thread: Thread,
    body: &MessageBody,
) -> Result<Message> {
    let msg = Message {
        id: Uuid::now_v7(),
        order_id: order,
        thread,
        author_id: caller.user_id(),
        author_org: caller.org_id(),
        body: body.as_str().to_string(),
        created_ms: now_ms(),
    };
    tx.put(MESSAGES, &msg_key(&msg), &msg)?;
    tx.index_put(THREAD_IDX, &thread_prefix(order, thread))?;
    let object = format!("{order}/{}/{}", thread.name(), msg.id);
    audit::append(
        tx,
        Event::by(caller, "message.post", Some(object), Outcome::Ok),
    )?;
    Ok(msg)
}

/// The order, if `party` may open `thread` of it (inside a write transaction).
pub(crate) fn open_thread(
    tx: &WriteTx<'_>,
    party: Party,
    order: Uuid,
    thread: Thread,
) -> Result<Option<OrderRecord>> {
    match tx.get::<OrderRecord>(ORDERS, order.as_bytes())? {
        Some(rec) if may_open(tx, party, &rec, thread)? => Ok(Some(rec)),
        _ => Ok(None),
    }
}

pub struct ThreadScope<'s> {
    store: &'s Store,
    caller: &'s Caller,
}

impl<'s> ThreadScope<'s> {
    pub fn new(store: &'s Store, caller: &'s Caller) -> Self {
        Self { store, caller }
    }

    fn party(&self) -> Party {
        self.caller.party()
    }

    /// The threads of `rec` the caller sees, newest activity first, with their
    /// unread counts. The caller must already have been allowed to see `rec`.
    pub fn threads(&self, rec: &OrderRecord) -> Result<Vec<ThreadSummary>> {
        let tx = self.store.read()?;
        let party = self.party();
        let mut candidates = vec![Thread::Facility, Thread::Internal];
        candidates.extend(rec.provider_access.iter().map(|p| Thread::Provider(*p)));
        let lo = rec.id.as_bytes().to_vec();
        let hi = cat(&[rec.id.as_bytes(), &[0xff; THREAD_KEY_LEN]]);
        for key in tx.keys_desc(THREAD_IDX, &lo, &hi, usize::MAX)? {
            candidates.extend(key.get(16..).and_then(Thread::from_key));
        }
        candidates.sort();
        candidates.dedup();
        let mut out = Vec::new();
        for thread in candidates {
            if !thread_visible_to(party, rec, thread) {
                continue;
            }
            out.push(ThreadSummary {
                thread,
                last_ms: newest(&tx, rec.id, thread)?.and_then(ms_of),
                unread: self.unread_in(&tx, rec.id, thread)?,
            });
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.last_ms));
        Ok(out)
    }

    fn unread_in(&self, tx: &ReadTx<'_>, order: Uuid, thread: Thread) -> Result<u32> {
        let me = self.caller.user_id();
        let (mut lo, hi) = thread_range(order, thread);
        if let Some(mark) = tx.get::<Uuid>(READ_MARKS, &mark_key(me, order, thread))? {
            // Just past every key of the marked message.
            lo = cat(&[&lo, mark.as_bytes(), &[0xff; 17]]);
        }
        let keys = tx.keys_desc(MESSAGES, &lo, &hi, UNREAD_CAP)?;
        let unread = keys
            .iter()
            .filter(|k| k.get(AUTHOR_AT..) != Some(me.as_bytes().as_slice()))
            .count();
        Ok(u32::try_from(unread).unwrap_or(u32::MAX))
    }

    /// Unread messages per order across every thread the caller sees, for lists.
    pub fn unread_by_order(&self, orders: &[OrderRecord]) -> Result<Vec<u32>> {
        orders
            .iter()
            .map(|rec| Ok(self.threads(rec)?.iter().map(|t| t.unread).sum()))
            .collect()
    }

    /// The order and the messages of one of its threads, newest first (older than
    /// `before` when given), at most `limit`. Marks the thread read and audits the view; a thread the caller may
    /// not open is `NotFound`, audited as a refusal.
    pub fn read(
        &self,
        order: Uuid,
        thread: Thread,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<(OrderRecord, Vec<Message>)> {
        let tx = self.store.write()?;
        let object = Some(format!("{order}/{}", thread.name()));
        let Some(rec) = open_thread(&tx, self.party(), order, thread)? else {
            audit::append(
                &tx,
                Event::by(self.caller, "thread.view", object, Outcome::Refused),
            )?;
            tx.commit()?;
            return Err(StoreError::NotFound);
        };
        let (lo, mut hi) = thread_range(order, thread);
        if let Some(b) = before {
            hi = cat(&[&lo, b.as_bytes()]);
        }
        let mut messages = Vec::new();
        for key in tx.keys_desc(MESSAGES, &lo, &hi, limit)? {
            if let Some(m) = tx.get::<Message>(MESSAGES, &key)? {
                messages.push(m);
            }
        }
        let me = self.caller.user_id();
        let mark = mark_key(me, order, thread);
        let current = tx.get::<Uuid>(READ_MARKS, &mark)?;
        if let Some(newest) = newest(&tx, order, thread)?
            && current.is_none_or(|c| c < newest)
        {
            tx.put(READ_MARKS, &mark, &newest)?;
        }
        audit::append(
            &tx,
            Event::by(self.caller, "thread.view", object, Outcome::Ok),
        )?;
        tx.commit()?;
        Ok((rec, messages))
    }

    /// Posts a message; a thread the caller may not open is `NotFound`, audited.
    pub fn post(&self, order: Uuid, thread: Thread, body: &MessageBody) -> Result<Message> {
        let tx = self.store.write()?;
        if open_thread(&tx, self.party(), order, thread)?.is_none() {
            let object = Some(format!("{order}/{}", thread.name()));
            audit::append(
                &tx,
                Event::by(self.caller, "message.post", object, Outcome::Refused),
            )?;
            tx.commit()?;
            return Err(StoreError::NotFound);
        }
        let msg = insert_message(&tx, self.caller, order, thread, body)?;
        tx.commit()?;
        Ok(msg)
    }

    /// Records a refused attempt whose order or thread did not even parse.
    pub fn refuse(&self, action: &'static str) -> Result<()> {
        audit::record(
            self.store,
            Event::by(self.caller, action, None, Outcome::Refused),
        )
        .map(|_| ())
    }
}
