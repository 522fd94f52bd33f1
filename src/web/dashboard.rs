//! The dashboard: where every order stands and how providers and facilities
//! perform. Built from the aggregates in `store::stats`, so its cost does not grow
//! with the number of orders. Agency staff see everything; facility and provider
//! users see their own orders by state.

use std::collections::HashMap;

use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::error::AppError;
use super::view::when;
use crate::domain::placement::DeclineReason;
use crate::domain::{Caller, OrgKind, Party};
use crate::store::orders::OrderScope;
use crate::store::{accounts, now_ms, stats};

fn duration(secs: Option<u64>) -> String {
    match secs {
        None => "—".into(),
        Some(s) if s < 3600 => format!("{} min", s / 60),
        Some(s) if s < 86_400 => format!("{:.1} h", s as f64 / 3600.0),
        Some(s) => format!("{:.1} d", s as f64 / 86_400.0),
    }
}

pub fn build(state: &AppState, caller: &Caller) -> Result<Value, AppError> {
    let party = caller.party();
    let tx = state.store.read()?;
    let counts: Vec<Value> = stats::counts(&tx, party)?
        .into_iter()
        .map(|(s, n)| json!({ "status": s.as_str(), "label": s.label(), "count": n }))
        .collect();
    let total: u64 = counts.iter().filter_map(|c| c["count"].as_u64()).sum();
    if party != Party::Agency {
        return Ok(json!({ "counts": counts, "total": total, "agency": false }));
    }
    let orgs = accounts::all_orgs(&tx)?;
    let names: HashMap<Uuid, String> = orgs.iter().map(|o| (o.id, o.name.clone())).collect();
    let providers: Vec<Value> = orgs
        .iter()
        .filter(|o| o.kind.is_provider())
        .map(|o| {
            let s = stats::provider_stats(&tx, o.id)?;
            let median = stats::median_answer_secs(&tx, o.id, s.answered)?;
            let rate = (s.accepted * 100).checked_div(s.answered);
            let mut reasons: Vec<(String, u64)> =
                s.reasons.iter().map(|(k, v)| (k.clone(), *v)).collect();
            reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
            Ok(json!({
                "id": o.id, "name": o.name, "offers": s.offers, "answered": s.answered,
                "accepted": s.accepted, "declined": s.declined, "acceptance_rate": rate,
                "median_answer": duration(median), "median_answer_secs": median,
                "decline_reasons": reasons.iter().map(|(code, n)| json!({
                    "code": code,
                    "label": DeclineReason::parse(code).map(|r| r.label()).unwrap_or("Other"),
                    "count": n,
                })).collect::<Vec<_>>(),
            }))
        })
        .collect::<Result<_, AppError>>()?;
    let facilities: Vec<Value> = orgs
        .iter()
        .filter(|o| o.kind == OrgKind::ReferringFacility)
        .map(|o| {
            let orders: u64 = stats::counts(&tx, Party::Facility(o.id))?
                .iter()
                .map(|(_, n)| n)
                .sum();
            let (placed, median) = stats::median_placement_secs(&tx, o.id)?;
            Ok(
                json!({ "id": o.id, "name": o.name, "orders": orders, "placed": placed,
                       "median_placement": duration(median), "median_placement_secs": median }),
            )
        })
        .collect::<Result<_, AppError>>()?;
    let threshold = now_ms() - (state.cfg.offer_overdue_hours as i64) * 3_600_000;
    let overdue_raw = stats::overdue(&tx, threshold, 20)?;
    drop(tx);
    let scope = OrderScope::new(&state.store, caller);
    let tx = state.store.read()?;
    let mut overdue = Vec::new();
    for (order, offer, at) in overdue_raw {
        if let Some(rec) =
            tx.get::<crate::store::orders::OrderRecord>(crate::store::ORDERS, order.as_bytes())?
        {
            let provider = rec
                .workflow
                .lines
                .iter()
                .flat_map(|l| l.offers.iter())
                .find(|o| o.id == offer)
                .map(|o| names.get(&o.provider).cloned().unwrap_or_default())
                .unwrap_or_default();
            overdue.push(json!({ "order_id": order, "number": rec.number, "provider": provider,
                                 "offered_at": when(at), "waiting": duration(Some(((now_ms() - at) / 1000) as u64)) }));
        }
    }
    drop(tx);
    let waiting: Vec<Value> = scope
        .oldest_open(10)?
        .iter()
        .map(|r| {
            json!({ "id": r.id, "number": r.number, "status": r.status.as_str(), "status_label": r.status.label(),
                    "facility": names.get(&r.facility_id).cloned().unwrap_or_default(),
                    "received": when(r.created_ms),
                    "waiting": duration(Some(((now_ms() - r.created_ms) / 1000).max(0) as u64)) })
        })
        .collect();
    Ok(json!({
        "agency": true, "counts": counts, "total": total, "waiting": waiting, "overdue": overdue,
        "overdue_hours": state.cfg.offer_overdue_hours, "providers": providers, "facilities": facilities,
    }))
}
