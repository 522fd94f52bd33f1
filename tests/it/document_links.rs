//! Signed document links over HTTPS: a document opens only through a fresh link for
//! the same signed-in user, within its lifetime, untampered, while that user may
//! still see it, and only if the stored file matches its record; removal shreds;
//! files a crash left behind are shredded at start; the age CLI reads stored files.

use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{App, spawn_app, world};
use crate::coordination::{
    document_files, documents_cli, fetch, fixture_order, link, sample_pdf, set_provider_access,
    upload_ok,
};

fn flip_sig(url: &str, at: usize) -> String {
    let start = url.find("sig=").expect("sig") + 4 + at;
    let mut bytes = url.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("utf8")
}

#[tokio::test]
async fn a_link_works_only_for_its_user_its_document_and_five_minutes() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let doc = upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "a.pdf").await;
    let other = upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "b.pdf").await;
    let (_, url) = link(&app, &w.fac2_token, &doc).await;
    let ok = |s: StatusCode| assert_eq!(s, StatusCode::OK);
    let gone = |s: StatusCode, what: &str| assert_eq!(s, StatusCode::NOT_FOUND, "{what}");

    ok(fetch(&app, &w.fac2_token, &url).await.0);
    // Another user, even one who may see the document (staff), or one who may not.
    gone(
        fetch(&app, &w.staff_token, &url).await.0,
        "staff with the planner's link",
    );
    gone(fetch(&app, &w.fac3_token, &url).await.0, "another facility");
    gone(fetch(&app, &w.provider_token, &url).await.0, "a provider");
    // One byte changed anywhere in the signature, the expiry or the key id.
    for at in [0, 10, 42] {
        gone(
            fetch(&app, &w.fac2_token, &flip_sig(&url, at)).await.0,
            "signature edited",
        );
    }
    let exp_edit = url.replace("exp=", "exp=9");
    gone(
        fetch(&app, &w.fac2_token, &exp_edit).await.0,
        "expiry edited",
    );
    gone(
        fetch(&app, &w.fac2_token, &url.replace("kid=1", "kid=2"))
            .await
            .0,
        "key id edited",
    );
    gone(
        fetch(&app, &w.fac2_token, url.split('?').next().unwrap_or(""))
            .await
            .0,
        "no signature",
    );
    // A malformed query is a bad link like any other: 404, not 400.
    for (what, bad) in [
        (
            "a key id that is not a number",
            url.replace("kid=1", "kid=abc"),
        ),
        ("a key id too large", url.replace("kid=1", "kid=4294967297")),
        (
            "an expiry too large",
            url.replace("exp=", "exp=99999999999999999999"),
        ),
        ("the signature twice", format!("{url}&sig=AAAA")),
        ("the key id twice", format!("{url}&kid=1")),
    ] {
        gone(fetch(&app, &w.fac2_token, &bad).await.0, what);
    }
    // The same signature on another document.
    gone(
        fetch(&app, &w.fac2_token, &url.replace(&doc, &other))
            .await
            .0,
        "another document",
    );
    // The page route needs a session for the same user; a bearer token is not one.
    let page_url = url.replace("/api/v1/documents/", "/documents/");
    let resp = app
        .client()
        .get(&page_url)
        .bearer_auth(&w.fac2_token)
        .send()
        .await
        .expect("get");
    assert_ne!(resp.status(), StatusCode::OK);

    ok(fetch(&app, &w.fac2_token, &url).await.0);
    app.clock.advance(Duration::from_secs(4 * 60));
    ok(fetch(&app, &w.fac2_token, &url).await.0);
    app.clock.advance(Duration::from_secs(61));
    gone(fetch(&app, &w.fac2_token, &url).await.0, "expired");
    // A fresh link works again.
    let (_, fresh) = link(&app, &w.fac2_token, &doc).await;
    ok(fetch(&app, &w.fac2_token, &fresh).await.0);
}

#[tokio::test]
async fn a_link_stops_working_when_its_user_loses_access() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.staff_token, &w.orgs, "fac2").await;
    let prov1 = w.orgs["prov1"].clone();
    set_provider_access(&app, &order, &[&prov1]);
    let shared = upload_ok(&app, &w.staff_token, &order, sample_pdf(), "shared.pdf").await;
    let (status, url) = link(&app, &w.provider_token, &shared).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(fetch(&app, &w.provider_token, &url).await.0, StatusCode::OK);

    // The offer is withdrawn: the same, unexpired link is refused from now on.
    set_provider_access(&app, &order, &[]);
    assert_eq!(
        fetch(&app, &w.provider_token, &url).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        link(&app, &w.provider_token, &shared).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_stored_file_swapped_or_altered_on_disk_is_refused() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let a = upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "a.pdf").await;
    let mut other = b"%PDF-1.4\n".to_vec();
    other.resize(300 * 1024, b'z');
    let b = upload_ok(&app, &w.fac2_token, &order, other, "b.pdf").await;
    let dir = app.cfg.data_dir.join("documents");
    let (path_a, path_b) = (dir.join(format!("{a}.age")), dir.join(format!("{b}.age")));

    // B's file (a valid age file to the same identity) put in A's place.
    let original_a = std::fs::read(&path_a).expect("a");
    std::fs::copy(&path_b, &path_a).expect("swap");
    let (_, url) = link(&app, &w.fac2_token, &a).await;
    let (status, _, _) = fetch(&app, &w.fac2_token, &url).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a swapped file is not served"
    );
    std::fs::write(&path_a, &original_a).expect("restore");
    assert_eq!(fetch(&app, &w.fac2_token, &url).await.0, StatusCode::OK);

    // One byte flipped past the header, early or late: the response never completes
    // (the connection is cut, before or after the status line).
    let original_b = std::fs::read(&path_b).expect("b");
    for at in [5000, original_b.len() - 1000] {
        let mut altered = original_b.clone();
        altered[at] ^= 0x01;
        std::fs::write(&path_b, &altered).expect("alter");
        let (_, url) = link(&app, &w.fac2_token, &b).await;
        let sent = app
            .client()
            .get(&url)
            .bearer_auth(&w.fac2_token)
            .send()
            .await;
        let complete = match sent {
            Ok(resp) => resp.status() == StatusCode::OK && resp.bytes().await.is_ok(),
            Err(_) => false,
        };
        assert!(
            !complete,
            "a file altered at byte {at} must not arrive complete"
        );
    }
}

#[tokio::test]
async fn the_reference_age_cli_decrypts_a_stored_file_to_the_same_bytes() {
    if std::process::Command::new("age")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: the `age` command is not installed (apt-get install -y age)");
        return;
    }
    let mut app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    // The fixture, a file of exactly two 64 KiB payload chunks, and one that ends
    // mid-chunk: the chunk boundaries are where a hand-made format would go wrong.
    let padded = |len: usize| -> Vec<u8> {
        let mut bytes = b"%PDF-1.7\n".to_vec();
        bytes.extend((0..len - bytes.len()).map(|i| (i * 31 % 251) as u8));
        bytes
    };
    let files = [sample_pdf(), padded(128 * 1024), padded(200 * 1024 + 17)];
    let mut ids = Vec::new();
    for bytes in &files {
        ids.push(upload_ok(&app, &w.fac2_token, &order, bytes.clone(), "a.pdf").await);
    }
    app.stop().await;

    let identity = documents_cli(&app, "export-identity");
    assert!(
        identity.starts_with("AGE-SECRET-KEY-1"),
        "prints the age identity"
    );
    let key_file = app.dir.path().join("identity.txt");
    std::fs::write(&key_file, &identity).expect("key file");
    for (id, bytes) in ids.iter().zip(&files) {
        let stored = app.cfg.data_dir.join("documents").join(format!("{id}.age"));
        let decrypted = std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key_file)
            .arg(&stored)
            .output()
            .expect("age");
        assert!(
            decrypted.status.success(),
            "{}",
            String::from_utf8_lossy(&decrypted.stderr)
        );
        assert!(
            decrypted.stdout == *bytes,
            "the {}-byte file decrypts to the same bytes",
            bytes.len()
        );
    }

    // The export is audited.
    let app = app.restart().await;
    let admin =
        crate::common::sign_in(&app, crate::common::ADMIN_EMAIL, crate::common::PASSWORD).await;
    let (_, html) = admin
        .page("/admin/audit?action=document.identity.export")
        .await;
    assert!(html.contains("document.identity.export"));
    assert!(!html.contains("AGE-SECRET-KEY"));
}

/// Uploads `bytes` with a hand-written multipart body whose file part carries
/// `filename` exactly as given (browsers send `"`, CR and LF as %22, %0D, %0A).
#[tokio::test]
async fn a_removed_document_leaves_a_tombstone_and_its_file_is_shredded() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let doc = upload_ok(
        &app,
        &w.fac2_token,
        &order,
        sample_pdf(),
        "wrong-patient.pdf",
    )
    .await;
    let (_, url) = link(&app, &w.fac2_token, &doc).await;
    let path = app
        .cfg
        .data_dir
        .join("documents")
        .join(format!("{doc}.age"));
    assert!(path.exists());

    let path_of_delete = format!("/api/v1/documents/{doc}/delete");
    let remove = |token: String, reason: &'static str| {
        let (app, path) = (&app, path_of_delete.clone());
        async move {
            app.post_json(&token, &path, &serde_json::json!({ "reason": reason }))
                .await
        }
    };
    assert_eq!(
        remove(w.fac3_token.clone(), "not mine").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = remove(w.fac2_token.clone(), "  ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "reason");
    assert!(path.exists());
    assert_eq!(
        remove(w.fac2_token.clone(), "Uploaded to the wrong order")
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert!(!path.exists(), "the file is shredded");
    assert_eq!(
        fetch(&app, &w.fac2_token, &url).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        link(&app, &w.fac2_token, &doc).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, body) = app
        .get_json(&w.staff_token, &format!("/api/v1/orders/{order}/documents"))
        .await;
    let item = &body["items"][0];
    assert_eq!(item["id"], doc.as_str());
    assert_eq!(item["removed"]["reason"], "Uploaded to the wrong order");
    assert_eq!(item["filename"], "", "the tombstone drops the filename");
    assert_eq!(
        remove(w.staff_token.clone(), "again").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn files_left_by_a_crash_are_shredded_at_start() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let kept = upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "kept.pdf").await;
    let dir = app.cfg.data_dir.join("documents");
    let stray_temp = dir.join("0123456789abcdef0123456789abcdef.tmp");
    let stray_file = dir.join(format!("{}.age", uuid::Uuid::now_v7()));
    std::fs::write(&stray_temp, b"half an upload").expect("temp");
    std::fs::write(&stray_file, b"a file whose record never committed").expect("file");
    let app: App = app.restart().await;
    assert!(!stray_temp.exists() && !stray_file.exists());
    assert_eq!(document_files(&app), vec![dir.join(format!("{kept}.age"))]);
    let (_, url) = link(&app, &w.fac2_token, &kept).await;
    assert_eq!(fetch(&app, &w.fac2_token, &url).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_link_survives_one_key_rotation_and_not_two() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let doc = upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "a.pdf").await;
    let (_, url) = link(&app, &w.fac2_token, &doc).await;
    let path = url[app.base.len()..].to_string();
    let rotate = |app: &App| documents_cli(app, "rotate-link-key");
    let mut app = app;
    app.stop().await;
    assert!(rotate(&app).contains("key 2"));
    let mut app = app.restart().await;
    let (status, _, body) = fetch(&app, &w.fac2_token, &app.url(&path)).await;
    assert_eq!(status, StatusCode::OK, "the previous key is still accepted");
    assert_eq!(body.expect("body"), sample_pdf());
    let (_, fresh) = link(&app, &w.fac2_token, &doc).await;
    assert!(fresh.contains("kid=2"), "new links use the new key");
    app.stop().await;
    assert!(rotate(&app).contains("key 3"));
    let app = app.restart().await;
    assert_eq!(
        fetch(&app, &w.fac2_token, &app.url(&path)).await.0,
        StatusCode::NOT_FOUND,
        "two rotations retire a key"
    );
    let fresh_path = &fresh[fresh.find("/api/").expect("path")..];
    assert_eq!(
        fetch(&app, &w.fac2_token, &app.url(fresh_path)).await.0,
        StatusCode::OK
    );
}
