//! Workflow step forms on the order page. Each posts to one route, runs through
//! `steps::run` (the same path as the API) and comes back to the order; a refused
//! step shows the order again with the reason beside the form, and the form
//! filled with what was sent (never the CSRF token), so nothing typed is lost.

use std::collections::BTreeMap;

use poem::web::{Path, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Serialize;
use uuid::Uuid;

use crate::web::error::AppError;
use crate::web::extract::{FormFields, Posted, state};
use crate::web::steps::{Action, run};

fn id(s: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(s).map_err(|_| AppError::NotFound)
}

/// A refused step, as the order page shows it: what was wrong, and which form
/// (`step`, and the offer or line it was for) was sent with what.
#[derive(Debug, Default, Serialize)]
pub struct Refused {
    pub field: String,
    pub message: String,
    pub step: String,
    pub target: String,
    pub sent: BTreeMap<String, String>,
    /// The providers ticked on an offer form (the one field sent many times).
    pub chosen: Vec<String>,
}

async fn finish(
    req: &Request,
    posted: &Posted,
    order: Uuid,
    (step, target): (&str, &str),
    action: Action,
) -> poem::Result<Response> {
    let state = state(req)?;
    let caller = &posted.viewer.caller;
    match run(&state, caller, order, action) {
        Ok(()) => {
            // A provider that declined no longer sees the order: back to the list.
            let still = crate::store::orders::visible_now(&state.store, caller, order)
                .map_err(AppError::from)?;
            let to = if still {
                format!("/orders/{order}")
            } else {
                "/orders".to_string()
            };
            Ok(Redirect::see_other(to).into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let sent = posted
                .form
                .0
                .iter()
                .filter(|(k, _)| k != "csrf")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let first = errors.into_iter().next().map(|e| Refused {
                field: e.field,
                message: e.message,
                step: step.to_string(),
                target: target.to_string(),
                sent,
                chosen: posted.form.all("providers"),
            });
            crate::web::pages::order_detail::render_with_error(
                req,
                &posted.viewer,
                &order.to_string(),
                None,
                Default::default(),
                poem::http::StatusCode::UNPROCESSABLE_ENTITY,
                first,
            )
        }
        Err(e) => Err(e.into()),
    }
}

fn f(form: &FormFields, name: &str) -> String {
    form.get(name).to_string()
}

#[handler]
pub async fn order_step(
    req: &Request,
    posted: Posted,
    Path((order, step)): Path<(String, String)>,
) -> poem::Result<Response> {
    let form = &posted.form;
    let action = match step.as_str() {
        "review" => Action::Review,
        "ask" => Action::Ask {
            question: f(form, "question"),
        },
        "answer" => Action::Answer {
            text: f(form, "text"),
        },
        "coverage" => Action::Coverage {
            plan: f(form, "plan"),
            result: f(form, "result"),
            method: f(form, "method"),
            reference: f(form, "reference"),
        },
        "coverage-override" => Action::Override {
            reason: f(form, "reason"),
        },
        "complete" => Action::Complete,
        "cancel" => Action::Cancel {
            reason: f(form, "reason"),
        },
        _ => return Err(AppError::NotFound.into()),
    };
    finish(req, &posted, id(&order)?, (&step, ""), action).await
}

#[handler]
pub async fn line_step(
    req: &Request,
    posted: Posted,
    Path((order, line, step)): Path<(String, String, String)>,
) -> poem::Result<Response> {
    let form = &posted.form;
    let line = crate::web::steps::line_index(&line)?;
    let action = match step.as_str() {
        "offer" => Action::Offer {
            line,
            providers: form.all("providers"),
        },
        "start" => Action::Start {
            line,
            date: f(form, "date"),
        },
        _ => return Err(AppError::NotFound.into()),
    };
    let target = line.to_string();
    finish(req, &posted, id(&order)?, (&step, &target), action).await
}

#[handler]
pub async fn offer_step(
    req: &Request,
    posted: Posted,
    Path((order, offer, step)): Path<(String, String, String)>,
) -> poem::Result<Response> {
    let form = &posted.form;
    let offer = id(&offer)?;
    let action = match step.as_str() {
        "respond" => Action::Respond {
            offer,
            answer: f(form, "answer"),
            question: f(form, "question"),
            reason: f(form, "reason"),
            text: f(form, "reason_text"),
        },
        "reply" => Action::Reply {
            offer,
            text: f(form, "text"),
        },
        "withdraw" => Action::Withdraw { offer },
        "award" => Action::Award { offer },
        _ => return Err(AppError::NotFound.into()),
    };
    let target = offer.to_string();
    finish(req, &posted, id(&order)?, (&step, &target), action).await
}
