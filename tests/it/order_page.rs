//! The order page's conversation and document forms as a browser uses them
//! (multipart, CSRF token first), and the audit entries they leave: ids, never
//! message text or filenames.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{ADMIN_EMAIL, App, PASSWORD, sign_in, spawn_app, world};
use crate::coordination::{document_files, fetch, fixture_order, link, sample_pdf, upload};

async fn post(app: &App, token: &str, order: &str, thread: &str, body: &str) -> StatusCode {
    app.post_json(
        token,
        &format!("/api/v1/orders/{order}/messages"),
        &json!({ "thread": thread, "body": body }),
    )
    .await
    .0
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
    assert!(document_files(&app).is_empty());

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
        !document_files(&app)
            .iter()
            .any(|f| f.to_string_lossy().contains(&doc_id))
    );
}

#[tokio::test]
async fn conversation_and_document_audit_entries_hold_ids_never_text_or_filenames() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let said = post(
        &app,
        &w.fac2_token,
        &order,
        "facility",
        "Patient prefers Spanish",
    )
    .await;
    assert_eq!(said, StatusCode::CREATED);
    let thread = format!("/api/v1/orders/{order}/messages?thread=facility");
    assert_eq!(
        app.get_json(&w.staff_token, &thread).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get_json(&w.fac3_token, &thread).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = upload(
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
    let (_, url) = link(&app, &w.fac2_token, &doc).await;
    assert_eq!(fetch(&app, &w.fac2_token, &url).await.0, StatusCode::OK);
    assert_eq!(
        fetch(&app, &w.fac3_token, &url).await.0,
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
