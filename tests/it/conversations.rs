//! Conversations over HTTPS: each party sees only its own threads, and only while it
//! may see the order; unread counts per user; bodies bounded and shown as escaped
//! text; the order page's forms (CSRF first, multipart) post and upload; audit
//! entries hold ids, never text or filenames.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    ADMIN_EMAIL, App, Browser, PASSWORD, World, create_user, fixture_order, input_value,
    sample_pdf, set_provider_access, sign_in, spawn_app, world,
};

/// An API token for a new provider user at the fixture organization `key`.
pub async fn provider_token(app: &App, w: &World, key: &str) -> String {
    let email = format!("intake@{key}.test");
    create_user(app, &email, "provider_user", &w.orgs[key]).await;
    sign_in(app, &email, PASSWORD).await.api_token().await
}

async fn post(
    app: &App,
    token: &str,
    order: &str,
    thread: &str,
    body: &str,
) -> (StatusCode, Value) {
    app.post_json(
        token,
        &format!("/api/v1/orders/{order}/messages"),
        &json!({ "thread": thread, "body": body }),
    )
    .await
}

async fn read(app: &App, token: &str, order: &str, thread: &str) -> (StatusCode, Value) {
    app.get_json(
        token,
        &format!("/api/v1/orders/{order}/messages?thread={thread}"),
    )
    .await
}

async fn thread_names(app: &App, token: &str, order: &str) -> Vec<(String, u64)> {
    let (status, body) = app
        .get_json(token, &format!("/api/v1/orders/{order}/messages"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .map(|t| {
            (
                t["thread"].as_str().expect("name").to_string(),
                t["unread"].as_u64().expect("unread"),
            )
        })
        .collect()
}

fn names(threads: &[(String, u64)]) -> Vec<String> {
    let mut v: Vec<String> = threads.iter().map(|t| t.0.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn provider_threads_are_invisible_to_other_providers_and_to_the_facility() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let prov2_token = provider_token(&app, &w, "prov2").await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let (prov1, prov2) = (w.orgs["prov1"].clone(), w.orgs["prov2"].clone());
    let (t1, t2) = (format!("provider:{prov1}"), format!("provider:{prov2}"));
    set_provider_access(&app, &order, &[&prov1, &prov2]);

    assert_eq!(
        post(&app, &w.staff_token, &order, &t1, "Can you staff SN 2w4?")
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&app, &w.staff_token, &order, &t2, "Rate for PT only?")
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&app, &w.provider_token, &order, &t1, "Yes, from Monday.")
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(
            &app,
            &w.fac2_token,
            &order,
            "facility",
            "Family prefers mornings."
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(
            &app,
            &w.staff_token,
            &order,
            "internal",
            "Check auth with payer"
        )
        .await
        .0,
        StatusCode::CREATED
    );

    // Who sees which threads.
    assert_eq!(names(&thread_names(&app, &w.staff_token, &order).await), {
        let mut v = vec![
            "facility".to_string(),
            "internal".into(),
            t1.clone(),
            t2.clone(),
        ];
        v.sort();
        v
    });
    assert_eq!(
        names(&thread_names(&app, &w.provider_token, &order).await),
        vec![t1.clone()]
    );
    assert_eq!(
        names(&thread_names(&app, &prov2_token, &order).await),
        vec![t2.clone()]
    );
    assert_eq!(
        names(&thread_names(&app, &w.fac2_token, &order).await),
        vec!["facility".to_string()]
    );

    // Reading or posting in another party's thread answers 404, like a missing one.
    for (token, thread) in [
        (&prov2_token, t1.as_str()),
        (&w.provider_token, t2.as_str()),
        (&w.fac2_token, t1.as_str()),
        (&w.fac2_token, "internal"),
        (&w.provider_token, "facility"),
        (&w.provider_token, "internal"),
        (&w.fac3_token, "facility"),
    ] {
        let (status, body) = read(&app, token, &order, thread).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{thread}");
        assert!(!body.to_string().contains("Monday"));
        assert_eq!(
            post(&app, token, &order, thread, "hello").await.0,
            StatusCode::NOT_FOUND,
            "{thread}"
        );
    }
    let (status, body) = read(&app, &w.provider_token, &order, &t1).await;
    assert_eq!(status, StatusCode::OK);
    let bodies: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(
        bodies,
        vec!["Yes, from Monday.", "Can you staff SN 2w4?"],
        "newest first"
    );

    // The order page shows a provider only its own thread.
    let prov1_browser = sign_in(&app, "intake@harborhh.test", PASSWORD).await;
    let (status, html) = prov1_browser.page(&format!("/orders/{order}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Yes, from Monday."));
    for hidden in [
        "Rate for PT only?",
        "Family prefers mornings.",
        "Check auth with payer",
    ] {
        assert!(!html.contains(hidden), "{hidden}");
    }
    let (status, _) = prov1_browser
        .page(&format!("/orders/{order}?thread={t2}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A provider whose access ends loses its thread at once.
    set_provider_access(&app, &order, &[&prov2]);
    assert_eq!(
        read(&app, &w.provider_token, &order, &t1).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&app, &w.provider_token, &order, &t1, "still there?")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The agency keeps the history, and cannot open threads with arbitrary ids.
    assert_eq!(
        read(&app, &w.staff_token, &order, &t1).await.0,
        StatusCode::OK
    );
    let stranger = format!("provider:{}", w.orgs["prov3"]);
    assert_eq!(
        post(&app, &w.staff_token, &order, &stranger, "hi").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unread_counts_follow_each_user_and_clear_when_the_thread_is_read() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    for text in ["One", "Two", "Three"] {
        post(&app, &w.staff_token, &order, "facility", text).await;
    }
    post(&app, &w.fac2_token, &order, "facility", "Mine").await;
    let unread = |threads: Vec<(String, u64)>, name: &str| {
        threads
            .iter()
            .find(|t| t.0 == name)
            .map(|t| t.1)
            .expect("thread")
    };
    assert_eq!(
        unread(thread_names(&app, &w.fac2_token, &order).await, "facility"),
        3,
        "own posts are not unread"
    );
    assert_eq!(
        unread(thread_names(&app, &w.staff_token, &order).await, "facility"),
        1
    );

    // The planner's order list shows a badge until the thread is read.
    let planner = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    let (_, list) = planner.page("/orders").await;
    assert!(
        list.contains("badge-unread\" href=\"/orders/"),
        "badge on the list"
    );
    assert!(list.contains(">3<span class=\"visually-hidden\"> unread messages"));
    let (_, detail) = planner.page(&format!("/orders/{order}")).await;
    assert!(detail.contains("Three"));
    assert_eq!(
        unread(thread_names(&app, &w.fac2_token, &order).await, "facility"),
        0
    );
    let (_, list) = planner.page("/orders").await;
    assert!(!list.contains("badge-unread"));
    // Staff's count is their own.
    assert_eq!(
        unread(thread_names(&app, &w.staff_token, &order).await, "facility"),
        1
    );
    post(&app, &w.staff_token, &order, "facility", "Four").await;
    assert_eq!(
        unread(thread_names(&app, &w.fac2_token, &order).await, "facility"),
        1
    );
}

#[tokio::test]
async fn message_bodies_are_bounded_and_shown_as_escaped_text_with_line_breaks() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let (status, body) = post(&app, &w.fac2_token, &order, "facility", &"x".repeat(4_001)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "body");
    let (status, body) = post(&app, &w.fac2_token, &order, "facility", "   ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "body");
    let (status, body) = post(&app, &w.fac2_token, &order, "nonsense", "hi").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "thread");
    assert_eq!(
        post(&app, &w.fac2_token, &order, "facility", &"y".repeat(4_000))
            .await
            .0,
        StatusCode::CREATED
    );

    let planner = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    let page = format!("/orders/{order}");
    let resp = planner
        .multipart(
            &page,
            &format!("/orders/{order}/messages"),
            &[
                ("thread", "facility"),
                ("body", "<script>alert(1)</script>\r\nSecond line & more"),
            ],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = planner.page(&page).await;
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;\nSecond line &amp; more"),
        "escaped, newline kept"
    );
    assert!(!html.contains("<script>alert"));

    // An over-long body through the page keeps what was typed and names the field.
    let resp = planner
        .multipart(
            &page,
            &format!("/orders/{order}/messages"),
            &[("thread", "facility"), ("body", &"z".repeat(4_001))],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    assert!(html.contains("must be at most 4,000 characters"));
    assert!(html.contains(&"z".repeat(4_001)));
}

impl Browser {
    /// Posts a multipart form the way the order page does: the CSRF token first, then
    /// `fields`, then an optional file part `(filename, bytes)`.
    pub async fn multipart(
        &self,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, Vec<u8>)>,
    ) -> reqwest::Response {
        let (_, html) = self.page(form_page).await;
        let csrf = input_value(&html, "csrf").expect("csrf field");
        self.multipart_with_csrf(&csrf, action, fields, file).await
    }

    pub async fn multipart_with_csrf(
        &self,
        csrf: &str,
        action: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, Vec<u8>)>,
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new().text("csrf", csrf.to_string());
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        if let Some((name, bytes)) = file {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        }
        self.client
            .post(self.url(action))
            .multipart(form)
            .send()
            .await
            .expect("post")
    }
}

#[tokio::test]
async fn the_order_page_posts_uploads_opens_and_removes_documents_behind_csrf() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let planner = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    let page = format!("/orders/{order}");
    let pdf = sample_pdf();

    // Without the session's CSRF token nothing is read or stored.
    let resp = planner
        .multipart_with_csrf(
            "forged",
            &format!("/orders/{order}/documents"),
            &[("kind", "face_sheet"), ("share", "order")],
            Some(("a.pdf", pdf.clone())),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(crate::common::document_files(&app).is_empty());

    // Upload through the documents form.
    let resp = planner
        .multipart(
            &page,
            &format!("/orders/{order}/documents"),
            &[("kind", "face_sheet"), ("share", "order")],
            Some(("Face sheet.pdf", pdf.clone())),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = planner.page(&page).await;
    assert!(html.contains("Face sheet.pdf") && html.contains("Everyone on this order"));
    let doc_id = {
        let at = html.find("/documents/").expect("open form") + "/documents/".len();
        html[at..at + 36].to_string()
    };

    // A wrong type through the page names the file field.
    let resp = planner
        .multipart(
            &page,
            &format!("/orders/{order}/documents"),
            &[("kind", "face_sheet"), ("share", "order")],
            Some(("fake.pdf", b"GIF89a".to_vec())),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains("must be a PDF, PNG, JPEG or TIFF file")
    );

    // A message with an attachment, in one form.
    let resp = planner
        .multipart(
            &page,
            &format!("/orders/{order}/messages"),
            &[
                ("thread", "facility"),
                ("body", "Signed order attached."),
                ("attachment_kind", "signed_order"),
            ],
            Some(("signed.pdf", pdf.clone())),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = planner.page(&page).await;
    assert!(html.contains("Signed order attached.") && html.contains("signed.pdf"));

    // "Open" posts for a fresh link and is redirected to it; the link serves the file.
    let resp = planner
        .submit(&page, &format!("/documents/{doc_id}/open"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.starts_with(&format!("/documents/{doc_id}/content?")));
    let resp = planner
        .client
        .get(planner.url(&location))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.expect("bytes").to_vec(), pdf);
    // The same link in another signed-in user's browser is refused.
    let staff = sign_in(&app, "coordinator@ihms.test", PASSWORD).await;
    let resp = staff
        .client
        .get(staff.url(&location))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Remove with a reason.
    let resp = planner
        .submit(
            &page,
            &format!("/documents/{doc_id}/delete"),
            &[("order", &order), ("reason", "")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = planner
        .submit(
            &page,
            &format!("/documents/{doc_id}/delete"),
            &[("order", &order), ("reason", "Duplicate")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = planner.page(&page).await;
    assert!(html.contains("Reason: Duplicate") && !html.contains("Face sheet.pdf"));
    assert!(
        !crate::common::document_files(&app)
            .iter()
            .any(|f| f.to_string_lossy().contains(&doc_id))
    );
}

#[tokio::test]
async fn conversation_and_document_audit_entries_hold_ids_never_text_or_filenames() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    post(
        &app,
        &w.fac2_token,
        &order,
        "facility",
        "Patient prefers Spanish",
    )
    .await;
    read(&app, &w.staff_token, &order, "facility").await;
    read(&app, &w.fac3_token, &order, "facility").await;
    let (status, body) = crate::common::upload(
        &app,
        &w.fac2_token,
        &order,
        sample_pdf(),
        "Okafor-face-sheet.pdf",
        "face_sheet",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let doc = body["id"].as_str().expect("id").to_string();
    let (_, url) = crate::common::link(&app, &w.fac2_token, &doc).await;
    assert_eq!(
        crate::common::fetch(&app, &w.fac2_token, &url).await.0,
        StatusCode::OK
    );
    assert_eq!(
        crate::common::fetch(&app, &w.fac3_token, &url).await.0,
        StatusCode::NOT_FOUND
    );

    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, html) = admin.page("/admin/audit").await;
    for action in [
        "message.post",
        "thread.view",
        "document.upload",
        "document.link",
        "document.download",
    ] {
        assert!(html.contains(action), "{action} is audited");
    }
    let (_, refused) = admin.page("/admin/audit?outcome=refused").await;
    assert!(refused.contains("document.download") && refused.contains("thread.view"));
    assert!(refused.contains(&doc));
    for secret in ["Spanish", "Okafor", "face-sheet", "sig="] {
        assert!(
            !html.contains(secret) && !refused.contains(secret),
            "{secret} must not be audited"
        );
    }
}
