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

    // Each tamper is applied to a copy of the data directory, then verified.
    let tampered = |name: &str, tamper: &dyn Fn(&ihms_connect::store::Store)| {
        let copy = app.dir.path().join(name);
        copy_dir(&app.cfg.data_dir, &copy);
        let cfg = ihms_connect::config::Config {
            data_dir: copy.clone(),
            ..app.cfg.clone()
        };
        tamper(&ihms_connect::ops::open_store(&cfg).expect("open copy"));
        verify(&copy)
    };
    let (ok, text) = tampered("edited", &|s| {
        let mut e = audit::system_entry(s, 5).expect("get").expect("entry 5");
        e.action = "order.create".into();
        audit::system_put_entry_at(s, 5, &e).expect("put");
    });
    assert!(!ok && text.contains("entry 5"), "edited: {text}");
    let (ok, text) = tampered("removed", &|s| {
        audit::system_remove_entry(s, 4).expect("remove")
    });
    assert!(!ok && text.contains("entry 4"), "removed: {text}");
    let (ok, text) = tampered("swapped", &|s| {
        let six = audit::system_entry(s, 6).expect("get").expect("6");
        let seven = audit::system_entry(s, 7).expect("get").expect("7");
        audit::system_put_entry_at(s, 6, &seven).expect("put");
        audit::system_put_entry_at(s, 7, &six).expect("put");
    });
    assert!(!ok && text.contains("entry 6"), "reordered: {text}");
    let (ok, text) = tampered("truncated", &|s| {
        audit::system_remove_entry(s, count).expect("remove newest");
    });
    assert!(
        !ok && text.contains(&format!("entry {count}")),
        "newest removed: {text}"
    );
    let (ok, text) = tampered("emptied", &|s| {
        for seq in 1..=count {
            audit::system_remove_entry(s, seq).expect("remove");
        }
    });
    assert!(!ok, "all entries removed: {text}");
    let (ok, text) = tampered("flipped", &|s| {
        s.system_raw_put("audit", &3u64.to_be_bytes(), Some(&[0u8; 64]))
            .expect("put")
    });
    assert!(
        !ok && text.contains("entry 3") && text.contains("cannot be opened"),
        "raw bytes: {text}"
    );

    let (ok, text) = verify(&app.cfg.data_dir);
    assert!(ok, "the original is untouched: {text}");
}
