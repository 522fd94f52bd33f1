//! Failed sign-ins: growing delays, then a block per account and per address that
//! survives a restart and ends by cool-down or by an admin; token guesses through
//! the API count too.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    ADMIN_EMAIL, App, Browser, PASSWORD, agency_id, create_user, input_value, sign_in, spawn_app,
    spawn_app_with,
};

const WRONG: &str = "not the password at all";

/// One sign-in attempt from a fresh browser: status, Retry-After and the page.
async fn attempt(app: &App, email: &str, password: &str) -> (StatusCode, Option<u64>, String) {
    let browser = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let resp = browser
        .submit(
            "/signin",
            "/signin",
            &[("email", email), ("password", password)],
        )
        .await;
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (resp.status(), retry, resp.text().await.expect("text"))
}

#[tokio::test]
async fn failed_sign_ins_are_delayed_then_blocked_alike_for_a_wrong_password_and_an_unknown_email()
{
    let app = spawn_app().await;
    let agency = agency_id(&app).await;
    create_user(&app, "nurse@ihms.test", "staff", &agency).await;
    // Only the test moves time, so a slow machine cannot let a delay run out.
    app.clock.freeze();
    let mut runs = Vec::new();
    for email in ["nurse@ihms.test", "nobody@ihms.test"] {
        let mut run = Vec::new();
        let step = async |password: &str| {
            let (status, retry, html) = attempt(&app, email, password).await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert!(html.contains("Try again in"), "{html}");
            }
            (status.as_u16(), retry)
        };
        for _ in 0..3 {
            run.push(step(WRONG).await);
        }
        // Even the right password waits: it is not checked during a delay.
        run.push(step(PASSWORD).await);
        app.clock.advance(Duration::from_secs(1));
        run.push(step(WRONG).await);
        run.push(step(PASSWORD).await);
        app.clock.advance(Duration::from_secs(2));
        // The fifth failure (signin_max_failures) blocks for the cool-down.
        run.push(step(WRONG).await);
        run.push(step(PASSWORD).await);
        app.clock.advance(Duration::from_secs(60));
        run.push(step(PASSWORD).await);
        runs.push(run);
    }
    assert_eq!(
        runs[0],
        vec![
            (401, None),
            (401, None),
            (401, None),
            (429, Some(1)),
            (401, None),
            (429, Some(2)),
            (401, None),
            (429, Some(900)),
            (429, Some(840)),
        ]
    );
    assert_eq!(runs[0], runs[1], "an unknown email is treated the same");
}

#[tokio::test]
async fn an_admin_sees_a_blocked_account_and_unblocking_it_restores_sign_in_both_audited() {
    let app = spawn_app_with(|c| c.signin_max_failures = 2).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let agency = agency_id(&app).await;
    let id = create_user(&app, "nurse@ihms.test", "staff", &agency).await;
    for _ in 0..2 {
        assert_eq!(
            attempt(&app, "nurse@ihms.test", WRONG).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt(&app, "nurse@ihms.test", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    let (status, html) = admin.page("/admin/blocked").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("User nurse@ihms.test"), "the name is shown");
    let key = input_value(&html, "key").expect("an unblock form");
    assert!(!key.contains('@'), "forms name the record, not the email");

    // Others cannot see or use it; a post without the CSRF token is refused.
    create_user(&app, "clerk@ihms.test", "staff", &agency).await;
    let clerk = sign_in(&app, "clerk@ihms.test", PASSWORD).await;
    assert_eq!(clerk.page("/admin/blocked").await.0, StatusCode::NOT_FOUND);
    let resp = clerk
        .submit("/orders", "/admin/blocked/unblock", &[("key", &key)])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = admin
        .client
        .post(admin.url("/admin/blocked/unblock"))
        .form(&[("key", key.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        attempt(&app, "nurse@ihms.test", PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    let resp = admin
        .submit("/admin/blocked", "/admin/blocked/unblock", &[("key", &key)])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        attempt(&app, "nurse@ihms.test", PASSWORD).await.0,
        StatusCode::SEE_OTHER
    );
    let (_, html) = admin.page("/admin/blocked").await;
    assert!(!html.contains("nurse@ihms.test"), "no longer listed");

    let (_, blocked) = admin.page("/admin/audit?action=signin.blocked").await;
    assert!(
        blocked.contains(&id),
        "the blocked user's id is the subject"
    );
    assert!(
        !blocked.contains("nurse@ihms.test"),
        "no email in the audit"
    );
    let (_, unblocked) = admin.page("/admin/audit?action=signin.unblocked").await;
    assert!(unblocked.contains(&id));
    assert!(
        unblocked.contains("<span class=\"cell-sub\">admin</span>"),
        "an admin did it"
    );
}

#[tokio::test]
async fn a_block_survives_a_restart_and_ends_after_the_cool_down() {
    let app = spawn_app_with(|c| c.signin_max_failures = 2).await;
    for _ in 0..2 {
        attempt(&app, ADMIN_EMAIL, WRONG).await;
    }
    assert_eq!(
        attempt(&app, ADMIN_EMAIL, PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let app = app.restart().await;
    let (status, retry, _) = attempt(&app, ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "still blocked");
    assert!(retry.is_some_and(|s| s > 800));
    app.clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        attempt(&app, ADMIN_EMAIL, PASSWORD).await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_successful_sign_in_resets_the_account_count() {
    let app = spawn_app_with(|c| c.signin_max_failures = 3).await;
    for _ in 0..2 {
        attempt(&app, ADMIN_EMAIL, WRONG).await;
    }
    assert_eq!(
        attempt(&app, ADMIN_EMAIL, PASSWORD).await.0,
        StatusCode::SEE_OTHER
    );
    for _ in 0..2 {
        assert_eq!(
            attempt(&app, ADMIN_EMAIL, WRONG).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt(&app, ADMIN_EMAIL, PASSWORD).await.0,
        StatusCode::SEE_OTHER,
        "two failures since the success, not four"
    );
}

#[tokio::test]
async fn an_address_is_blocked_after_ten_times_the_limit_until_an_admin_unblocks_it() {
    let app = spawn_app_with(|c| c.signin_max_failures = 1).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    for i in 0..10 {
        let (status, _, _) = attempt(&app, &format!("guess{i}@ihms.test"), WRONG).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let (status, retry, _) = attempt(&app, "fresh@ihms.test", WRONG).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is blocked"
    );
    assert!(retry.is_some());

    let (_, html) = admin.page("/admin/blocked").await;
    let at = html.find("Address <span").expect("the address is listed");
    assert!(html[at..].starts_with("Address <span class=\"mono\">127.0.0.1</span>"));
    let key = input_value(&html[at..], "key").expect("its unblock form");
    let resp = admin
        .submit("/admin/blocked", "/admin/blocked/unblock", &[("key", &key)])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        attempt(&app, "fresh@ihms.test", WRONG).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, audit) = admin.page("/admin/audit?action=signin.blocked").await;
    assert!(audit.contains("address 127.0.0.1"));
}

#[tokio::test]
async fn the_api_answers_429_with_retry_after_once_an_address_guessed_too_many_tokens() {
    let app = spawn_app_with(|c| c.signin_max_failures = 1).await;
    for i in 0..10 {
        let (status, _) = app
            .get_json(&format!("ihms_guess{i}"), "/api/v1/orders")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let resp = app
        .client()
        .get(app.url("/api/v1/orders"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry > 800, "the rest of the cool-down: {retry}");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["status"], json!(429));
    app.clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        app.get_json(&app.admin_token, "/api/v1/orders").await.0,
        StatusCode::OK
    );
}

#[test]
fn a_configuration_that_would_switch_throttling_off_is_refused() {
    use ihms_connect::config::{Config, Overrides};
    let dir = tempfile::tempdir().expect("dir");
    for (setting, named) in [
        ("signin_max_failures = 0", "signin_max_failures"),
        ("signin_cooldown_minutes = 0", "signin_cooldown_minutes"),
    ] {
        let file = dir.path().join("config.toml");
        std::fs::write(&file, setting).expect("write");
        let err = Config::load(&Overrides {
            config_file: Some(file),
            ..Overrides::default()
        })
        .expect_err(setting)
        .to_string();
        assert!(err.contains(named), "{err}");
    }
}

#[tokio::test]
async fn neither_the_email_typed_nor_the_address_is_stored_in_clear() {
    let mut app = spawn_app_with(|c| c.signin_max_failures = 1).await;
    for email in ["typed.guess@example.test", ADMIN_EMAIL] {
        attempt(&app, email, WRONG).await;
    }
    app.stop().await;
    // The certificate names 127.0.0.1 by design; the store must not.
    let store = app.cfg.data_dir.join(ihms_connect::store::STORE_FILE);
    let bytes = std::fs::read(&store).expect("read the store");
    for needle in ["typed.guess", ADMIN_EMAIL, "127.0.0.1", "unknown account"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} in clear in the store"
        );
    }
}
