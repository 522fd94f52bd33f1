//! CSV export of the caller's order list. What is exported is exactly what
//! `OrderScope` lists for the caller; the export is audited there.

use poem::Response;

use super::AppState;
use super::error::AppError;
use crate::domain::placement::line_label;
use crate::domain::{Caller, Status};
use crate::store::accounts;
use crate::store::orders::{OrderScope, project};

/// Spreadsheets run cells that start with these as formulas; quote them.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

pub fn csv(state: &AppState, caller: &Caller, status: Option<Status>) -> Result<Vec<u8>, AppError> {
    let orders = OrderScope::new(&state.store, caller).export(status)?;
    let names: std::collections::HashMap<_, _> = {
        let tx = state.store.read()?;
        accounts::all_orgs(&tx)?
            .into_iter()
            .map(|o| (o.id, o.name))
            .collect()
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "number",
        "status",
        "priority",
        "facility",
        "patient_last_name",
        "patient_first_name",
        "dob",
        "services",
        "received",
    ];
    w.write_record(header)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    for rec in &orders {
        let (view, _) = project(caller.party(), rec);
        let services: Vec<&str> = view.data.services.iter().map(line_label).collect();
        let row = [
            view.number.clone(),
            view.status.as_str().to_string(),
            format!("{:?}", view.data.priority).to_lowercase(),
            names.get(&view.facility_id).cloned().unwrap_or_default(),
            view.data.patient.last_name.clone(),
            view.data.patient.first_name.clone(),
            view.data.patient.dob.clone(),
            services.join("; "),
            super::view::rfc3339(view.created_ms),
        ];
        w.write_record(row.iter().map(|c| cell(c)))
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    w.into_inner()
        .map_err(|e| AppError::Internal(e.to_string()))
}

pub fn response(body: Vec<u8>) -> Response {
    Response::builder()
        .content_type("text/csv; charset=utf-8")
        .header("content-disposition", "attachment; filename=\"orders.csv\"")
        .body(body)
}
