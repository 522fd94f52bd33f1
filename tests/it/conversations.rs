//! Conversations through the API: each party sees only its own threads, and only
//! while it may see the order; unread counts per user; bodies bounded and shown as
//! escaped text with line breaks.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{App, PASSWORD, sign_in, spawn_app, world};
use crate::coordination::{fixture_order, provider_token, set_provider_access};

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
