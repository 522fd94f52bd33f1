//! How conversations and documents are shown, to pages and to the API: names for
//! ids, labels for threads, and the serializable views.
//!
//! Guarantees: views are built only from records the party-scoped store APIs
//! returned, so nothing here decides visibility; message bodies and filenames are
//! passed as text, for templates to escape (they are never marked safe).

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;

use super::error::AppError;
use super::view::{rfc3339, when};
use crate::domain::conversation::Thread;
use crate::domain::{Caller, Party};
use crate::store::accounts;
use crate::store::documents::DocumentRecord;
use crate::store::orders::OrderRecord;
use crate::store::threads::Message;
use crate::store::{ReadTx, Store};

/// Names of users and organizations, looked up once per request.
pub struct Names<'s> {
    tx: ReadTx<'s>,
    users: HashMap<Uuid, String>,
    orgs: HashMap<Uuid, String>,
    agency: String,
}

impl<'s> Names<'s> {
    pub fn new(store: &'s Store, agency: &str) -> Result<Self, AppError> {
        let tx = store.read()?;
        let orgs = accounts::all_orgs(&tx)?
            .into_iter()
            .map(|o| (o.id, o.name))
            .collect();
        Ok(Self {
            tx,
            users: HashMap::new(),
            orgs,
            agency: agency.to_string(),
        })
    }

    pub fn user(&mut self, id: Uuid) -> String {
        if let Some(name) = self.users.get(&id) {
            return name.clone();
        }
        let name = accounts::user(&self.tx, id)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "Former user".into());
        self.users.insert(id, name.clone());
        name
    }

    pub fn org(&self, id: Uuid) -> String {
        self.orgs.get(&id).cloned().unwrap_or_default()
    }

    /// What `party` calls `thread` of `rec`.
    pub fn thread_label(&self, party: Party, rec: &OrderRecord, thread: Thread) -> String {
        match (party, thread) {
            (_, Thread::Internal) => "Internal notes".into(),
            (Party::Agency, Thread::Facility) => {
                format!("Facility · {}", self.org(rec.facility_id))
            }
            (Party::Agency, Thread::Provider(p)) => format!("Provider · {}", self.org(p)),
            _ => format!("{} team", self.agency),
        }
    }

    pub fn shared_label(&self, party: Party, rec: &OrderRecord, thread: Option<Thread>) -> String {
        match thread {
            None => "Everyone on this order".into(),
            Some(t) => self.thread_label(party, rec, t),
        }
    }
}

/// Sizes as people read them.
pub fn size_label(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KB", b / KIB)
    } else {
        format!("{:.1} MB", b / (KIB * KIB))
    }
}

#[derive(Serialize)]
pub struct RemovedView {
    pub by: String,
    pub when: String,
    pub reason: String,
}

#[derive(Serialize)]
pub struct DocumentView {
    pub id: String,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub filename: String,
    pub type_label: &'static str,
    pub size_label: String,
    pub shared_label: String,
    pub message_id: Option<String>,
    pub uploaded_by: String,
    pub uploaded_when: String,
    pub can_delete: bool,
    pub removed: Option<RemovedView>,
}

pub fn document_view(
    names: &mut Names<'_>,
    caller: &Caller,
    rec: &OrderRecord,
    d: &DocumentRecord,
) -> DocumentView {
    DocumentView {
        id: d.id.to_string(),
        kind: d.kind.as_str(),
        kind_label: d.kind.label(),
        filename: d.filename.clone(),
        type_label: d.file_type.label(),
        size_label: size_label(d.size),
        shared_label: names.shared_label(caller.party(), rec, d.thread),
        message_id: d.message_id.map(|m| m.to_string()),
        uploaded_by: names.user(d.uploaded_by),
        uploaded_when: when(d.uploaded_ms),
        can_delete: d.removed.is_none()
            && (caller.is_agency() || d.uploaded_by == caller.user_id()),
        removed: d.removed.as_ref().map(|t| RemovedView {
            by: names.user(t.by),
            when: when(t.at_ms),
            reason: t.reason.clone(),
        }),
    }
}

/// A document as the API shows it.
#[derive(Serialize)]
pub struct DocumentOut {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: &'static str,
    pub content_type: &'static str,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub thread: Option<String>,
    pub message_id: Option<Uuid>,
    pub uploaded_by: Uuid,
    pub uploaded_at: String,
    pub removed: Option<serde_json::Value>,
}

pub fn document_out(d: &DocumentRecord) -> DocumentOut {
    DocumentOut {
        id: d.id,
        order_id: d.order_id,
        kind: d.kind.as_str(),
        content_type: d.file_type.mime(),
        filename: d.filename.clone(),
        size: d.size,
        sha256: d.sha256.clone(),
        thread: d.thread.map(Thread::name),
        message_id: d.message_id,
        uploaded_by: d.uploaded_by,
        uploaded_at: rfc3339(d.uploaded_ms),
        removed: d
            .removed
            .as_ref()
            .map(|t| serde_json::json!({ "by": t.by, "at": rfc3339(t.at_ms), "reason": t.reason })),
    }
}

#[derive(Serialize)]
pub struct MessageView {
    pub id: Uuid,
    pub thread: String,
    pub author_id: Uuid,
    pub author_name: String,
    pub author_org: String,
    pub body: String,
    pub created_at: String,
    pub when: String,
    pub mine: bool,
    /// Live documents posted with this message.
    pub documents: Vec<DocumentRef>,
}

#[derive(Serialize)]
pub struct DocumentRef {
    pub id: Uuid,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub filename: String,
}

pub fn message_views(
    names: &mut Names<'_>,
    caller: &Caller,
    messages: &[Message],
    docs: &[DocumentRecord],
) -> Vec<MessageView> {
    messages
        .iter()
        .map(|m| MessageView {
            id: m.id,
            thread: m.thread.name(),
            author_id: m.author_id,
            author_name: names.user(m.author_id),
            author_org: names.org(m.author_org),
            body: m.body.clone(),
            created_at: rfc3339(m.created_ms),
            when: when(m.created_ms),
            mine: m.author_id == caller.user_id(),
            documents: docs
                .iter()
                .filter(|d| d.message_id == Some(m.id) && d.removed.is_none())
                .map(|d| DocumentRef {
                    id: d.id,
                    kind: d.kind.as_str(),
                    kind_label: d.kind.label(),
                    filename: d.filename.clone(),
                })
                .collect(),
        })
        .collect()
}
