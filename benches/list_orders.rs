//! Order-list benchmark: loads 1,000 and then 100,000 orders spread over 20
//! facilities into a fresh store and prints how long the first page takes for one
//! facility's user and for an agency staff user, plus the store's size on disk.
//!
//! Run with `cargo bench --bench list_orders`. Targets: first page under 5 ms at
//! 100,000 orders, and within 2x of the same call at 1,000 orders.

#[path = "support/mod.rs"]
mod support;
use support::user;

use std::time::{Duration, Instant};

use ihms_connect::crypto::MasterKey;
use ihms_connect::domain::order::OrderInput;
use ihms_connect::domain::validate::validate;
use ihms_connect::domain::{Role, Status};
use ihms_connect::store::Store;
use ihms_connect::store::audit::{Event, Outcome};
use ihms_connect::store::orders::{OrderRecord, OrderScope, system_import};
use uuid::Uuid;

const FACILITIES: usize = 20;
const PAGE: usize = 25;
const RUNS: usize = 300;

fn load(store: &Store, facilities: &[Uuid], templates: &[OrderRecord], count: usize) {
    let started = Instant::now();
    let mut batch = Vec::with_capacity(2_000);
    for i in 0..count {
        let mut rec = templates[i % templates.len()].clone();
        rec.id = Uuid::now_v7();
        rec.number = format!("DO-2026-{:06}", i + 1);
        rec.facility_id = facilities[i % facilities.len()];
        rec.status = Status::ALL[i % 3];
        rec.data.patient.last_name = format!("Patient{i}");
        batch.push(rec);
        if batch.len() == batch.capacity() || i + 1 == count {
            let note = Event::anonymous("bench.import", None, Outcome::Ok);
            system_import(store, &batch, note).expect("import");
            batch.clear();
        }
    }
    println!(
        "  loaded {count} orders in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn measure(store: &Store, who: &ihms_connect::store::accounts::User) -> (Duration, Duration) {
    let caller = who.caller(None);
    let scope = OrderScope::new(store, &caller);
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let page = scope.list(None, None, PAGE).expect("list");
        times.push(t.elapsed());
        assert_eq!(page.items.len(), PAGE);
    }
    times.sort();
    (times[RUNS / 2], times[RUNS * 95 / 100])
}

fn main() {
    let fixtures: Vec<OrderInput> =
        serde_json::from_str(include_str!("../../shared/fixtures/discharge-orders.json"))
            .expect("fixtures");
    let today = time::macros::date!(2026 - 12 - 03);
    let templates: Vec<OrderRecord> = fixtures
        .iter()
        .map(|input| {
            let (data, warnings) = validate(input, today).expect("valid fixture");
            OrderRecord {
                id: Uuid::nil(),
                number: String::new(),
                facility_id: Uuid::nil(),
                status: Status::Submitted,
                created_ms: 0,
                updated_ms: 0,
                created_by: Uuid::nil(),
                data,
                warnings,
                provider_access: Vec::new(),
                workflow: Default::default(),
                legal_hold: None,
            }
        })
        .collect();
    let facilities: Vec<Uuid> = (0..FACILITIES).map(|_| Uuid::now_v7()).collect();
    let facility_user = user(Role::FacilityUser, facilities[7]);
    let staff = user(Role::Staff, Uuid::now_v7());

    let mut results = Vec::new();
    for count in [1_000usize, 100_000] {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::create(
            dir.path(),
            &MasterKey::create(&dir.path().join("master.key")).expect("key"),
        )
        .expect("store");
        println!("{count} orders over {FACILITIES} facilities:");
        load(&store, &facilities, &templates, count);
        let (fac_median, fac_p95) = measure(&store, &facility_user);
        let (staff_median, staff_p95) = measure(&store, &staff);
        println!(
            "  first page ({PAGE}) for a facility user: median {:.3} ms, p95 {:.3} ms",
            fac_median.as_secs_f64() * 1e3,
            fac_p95.as_secs_f64() * 1e3
        );
        println!(
            "  first page ({PAGE}) for a staff user:    median {:.3} ms, p95 {:.3} ms",
            staff_median.as_secs_f64() * 1e3,
            staff_p95.as_secs_f64() * 1e3
        );
        println!(
            "  store size on disk: {:.1} MiB",
            store.size_on_disk() as f64 / 1048576.0
        );
        results.push((fac_median, staff_median));
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "100,000 vs 1,000 orders: facility {:.2}x, staff {:.2}x (target: first page < 5 ms and within 2x)",
        ratio(results[1].0, results[0].0),
        ratio(results[1].1, results[0].1)
    );
}
