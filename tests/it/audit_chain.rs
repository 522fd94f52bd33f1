//! The audit log: key actions are recorded without PHI, and `audit verify` detects
//! an edited, removed or reordered entry in a tampered copy of the store.

use std::process::Command;

use ihms_connect::store::audit::{self, Filter, Outcome};
use reqwest::StatusCode;

use crate::common::{
    ADMIN_EMAIL, Browser, PASSWORD, fixture, order_body, sign_in, spawn_app, world,
};

fn verify(data_dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ihms-connect"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}

#[tokio::test]
async fn key_actions_are_audited_without_phi_and_tampering_is_detected() {
    let mut app = spawn_app().await;
    let w = world(&app).await;
    let order = order_body(&fixture("discharge-orders.json")[0], &w.orgs);
    let (_, created) = app.post_json(&w.fac2_token, "/api/v1/orders", &order).await;
    let id = created["id"].as_str().expect("id").to_string();
    let (status, _) = app
        .get_json(&w.fac2_token, &format!("/api/v1/orders/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .get_json(&w.fac3_token, &format!("/api/v1/orders/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let anon = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    anon.submit(
        "/signin",
        "/signin",
        &[("email", ADMIN_EMAIL), ("password", "wrong password here")],
    )
    .await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (status, html) = admin
        .page("/admin/audit?action=order.view&outcome=refused")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&id), "the refusal names the order id");
    app.stop().await;

    let store = ihms_connect::ops::open_store(&app.cfg).expect("open");
    let tx = store.read().expect("read");
    let (entries, _) = audit::list(&tx, &Filter::default(), 10_000).expect("list");
    drop(tx);
    let has = |action: &str, outcome: Outcome| {
        entries
            .iter()
            .any(|e| e.action == action && e.outcome == outcome)
    };
    for (action, outcome) in [
        ("signin", Outcome::Ok),
        ("signin", Outcome::Failed),
        ("org.create", Outcome::Ok),
        ("user.create", Outcome::Ok),
        ("token.create", Outcome::Ok),
        ("order.create", Outcome::Ok),
        ("order.view", Outcome::Ok),
        ("order.view", Outcome::Refused),
    ] {
        assert!(has(action, outcome), "{action} {outcome:?} audited");
    }
    let all = serde_json::to_string(&entries).expect("json");
    for phi in [
        &order["patient"]["last_name"],
        &order["patient"]["mrn"],
        &order["insurance"][0]["member_id"],
    ] {
        assert!(
            !all.contains(phi.as_str().expect("s")),
            "no PHI in audit entries"
        );
    }
    assert!(!all.contains(ADMIN_EMAIL), "no emails in audit entries");
    let count = entries.len() as u64;
    drop(store);

    let (ok, text) = verify(&app.cfg.data_dir);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("{count} entries")), "{text}");

    // Edited: entry 5's action changed and re-sealed properly.
    let edited = app.dir.path().join("edited");
    copy_dir(&app.cfg.data_dir, &edited);
    {
        let cfg = ihms_connect::config::Config {
            data_dir: edited.clone(),
            ..app.cfg.clone()
        };
        let s = ihms_connect::ops::open_store(&cfg).expect("open copy");
        let mut e = audit::system_entry(&s, 5).expect("get").expect("entry 5");
        e.action = "order.create".into();
        audit::system_put_entry_at(&s, 5, &e).expect("put");
    }
    let (ok, text) = verify(&edited);
    assert!(!ok && text.contains("entry 5"), "{text}");

    // Removed: entry 4 deleted.
    let removed = app.dir.path().join("removed");
    copy_dir(&app.cfg.data_dir, &removed);
    {
        let cfg = ihms_connect::config::Config {
            data_dir: removed.clone(),
            ..app.cfg.clone()
        };
        let s = ihms_connect::ops::open_store(&cfg).expect("open copy");
        audit::system_remove_entry(&s, 4).expect("remove");
    }
    let (ok, text) = verify(&removed);
    assert!(!ok && text.contains("entry 4"), "{text}");

    // Reordered: entries 6 and 7 swapped.
    let swapped = app.dir.path().join("swapped");
    copy_dir(&app.cfg.data_dir, &swapped);
    {
        let cfg = ihms_connect::config::Config {
            data_dir: swapped.clone(),
            ..app.cfg.clone()
        };
        let s = ihms_connect::ops::open_store(&cfg).expect("open copy");
        let six = audit::system_entry(&s, 6).expect("get").expect("6");
        let seven = audit::system_entry(&s, 7).expect("get").expect("7");
        audit::system_put_entry_at(&s, 6, &seven).expect("put");
        audit::system_put_entry_at(&s, 7, &six).expect("put");
    }
    let (ok, text) = verify(&swapped);
    assert!(!ok && text.contains("entry 6"), "{text}");

    // Removing the newest entry is not detectable without a checkpoint, but the
    // count reported changes, which a saved summary catches.
    let (ok, text) = verify(&app.cfg.data_dir);
    assert!(ok, "the original is untouched: {text}");
}
