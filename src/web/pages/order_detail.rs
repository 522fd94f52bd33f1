//! The order detail page: the order, its conversations and its documents. Every read
//! goes through `OrderScope`, `ThreadScope` and `DocumentScope`, so this module holds
//! no visibility rules; a thread named in the address that the viewer may not open
//! answers 404 (audited by the scope), like any other party's object.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::web::{Path, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use crate::domain::Party;
use crate::domain::conversation::Thread;
use crate::domain::document::DocKind;
use crate::store::documents::DocumentScope;
use crate::store::orders::{OrderRecord, OrderScope};
use crate::store::threads::ThreadScope;
use crate::web::coordination::{DocumentView, MessageView, Names, document_view, message_views};
use crate::web::error::AppError;
use crate::web::extract::{Viewer, id_or_refuse, state};
use crate::web::view::{Choice, when};

/// Messages shown per thread on the page.
const PAGE_MESSAGES: usize = 200;

#[derive(Deserialize)]
pub struct DetailQuery {
    thread: Option<String>,
}

/// What one form on the page was sent with, and what was wrong with it.
#[derive(Serialize, Default)]
pub struct FormState {
    pub values: BTreeMap<String, String>,
    pub errors: BTreeMap<String, String>,
}

impl FormState {
    pub fn failed(
        values: &[(String, String)],
        errors: Vec<crate::domain::order::FieldError>,
    ) -> Self {
        let mut state = FormState::default();
        for (k, v) in values {
            if k != "csrf" {
                state.values.insert(k.clone(), v.clone());
            }
        }
        for e in errors {
            state.errors.entry(e.field).or_insert(e.message);
        }
        state
    }
}

/// The page's forms as they were last submitted.
#[derive(Serialize, Default)]
pub struct Forms {
    pub message: FormState,
    pub upload: FormState,
    pub remove: FormState,
}

#[derive(Serialize)]
struct DetailView<'a> {
    order: OrderDetail<'a>,
    warnings: &'a [crate::domain::order::FieldWarning],
    conversation: Conversation,
    documents: Vec<DocumentView>,
    kinds: Vec<Choice>,
    places: Vec<Choice>,
    forms: Forms,
}

#[derive(Serialize)]
struct OrderDetail<'a> {
    id: String,
    number: &'a str,
    status: &'static str,
    status_label: &'static str,
    priority: &'a crate::domain::order::Priority,
    facility_name: String,
    created_at: String,
    updated_at: String,
    data: &'a crate::domain::order::OrderData,
}

#[derive(Serialize)]
struct ThreadTab {
    name: String,
    label: String,
    unread: u32,
    url: String,
    active: bool,
    last_when: Option<String>,
}

#[derive(Serialize)]
struct Conversation {
    threads: Vec<ThreadTab>,
    active: Option<String>,
    active_label: String,
    messages: Vec<MessageView>,
}

#[handler]
pub async fn detail(
    req: &Request,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> poem::Result<Response> {
    render(
        req,
        &viewer,
        &id,
        q.thread.as_deref(),
        Forms::default(),
        StatusCode::OK,
    )
}

/// The order `id` as `viewer` may see it, audited as a view (a refusal as one).
pub fn visible_order(req: &Request, viewer: &Viewer, id: &str) -> Result<OrderRecord, AppError> {
    let state = state(req)?;
    let scope = OrderScope::new(&state.store, &viewer.caller);
    let id = id_or_refuse(id, || scope.refuse("order.view"))?;
    Ok(scope.get(id)?)
}

/// Renders the page with `thread` open (else the one with the newest activity).
pub fn render(
    req: &Request,
    viewer: &Viewer,
    id: &str,
    thread: Option<&str>,
    forms: Forms,
    status: StatusCode,
) -> poem::Result<Response> {
    render_with_error(req, viewer, id, thread, forms, status, None)
}

/// The page with a refused workflow step's error (field, message) shown.
pub fn render_with_error(
    req: &Request,
    viewer: &Viewer,
    id: &str,
    thread: Option<&str>,
    forms: Forms,
    status: StatusCode,
    error: Option<crate::web::pages::steps::Refused>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let caller = &viewer.caller;
    let rec = visible_order(req, viewer, id)?;
    let threads_scope = ThreadScope::new(&state.store, caller);
    let mut threads = threads_scope.threads(&rec).map_err(AppError::from)?;
    let selected = match thread.filter(|t| !t.is_empty()) {
        Some(name) => match Thread::parse(name) {
            Some(t) => Some(t),
            None => {
                threads_scope
                    .refuse("thread.view")
                    .map_err(AppError::from)?;
                return Err(AppError::NotFound.into());
            }
        },
        None => threads.first().map(|t| t.thread),
    };
    let messages = match selected {
        Some(t) => {
            threads_scope
                .read(rec.id, t, None, PAGE_MESSAGES)
                .map_err(AppError::from)?
                .1
        }
        None => Vec::new(),
    };
    let docs = DocumentScope::new(&state.store, caller)
        .list(&rec)
        .map_err(AppError::from)?;
    let mut names = Names::new(&state.store, &state.cfg.agency_name)?;
    let party = caller.party();
    let tabs = threads
        .iter_mut()
        .map(|t| {
            let active = Some(t.thread) == selected;
            ThreadTab {
                name: t.thread.name(),
                label: names.thread_label(party, &rec, t.thread),
                // The open thread has just been read.
                unread: if active { 0 } else { t.unread },
                url: format!("/orders/{}?thread={}#conversation", rec.id, t.thread.name()),
                active,
                last_when: t.last_ms.map(when),
            }
        })
        .collect();
    let mut places = Vec::new();
    if !matches!(party, Party::Provider(_)) {
        places.push(("order".to_string(), "Everyone on this order".to_string()));
    }
    for t in &threads {
        places.push((t.thread.name(), names.thread_label(party, &rec, t.thread)));
    }
    let chosen_place = forms
        .upload
        .values
        .get("share")
        .cloned()
        .unwrap_or_default();
    let chosen_kind = forms.upload.values.get("kind").cloned().unwrap_or_default();
    let view = DetailView {
        order: OrderDetail {
            id: rec.id.to_string(),
            number: &rec.number,
            status: rec.status.as_str(),
            status_label: rec.status.label(),
            priority: &rec.data.priority,
            facility_name: names.org(rec.facility_id),
            created_at: when(rec.created_ms),
            updated_at: when(rec.updated_ms),
            data: &rec.data,
        },
        warnings: &rec.warnings,
        conversation: Conversation {
            threads: tabs,
            active: selected.map(Thread::name),
            active_label: selected
                .map(|t| names.thread_label(party, &rec, t))
                .unwrap_or_default(),
            messages: message_views(&mut names, caller, &messages, &docs),
        },
        documents: docs
            .iter()
            .map(|d| document_view(&mut names, caller, &rec, d))
            .collect(),
        kinds: DocKind::ALL
            .iter()
            .map(|k| Choice {
                value: k.as_str().into(),
                label: k.label().into(),
                selected: k.as_str() == chosen_kind,
            })
            .collect(),
        places: places
            .into_iter()
            .map(|(value, label)| Choice {
                selected: value == chosen_place,
                value,
                label,
            })
            .collect(),
        forms,
    };
    // The workflow (as this party may see it) joins the conversations and documents;
    // `order.data` is the party's projection, so a provider sees only its own lines.
    let mut page = serde_json::to_value(&view).map_err(|e| AppError::Internal(e.to_string()))?;
    let workflow = crate::web::pages::orders::workflow_context(&state, viewer, &rec, error)?;
    if let (Some(page), Some(extra)) = (page.as_object_mut(), workflow.as_object()) {
        for (k, v) in extra {
            if k == "order" {
                if let Some(data) = v.get("data") {
                    page["order"]["data"] = data.clone();
                }
            } else {
                page.insert(k.clone(), v.clone());
            }
        }
    }
    let base = viewer.base(&state, format!("Order {}", rec.number), "orders");
    Ok(state
        .templates
        .render("order_detail.html", &base, page)?
        .with_status(status)
        .into_response())
}
