//! The order page's forms for conversations and documents: post a message (with an
//! optional attachment), upload a document, open one through a fresh signed link,
//! remove one with a reason. Multipart forms check the CSRF token (their first part)
//! before reading any file byte; every decision is the party-scoped store's.

use poem::http::StatusCode;
use poem::web::{Path, Redirect};
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
use crate::web::extract::{Posted, Viewer, id_or_refuse, state};
use crate::web::multipart::PostedMultipart;
use crate::web::upload::{self as uploads, UploadForm, field_error};

/// The order id of a form's address; one that does not parse is refused, audited.
fn order_id(
    req: &Request,
    viewer: &Viewer,
    raw: &str,
    action: &'static str,
) -> Result<Uuid, AppError> {
    let state = state(req)?;
    let scope = DocumentScope::new(&state.store, &viewer.caller);
    id_or_refuse(raw, || scope.record(action, None, Outcome::Refused))
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
    let mut sent = UploadForm::read(form.parts, &state, viewer.caller.user_id()).await?;
    let thread_name = sent.fields.get("thread").to_string();
    let Some(thread) = Thread::parse(&thread_name) else {
        sent.discard().await;
        ThreadScope::new(&state.store, &viewer.caller)
            .refuse("message.post")
            .map_err(AppError::from)?;
        return Err(AppError::NotFound.into());
    };
    let mut errors = Vec::new();
    let body = MessageBody::parse(sent.fields.get("body"))
        .map_err(|m| errors.push(field_error("body", m)))
        .ok();
    let outcome = match sent.file_and_kind("attachment_kind", false, errors).await {
        Ok(file) => match (body, file) {
            (Some(body), None) => ThreadScope::new(&state.store, &viewer.caller)
                .post(order, thread, &body)
                .map(|_| ())
                .map_err(AppError::from),
            (Some(body), Some((file, kind))) => {
                let attach = Attach::NewMessage(thread, body);
                uploads::store(&state, &viewer.caller, order, attach, kind, file)
                    .await
                    .map(|_| ())
            }
            (None, _) => Err(AppError::Internal(
                "message checks passed without a body".into(),
            )),
        },
        Err(e) => Err(e),
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
    let mut sent = UploadForm::read(form.parts, &state, viewer.caller.user_id()).await?;
    let mut errors = Vec::new();
    let attach = match sent.fields.get("share") {
        "order" => Some(Attach::Order),
        other => Thread::parse(other).map(Attach::Thread).or_else(|| {
            errors.push(field_error(
                "share",
                "choose who the document is shared with",
            ));
            None
        }),
    };
    let outcome = match (sent.file_and_kind("kind", true, errors).await, attach) {
        (Ok(Some((file, kind))), Some(attach)) => {
            uploads::store(&state, &viewer.caller, order, attach, kind, file)
                .await
                .map(|_| ())
        }
        (Err(e), _) => Err(e),
        _ => Err(AppError::Internal(
            "upload checks passed without a file".into(),
        )),
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
) -> poem::Result<Response> {
    let state = state(req)?;
    let q = LinkQuery::parse(req.uri().query().unwrap_or(""));
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
