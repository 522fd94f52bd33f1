//! Documents over HTTPS: uploads recognised by content and bounded while streaming,
//! age-encrypted at rest, served only through fresh, user-bound, expiring links to
//! users who may still see them, checked against their record, named safely.

use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{
    App, document_files, fetch, fixture_order, link, sample_pdf, set_provider_access, spawn_app,
    spawn_app_with, upload, upload_ok, world,
};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| v.to_str().expect("ascii header").to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_referral_pdf_comes_back_byte_for_byte_through_a_fresh_link() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let pdf = sample_pdf();
    let (status, body) = upload(
        &app,
        &w.fac2_token,
        &order,
        pdf.clone(),
        "sample-referral.pdf",
        "discharge_summary",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "discharge_summary");
    assert_eq!(body["content_type"], "application/pdf");
    assert_eq!(body["size"], pdf.len());
    let id = body["id"].as_str().expect("id");

    // Stored under a generated name, encrypted with age, no plaintext on disk.
    let files = document_files(&app);
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].file_name().expect("name").to_str(),
        Some(&*format!("{id}.age"))
    );
    let stored = std::fs::read(&files[0]).expect("stored");
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    assert!(!contains(&stored, b"%PDF") && !contains(&stored, b"sample-referral"));

    let (status, url) = link(&app, &w.fac2_token, id).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(url.contains(&format!("/documents/{id}/content?")), "{url}");
    let (status, headers, got) = fetch(&app, &w.fac2_token, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got.expect("body"), pdf);
    assert_eq!(header(&headers, "content-type"), "application/pdf");
    assert!(header(&headers, "content-security-policy").starts_with("sandbox"));
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"sample-referral.pdf\"; filename*=UTF-8''sample-referral.pdf"
    );
    // Staff see every order's shared documents, through their own links.
    let (status, staff_url) = link(&app, &w.staff_token, id).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, got) = fetch(&app, &w.staff_token, &staff_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got.expect("body"), pdf);
}

#[tokio::test]
async fn a_file_renamed_to_pdf_that_is_not_a_pdf_is_refused_naming_file() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    for (bytes, name) in [
        (
            b"<html><script>alert(1)</script></html>".to_vec(),
            "referral.pdf",
        ),
        (b"PK\x03\x04 a zip archive".to_vec(), "scan.tiff"),
        (b"%PD".to_vec(), "short.pdf"),
    ] {
        let (status, body) = upload(&app, &w.fac2_token, &order, bytes, name, "other", &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {body}");
        assert_eq!(body["errors"][0]["field"], "file", "{body}");
    }
    // Accepted types by content, whatever their names.
    for (bytes, name) in [
        (b"\x89PNG\r\n\x1a\n rest of png".to_vec(), "photo.pdf"),
        (b"\xff\xd8\xff\xe0 jpeg".to_vec(), "card"),
        (b"II*\x00 fax".to_vec(), "fax.bin"),
    ] {
        let (status, body) = upload(
            &app,
            &w.fac2_token,
            &order,
            bytes,
            name,
            "insurance_card",
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
    let (status, body) = upload(
        &app,
        &w.fac2_token,
        &order,
        sample_pdf(),
        "a.pdf",
        "not-a-kind",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "kind");
    // Nothing refused is left on disk, not even a temp file.
    assert_eq!(document_files(&app).len(), 3);
}

#[tokio::test]
async fn an_upload_over_the_limit_gets_413_with_or_without_a_declared_length() {
    let app = spawn_app_with(|cfg| cfg.upload_limit_mib = 1).await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(3 * 1024 * 1024, b'x');

    // Declared length: refused before the body is read.
    let (status, _) = upload(
        &app,
        &w.fac2_token,
        &order,
        big.clone(),
        "big.pdf",
        "other",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed without a length: refused once the count passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let form = reqwest::multipart::Form::new().text("kind", "other").part(
        "file",
        reqwest::multipart::Part::stream(body).file_name("big.pdf"),
    );
    let resp = app
        .client()
        .post(app.url(&format!("/api/v1/orders/{order}/documents")))
        .bearer_auth(&w.fac2_token)
        .multipart(form)
        .send()
        .await;
    match resp {
        Ok(resp) => assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE),
        // The server may close the connection before the client finished sending.
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    // Just under the limit is fine.
    big.truncate(1024 * 1024);
    upload_ok(&app, &w.fac2_token, &order, big, "ok.pdf").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(document_files(&app).len(), 1, "no temp files left behind");
}

/// Replaces the query's signature character at `at` with another valid one.
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

    // One byte flipped past the header: the response never completes.
    let mut altered = std::fs::read(&path_b).expect("b");
    let at = altered.len() - 1000;
    altered[at] ^= 0x01;
    std::fs::write(&path_b, &altered).expect("alter");
    let (_, url) = link(&app, &w.fac2_token, &b).await;
    let (status, _, body) = fetch(&app, &w.fac2_token, &url).await;
    assert!(
        status != StatusCode::OK || body.is_err(),
        "an altered file must not arrive complete"
    );
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
    let pdf = sample_pdf();
    let id = upload_ok(&app, &w.fac2_token, &order, pdf.clone(), "a.pdf").await;
    app.stop().await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ihms-connect"))
        .args(["documents", "export-identity", "--data-dir"])
        .arg(&app.cfg.data_dir)
        .env_remove("IHMS_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        identity.starts_with("AGE-SECRET-KEY-1"),
        "prints the age identity"
    );
    let key_file = app.dir.path().join("identity.txt");
    std::fs::write(&key_file, &identity).expect("key file");
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
    assert_eq!(decrypted.stdout, pdf);

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
async fn upload_raw_filename(
    app: &App,
    token: &str,
    order: &str,
    filename: &str,
    bytes: &[u8],
) -> (StatusCode, serde_json::Value) {
    let boundary = "----hostile-boundary-7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nother\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = app
        .client()
        .post(app.url(&format!("/api/v1/orders/{order}/documents")))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("send");
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_filename_with_quotes_cr_lf_dot_dot_and_unicode_is_served_safely() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    // As a browser sends `../../etc/Résumé "final"; x=<CR><LF>Set-Cookie: a=b ✓.pdf`.
    let sent = "../../etc/Résumé %22final%22; x=%0D%0ASet-Cookie: a=b ✓.pdf";
    let (status, body) =
        upload_raw_filename(&app, &w.fac2_token, &order, sent, &sample_pdf()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let kept = body["filename"].as_str().expect("filename");
    assert_eq!(
        kept, "Résumé \"final\"; x=Set-Cookie: a=b ✓.pdf",
        "path and control characters dropped"
    );

    let (_, url) = link(&app, &w.fac2_token, &id).await;
    let (status, headers, got) = fetch(&app, &w.fac2_token, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got.expect("body"), sample_pdf());
    assert!(headers.get("set-cookie").is_none(), "no header injection");
    let cd = header(&headers, "content-disposition");
    assert_eq!(
        cd,
        "attachment; filename=\"R_sum_ _final__ x_Set-Cookie_ a_b _.pdf\"; \
         filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%3B%20x%3DSet-Cookie%3A%20a%3Db%20%E2%9C%93.pdf"
    );
    // A backslash-escaped quote from a non-browser client, and a bare `..`.
    let (status, body) = upload_raw_filename(
        &app,
        &w.fac2_token,
        &order,
        "..\\\"q\\\".pdf",
        &sample_pdf(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        !body["filename"].as_str().expect("name").contains(".."),
        "{body}"
    );
    let (status, body) =
        upload_raw_filename(&app, &w.fac2_token, &order, "..", &sample_pdf()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["filename"], "document.pdf");
    // Only generated names on disk.
    for f in document_files(&app) {
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        assert!(
            name.ends_with(".age") && uuid::Uuid::parse_str(&name[..36]).is_ok(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn documents_follow_the_thread_they_are_shared_in() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let prov2_token = crate::conversations::provider_token(&app, &w, "prov2").await;
    let order = fixture_order(&app, &w.staff_token, &w.orgs, "fac2").await;
    let (prov1, prov2) = (w.orgs["prov1"].clone(), w.orgs["prov2"].clone());
    set_provider_access(&app, &order, &[&prov1, &prov2]);

    let order_wide = upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "face.pdf").await;
    let thread1 = format!("provider:{prov1}");
    let (status, body) = upload(
        &app,
        &w.provider_token,
        &order,
        sample_pdf(),
        "p1.pdf",
        "signed_order",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["thread"],
        thread1.as_str(),
        "a provider shares in its own thread"
    );
    let p1_doc = body["id"].as_str().expect("id").to_string();
    let (status, body) = upload(
        &app,
        &w.staff_token,
        &order,
        sample_pdf(),
        "n.pdf",
        "other",
        &[("thread", "internal")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let internal = body["id"].as_str().expect("id").to_string();
    // A provider cannot share order-wide or in another provider's thread.
    let (status, _) = upload(
        &app,
        &w.provider_token,
        &order,
        sample_pdf(),
        "x.pdf",
        "other",
        &[("thread", "facility")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let other = format!("provider:{prov2}");
    let (status, _) = upload(
        &app,
        &w.provider_token,
        &order,
        sample_pdf(),
        "x.pdf",
        "other",
        &[("thread", &other)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let listed = |token: String| {
        let app = &app;
        let order = order.clone();
        async move {
            let (status, body) = app
                .get_json(&token, &format!("/api/v1/orders/{order}/documents"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let mut ids: Vec<String> = body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|d| d["id"].as_str().expect("id").to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    assert_eq!(
        listed(w.staff_token.clone()).await,
        sorted(vec![&order_wide, &p1_doc, &internal])
    );
    assert_eq!(
        listed(w.provider_token.clone()).await,
        sorted(vec![&order_wide, &p1_doc])
    );
    assert_eq!(listed(prov2_token.clone()).await, vec![order_wide.clone()]);
    assert_eq!(listed(w.fac2_token.clone()).await, vec![order_wide.clone()]);
    for (token, doc) in [
        (&prov2_token, &p1_doc),
        (&w.fac2_token, &p1_doc),
        (&w.fac2_token, &internal),
        (&w.provider_token, &internal),
    ] {
        assert_eq!(link(&app, token, doc).await.0, StatusCode::NOT_FOUND);
    }
}

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
