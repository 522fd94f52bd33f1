//! Uploads over HTTPS: recognised by content, bounded while streaming, age-encrypted
//! at rest under generated names, shared where the uploader says and seen only by
//! that place's parties, named safely when served.

use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{App, spawn_app, spawn_app_with, world};
use crate::coordination::{
    contains, document_files, fetch, fixture_order, header, link, provider_token, sample_pdf,
    set_provider_access, upload, upload_ok,
};

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
    let prov2_token = provider_token(&app, &w, "prov2").await;
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

/// Starts an upload that sends a PDF's first bytes and then nothing more until the
/// returned sender sends more or is dropped (which ends the body cut short).
fn stalled_upload(
    app: &App,
    token: &str,
    order: &str,
) -> (
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
    tokio::sync::mpsc::Sender<Vec<u8>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let first = b"%PDF-1.7\n".repeat(64);
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, std::io::Error>(bytes), rx))
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(first)]),
        rest,
    );
    let form = reqwest::multipart::Form::new().text("kind", "other").part(
        "file",
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body)).file_name("slow.pdf"),
    );
    let request = app
        .client()
        .post(app.url(&format!("/api/v1/orders/{order}/documents")))
        .bearer_auth(token)
        .multipart(form)
        .send();
    (tokio::spawn(request), tx)
}

/// Temp files of uploads in progress (or left behind).
fn temp_files(app: &App) -> usize {
    document_files(app)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .count()
}

/// A service with `per_user` transfer slots and a 2 s idle deadline, its world,
/// and an order of the second facility.
async fn tight_app(per_user: usize) -> (App, crate::common::World, String) {
    let app = spawn_app_with(|cfg| {
        cfg.transfers_per_user = per_user;
        cfg.transfer_idle_seconds = 2;
    })
    .await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    (app, w, order)
}

#[tokio::test]
async fn stalled_uploads_hold_only_their_users_slots_and_are_ended_when_idle() {
    let (app, w, order) = tight_app(2).await;
    let stalled = [
        stalled_upload(&app, &w.fac2_token, &order),
        stalled_upload(&app, &w.fac2_token, &order),
    ];
    // Both are under way (their temp files exist) before the next one is tried.
    for _ in 0..100 {
        if temp_files(&app) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(temp_files(&app), 2, "two uploads in progress");

    // A third upload of the same user is turned away at once, asking to retry.
    let resp = app
        .client()
        .post(app.url(&format!("/api/v1/orders/{order}/documents")))
        .bearer_auth(&w.fac2_token)
        .multipart(reqwest::multipart::Form::new().text("kind", "other").part(
            "file",
            reqwest::multipart::Part::bytes(sample_pdf()).file_name("a.pdf"),
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    // Downloads count too; another user of the same order is not held up.
    let staff_doc = upload_ok(&app, &w.staff_token, &order, sample_pdf(), "s.pdf").await;
    let (status, url) = link(&app, &w.fac2_token, &staff_doc).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = fetch(&app, &w.fac2_token, &url).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Sending nothing for the idle time ends both, and removes their temp files.
    for (task, tx) in stalled {
        let resp = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("ended by the server")
            .expect("task");
        if let Ok(resp) = resp {
            assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        }
        drop(tx);
    }
    for _ in 0..100 {
        if temp_files(&app) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(temp_files(&app), 0, "no temp file left behind");
    // The slots are free again.
    let (status, _, body) = fetch(&app, &w.fac2_token, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.expect("body"), sample_pdf());
    upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "b.pdf").await;
}

#[tokio::test]
async fn a_file_keeps_an_extension_of_its_content_and_loses_hidden_characters() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    for (sent, kept) in [
        ("Discharge orders.bat", "Discharge orders.bat.pdf"),
        ("scan.hta", "scan.hta.pdf"),
        ("invoice\u{202E}fdp.exe", "invoicefdp.exe.pdf"),
        ("face\u{200B}sheet.PDF", "facesheet.PDF"),
    ] {
        let (status, body) =
            upload_raw_filename(&app, &w.fac2_token, &order, sent, &sample_pdf()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["filename"], kept);
        let id = body["id"].as_str().expect("id");
        let (_, url) = link(&app, &w.fac2_token, id).await;
        let (status, headers, _) = fetch(&app, &w.fac2_token, &url).await;
        assert_eq!(status, StatusCode::OK);
        let cd = header(&headers, "content-disposition");
        assert!(cd.contains(".pdf\"") || cd.contains(".PDF\""), "{cd}");
        assert!(!cd.contains("%E2%80%AE"), "no direction override: {cd}");
    }
}

#[tokio::test]
async fn a_second_file_part_is_refused_naming_file_and_nothing_is_kept() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let form = reqwest::multipart::Form::new()
        .text("kind", "other")
        .part(
            "file",
            reqwest::multipart::Part::bytes(sample_pdf()).file_name("a.pdf"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"%PDF-1.7 small".to_vec()).file_name("b.pdf"),
        );
    let resp = app
        .client()
        .post(app.url(&format!("/api/v1/orders/{order}/documents")))
        .bearer_auth(&w.fac2_token)
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["errors"][0]["field"], "file", "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(document_files(&app).is_empty(), "nothing kept");
}

/// Starts downloading `doc` through a fresh link and returns the response, its
/// body not yet read.
async fn start_download(app: &App, token: &str, doc: &str) -> reqwest::Response {
    let (_, url) = link(app, token, doc).await;
    let resp = app
        .client()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    resp
}

#[tokio::test]
async fn a_download_whose_client_stops_reading_is_cut_off_and_frees_its_slot() {
    let (app, w, order) = tight_app(1).await;
    // Larger than what the socket buffers on both ends and the client hold.
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(24 * 1024 * 1024, b'x');
    let doc = upload_ok(&app, &w.fac2_token, &order, big, "big.pdf").await;
    let small = upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "s.pdf").await;
    let stalled = start_download(&app, &w.fac2_token, &doc).await;

    // While it runs, the user's one slot is taken.
    let (_, url) = link(&app, &w.fac2_token, &small).await;
    let (status, _, _) = fetch(&app, &w.fac2_token, &url).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Reading nothing while a write waits (for ten idle periods: the kernel's
    // buffer hides a slow reader's progress) closes the connection and frees it.
    let mut status = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        status = fetch(&app, &w.fac2_token, &url).await.0;
        if status == StatusCode::OK {
            break;
        }
    }
    assert_eq!(status, StatusCode::OK, "the slot came back");
    let rest = stalled.bytes().await;
    assert!(
        rest.map_or(true, |b| b.len() < 24 * 1024 * 1024),
        "the stalled download was cut short"
    );

    // A message without a file needs no slot, even while the user has none free;
    // the form's unused file input still sends an empty, unnamed part.
    let held = start_download(&app, &w.fac2_token, &doc).await;
    let planner =
        crate::common::sign_in(&app, "planner@gulfcoast.test", crate::common::PASSWORD).await;
    let page = format!("/orders/{order}");
    let resp = planner
        .multipart(
            &page,
            &format!("/orders/{order}/messages"),
            &[
                ("thread", "facility"),
                ("body", "Any update on the start date?"),
            ],
            Some(("", Vec::new())),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    drop(held);

    // A client that reads steadily but slowly, sending nothing for longer than
    // the idle time, gets the whole file.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resp = start_download(&app, &w.fac2_token, &doc).await;
    let started = std::time::Instant::now();
    let mut stream = resp.bytes_stream();
    let (mut got, mut paced) = (Vec::new(), 0usize);
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        got.extend_from_slice(&chunk.expect("the download is never cut"));
        if got.len() - paced >= 1024 * 1024 {
            paced = got.len();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert!(
        started.elapsed() > Duration::from_secs(4),
        "longer than the idle time"
    );
    assert_eq!(got.len(), 24 * 1024 * 1024);
    assert!(got.starts_with(b"%PDF-1.7\n") && got[9..].iter().all(|&b| b == b'x'));
}
