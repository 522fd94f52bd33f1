//! The account page as the privacy notice promises it, token use, deletion
//! requests and disabling through the API.

use ihms_connect::ops;
use ihms_connect::store::audit::{self, Filter};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{
    ADMIN_EMAIL, App, Browser, PASSWORD, create_fixture_orgs, create_user, input_value, sign_in,
    spawn_app,
};

fn actions(app: &App, action: &str) -> usize {
    let tx = app.state().store.read().expect("read");
    let filter = Filter {
        action: Some(action.into()),
        ..Filter::default()
    };
    audit::list(&tx, &filter, 100).expect("list").0.len()
}

async fn download(browser: &Browser) -> (reqwest::header::HeaderMap, String) {
    let resp = browser.submit("/account", "/account/export", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    (headers, resp.text().await.expect("body"))
}

#[tokio::test]
async fn download_my_data_holds_my_account_and_nothing_of_anyone_else() {
    let app = spawn_app().await;
    let orgs = create_fixture_orgs(&app).await;
    let mine = create_user(&app, "quinn@gulfcoast.test", "facility_user", &orgs["fac2"]).await;
    let theirs = create_user(
        &app,
        "rhea@pinellasrehab.test",
        "facility_user",
        &orgs["fac3"],
    )
    .await;
    let me = sign_in(&app, "quinn@gulfcoast.test", PASSWORD).await;
    let resp = me
        .submit(
            "/account",
            "/account/profile",
            &[("name", "Quinn Marlowe"), ("phone", "727-555-0199")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let my_token = me.api_token().await;
    let other = sign_in(&app, "rhea@pinellasrehab.test", PASSWORD).await;
    other
        .submit(
            "/account",
            "/account/profile",
            &[("name", "Rhea Vantongeren"), ("phone", "813-555-0111")],
        )
        .await;
    let their_token = other
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[("name", "rhea-ehr-bridge")],
        )
        .await;
    assert_eq!(their_token.status(), StatusCode::OK);

    let (headers, body) = download(&me).await;
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment;")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let data: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(data["profile"]["id"], mine.as_str());
    assert_eq!(data["profile"]["name"], "Quinn Marlowe");
    assert_eq!(data["profile"]["email"], "quinn@gulfcoast.test");
    assert_eq!(data["profile"]["phone"], "(727) 555-0199");
    assert_eq!(data["organization"]["id"], orgs["fac2"].as_str());
    assert!(!data["sessions"].as_array().expect("sessions").is_empty());
    assert_eq!(data["api_tokens"][0]["name"], "tests");
    let audit = data["audit"].as_array().expect("audit");
    assert!(audit.iter().any(|e| e["action"] == "account.update"));
    assert!(audit.iter().any(|e| e["action"] == "signin"));
    // Nothing of the other user, and no secrets of mine.
    let (_, their_html) = other.page("/account").await;
    let their_org = if their_html.contains("Pinellas") {
        "Pinellas"
    } else {
        "fac3"
    };
    for absent in [
        theirs.as_str(),
        "rhea",
        "Rhea Vantongeren",
        "555-0111",
        "rhea-ehr-bridge",
        their_org,
        orgs["fac3"].as_str(),
        "argon2",
        "password",
        "csrf",
        my_token.as_str(),
        &my_token[5..],
    ] {
        assert!(
            !body.contains(absent),
            "{absent} must not be in the download"
        );
    }
    assert_eq!(actions(&app, "account.export"), 1);
}

#[tokio::test]
async fn users_correct_their_profile_and_change_email_only_with_their_password() {
    let app = spawn_app().await;
    let orgs = create_fixture_orgs(&app).await;
    create_user(&app, "lee@harborhh.test", "provider_user", &orgs["prov1"]).await;
    let lee = sign_in(&app, "lee@harborhh.test", PASSWORD).await;
    let (status, html) = lee.page("/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("lee@harborhh.test"));

    let resp = lee
        .submit(
            "/account",
            "/account/profile",
            &[("name", ""), ("phone", "5")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    assert!(html.contains("href=\"#f-name\"") && html.contains("href=\"#f-phone\""));

    let resp = lee
        .submit(
            "/account",
            "/account/email",
            &[
                ("new_email", "lee.new@harborhh.test"),
                ("current_password", "not my password"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!resp.text().await.expect("html").contains("not my password"));
    let resp = lee
        .submit(
            "/account",
            "/account/email",
            &[("new_email", ADMIN_EMAIL), ("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "taken");
    let resp = lee
        .submit(
            "/account",
            "/account/email",
            &[
                ("new_email", "Lee.New@HarborHH.test"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    sign_in(&app, "lee.new@harborhh.test", PASSWORD).await;
    let old = Browser {
        client: app.client(),
        base: app.base.clone(),
    }
    .submit(
        "/signin",
        "/signin",
        &[("email", "lee@harborhh.test"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the old email is gone"
    );

    // A post without the form token changes nothing.
    let resp = lee
        .client
        .post(lee.url("/account/profile"))
        .form(&[("name", "Hijacked"), ("phone", "")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, html) = lee.page("/account").await;
    assert!(!html.contains("Hijacked"));
    assert!(actions(&app, "account.update") >= 2);
}

#[tokio::test]
async fn a_deletion_request_is_processed_by_an_admin_and_erases_personal_fields() {
    let mut app = spawn_app().await;
    let orgs = create_fixture_orgs(&app).await;
    let id = create_user(&app, "del@gulfcoast.test", "facility_user", &orgs["fac2"]).await;
    let leaving = sign_in(&app, "del@gulfcoast.test", PASSWORD).await;
    leaving
        .submit(
            "/account",
            "/account/profile",
            &[("name", "Dana Leaving"), ("phone", "7275550123")],
        )
        .await;
    let token = leaving.api_token().await;
    let resp = leaving
        .submit("/account", "/account/delete-request", &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = leaving.page("/account").await;
    assert!(html.contains("You asked for your account to be deleted"));

    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, dash) = admin.page("/dashboard").await;
    assert!(dash.contains("1 deletion request to process"));
    let (_, queue) = admin.page("/admin/deletions").await;
    assert!(queue.contains("Dana Leaving"));
    // Someone who did not ask cannot be processed.
    let stays = create_user(&app, "stays@gulfcoast.test", "facility_user", &orgs["fac2"]).await;
    let resp = admin
        .submit(
            "/admin/deletions",
            &format!("/admin/deletions/{stays}/process"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    sign_in(&app, "stays@gulfcoast.test", PASSWORD).await;
    let resp = admin
        .submit(
            "/admin/deletions",
            &format!("/admin/deletions/{id}/process"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // Session and token end at once; the old email no longer signs in.
    assert_eq!(leaving.page("/orders").await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_json(&token, "/api/v1/orders").await.0,
        StatusCode::UNAUTHORIZED
    );
    let resp = Browser {
        client: app.client(),
        base: app.base.clone(),
    }
    .submit(
        "/signin",
        "/signin",
        &[("email", "del@gulfcoast.test"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, queue) = admin.page("/admin/deletions").await;
    assert!(queue.contains("No deletion requests"));
    let (_, users) = admin.page("/admin/users").await;
    assert!(users.contains("Deleted account"));
    for gone in ["Dana Leaving", "del@gulfcoast.test", "555-0123"] {
        assert!(!users.contains(gone), "{gone} erased");
    }
    let user = ihms_connect::store::accounts::user(
        &app.state().store.read().expect("read"),
        id.parse().expect("uuid"),
    )
    .expect("q")
    .expect("kept");
    assert!(user.email.is_empty() && user.phone.is_empty() && user.password_hash.is_empty());
    assert!(user.disabled);
    assert_eq!(actions(&app, "account.delete_request"), 1);
    assert_eq!(
        actions(&app, "account.delete"),
        2,
        "the refused attempt on an account that did not ask, and the deletion"
    );

    app.stop().await;
    let summary = ops::verify_audit(&app.cfg).expect("the audit chain is intact");
    assert!(!summary.is_empty());
}

#[tokio::test]
async fn a_token_records_when_it_was_last_used_and_the_tokens_page_shows_it() {
    let app = spawn_app().await;
    let orgs = create_fixture_orgs(&app).await;
    // A user with no other token, so the row is unambiguous.
    create_user(&app, "uses@gulfcoast.test", "facility_user", &orgs["fac2"]).await;
    let admin = sign_in(&app, "uses@gulfcoast.test", PASSWORD).await;
    let token = admin.api_token().await;
    let row = |html: &str| {
        let at = html.find(">tests<").expect("row");
        let end = at + html[at..].find("</tr>").expect("row end");
        html[at..end].to_string()
    };
    let (_, html) = admin.page("/account/tokens").await;
    assert!(row(&html).contains("Never"));
    assert_eq!(
        app.get_json(&token, "/api/v1/orders").await.0,
        StatusCode::OK
    );
    let (_, html) = admin.page("/account/tokens").await;
    let used = row(&html);
    assert!(!used.contains("Never"), "last use shown: {used}");
    assert!(used.contains(" UTC"));
    let tokens = ihms_connect::store::sessions::own_tokens(
        &app.state().store,
        &ihms_connect::store::accounts::user_by_email(&app.state().store, "uses@gulfcoast.test")
            .expect("q")
            .expect("user")
            .caller(None),
    )
    .expect("tokens");
    assert!(
        tokens
            .iter()
            .any(|t| t.name == "tests" && t.last_used_ms.is_some())
    );
}

#[tokio::test]
async fn disabling_a_user_through_the_api_ends_their_session_and_token_at_the_next_request() {
    let app = spawn_app().await;
    let orgs = create_fixture_orgs(&app).await;
    let id = create_user(&app, "gone@harborhh.test", "provider_user", &orgs["prov1"]).await;
    let user = sign_in(&app, "gone@harborhh.test", PASSWORD).await;
    let token = user.api_token().await;
    assert_eq!(user.page("/orders").await.0, StatusCode::OK);
    assert_eq!(
        app.get_json(&token, "/api/v1/orders").await.0,
        StatusCode::OK
    );
    // Only an admin may disable.
    let (status, _) = app
        .post_json(&token, &format!("/api/v1/users/{id}/disable"), &Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post_json(
            &app.admin_token,
            &format!("/api/v1/users/{id}/disable"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let resp = user
        .client
        .get(user.url("/orders"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/signin");
    assert_eq!(
        app.get_json(&token, "/api/v1/orders").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(actions(&app, "user.disable") >= 1);
    let (_, html) = sign_in(&app, ADMIN_EMAIL, PASSWORD)
        .await
        .page("/admin/users")
        .await;
    assert!(input_value(&html, "csrf").is_some());
    assert!(html.contains("Disabled"));
}
