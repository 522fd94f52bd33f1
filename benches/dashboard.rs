//! Dashboard benchmark: 100,000 orders over 20 facilities (and 1,000 for
//! comparison), with offers answered by seven providers, then the time to build and
//! render the staff dashboard.
//!
//! Run with `cargo bench --bench dashboard`. Target: under 50 ms at 100,000 orders.

#[path = "support/mod.rs"]
mod support;
use support::user;

use std::time::{Duration, Instant};

use ihms_connect::config::Config;
use ihms_connect::crypto::MasterKey;
use ihms_connect::domain::account::NewOrgInput;
use ihms_connect::domain::order::OrderInput;
use ihms_connect::domain::placement::{DeclineReason, Response};
use ihms_connect::domain::validate::validate;
use ihms_connect::domain::{Role, Status};
use ihms_connect::store::Store;
use ihms_connect::store::accounts::AdminScope;
use ihms_connect::store::audit::{Event, Outcome};
use ihms_connect::store::orders::{OrderRecord, system_import};
use ihms_connect::store::placement::WorkflowScope;
use ihms_connect::web::AppState;
use ihms_connect::web::view::Base;
use uuid::Uuid;

const RUNS: usize = 50;

fn run(count: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::create(
        dir.path(),
        &MasterKey::create(&dir.path().join("master.key")).expect("key"),
    )
    .expect("store");
    let admin = user(Role::Admin, Uuid::now_v7()).caller(None);
    let admin_scope = AdminScope::new(&store, &admin).expect("admin");
    let orgs: serde_json::Value =
        serde_json::from_str(include_str!("../../shared/fixtures/organizations.json"))
            .expect("orgs");
    let mut facilities = Vec::new();
    let mut providers = Vec::new();
    for i in 0..20 {
        let mut f: NewOrgInput =
            serde_json::from_value(orgs["referring_facilities"][i % 4].clone()).expect("org");
        f.name = format!("{} {i}", f.name);
        facilities.push(
            admin_scope
                .create_org(&f.parse().expect("valid"))
                .expect("create")
                .id,
        );
    }
    for p in orgs["providers"].as_array().expect("providers") {
        let mut input: NewOrgInput = serde_json::from_value(p.clone()).expect("org");
        input.profile.service_zips.push("33602".into());
        input.profile.payers_accepted.push("medicare".into());
        providers.push((
            admin_scope
                .create_org(&input.parse().expect("valid"))
                .expect("create"),
            p["kind"].clone(),
        ));
    }
    let fixtures: Vec<OrderInput> =
        serde_json::from_str(include_str!("../../shared/fixtures/discharge-orders.json"))
            .expect("fixtures");
    let today = time::macros::date!(2026 - 12 - 03);
    // DME-only orders at ZIP 33602 with an item every DME supplier carries.
    let mut template = fixtures
        .iter()
        .find(|o| o.services.len() == 1 && o.services[0].kind == "dme")
        .expect("dme")
        .clone();
    template.patient.address.zip = "33602".into();
    template.services[0].items.truncate(1);
    template.services[0].items[0].hcpcs = "E0143".into();
    let (data, warnings) = validate(&template, today).expect("valid");
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    for i in 0..count {
        let id = Uuid::now_v7();
        ids.push(id);
        batch.push(OrderRecord {
            id,
            number: format!("DO-2026-{:06}", i + 1),
            facility_id: facilities[i % facilities.len()],
            status: Status::InReview,
            created_ms: 0,
            updated_ms: 0,
            created_by: Uuid::nil(),
            data: data.clone(),
            warnings: warnings.clone(),
            provider_access: Vec::new(),
            workflow: Default::default(),
            legal_hold: None,
        });
        if batch.len() == 2_000 || i + 1 == count {
            system_import(
                &store,
                &batch,
                Event::anonymous("bench.import", None, Outcome::Ok),
            )
            .expect("import");
            batch.clear();
        }
    }
    // Real offers and answers on a slice of the orders, for the provider figures.
    let staff = user(Role::Staff, Uuid::now_v7()).caller(None);
    let flow = WorkflowScope::new(&store, &staff);
    let dme: Vec<Uuid> = providers
        .iter()
        .filter(|(_, k)| k == "dme")
        .map(|(o, _)| o.id)
        .collect();
    for (n, id) in ids.iter().take(300).enumerate() {
        flow.override_coverage(*id, "bench").expect("override");
        flow.offer(*id, 0, &dme).expect("offer");
        let rec: OrderRecord = ihms_connect::store::orders::OrderScope::new(&store, &staff)
            .get(*id)
            .expect("get");
        for offer in &rec.workflow.lines[0].offers {
            let p = user(Role::ProviderUser, offer.provider).caller(None);
            let answer = if n % 3 == 0 {
                Response::Decline {
                    reason: Some(DeclineReason::NoCapacity),
                    text: String::new(),
                }
            } else {
                Response::Accept
            };
            WorkflowScope::new(&store, &p)
                .respond(*id, offer.id, answer)
                .expect("respond");
        }
    }
    let clock: std::sync::Arc<dyn ihms_connect::clock::Clock> =
        std::sync::Arc::new(ihms_connect::clock::SystemClock);
    let state = AppState::new(store, Config::default(), clock).expect("state");
    let base = Base::default();
    let mut build = Vec::new();
    let mut render = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let view = ihms_connect::web::dashboard::build(&state, &staff).expect("build");
        build.push(t.elapsed());
        let t = Instant::now();
        let html = state
            .templates
            .render("dashboard.html", &base, &view)
            .expect("render");
        render.push(t.elapsed());
        assert!(html.0.contains("</html>"));
    }
    build.sort();
    render.sort();
    (build[RUNS / 2], build[RUNS / 2] + render[RUNS / 2])
}

fn main() {
    for count in [1_000usize, 100_000] {
        let (build, total) = run(count);
        println!(
            "{count} orders: dashboard figures {:.2} ms, figures + page render {:.2} ms (median of {RUNS}; target < 50 ms)",
            build.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3
        );
    }
}
