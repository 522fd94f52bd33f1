//! Passwords: the one policy on every path that sets one, changing one's own, and
//! admin-issued one-time reset links.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    ADMIN_EMAIL, App, Browser, PASSWORD, enrol_second_factor, sign_in, spawn_app, world,
};

const PLANNER: &str = "planner@gulfcoast.test";

async fn api_create(app: &App, email: &str, password: &str, org: &str) -> (StatusCode, String) {
    let body = json!({ "email": email, "name": "Pat Planner", "role": "facility_user",
                       "organization_id": org, "password": password });
    let resp = app
        .client()
        .post(app.url("/api/v1/users"))
        .bearer_auth(&app.admin_token)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = resp.status();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        assert_eq!(kind, "application/problem+json");
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(fields, ["password"], "{body}");
        assert!(!body.to_string().contains(password), "never echoed");
    }
    (status, body.to_string())
}

#[tokio::test]
async fn every_password_rule_holds_when_an_admin_creates_a_user_through_the_api() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let org = &w.orgs["fac2"];
    let unicode = "Ünïcødé ρασσφράση 漢字かな 😀🙂🚀 ".repeat(3);
    let unicode: String = unicode.chars().take(64).collect();
    assert_eq!(unicode.chars().count(), 64);
    let (status, body) = api_create(&app, "pat1@gulfcoast.test", &unicode, org).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let b = sign_in(&app, "pat1@gulfcoast.test", &unicode).await;
    assert_eq!(b.page("/orders").await.0, StatusCode::OK, "never truncated");

    let cases = [
        ("Password1234".to_string(), "common"),
        ("pat2@gulfcoast.test".to_string(), "own email"),
        (
            "vqx7 lumo brik".to_string(),
            "14 characters, no second factor",
        ),
        ("x".repeat(129), "129 characters"),
    ];
    for (pw, why) in cases {
        let (status, body) = api_create(&app, "pat2@gulfcoast.test", &pw, org).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {body}");
    }
}

#[tokio::test]
async fn the_web_form_refuses_a_guessable_password_and_says_why() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let resp = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[
                ("email", "lee@gulfcoast.test"),
                ("name", "Lee Planner"),
                ("role", "facility_user"),
                ("organization_id", &w.orgs["fac2"]),
                ("password", "qwertyuiop123456"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("too easy to guess"),
        "zxcvbn's advice is shown"
    );
    assert!(!html.contains("qwertyuiop123456"), "never echoed");
}

async fn change(b: &Browser, current: &str, new: &str) -> reqwest::Response {
    b.submit(
        "/account/password",
        "/account/password",
        &[
            ("current_password", current),
            ("password", new),
            ("password_confirm", new),
        ],
    )
    .await
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    world(&app).await;
    let elsewhere = sign_in(&app, PLANNER, PASSWORD).await;
    let here = sign_in(&app, PLANNER, PASSWORD).await;
    let new = "granite otter lantern meadow";
    let resp = change(&here, "not the current one", new).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains("not your current password")
    );
    assert_eq!(elsewhere.page("/orders").await.0, StatusCode::OK);
    let resp = change(&here, PASSWORD, "Password1234").await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = change(&here, PASSWORD, new).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        elsewhere.page("/orders").await.0,
        StatusCode::SEE_OTHER,
        "other sessions end"
    );
    assert_eq!(
        here.page("/orders").await.0,
        StatusCode::OK,
        "this one stays"
    );
    let again = sign_in(&app, PLANNER, new).await;
    assert_eq!(again.page("/orders").await.0, StatusCode::OK);
}

#[tokio::test]
async fn twelve_to_fourteen_characters_are_enough_once_the_user_has_a_second_factor() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    let short = "vqx7 lumo brik";
    let resp = change(&planner, PASSWORD, short).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().await.expect("html").contains("at least 15"));
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    let resp = change(&planner, PASSWORD, short).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = change(&planner, short, "vqx7 lumo b").await;
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "11 characters"
    );
    let again = sign_in(&app, PLANNER, short).await;
    assert_eq!(again.page("/orders").await.0, StatusCode::OK);
}

/// Issues a reset link for the user in the admin's list row with `email`.
async fn issue_link(admin: &Browser, email: &str) -> (String, String) {
    let (_, html) = admin.page("/admin/users").await;
    let row = html.find(email).expect("user listed");
    let marker = "/reset-link";
    let end = row + html[row..].find(marker).expect("reset form");
    let id = html[end - 36..end].to_string();
    let resp = admin
        .submit(
            "/admin/users",
            &format!("/admin/users/{id}/reset-link"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    let at = html.find("id=\"reset-link\">").expect("link shown") + "id=\"reset-link\">".len();
    let link = html[at..at + html[at..].find('<').expect("end")]
        .trim()
        .to_string();
    (id, link.replace("&#x2f;", "/"))
}

fn path_of(link: &str) -> String {
    let at = link.find("/reset/").expect("path");
    link[at..].to_string()
}

async fn use_link(app: &App, link: &str, new: &str) -> reqwest::Response {
    let anon = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let path = path_of(link);
    let secret = path.trim_start_matches("/reset/").to_string();
    // Any anonymous page gives the form token (the link's own page is a 404 once
    // the link is dead).
    anon.submit(
        "/signin",
        "/reset",
        &[
            ("secret", &secret),
            ("password", new),
            ("password_confirm", new),
        ],
    )
    .await
}

#[tokio::test]
async fn a_reset_link_is_shown_once_works_once_and_ends_every_session() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, link) = issue_link(&admin, PLANNER).await;
    let secret = path_of(&link).trim_start_matches("/reset/").to_string();
    assert!(link.starts_with("https://"));
    let (_, users) = admin.page("/admin/users").await;
    assert!(!users.contains(&secret), "the link is shown only once");

    let anon = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let (status, html) = anon.page(&path_of(&link)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("action=\"/reset\""),
        "the secret is posted in the body"
    );
    let weak = use_link(&app, &link, "Password1234").await;
    assert_eq!(
        weak.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "same policy"
    );
    let new = "harbor violet pencil thunder";
    let ok = use_link(&app, &link, new).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        planner.page("/orders").await.0,
        StatusCode::SEE_OTHER,
        "every session of the user ends"
    );
    let again = use_link(&app, &link, "another fine phrase here").await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "works once");
    let signed_in = sign_in(&app, PLANNER, new).await;
    assert_eq!(signed_in.page("/orders").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_reset_link_expires_after_twenty_four_hours_and_a_newer_one_replaces_it() {
    let app = spawn_app().await;
    world(&app).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, old) = issue_link(&admin, PLANNER).await;
    let (_, link) = issue_link(&admin, PLANNER).await;
    let anon = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    assert_eq!(anon.page(&path_of(&old)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(anon.page(&path_of(&link)).await.0, StatusCode::OK);
    app.clock
        .advance(std::time::Duration::from_secs(24 * 3600 + 1));
    assert_eq!(anon.page(&path_of(&link)).await.0, StatusCode::NOT_FOUND);
    let late = use_link(&app, &link, "harbor violet pencil thunder").await;
    assert_eq!(late.status(), StatusCode::NOT_FOUND);
    let still = sign_in(&app, PLANNER, PASSWORD).await;
    assert_eq!(still.page("/orders").await.0, StatusCode::OK, "unchanged");
}

#[tokio::test]
async fn only_an_admin_issues_reset_links() {
    let app = spawn_app().await;
    world(&app).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (id, _) = issue_link(&admin, PLANNER).await;
    for (email, role) in [
        ("coordinator@ihms.test", "staff"),
        ("planner@pinellasrehab.test", "facility"),
    ] {
        let b = sign_in(&app, email, PASSWORD).await;
        let resp = b
            .submit("/orders", &format!("/admin/users/{id}/reset-link"), &[])
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{role}");
    }
    let resp = admin
        .submit("/admin/users", "/admin/users/not-an-id/reset-link", &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_new_form_refuses_a_post_without_its_form_token() {
    let app = spawn_app().await;
    world(&app).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, html) = admin.page("/admin/users").await;
    let row = html.find(PLANNER).expect("listed");
    let end = row + html[row..].find("/reset-link").expect("form");
    let id = html[end - 36..end].to_string();
    for path in [
        "/account/password".to_string(),
        "/account/second-factor/confirm".to_string(),
        "/account/second-factor/replace".to_string(),
        "/account/second-factor/disable".to_string(),
        "/account/second-factor/cancel".to_string(),
        format!("/admin/users/{id}/reset-link"),
        format!("/admin/users/{id}/second-factor-reset"),
        "/reset".to_string(),
        "/signin/code".to_string(),
    ] {
        let resp = admin
            .client
            .post(admin.url(&path))
            .form(&[("password", PASSWORD), ("code", "123456")])
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
}
