//! The API's conversations and documents: messages per thread, multipart uploads,
//! signed links and downloads, removal. The same party-scoped store APIs as the pages
//! decide everything; these handlers only translate.

use poem::http::StatusCode;
use poem::web::{Json, Path, Query};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::Deserialize;
use uuid::Uuid;

use super::api::json_body;
use super::coordination::{Names, document_out, message_views};
use super::delivery;
use super::error::AppError;
use super::extract::{ApiCaller, id_or_refuse, state};
use super::multipart::Parts;
use super::upload::{UploadForm, field_error, store};
use super::view::rfc3339;
use crate::documents::links::LinkQuery;
use crate::domain::conversation::{MessageBody, Thread};
use crate::domain::order::FieldError;
use crate::domain::{Caller, Party};
use crate::store::audit::Outcome;
use crate::store::documents::{Attach, DocumentScope};
use crate::store::orders::OrderScope;
use crate::store::threads::ThreadScope;

fn parse_thread(raw: &str) -> Result<Thread, FieldError> {
    if raw.trim().is_empty() {
        return Err(field_error("thread", "is required"));
    }
    Thread::parse(raw).ok_or_else(|| {
        field_error(
            "thread",
            "must be facility, internal or provider:<organization id>",
        )
    })
}

/// Where an API upload goes: beside `message`, in `thread`, or by default on the
/// order (a provider's default is its own thread).
fn attach_of(caller: &Caller, message: &str, thread: &str) -> Result<Attach, FieldError> {
    if !message.trim().is_empty() {
        let id = Uuid::parse_str(message.trim())
            .map_err(|_| field_error("message", "must be a message id"))?;
        return Ok(Attach::Message(id));
    }
    if !thread.trim().is_empty() {
        return Ok(Attach::Thread(parse_thread(thread)?));
    }
    Ok(match caller.party() {
        Party::Provider(org) => Attach::Thread(Thread::Provider(org)),
        _ => Attach::Order,
    })
}

#[handler]
pub async fn upload(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
    parts: Parts,
) -> poem::Result<Response> {
    let state = state(req)?;
    let scope = DocumentScope::new(&state.store, &api.caller);
    let order = id_or_refuse(&id, || {
        scope.record("document.upload", None, Outcome::Refused)
    })?;
    scope.may_upload(order).map_err(AppError::from)?;
    let mut form = UploadForm::read(parts, &state, api.caller.user_id()).await?;
    let mut errors = Vec::new();
    let attach = attach_of(
        &api.caller,
        form.fields.get("message"),
        form.fields.get("thread"),
    )
    .map_err(|e| errors.push(e))
    .ok();
    let checked = form.file_and_kind("kind", true, errors).await?;
    let (Some((file, kind)), Some(attach)) = (checked, attach) else {
        return Err(AppError::Internal("upload checks passed without a file".into()).into());
    };
    let (doc, _) = store(&state, &api.caller, order, attach, kind, file).await?;
    Ok(Json(document_out(&doc))
        .with_status(StatusCode::CREATED)
        .into_response())
}

#[handler]
pub async fn list(req: &Request, api: ApiCaller, Path(id): Path<String>) -> poem::Result<Response> {
    let state = state(req)?;
    let orders = OrderScope::new(&state.store, &api.caller);
    let id = id_or_refuse(&id, || orders.refuse("order.view"))?;
    let rec = orders.get(id).map_err(AppError::from)?;
    let docs = DocumentScope::new(&state.store, &api.caller)
        .list(&rec)
        .map_err(AppError::from)?;
    let items: Vec<_> = docs.iter().map(document_out).collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[handler]
pub async fn issue_link(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let (url, expires_ms) = delivery::issue(&state, &api.caller, &id, "/api/v1")?;
    let body = serde_json::json!({ "url": url, "expires_at": rfc3339(expires_ms) });
    Ok(Json(body).with_status(StatusCode::CREATED).into_response())
}

#[handler]
pub async fn content(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let q = LinkQuery::parse(req.uri().query().unwrap_or(""));
    Ok(delivery::serve(state, &api.caller, &id, &q).await?)
}

#[derive(Deserialize)]
struct RemoveInput {
    #[serde(default)]
    reason: String,
}

#[handler]
pub async fn remove(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
    body: Body,
) -> poem::Result<Response> {
    let state = state(req)?;
    let input: RemoveInput = json_body(body).await?;
    super::upload::remove(&state, &api.caller, &id, &input.reason).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct PostInput {
    #[serde(default)]
    thread: String,
    #[serde(default)]
    body: String,
}

#[handler]
pub async fn post_message(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
    body: Body,
) -> poem::Result<Response> {
    let state = state(req)?;
    let scope = ThreadScope::new(&state.store, &api.caller);
    let order = id_or_refuse(&id, || scope.refuse("message.post"))?;
    let input: PostInput = json_body(body).await?;
    let thread = parse_thread(&input.thread).map_err(|e| AppError::Invalid(vec![e]))?;
    let text = MessageBody::parse(&input.body).map_err(|m| AppError::field("body", m))?;
    let msg = scope.post(order, thread, &text).map_err(AppError::from)?;
    let mut names = Names::new(&state.store, &state.cfg.agency_name)?;
    let view = message_views(&mut names, &api.caller, std::slice::from_ref(&msg), &[]);
    Ok(Json(&view[0])
        .with_status(StatusCode::CREATED)
        .into_response())
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    thread: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
}

#[handler]
pub async fn messages(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let caller = &api.caller;
    let scope = ThreadScope::new(&state.store, caller);
    let order = id_or_refuse(&id, || scope.refuse("thread.view"))?;
    let mut names = Names::new(&state.store, &state.cfg.agency_name)?;
    let Some(thread) = q.thread.as_deref() else {
        let rec = OrderScope::new(&state.store, caller)
            .get(order)
            .map_err(AppError::from)?;
        let threads = scope.threads(&rec).map_err(AppError::from)?;
        let items: Vec<_> = threads
            .iter()
            .map(|t| {
                serde_json::json!({
                    "thread": t.thread.name(),
                    "label": names.thread_label(caller.party(), &rec, t.thread),
                    "unread": t.unread,
                    "last_activity_at": t.last_ms.map(rfc3339),
                })
            })
            .collect();
        return Ok(Json(serde_json::json!({ "threads": items })).into_response());
    };
    let thread = parse_thread(thread).map_err(|e| AppError::Invalid(vec![e]))?;
    let before = match q.before.as_deref() {
        Some(b) => Some(
            Uuid::parse_str(b).map_err(|_| AppError::field("before", "must be a message id"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 200);
    let (rec, msgs) = scope
        .read(order, thread, before, limit)
        .map_err(AppError::from)?;
    let docs = DocumentScope::new(&state.store, caller)
        .list(&rec)
        .map_err(AppError::from)?;
    let items = message_views(&mut names, caller, &msgs, &docs);
    let next = if msgs.len() == limit {
        msgs.last().map(|m| m.id)
    } else {
        None
    };
    Ok(
        Json(serde_json::json!({ "thread": thread.name(), "items": items, "next_before": next }))
            .into_response(),
    )
}
