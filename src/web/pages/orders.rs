//! Order pages: the caller's list (with unread-message badges) and the new-order
//! form. Every read goes through `OrderScope` and `ThreadScope`, so these handlers
//! hold no visibility rules.

use std::collections::{BTreeMap, HashMap};

use poem::http::StatusCode;
use poem::web::{Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::order::ServiceLine;
use crate::domain::{Party, Role, Status};
use crate::store::accounts;
use crate::store::orders::{OrderRecord, OrderScope};
use crate::store::threads::ThreadScope;
use crate::web::error::AppError;
use crate::web::extract::{Posted, Viewer, state};
use crate::web::order_form;
use crate::web::pages::session::ErrorItem;
use crate::web::submit::{submit, today};
use crate::web::view::{Choice, when};

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    after: Option<String>,
}

impl ListQuery {
    /// The status filter; empty means all.
    fn status(&self) -> Result<Option<Status>, AppError> {
        match self.status.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Status::parse(s)
                .map(Some)
                .ok_or_else(|| AppError::BadRequest("unknown status".into())),
            None => Ok(None),
        }
    }
}

#[handler]
pub async fn export(
    req: &Request,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let status = q.status()?;
    let csv = crate::web::export::csv(&state, &viewer.caller, status)?;
    Ok(crate::web::export::response(csv))
}

#[derive(Serialize)]
struct OrderRow {
    id: String,
    number: String,
    patient_name: String,
    facility_name: String,
    status: &'static str,
    status_label: &'static str,
    priority: String,
    services: Vec<&'static str>,
    created_at: String,
    /// Messages by others the viewer has not read, across their threads.
    unread: u32,
}

pub fn service_label(s: &ServiceLine) -> &'static str {
    match s {
        ServiceLine::HomeHealth { .. } => "Home health",
        ServiceLine::Dme { .. } => "DME",
        ServiceLine::Caregiver { .. } => "Caregiver",
    }
}

fn org_names(state: &crate::web::AppState) -> Result<HashMap<Uuid, String>, AppError> {
    let tx = state.store.read()?;
    Ok(accounts::all_orgs(&tx)?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect())
}

#[handler]
pub async fn list(
    req: &Request,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> poem::Result<Response> {
    render_list(req, &viewer, &q, None)
}

/// Search is a POST so that names, MRNs and birth dates never travel in a URL.
#[handler]
pub async fn search(req: &Request, posted: Posted) -> poem::Result<Response> {
    let q = ListQuery {
        status: None,
        after: None,
    };
    let text = posted.form.get("q").to_string();
    render_list(req, &posted.viewer, &q, Some(text))
}

fn render_list(
    req: &Request,
    viewer: &Viewer,
    q: &ListQuery,
    search_text: Option<String>,
) -> poem::Result<Response> {
    let state = state(req)?;
    let status = q.status()?;
    let cursor = match q.after.as_deref() {
        Some(s) => {
            Some(Uuid::parse_str(s).map_err(|_| AppError::BadRequest("bad page link".into()))?)
        }
        None => None,
    };
    let query = search_text
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let scope = OrderScope::new(&state.store, &viewer.caller);
    let page = match &query {
        Some(text) => crate::store::orders::Page {
            items: scope.search(text, 100).map_err(AppError::from)?,
            next: None,
        },
        None => scope
            .list(status, cursor, state.cfg.page_size)
            .map_err(AppError::from)?,
    };
    if query.is_none() {
        let event = crate::store::audit::Event::by(
            &viewer.caller,
            "order.list",
            None,
            crate::store::audit::Outcome::Ok,
        );
        crate::store::audit::record(&state.store, event).map_err(AppError::from)?;
    }
    let names = org_names(&state)?;
    let unread = ThreadScope::new(&state.store, &viewer.caller)
        .unread_by_order(&page.items)
        .map_err(AppError::from)?;
    let orders: Vec<OrderRow> = page
        .items
        .iter()
        .zip(unread)
        .map(|(r, unread)| OrderRow {
            id: r.id.to_string(),
            number: r.number.clone(),
            patient_name: format!(
                "{}, {}",
                r.data.patient.last_name, r.data.patient.first_name
            ),
            facility_name: names.get(&r.facility_id).cloned().unwrap_or_default(),
            status: r.status.as_str(),
            status_label: r.status.label(),
            priority: serde_json::to_value(r.data.priority)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            services: r.data.services.iter().map(service_label).collect(),
            created_at: when(r.created_ms),
            unread,
        })
        .collect();
    let status_param = status
        .map(|s| format!("status={}&", s.as_str()))
        .unwrap_or_default();
    let view = serde_json::json!({
        "orders": orders,
        "statuses": Status::ALL.iter().map(|s| Choice {
            value: s.as_str().into(), label: s.label().into(), selected: Some(*s) == status,
        }).collect::<Vec<_>>(),
        "next_url": page.next.map(|n| format!("/orders?{status_param}after={n}")),
        "first_url": cursor.map(|_| format!("/orders?{}", status_param.trim_end_matches('&'))),
        "can_create": viewer.caller.role() != Role::ProviderUser,
        "q": query.clone().unwrap_or_default(),
        "searching": query.is_some(),
        // The export follows the list and its status filter; search results are not
        // a list it can reproduce (the search text never goes in a URL), so no link.
        "export_url": query.is_none().then(|| format!("/orders/export.csv?{}", status_param.trim_end_matches('&'))),
    });
    let base = viewer.base(&state, "Orders", "orders");
    Ok(state
        .templates
        .render("orders_list.html", &base, view)?
        .into_response())
}

#[derive(Serialize, Default)]
struct FormView {
    values: BTreeMap<String, String>,
    errors: BTreeMap<String, String>,
    error_list: Vec<ErrorItem>,
    facilities: Option<Vec<Choice>>,
    disciplines_checked: Vec<String>,
    today: String,
}

fn render_form(
    req: &Request,
    viewer: &Viewer,
    mut view: FormView,
    status: StatusCode,
) -> poem::Result<Response> {
    let state = state(req)?;
    if viewer.caller.party() == Party::Agency {
        let tx = state.store.read().map_err(AppError::from)?;
        let chosen = view
            .values
            .get("referring_facility")
            .cloned()
            .unwrap_or_default();
        view.facilities = Some(
            accounts::all_orgs(&tx)
                .map_err(AppError::from)?
                .into_iter()
                .filter(|o| o.kind == crate::domain::OrgKind::ReferringFacility && !o.disabled)
                .map(|o| Choice {
                    selected: o.id.to_string() == chosen,
                    value: o.id.to_string(),
                    label: o.name,
                })
                .collect(),
        );
    }
    view.today = today().to_string();
    let base = viewer.base(&state, "New discharge order", "new_order");
    Ok(state
        .templates
        .render("order_form.html", &base, view)?
        .with_status(status)
        .into_response())
}

fn may_create(viewer: &Viewer) -> Result<(), AppError> {
    if viewer.caller.role() == Role::ProviderUser {
        Err(AppError::NotFound)
    } else {
        Ok(())
    }
}

#[handler]
pub async fn new_page(req: &Request, viewer: Viewer) -> poem::Result<Response> {
    may_create(&viewer)?;
    let mut view = FormView::default();
    view.values.insert("priority".into(), "routine".into());
    view.values
        .insert("insurance[0].rank".into(), "primary".into());
    render_form(req, &viewer, view, StatusCode::OK)
}

#[handler]
pub async fn create(req: &Request, posted: Posted) -> poem::Result<Response> {
    let viewer = &posted.viewer;
    may_create(viewer)?;
    let state = state(req)?;
    let (input, map, read_errors) = order_form::read(&posted.form);
    let outcome = if read_errors.is_empty() {
        submit(&state, &viewer.caller, &input)
    } else {
        Err(AppError::Invalid(read_errors))
    };
    match outcome {
        Ok(rec) => Ok(Redirect::see_other(format!("/orders/{}", rec.id)).into_response()),
        Err(AppError::Invalid(errors)) => {
            let mut view = FormView {
                values: order_form::values(&posted.form),
                disciplines_checked: posted.form.all("svc.home_health.disciplines"),
                ..FormView::default()
            };
            for e in errors {
                let name = map.to_form(&e.field);
                view.error_list.push(ErrorItem {
                    label: order_form::label(&name),
                    field: name.clone(),
                    message: e.message.clone(),
                });
                view.errors.entry(name).or_insert(e.message);
            }
            render_form(req, viewer, view, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(other) => Err(other.into()),
    }
}
/// The workflow part of an order's page: the order as the viewer's party sees it,
/// the steps open to the viewer, service fit (agency), and a refused step's error.
pub fn workflow_context(
    state: &crate::web::AppState,
    viewer: &Viewer,
    rec: &OrderRecord,
    error: Option<crate::web::pages::steps::Refused>,
) -> Result<serde_json::Value, AppError> {
    let names = org_names(state)?;
    let party = viewer.caller.party();
    let wf = crate::web::api::order_out(party, rec);
    let side = match party {
        Party::Agency => "agency",
        Party::Facility(_) => "facility",
        Party::Provider(_) => "provider",
    };
    let open = rec.status.is_open();
    let fit = if party == Party::Agency && open {
        Some(crate::web::fit::for_order(state, rec)?)
    } else {
        None
    };
    let view = serde_json::json!({
        "order": {
            "id": rec.id.to_string(),
            "number": rec.number,
            "status": rec.status.as_str(),
            "status_label": rec.status.label(),
            "priority": rec.data.priority,
            "facility_name": names.get(&rec.facility_id).cloned().unwrap_or_default(),
            "created_at": when(rec.created_ms),
            "updated_at": when(rec.updated_ms),
            "data": serde_json::from_value::<serde_json::Value>(wf.clone()).unwrap_or_default(),
        },
        "warnings": rec.warnings,
        "wf": wf,
        "side": side,
        "providers": names.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        "actions": {
            "review": party == Party::Agency && rec.status == Status::Submitted,
            "ask": party == Party::Agency && rec.status == Status::InReview,
            "answer": party != Party::Provider(viewer.caller.org_id()) && rec.status == Status::NeedsInfo,
            "coverage": party == Party::Agency && open,
            "offer": party == Party::Agency && matches!(rec.status, Status::InReview | Status::PendingPlacement),
            "complete": party == Party::Agency && rec.status == Status::InService,
            "cancel": party != Party::Provider(viewer.caller.org_id()) && open,
        },
        "fit": fit,
        "decline_reasons": crate::domain::placement::DeclineReason::ALL.iter().map(|r| Choice {
            value: r.code().into(), label: r.label().into(), selected: false,
        }).collect::<Vec<_>>(),
        "error": error,
        "today": today().to_string(),
    });
    Ok(view)
}
