//! The retention job: closed orders past the retention period go with their
//! messages and documents, unless on legal hold; open and recent ones stay; old
//! sessions go; every purge is audited and the audit chain stays whole.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{App, PASSWORD, World, create_user, sign_in, spawn_app, world};
use crate::coordination::{document_files, fixture_order, sample_pdf, upload_ok};

const YEAR_MS: i64 = 365 * 86_400_000;

fn run_at(app: &App, now_ms: i64) -> ihms_connect::retention::Report {
    let state = app.state();
    ihms_connect::retention::run(&state.store, &app.cfg, now_ms, &|id| {
        state.docs.shred(id).expect("shred");
    })
    .expect("retention")
}

/// How many read marks (keyed user ‖ order ‖ thread) the store holds for `order`.
fn read_marks(app: &App, order: &str) -> usize {
    let id = uuid::Uuid::parse_str(order).expect("id");
    let tx = app.state().store.read().expect("read");
    let mut n = 0;
    tx.system_scan_all(|table, key, _| {
        if table == "read_marks" && key.len() >= 32 && key[16..32] == id.as_bytes()[..] {
            n += 1;
        }
        Ok(())
    })
    .expect("scan");
    n
}

async fn cancelled_order(app: &App, w: &World) -> String {
    let id = fixture_order(app, &w.fac2_token, &w.orgs, "fac2").await;
    let (status, body) = app
        .post_json(
            &w.staff_token,
            &format!("/api/v1/orders/{id}/cancel"),
            &json!({"reason": "patient moved out of the service area"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

#[tokio::test]
async fn closed_orders_past_retention_go_with_their_messages_and_files_unless_held() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let purged = cancelled_order(&app, &w).await;
    let (status, _) = app
        .post_json(
            &w.fac2_token,
            &format!("/api/v1/orders/{purged}/messages"),
            &json!({"thread": "facility", "body": "Please confirm the cancellation."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    upload_ok(&app, &w.fac2_token, &purged, sample_pdf(), "face.pdf").await;
    let held = cancelled_order(&app, &w).await;
    let open = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    // Reading a thread with messages leaves a read mark for the reader.
    for order in [&purged, &held] {
        if order == &held {
            let path = format!("/api/v1/orders/{held}/messages");
            let body = json!({"thread": "facility", "body": "Noted."});
            let (status, _) = app.post_json(&w.staff_token, &path, &body).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let path = format!("/api/v1/orders/{order}/messages?thread=facility");
        let (status, _) = app.get_json(&w.fac2_token, &path).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.get_json(&w.staff_token, &path).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(read_marks(&app, &purged), 2);
    assert_eq!(read_marks(&app, &held), 2);
    assert_eq!(document_files(&app).len(), 1);

    // Only an agency admin places a hold; anyone else meets a 404.
    let hold = |token: String, body: serde_json::Value| {
        let path = format!("/api/v1/orders/{held}/legal-hold");
        let app = &app;
        async move { app.post_json(&token, &path, &body).await }
    };
    for token in [w.staff_token.clone(), w.fac2_token.clone()] {
        let (status, _) = hold(token, json!({"hold": true, "reason": "litigation"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, body) = hold(app.admin_token.clone(), json!({"hold": true, "reason": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "reason");
    let (status, body) = hold(
        app.admin_token.clone(),
        json!({"hold": true, "reason": "records request 2026-114"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["legal_hold"]["reason"], "records request 2026-114");

    // Six years on, nothing is due yet.
    let now = ihms_connect::store::now_ms();
    assert_eq!(run_at(&app, now + 6 * YEAR_MS).orders, 0);

    // Eight years on, the closed order without a hold goes, with its file.
    let report = run_at(&app, now + 8 * YEAR_MS);
    assert_eq!((report.orders, report.documents), (1, 1), "{report:?}");
    for (id, expected) in [
        (&purged, StatusCode::NOT_FOUND),
        (&held, StatusCode::OK),
        (&open, StatusCode::OK),
    ] {
        let (status, _) = app
            .get_json(&app.admin_token, &format!("/api/v1/orders/{id}"))
            .await;
        assert_eq!(status, expected, "order {id}");
    }
    let (status, _) = app
        .get_json(
            &app.admin_token,
            &format!("/api/v1/orders/{purged}/messages?thread=facility"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(document_files(&app).is_empty(), "the file is shredded");
    assert_eq!(read_marks(&app, &purged), 0, "its read marks go with it");
    assert_eq!(read_marks(&app, &held), 2, "and no one else's");
    let (_, list) = app.get_json(&app.admin_token, "/api/v1/orders").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let (_, dash) = app.get_json(&app.admin_token, "/api/v1/dashboard").await;
    assert!(dash.to_string().contains("cancelled"), "{dash}");

    // Lifting the hold lets the next run purge it.
    let (status, _) = hold(app.admin_token.clone(), json!({"hold": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run_at(&app, now + 8 * YEAR_MS).orders, 1);

    // Each purge is in the audit log, and the chain is whole.
    let store = &app.state().store;
    let mut seq = 1;
    let mut purges = Vec::new();
    while let Some(e) = ihms_connect::store::audit::system_entry(store, seq).expect("entry") {
        if e.action == "retention.purge_order" {
            purges.push(e.object.clone().unwrap_or_default());
        }
        seq += 1;
    }
    assert_eq!(purges, vec![purged.clone(), held.clone()]);
    assert!(matches!(
        ihms_connect::store::audit::verify(store).expect("verify"),
        ihms_connect::store::audit::Verdict::Intact { .. }
    ));
}

#[tokio::test]
async fn sessions_older_than_the_technical_period_are_removed() {
    let app = spawn_app().await;
    let w = world(&app).await;
    create_user(
        &app,
        "night.planner@gulfcoast.test",
        "facility_user",
        &w.orgs["fac2"],
    )
    .await;
    let browser = sign_in(&app, "night.planner@gulfcoast.test", PASSWORD).await;
    let (status, _) = browser.page("/orders").await;
    assert_eq!(status, StatusCode::OK);

    let now = ihms_connect::store::now_ms();
    assert_eq!(run_at(&app, now + 86_400_000).technical, 0);
    assert!(run_at(&app, now + 31 * 86_400_000).technical >= 1);
    let resp = browser
        .client
        .get(browser.url("/orders"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "the session is gone");
}

#[tokio::test]
async fn a_hold_placed_after_the_job_listed_an_order_still_keeps_it() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let id = cancelled_order(&app, &w).await;
    let store = &app.state().store;
    let cutoff = ihms_connect::store::now_ms() + YEAR_MS;
    let due = {
        let tx = store.read().expect("read");
        ihms_connect::store::retention::due_orders(&tx, cutoff).expect("due")
    };
    assert_eq!(due.len(), 1);

    // The admin places a hold while the job works through its list.
    let (status, body) = app
        .post_json(
            &app.admin_token,
            &format!("/api/v1/orders/{id}/legal-hold"),
            &json!({"hold": true, "reason": "subpoena received today"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let purged =
        ihms_connect::store::retention::purge_order(store, due[0], cutoff, "retention.purge_order")
            .expect("purge");
    assert_eq!(purged, None);
    let (status, _) = app
        .get_json(&app.admin_token, &format!("/api/v1/orders/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "the held order was purged");
}
