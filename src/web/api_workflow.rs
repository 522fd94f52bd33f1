//! Workflow, search, export and dashboard calls of the JSON API. Every step goes
//! through `steps::run`, the same path as the pages.

use poem::http::StatusCode;
use poem::web::{Json, Path, Query};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::api::{json_body, order_out};
use super::error::AppError;
use super::extract::{ApiCaller, state};
use super::steps::{Action, run};
use crate::domain::Status;
use crate::store::orders::OrderScope;

/// Any step's body; each step reads the fields it needs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StepBody {
    question: String,
    text: String,
    answer: String,
    plan: serde_json::Value,
    result: String,
    method: String,
    reference: String,
    reason: String,
    reason_text: String,
    providers: Vec<String>,
    date: String,
}

fn id(s: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(s).map_err(|_| AppError::NotFound)
}

/// A step's JSON body; an empty body is the same as `{}`.
async fn body_of(body: Body) -> Result<StepBody, AppError> {
    let bytes = body
        .into_bytes_limit(64 * 1024)
        .await
        .map_err(|_| AppError::TooLarge)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(StepBody::default());
    }
    json_body(Body::from(bytes)).await
}

/// The order after a step, as the caller now sees it; a step that ended the
/// caller's own access (a provider's decline) answers with the id alone.
fn done(state: &super::AppState, api: &ApiCaller, order: Uuid) -> Result<Response, AppError> {
    match OrderScope::new(&state.store, &api.caller).get(order) {
        Ok(rec) => Ok(Json(order_out(api.caller.party(), &rec)).into_response()),
        Err(crate::store::StoreError::NotFound) => {
            Ok(Json(json!({ "id": order, "access": "ended" })).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[handler]
pub async fn order_step(
    req: &Request,
    api: ApiCaller,
    Path((order, step)): Path<(String, String)>,
    body: Body,
) -> poem::Result<Response> {
    let state = state(req)?;
    let order = id(&order)?;
    let b = body_of(body).await?;
    let action = match step.as_str() {
        "review" => Action::Review,
        "ask" => Action::Ask {
            question: b.question,
        },
        "answer" => Action::Answer { text: b.text },
        "coverage" => Action::Coverage {
            plan: match &b.plan {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                _ => String::new(),
            },
            result: b.result,
            method: b.method,
            reference: b.reference,
        },
        "coverage-override" => Action::Override { reason: b.reason },
        "complete" => Action::Complete,
        "cancel" => Action::Cancel { reason: b.reason },
        _ => return Err(AppError::NotFound.into()),
    };
    run(&state, &api.caller, order, action)?;
    Ok(done(&state, &api, order)?)
}

#[handler]
pub async fn line_step(
    req: &Request,
    api: ApiCaller,
    Path((order, line, step)): Path<(String, String, String)>,
    body: Body,
) -> poem::Result<Response> {
    let state = state(req)?;
    let order = id(&order)?;
    let line = super::steps::line_index(&line)?;
    let b = body_of(body).await?;
    let action = match step.as_str() {
        "offers" => Action::Offer {
            line,
            providers: b.providers,
        },
        "start" => Action::Start { line, date: b.date },
        _ => return Err(AppError::NotFound.into()),
    };
    run(&state, &api.caller, order, action)?;
    Ok(done(&state, &api, order)?)
}

#[handler]
pub async fn offer_step(
    req: &Request,
    api: ApiCaller,
    Path((order, offer, step)): Path<(String, String, String)>,
    body: Body,
) -> poem::Result<Response> {
    let state = state(req)?;
    let (order, offer) = (id(&order)?, id(&offer)?);
    let b = body_of(body).await?;
    let action = match step.as_str() {
        "respond" => Action::Respond {
            offer,
            answer: b.answer,
            question: b.question,
            reason: b.reason,
            text: b.reason_text,
        },
        "reply" => Action::Reply {
            offer,
            text: b.text,
        },
        "withdraw" => Action::Withdraw { offer },
        "award" => Action::Award { offer },
        _ => return Err(AppError::NotFound.into()),
    };
    run(&state, &api.caller, order, action)?;
    Ok(done(&state, &api, order)?)
}

#[handler]
pub async fn fit(
    req: &Request,
    api: ApiCaller,
    Path(order): Path<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    if !api.caller.is_agency() {
        let event = crate::store::audit::Event::by(
            &api.caller,
            "order.fit",
            Some(order.clone()),
            crate::store::audit::Outcome::Refused,
        );
        crate::store::audit::record(&state.store, event).map_err(AppError::from)?;
        return Err(AppError::NotFound.into());
    }
    let rec = OrderScope::new(&state.store, &api.caller)
        .get(id(&order)?)
        .map_err(AppError::from)?;
    let lines = super::fit::for_order(&state, &rec)?;
    Ok(Json(json!({ "lines": lines })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SearchBody {
    q: String,
}

/// Search takes its text in the body, never the URL (names and MRNs are PHI).
#[handler]
pub async fn search(req: &Request, api: ApiCaller, body: Body) -> poem::Result<Response> {
    let state = state(req)?;
    let b: SearchBody = json_body(body).await?;
    let query = b.q;
    if query.trim().is_empty() {
        return Err(AppError::field("q", "is required").into());
    }
    let found = OrderScope::new(&state.store, &api.caller)
        .search(&query, 50)
        .map_err(AppError::from)?;
    let party = api.caller.party();
    let items: Vec<serde_json::Value> = found.iter().map(|r| order_out(party, r)).collect();
    Ok(Json(json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
pub struct ExportQuery {
    status: Option<String>,
}

#[handler]
pub async fn export_csv(
    req: &Request,
    api: ApiCaller,
    Query(q): Query<ExportQuery>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            Status::parse(s).ok_or_else(|| AppError::field("status", "is not an order state"))?,
        ),
        None => None,
    };
    let csv = super::export::csv(&state, &api.caller, status)?;
    Ok(super::export::response(csv))
}

#[handler]
pub async fn dashboard(req: &Request, api: ApiCaller) -> poem::Result<Response> {
    let state = state(req)?;
    let d = super::dashboard::build(&state, &api.caller)?;
    Ok(Json(d).with_status(StatusCode::OK).into_response())
}
