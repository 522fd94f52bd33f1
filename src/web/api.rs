//! The JSON API under `/api/v1`, authenticated by bearer tokens. Errors are
//! `application/problem+json` with a per-field `errors` list (see `error`).
//! The same party-scoped store APIs as the pages decide what each caller sees.

use poem::http::StatusCode;
use poem::web::{Json, Path, Query};
use poem::{Body, IntoResponse, Request, Response, Route, get, handler, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api_documents;
use super::error::AppError;
use super::extract::{ApiCaller, id_or_refuse, state};
use super::submit::submit;
use super::view::rfc3339;
use crate::domain::Status;
use crate::domain::account::{NewOrgInput, NewUserInput};
use crate::domain::order::{FieldError, FieldWarning, OrderData, OrderInput};
use crate::store::StoreError;
use crate::store::accounts::AdminScope;
use crate::store::orders::{OrderRecord, OrderScope};

const JSON_LIMIT: usize = 1024 * 1024;

pub fn routes() -> Route {
    Route::new()
        .at("/organizations", post(create_org))
        .at("/organizations/:id/disable", post(disable_org))
        .at("/users", post(create_user))
        .at("/users/:id/disable", post(disable_user))
        .at("/orders", get(list_orders).post(create_order))
        .at("/orders/:id", get(get_order))
        .at(
            "/orders/:id/documents",
            get(api_documents::list).post(api_documents::upload),
        )
        .at(
            "/orders/:id/messages",
            get(api_documents::messages).post(api_documents::post_message),
        )
        .at("/documents/:id/links", post(api_documents::issue_link))
        .at("/documents/:id/content", get(api_documents::content))
        .at("/documents/:id/delete", post(api_documents::remove))
}

/// Reads a JSON body; a value of the wrong type is reported with its path.
pub(crate) async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, AppError> {
    let bytes = body
        .into_bytes_limit(JSON_LIMIT)
        .await
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => AppError::TooLarge,
            _ => AppError::BadRequest("the body could not be read".into()),
        })?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if e.inner().is_data() && path != "." {
            AppError::Invalid(vec![FieldError {
                field: path,
                message: "has the wrong type".into(),
            }])
        } else {
            AppError::BadRequest("the body is not valid JSON".into())
        }
    })
}

fn admin<'a>(state: &'a super::AppState, api: &'a ApiCaller) -> Result<AdminScope<'a>, AppError> {
    AdminScope::new(&state.store, &api.caller).ok_or(AppError::NotFound)
}

fn created(body: serde_json::Value) -> Response {
    Json(body).with_status(StatusCode::CREATED).into_response()
}

#[handler]
async fn create_org(req: &Request, api: ApiCaller, body: Body) -> poem::Result<Response> {
    let state = state(req)?;
    let admin = admin(&state, &api)?;
    let input: NewOrgInput = json_body(body).await?;
    let new = input.parse().map_err(AppError::Invalid)?;
    let org = admin.create_org(&new).map_err(AppError::from)?;
    Ok(created(
        serde_json::json!({ "id": org.id, "name": org.name, "kind": org.kind }),
    ))
}

#[handler]
async fn create_user(req: &Request, api: ApiCaller, body: Body) -> poem::Result<Response> {
    let state = state(req)?;
    let admin = admin(&state, &api)?;
    let input: NewUserInput = json_body(body).await?;
    let new = input.parse().map_err(AppError::Invalid)?;
    let hash = state
        .hasher
        .hash(&input.password)
        .await
        .map_err(AppError::from)?;
    let user = admin.create_user(&new, hash).map_err(|e| match e {
        StoreError::Conflict("email") => {
            AppError::field("email", "is already used by another account")
        }
        StoreError::Conflict("organization_id") => AppError::field(
            "organization_id",
            "must be an active organization that fits the role",
        ),
        other => other.into(),
    })?;
    Ok(created(
        serde_json::json!({ "id": user.id, "email": user.email, "role": user.role }),
    ))
}

/// An order as the API shows it: its fields plus id, number, status, timestamps.
#[derive(Serialize)]
struct OrderOut<'a> {
    id: Uuid,
    number: &'a str,
    status: Status,
    referring_facility: Uuid,
    created_at: String,
    updated_at: String,
    #[serde(flatten)]
    data: &'a OrderData,
    warnings: &'a [FieldWarning],
}

fn order_out(rec: &OrderRecord) -> OrderOut<'_> {
    OrderOut {
        id: rec.id,
        number: &rec.number,
        status: rec.status,
        referring_facility: rec.facility_id,
        created_at: rfc3339(rec.created_ms),
        updated_at: rfc3339(rec.updated_ms),
        data: &rec.data,
        warnings: &rec.warnings,
    }
}

#[handler]
async fn create_order(req: &Request, api: ApiCaller, body: Body) -> poem::Result<Response> {
    let state = state(req)?;
    let input: OrderInput = json_body(body).await?;
    let rec = submit(&state, &api.caller, &input)?;
    Ok(created(serde_json::json!({
        "id": rec.id,
        "number": rec.number,
        "status": rec.status,
        "warnings": rec.warnings,
    })))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

#[handler]
async fn list_orders(
    req: &Request,
    api: ApiCaller,
    Query(q): Query<ListQuery>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let status = match q.status.as_deref() {
        Some(s) => Some(
            Status::parse(s).ok_or_else(|| AppError::field("status", "is not an order state"))?,
        ),
        None => None,
    };
    let cursor = match q.cursor.as_deref() {
        Some(c) => Some(
            Uuid::parse_str(c)
                .map_err(|_| AppError::field("cursor", "is not a cursor from this API"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(state.cfg.page_size).clamp(1, 200);
    let page = OrderScope::new(&state.store, &api.caller)
        .list(status, cursor, limit)
        .map_err(AppError::from)?;
    let items: Vec<OrderOut<'_>> = page.items.iter().map(order_out).collect();
    Ok(Json(serde_json::json!({ "items": items, "next_cursor": page.next })).into_response())
}

#[handler]
async fn get_order(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let scope = OrderScope::new(&state.store, &api.caller);
    let id = id_or_refuse(&id, || scope.refuse("order.view"))?;
    let rec = scope.get(id).map_err(AppError::from)?;
    Ok(
        Json(serde_json::to_value(order_out(&rec)).map_err(|e| AppError::Internal(e.to_string()))?)
            .into_response(),
    )
}

fn path_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

fn conflict(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict(why) => AppError::BadRequest(why.to_string()),
        other => other.into(),
    }
}

#[handler]
async fn disable_org(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    admin(&state, &api)?
        .disable_org(path_id(&id)?)
        .map_err(conflict)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[handler]
async fn disable_user(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    admin(&state, &api)?
        .disable_user(path_id(&id)?)
        .map_err(conflict)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
