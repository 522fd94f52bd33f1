//! The dashboard and the provider's inbox of offers awaiting an answer.

use poem::{IntoResponse, Request, Response, handler};
use serde_json::json;

use crate::domain::Party;
use crate::domain::placement::{OfferStatus, line_label};
use crate::store::orders::{OrderScope, project};
use crate::web::error::AppError;
use crate::web::extract::{Viewer, state};
use crate::web::view::when;

#[handler]
pub async fn dashboard(req: &Request, viewer: Viewer) -> poem::Result<Response> {
    let state = state(req)?;
    let view = crate::web::dashboard::build(&state, &viewer.caller)?;
    let base = viewer.base(&state, "Dashboard", "dashboard");
    Ok(state
        .templates
        .render("dashboard.html", &base, view)?
        .into_response())
}

/// Offers waiting for a provider's answer (open, or asked and replied).
pub fn awaiting(
    state: &crate::web::AppState,
    viewer: &Viewer,
) -> Result<Vec<serde_json::Value>, AppError> {
    let Party::Provider(me) = viewer.caller.party() else {
        return Ok(Vec::new());
    };
    let page = OrderScope::new(&state.store, &viewer.caller).awaiting(None, 500)?;
    let mut out = Vec::new();
    for rec in &page.items {
        let (view, _) = project(Party::Provider(me), rec);
        for (line, service) in view.workflow.lines.iter().zip(view.data.services.iter()) {
            for offer in line.offers.iter().filter(|o| o.status == OfferStatus::Open) {
                out.push(json!({
                    "order_id": rec.id, "number": rec.number,
                    "patient_name": format!("{}, {}", rec.data.patient.last_name, rec.data.patient.first_name),
                    "line_label": line_label(service), "status": offer.status, "status_label": offer.status.label(),
                    "offered_at": when(offer.offered_ms), "question": offer.question,
                }));
            }
        }
    }
    Ok(out)
}

#[handler]
pub async fn inbox(req: &Request, viewer: Viewer) -> poem::Result<Response> {
    let state = state(req)?;
    if !matches!(viewer.caller.party(), Party::Provider(_)) {
        let event = crate::store::audit::Event::by(
            &viewer.caller,
            "inbox.view",
            None,
            crate::store::audit::Outcome::Refused,
        );
        crate::store::audit::record(&state.store, event).map_err(AppError::from)?;
        return Err(AppError::NotFound.into());
    }
    let offers = awaiting(&state, &viewer)?;
    let base = viewer.base(&state, "Inbox", "inbox");
    Ok(state
        .templates
        .render("inbox.html", &base, json!({ "offers": offers }))?
        .into_response())
}
