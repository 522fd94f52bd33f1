//! What is on disk: no PHI in plaintext anywhere under the data directory, and a
//! wrong master key is a clear error, never garbage.

use std::path::Path;

use reqwest::StatusCode;

use crate::common::{fixture, order_body, spawn_app, world};

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            files(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_patient_name_mrn_or_member_id_is_stored_in_plaintext() {
    let mut app = spawn_app().await;
    let w = world(&app).await;
    let orders = fixture("discharge-orders.json");
    for order in orders.as_array().expect("orders") {
        let (status, body) = app
            .post_json(
                &w.staff_token,
                "/api/v1/orders",
                &order_body(order, &w.orgs),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.stop().await;
    let mut needles: Vec<String> = Vec::new();
    for order in orders.as_array().expect("orders") {
        let p = &order["patient"];
        for v in [
            &p["first_name"],
            &p["last_name"],
            &p["mrn"],
            &p["address"]["line1"],
            &p["phone"],
        ] {
            needles.push(v.as_str().expect("str").to_string());
        }
        for plan in order["insurance"].as_array().expect("plans") {
            needles.push(plan["member_id"].as_str().expect("id").to_string());
        }
        needles.push(order["notes"].as_str().unwrap_or("").to_string());
    }
    needles.retain(|n| n.len() >= 5);
    needles.push("planner@gulfcoast.test".into()); // emails are sealed too
    let mut all = Vec::new();
    files(app.dir.path(), &mut all);
    assert!(all.iter().any(|p| p.ends_with("store.redb")));
    for path in all {
        let bytes = std::fs::read(&path).expect("read");
        for needle in &needles {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{needle:?} found in plaintext in {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn a_wrong_master_key_is_a_clear_error() {
    let mut app = spawn_app().await;
    app.stop().await;
    let key = app.cfg.data_dir.join("master.key");
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600, "the master key file is private");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).expect("write");
    let err = ihms_connect::ops::open_store(&app.cfg)
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("master key does not open"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ihms-connect"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&app.cfg.data_dir)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("master key does not open this data directory"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[tokio::test]
async fn a_value_moved_to_another_record_fails_to_open() {
    let mut app = spawn_app().await;
    let w = world(&app).await;
    let orders = fixture("discharge-orders.json");
    let mut ids = Vec::new();
    for order in orders.as_array().expect("orders").iter().take(2) {
        let (_, body) = app
            .post_json(
                &w.staff_token,
                "/api/v1/orders",
                &order_body(order, &w.orgs),
            )
            .await;
        ids.push(uuid::Uuid::parse_str(body["id"].as_str().expect("id")).expect("uuid"));
    }
    app.stop().await;
    let store = ihms_connect::ops::open_store(&app.cfg).expect("open");
    // Copy order 0's sealed bytes over order 1's record.
    let mut sealed = None;
    store
        .read()
        .expect("read")
        .raw_scan_table("orders", |k, v| {
            if k == ids[0].as_bytes() {
                sealed = Some(v.to_vec());
            }
        })
        .expect("scan");
    store
        .system_raw_put("orders", ids[1].as_bytes(), Some(&sealed.expect("found")))
        .expect("put");
    let admin = ihms_connect::store::accounts::user_by_email(&store, crate::common::ADMIN_EMAIL)
        .expect("q")
        .expect("admin");
    let caller = admin.caller(None);
    let scope = ihms_connect::store::orders::OrderScope::new(&store, &caller);
    assert!(scope.get(ids[0]).is_ok());
    let err = scope.get(ids[1]).expect_err("moved value must not open");
    assert!(err.to_string().contains("damaged"), "{err}");
}
