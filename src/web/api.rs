//! The JSON API under `/api/v1`, authenticated by bearer tokens. Errors are
//! `application/problem+json` with a per-field `errors` list (see `error`).
//! The same party-scoped store APIs as the pages decide what each caller sees.

use poem::http::StatusCode;
use poem::web::{Json, Path, Query};
use poem::{Body, IntoResponse, Request, Response, Route, get, handler, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::api_documents;
use super::error::AppError;
use super::extract::{ApiCaller, id_or_refuse, state};
use super::submit::submit;
use super::view::rfc3339;
use crate::domain::account::{NewOrgInput, NewUserInput};
use crate::domain::order::{FieldError, OrderInput};
use crate::domain::{Party, Status};
use crate::store::StoreError;
use crate::store::accounts::AdminScope;
use crate::store::orders::project;
use crate::store::orders::{OrderRecord, OrderScope};
use serde_json::json;

const JSON_LIMIT: usize = 1024 * 1024;

pub fn routes() -> Route {
    Route::new()
        .at("/organizations", get(list_orgs).post(create_org))
        .at("/organizations/:id/disable", post(disable_org))
        .at("/organizations/:id/profile", post(set_profile))
        .at("/users", post(create_user))
        .at("/users/:id/disable", post(disable_user))
        .at("/orders", get(list_orders).post(create_order))
        .at("/orders/search", post(super::api_workflow::search))
        .at("/orders/export.csv", get(super::api_workflow::export_csv))
        .at("/dashboard", get(super::api_workflow::dashboard))
        .at("/orders/:id", get(get_order))
        .at("/orders/:id/fit", get(super::api_workflow::fit))
        .at("/orders/:id/legal-hold", post(legal_hold))
        .at("/orders/:id/:step", post(super::api_workflow::order_step))
        .at(
            "/orders/:id/lines/:line/:step",
            post(super::api_workflow::line_step),
        )
        .at(
            "/orders/:id/offers/:offer/:step",
            post(super::api_workflow::offer_step),
        )
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

/// The admin's powers, or a 404 (audited as a refusal) for anyone else.
fn admin<'a>(state: &'a super::AppState, api: &'a ApiCaller) -> Result<AdminScope<'a>, AppError> {
    Ok(AdminScope::require(&state.store, &api.caller)?)
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

/// An order as the API shows it to `party`: its fields plus id, number, status,
/// timestamps, and the workflow as that party may see it (see `orders::project`).
pub fn order_out(party: Party, rec: &OrderRecord) -> serde_json::Value {
    let (view, lines) = project(party, rec);
    let mut out = serde_json::to_value(&view.data).unwrap_or_default();
    if let Some(map) = out.as_object_mut() {
        map.insert("id".into(), json!(view.id));
        map.insert("number".into(), json!(view.number));
        map.insert("status".into(), json!(view.status));
        map.insert("referring_facility".into(), json!(view.facility_id));
        map.insert("created_at".into(), json!(rfc3339(view.created_ms)));
        map.insert("updated_at".into(), json!(rfc3339(view.updated_ms)));
        map.insert("warnings".into(), json!(view.warnings));
        if party == Party::Agency {
            map.insert("legal_hold".into(), hold_out(rec));
        }
        let wf = &view.workflow;
        let line_out: Vec<serde_json::Value> = lines
            .iter()
            .zip(wf.lines.iter())
            .zip(view.data.services.iter())
            .map(|((index, line), service)| {
                json!({
                    "line": index,
                    "kind": crate::domain::placement::line_kind(service),
                    "awarded_to": line.awarded,
                    "start_date": line.start_date,
                    "offers": line.offers.iter().map(|o| json!({
                        "id": o.id,
                        "provider": o.provider,
                        "status": o.status,
                        "offered_at": rfc3339(o.offered_ms),
                        "answered_at": o.answered_ms.map(rfc3339),
                        "decline_reason": o.decline_reason.map(|r| r.code()),
                        "decline_text": o.decline_text,
                        "question": o.question,
                        "reply": o.reply,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        map.insert("lines".into(), json!(line_out));
        if party == Party::Agency {
            map.insert("coverage".into(), json!(wf.coverage));
            map.insert("coverage_override".into(), json!(wf.coverage_override));
        }
        map.insert("question".into(), json!(wf.question));
        map.insert("cancel_reason".into(), json!(wf.cancel_reason));
        map.insert(
            "timeline".into(),
            json!(
                wf.events
                    .iter()
                    .map(|e| json!({
                        "at": rfc3339(e.at_ms), "by": e.by, "role": e.role, "what": e.what,
                        "line": e.line, "provider": e.provider, "note": e.note,
                    }))
                    .collect::<Vec<_>>()
            ),
        );
    }
    out
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
    let event = crate::store::audit::Event::by(
        &api.caller,
        "order.list",
        None,
        crate::store::audit::Outcome::Ok,
    );
    crate::store::audit::record(&state.store, event).map_err(AppError::from)?;
    let party = api.caller.party();
    let items: Vec<serde_json::Value> = page.items.iter().map(|r| order_out(party, r)).collect();
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
    Ok(Json(order_out(api.caller.party(), &rec)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldInput {
    hold: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// Places (`hold: true` with a `reason`) or lifts a legal hold; agency admins only.
#[handler]
async fn legal_hold(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
    body: Body,
) -> poem::Result<Response> {
    let state = state(req)?;
    let id = path_id(&id)?;
    let input: HoldInput = json_body(body).await?;
    let reason = match input.hold {
        true => {
            let reason = input.reason.unwrap_or_default().trim().to_string();
            let n = reason.chars().count();
            if n == 0 || n > 500 || reason.chars().any(char::is_control) {
                return Err(AppError::field(
                    "reason",
                    "give the reason in 1 to 500 characters on one line",
                )
                .into());
            }
            Some(reason)
        }
        false => None,
    };
    let rec = crate::store::retention::set_legal_hold(&state.store, &api.caller, id, reason)
        .map_err(AppError::from)?;
    Ok(Json(json!({ "id": rec.id, "legal_hold": hold_out(&rec) })).into_response())
}

fn hold_out(rec: &OrderRecord) -> serde_json::Value {
    match &rec.legal_hold {
        Some(h) => json!({ "since": rfc3339(h.at_ms), "by": h.by, "reason": h.reason }),
        None => serde_json::Value::Null,
    }
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
    let scope = admin(&state, &api)?;
    let id = id_or_refuse(&id, || {
        crate::store::audit::record(
            &state.store,
            crate::store::audit::Event::by(
                &api.caller,
                "user.disable",
                None,
                crate::store::audit::Outcome::Refused,
            ),
        )
        .map(|_| ())
    })?;
    scope.disable_user(id).map_err(conflict)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[handler]
async fn set_profile(
    req: &Request,
    api: ApiCaller,
    Path(id): Path<String>,
    body: Body,
) -> poem::Result<Response> {
    let state = state(req)?;
    let admin = admin(&state, &api)?;
    let input: crate::domain::account::ProfileInput = json_body(body).await?;
    let profile = input.parse().map_err(AppError::Invalid)?;
    let org = admin
        .set_profile(path_id(&id)?, profile)
        .map_err(conflict)?;
    Ok(Json(json!({ "id": org.id, "profile": org.profile })).into_response())
}

/// Every organization with its id, kind and directory entry (admin and staff: the
/// ids are what `referring_facility`, `organization_id` and offers take).
#[handler]
async fn list_orgs(req: &Request, api: ApiCaller) -> poem::Result<Response> {
    let state = state(req)?;
    if !api.caller.is_agency() {
        admin(&state, &api)?;
    }
    let tx = state.store.read().map_err(AppError::from)?;
    let orgs = crate::store::accounts::all_orgs(&tx).map_err(AppError::from)?;
    let items: Vec<serde_json::Value> = orgs
        .iter()
        .map(|o| json!({ "id": o.id, "name": o.name, "kind": o.kind, "npi": o.npi, "city": o.city,
                         "state": o.state, "zip": o.zip, "disabled": o.disabled, "profile": o.profile }))
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}
