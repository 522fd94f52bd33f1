//! A user's own sessions: seen with device and address, ended one at a time or all
//! but the current one, never by another user; disabling a user ends everything.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    ADMIN_EMAIL, App, Browser, PASSWORD, agency_id, create_user, input_value, sign_in,
    sign_in_with, spawn_app,
};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// Signs in from a browser that sends `agent` as its User-Agent.
async fn sign_in_from(app: &App, email: &str, agent: &str) -> Browser {
    let ca = reqwest::Certificate::from_pem(app.ca_pem.as_bytes()).expect("ca");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .user_agent(agent)
        .build()
        .expect("client");
    let browser = Browser {
        client,
        base: app.base.clone(),
    };
    sign_in_with(app, browser, email, PASSWORD).await
}

/// The public id in the end form of the row whose device reads `device`.
fn session_id(html: &str, device: &str) -> String {
    let row = html.find(device).expect("row listed");
    let end = row + html[row..].find("</tr>").expect("row end");
    input_value(&html[row..end], "session").expect("an end form in that row")
}

async fn lands_on_sign_in(browser: &Browser) -> bool {
    let resp = browser
        .client
        .get(browser.url("/orders"))
        .send()
        .await
        .expect("get");
    resp.status() == StatusCode::SEE_OTHER
        && resp.headers().get("location").and_then(|v| v.to_str().ok()) == Some("/signin")
}

#[tokio::test]
async fn a_user_sees_each_signed_in_browser_with_device_and_address_and_the_current_one_marked() {
    let app = spawn_app().await;
    let firefox = sign_in_from(&app, ADMIN_EMAIL, FIREFOX).await;
    let _chrome = sign_in_from(&app, ADMIN_EMAIL, CHROME).await;
    let (status, html) = firefox.page("/account/sessions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Firefox on Linux <span class=\"badge badge-active\">This device</span>"),
        "{html}"
    );
    assert!(html.contains("Chrome on Windows"));
    assert_eq!(html.matches("This device").count(), 1);
    assert!(html.contains("<td class=\"cell-nowrap\">127.0.0.1</td>"));
    assert!(!html.contains("131.0"), "no version text from the header");
    // Only the other session has an end form, and it names a public id.
    assert_eq!(html.matches("name=\"session\"").count(), 1);
    let id = session_id(&html, "Chrome on Windows");
    assert!(uuid::Uuid::parse_str(&id).is_ok());
}

#[tokio::test]
async fn ending_another_session_sends_that_browser_to_sign_in_while_the_current_one_keeps_working()
{
    let app = spawn_app().await;
    let here = sign_in_from(&app, ADMIN_EMAIL, FIREFOX).await;
    let chrome = sign_in_from(&app, ADMIN_EMAIL, CHROME).await;
    let phone = sign_in_from(&app, ADMIN_EMAIL, IPHONE).await;
    let (_, html) = here.page("/account/sessions").await;
    let chrome_id = session_id(&html, "Chrome on Windows");

    let resp = here
        .submit(
            "/account/sessions",
            "/account/sessions/end",
            &[("session", &chrome_id)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        lands_on_sign_in(&chrome).await,
        "the ended browser signs in again"
    );
    assert!(!lands_on_sign_in(&phone).await);
    assert!(!lands_on_sign_in(&here).await);
    let (_, html) = here.page("/account/sessions?ended=1").await;
    assert!(html.contains("1 session was ended"));
    assert!(!html.contains("Chrome on Windows"));

    let resp = here
        .submit("/account/sessions", "/account/sessions/end-others", &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(lands_on_sign_in(&phone).await);
    assert!(
        !lands_on_sign_in(&here).await,
        "the current session is kept"
    );

    let (_, audit) = here.page("/admin/audit?action=session.end").await;
    assert!(audit.contains(&chrome_id));
    let (_, audit) = here.page("/admin/audit?action=session.end_others").await;
    assert!(audit.contains("session.end_others"));
}

#[tokio::test]
async fn another_user_cannot_end_your_session_and_posts_without_the_csrf_token_are_refused() {
    let app = spawn_app().await;
    let agency = agency_id(&app).await;
    create_user(&app, "clerk@ihms.test", "staff", &agency).await;
    let here = sign_in_from(&app, ADMIN_EMAIL, FIREFOX).await;
    let there = sign_in_from(&app, ADMIN_EMAIL, CHROME).await;
    let (_, html) = here.page("/account/sessions").await;
    let there_id = session_id(&html, "Chrome on Windows");

    let clerk = sign_in(&app, "clerk@ihms.test", PASSWORD).await;
    let resp = clerk
        .submit(
            "/account/sessions",
            "/account/sessions/end",
            &[("session", &there_id)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    for bad in ["not-an-id", ""] {
        let resp = clerk
            .submit(
                "/account/sessions",
                "/account/sessions/end",
                &[("session", bad)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    for path in ["/account/sessions/end", "/account/sessions/end-others"] {
        let resp = here
            .client
            .post(here.url(path))
            .form(&[("session", there_id.as_str())])
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert!(!lands_on_sign_in(&there).await, "still signed in");
    let resp = here
        .submit(
            "/account/sessions",
            "/account/sessions/end",
            &[("session", &there_id)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "the owner can");
    let (_, audit) = here
        .page("/admin/audit?action=session.end&outcome=refused")
        .await;
    assert!(audit.contains(&there_id), "the refusal is audited");
}

#[tokio::test]
async fn disabling_a_user_ends_their_session_and_token_on_the_very_next_request() {
    let app = spawn_app().await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let agency = agency_id(&app).await;
    for (email, through_api) in [("page@ihms.test", false), ("api@ihms.test", true)] {
        let id = create_user(&app, email, "staff", &agency).await;
        let user = sign_in(&app, email, PASSWORD).await;
        let token = user.api_token().await;
        assert!(!lands_on_sign_in(&user).await);
        assert_eq!(
            app.get_json(&token, "/api/v1/orders").await.0,
            StatusCode::OK
        );
        if through_api {
            let (status, _) = app
                .post_json(
                    &app.admin_token,
                    &format!("/api/v1/users/{id}/disable"),
                    &json!({}),
                )
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        } else {
            let resp = admin
                .submit("/admin/users", &format!("/admin/users/{id}/disable"), &[])
                .await;
            assert_eq!(resp.status(), StatusCode::SEE_OTHER);
            let to = resp.headers()["location"].to_str().expect("location");
            let (_, html) = admin.page(to).await;
            assert!(html.contains("Account disabled"), "the admin is told");
        }
        assert!(lands_on_sign_in(&user).await, "{email}: session ended");
        assert_eq!(
            app.get_json(&token, "/api/v1/orders").await.0,
            StatusCode::UNAUTHORIZED,
            "{email}: token refused"
        );
    }
}
