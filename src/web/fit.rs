//! Service fit for an order's lines, as agency staff see it: which providers fit
//! each line and, for the others, why not. The rule itself is `placement::fit`.

use serde::Serialize;
use uuid::Uuid;

use super::AppState;
use super::error::AppError;
use crate::domain::placement::{fit, line_kind, line_label};
use crate::store::accounts;
use crate::store::orders::OrderRecord;

#[derive(Serialize)]
pub struct ProviderFit {
    pub id: Uuid,
    pub name: String,
    pub reasons: Vec<String>,
    /// Whether the provider already has a live offer on this line.
    pub offered: bool,
}

#[derive(Serialize)]
pub struct LineFit {
    pub line: usize,
    pub kind: crate::domain::OrgKind,
    pub label: &'static str,
    pub fits: Vec<ProviderFit>,
    pub others: Vec<ProviderFit>,
}

pub fn for_order(state: &AppState, rec: &OrderRecord) -> Result<Vec<LineFit>, AppError> {
    let tx = state.store.read()?;
    let providers: Vec<_> = accounts::all_orgs(&tx)?
        .into_iter()
        .filter(|o| o.kind.is_provider())
        .collect();
    let primary = rec.data.insurance.first().map(|p| p.plan_type);
    let zip = &rec.data.patient.address.zip;
    Ok(rec
        .data
        .services
        .iter()
        .enumerate()
        .map(|(i, service)| {
            let mut fits = Vec::new();
            let mut others = Vec::new();
            for org in providers.iter().filter(|o| o.kind == line_kind(service)) {
                let reasons = match primary {
                    Some(plan) => fit(service, zip, plan, org.kind, org.disabled, &org.profile),
                    None => vec!["the order has no primary plan".into()],
                };
                let offered = rec.workflow.lines.get(i).is_some_and(|l| {
                    l.offers
                        .iter()
                        .any(|o| o.provider == org.id && o.status.is_live())
                });
                let entry = ProviderFit {
                    id: org.id,
                    name: org.name.clone(),
                    reasons,
                    offered,
                };
                if entry.reasons.is_empty() {
                    fits.push(entry)
                } else {
                    others.push(entry)
                }
            }
            LineFit {
                line: i,
                kind: line_kind(service),
                label: line_label(service),
                fits,
                others,
            }
        })
        .collect())
}
