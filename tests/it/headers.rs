//! Security headers on every response: pages, API, errors, 404s and assets.

use reqwest::StatusCode;

use crate::common::{ADMIN_EMAIL, PASSWORD, sign_in, spawn_app};

fn check(resp: &reqwest::Response, what: &str, cacheable: bool) {
    let h = resp.headers();
    let get = |k: &str| {
        h.get(k)
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default()
    };
    assert!(
        get("strict-transport-security").contains("max-age="),
        "{what}: HSTS"
    );
    let csp = get("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{what}: CSP must be strict");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    if cacheable {
        assert!(
            !get("cache-control").contains("no-store"),
            "{what}: assets may be cached"
        );
    } else {
        assert_eq!(get("cache-control"), "no-store", "{what}");
    }
}

#[tokio::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let anon = app.client();
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let cases = [
        (
            anon.get(app.url("/signin")).send().await.expect("r"),
            "sign-in page",
            StatusCode::OK,
        ),
        (
            anon.get(app.url("/healthz")).send().await.expect("r"),
            "health",
            StatusCode::OK,
        ),
        (
            anon.get(app.url("/nope")).send().await.expect("r"),
            "404 page",
            StatusCode::NOT_FOUND,
        ),
        (
            anon.get(app.url("/api/v1/orders")).send().await.expect("r"),
            "API 401",
            StatusCode::UNAUTHORIZED,
        ),
        (
            anon.get(app.url("/api/v1/nope")).send().await.expect("r"),
            "API 404",
            StatusCode::NOT_FOUND,
        ),
        (
            anon.get(app.url("/orders")).send().await.expect("r"),
            "redirect",
            StatusCode::SEE_OTHER,
        ),
        (
            admin
                .client
                .get(app.url("/orders"))
                .send()
                .await
                .expect("r"),
            "PHI page",
            StatusCode::OK,
        ),
        (
            admin
                .client
                .get(app.url("/orders/00000000-0000-7000-8000-000000000000"))
                .send()
                .await
                .expect("r"),
            "missing order",
            StatusCode::NOT_FOUND,
        ),
    ];
    for (resp, what, status) in &cases {
        assert_eq!(resp.status(), *status, "{what}");
        check(resp, what, false);
    }
    let css = anon
        .get(app.url("/assets/style.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.status(), StatusCode::OK);
    check(&css, "stylesheet", true);
}

#[tokio::test]
async fn health_answers_without_authentication() {
    let app = spawn_app().await;
    let resp = app
        .client()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("health");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn plain_http_is_not_served() {
    let app = spawn_app().await;
    let port = app.base.rsplit(':').next().expect("port");
    let plain = reqwest::Client::builder().build().expect("client");
    let result = plain
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(result.is_err() || !result.expect("resp").status().is_success());
}

#[tokio::test]
async fn health_reports_store_disk_and_certificate_and_metrics_answer_only_allowed_addresses() {
    let app = spawn_app().await;
    let body: serde_json::Value = app
        .client()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("h")
        .json()
        .await
        .expect("json");
    assert_eq!(body["store"], "ok");
    assert!(body["disk_free_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(
        body["certificate_days_left"]
            .as_i64()
            .is_some_and(|d| d > 300),
        "{body}"
    );
    assert!(body.to_string().len() < 1000, "small");
    // Loopback is allowed by default.
    let resp = app
        .client()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("m");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("text");
    assert!(text.contains("ihms_requests_total{class=\"2xx\"}"));
    assert!(text.contains("ihms_orders{state=\"submitted\"} 0"));
    assert!(text.contains("ihms_signin_failures_total"));
    let closed = crate::common::spawn_app_with(|c| c.metrics_allow = vec![]).await;
    let resp = closed
        .client()
        .get(closed.url("/metrics"))
        .send()
        .await
        .expect("m");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
