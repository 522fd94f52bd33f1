//! The order page's forms for conversations and documents: post a message (with an
//! optional attachment), upload a document, open one through a fresh signed link,
//! remove one with a reason. Multipart forms check the CSRF token (their first part)
//! before reading any file byte; every decision is the party-scoped store's.

use poem::http::StatusCode;
use poem::web::{Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use uuid::Uuid;

use super::order_detail::{FormState, Forms, render};
use crate::documents::links::LinkQuery;
use crate::domain::conversation::{MessageBody, Thread};
use crate::store::audit::Outcome;
use crate::store::documents::{Attach, DocumentScope};
use crate::store::threads::ThreadScope;
use crate::web::delivery;
use crate::web::error::AppError;
use crate::web::extract::{Posted, Viewer, state};
use crate::web::multipart::PostedMultipart;
use crate::web::upload::{self as uploads, UploadForm, parse_kind};

/// The order id of a form's address; one that does not parse is refused, audited.
fn order_id(
    req: &Request,
    viewer: &Viewer,
    raw: &str,
    action: &'static str,
) -> Result<Uuid, AppError> {
    match Uuid::parse_str(raw) {
        Ok(id) => Ok(id),
        Err(_) => {
            let state = state(req)?;
            DocumentScope::new(&state.store, &viewer.caller).record(
                action,
                None,
                Outcome::Refused,
            )?;
            Err(AppError::NotFound)
        }
    }
}

#[handler]
pub async fn post_message(
    req: &Request,
    form: PostedMultipart,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &form.viewer;
    let order = order_id(req, viewer, &id, "message.post")?;
    let limit = state.cfg.upload_limit_bytes();
    let mut sent = UploadForm::read(form.parts, &state.docs, limit).await?;
    let thread_name = sent.fields.get("thread").to_string();
    let Some(thread) = Thread::parse(&thread_name) else {
        sent.discard().await;
        ThreadScope::new(&state.store, &viewer.caller)
            .refuse("message.post")
            .map_err(AppError::from)?;
        return Err(AppError::NotFound.into());
    };
    let body = MessageBody::parse(sent.fields.get("body")).map_err(|m| AppError::field("body", m));
    let outcome = match (body, sent.file.take()) {
        (Ok(body), None) => ThreadScope::new(&state.store, &viewer.caller)
            .post(order, thread, &body)
            .map(|_| ())
            .map_err(AppError::from),
        (Ok(body), Some(file)) => {
            match parse_kind(sent.fields.get("attachment_kind")).map_err(|_| {
                AppError::field(
                    "attachment_kind",
                    "choose the kind of the attached document",
                )
            }) {
                Ok(kind) => uploads::store(
                    &state,
                    &viewer.caller,
                    order,
                    Attach::NewMessage(thread, body),
                    kind,
                    file,
                )
                .await
                .map(|_| ()),
                Err(e) => {
                    file.discard().await;
                    Err(e)
                }
            }
        }
        (Err(e), file) => {
            if let Some(file) = file {
                file.discard().await;
            }
            Err(e)
        }
    };
    match outcome {
        Ok(()) => Ok(Redirect::see_other(format!(
            "/orders/{order}?thread={}#conversation",
            thread.name()
        ))
        .into_response()),
        Err(AppError::Invalid(errors)) => {
            let forms = Forms {
                message: FormState::failed(&sent.fields.0, errors),
                ..Forms::default()
            };
            render(
                req,
                viewer,
                &id,
                Some(&thread_name),
                forms,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(e) => Err(e.into()),
    }
}

#[handler]
pub async fn upload(
    req: &Request,
    form: PostedMultipart,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &form.viewer;
    let order = order_id(req, viewer, &id, "document.upload")?;
    DocumentScope::new(&state.store, &viewer.caller)
        .may_upload(order)
        .map_err(AppError::from)?;
    let limit = state.cfg.upload_limit_bytes();
    let mut sent = UploadForm::read(form.parts, &state.docs, limit).await?;
    let mut errors = Vec::new();
    let kind = parse_kind(sent.fields.get("kind"))
        .map_err(|e| errors.push(e))
        .ok();
    let attach = match sent.fields.get("share") {
        "order" => Some(Attach::Order),
        other => match Thread::parse(other) {
            Some(t) => Some(Attach::Thread(t)),
            None => {
                errors.push(AppError::field(
                    "share",
                    "choose who the document is shared with",
                ));
                None
            }
        },
    };
    let file = sent.file.take();
    if file.is_none() {
        errors.push(AppError::field("file", "is required"));
    }
    let outcome = match (kind, attach, file) {
        (Some(kind), Some(attach), Some(file)) if errors.is_empty() => {
            uploads::store(&state, &viewer.caller, order, attach, kind, file)
                .await
                .map(|_| ())
        }
        (_, _, file) => {
            if let Some(file) = file {
                file.discard().await;
            }
            Err(AppError::Invalid(
                errors
                    .into_iter()
                    .flat_map(|e| match e {
                        AppError::Invalid(list) => list,
                        _ => Vec::new(),
                    })
                    .collect(),
            ))
        }
    };
    match outcome {
        Ok(()) => Ok(Redirect::see_other(format!("/orders/{order}#documents")).into_response()),
        Err(AppError::Invalid(errors)) => {
            let forms = Forms {
                upload: FormState::failed(&sent.fields.0, errors),
                ..Forms::default()
            };
            render(
                req,
                viewer,
                &id,
                None,
                forms,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Issues a fresh link and sends the browser to it.
#[handler]
pub async fn open(req: &Request, posted: Posted, Path(id): Path<String>) -> poem::Result<Response> {
    let state = state(req)?;
    let (url, _) = delivery::issue(&state, &posted.viewer.caller, &id, "")?;
    Ok(Redirect::see_other(url).into_response())
}

#[handler]
pub async fn content(
    req: &Request,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> poem::Result<Response> {
    let state = state(req)?;
    Ok(delivery::serve(state, &viewer.caller, &id, &q).await?)
}

#[handler]
pub async fn remove(
    req: &Request,
    posted: Posted,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let viewer = &posted.viewer;
    let order = posted.form.get("order").to_string();
    match uploads::remove(&state, &viewer.caller, &id, posted.form.get("reason")).await {
        Ok(doc) => {
            Ok(Redirect::see_other(format!("/orders/{}#documents", doc.order_id)).into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let mut remove = FormState::failed(&posted.form.0, errors);
            remove.values.insert("document".into(), id);
            let forms = Forms {
                remove,
                ..Forms::default()
            };
            render(
                req,
                viewer,
                &order,
                None,
                forms,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(e) => Err(e.into()),
    }
}
