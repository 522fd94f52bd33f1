//! Sign-in, sessions and throttling as a browser and an attacker see them.

use reqwest::StatusCode;

use crate::common::{
    ADMIN_EMAIL, Browser, PASSWORD, input_value, sign_in, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn the_session_cookie_is_host_only_secure_httponly_and_new_at_each_sign_in() {
    let app = spawn_app().await;
    let browser = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let (_, html) = browser.page("/signin").await;
    let csrf = input_value(&html, "csrf").expect("csrf");
    let mut cookies = Vec::new();
    for _ in 0..2 {
        let resp = browser
            .client
            .post(browser.url("/signin"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", ADMIN_EMAIL),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let set = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_string())
            .find(|c| c.starts_with("__Host-ihms_session="))
            .expect("session cookie");
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{attr} missing in {set}");
        }
        assert!(!set.contains("Domain"));
        cookies.push(set);
    }
    assert_ne!(cookies[0], cookies[1], "a new session id at every sign-in");
}

#[tokio::test]
async fn signing_out_kills_the_session_on_the_server() {
    let app = spawn_app().await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, html) = admin.page("/orders").await;
    let csrf = input_value(&html, "csrf").expect("csrf");
    // Keep the raw cookie to replay it after sign-out.
    let stolen = admin
        .client
        .get(admin.url("/orders"))
        .send()
        .await
        .expect("get");
    assert_eq!(stolen.status(), StatusCode::OK);
    let resp = admin
        .client
        .post(admin.url("/signout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, _) = admin.page("/orders").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn a_replayed_session_cookie_is_dead_after_sign_out() {
    let app = spawn_app().await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, html) = admin.page("/orders").await;
    let csrf = input_value(&html, "csrf").expect("csrf");
    // Capture the cookie by signing in on a fresh client and reading Set-Cookie.
    let raw = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let (_, page) = raw.page("/signin").await;
    let token = input_value(&page, "csrf").expect("csrf");
    let resp = raw
        .client
        .post(raw.url("/signin"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", ADMIN_EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("post");
    // The admin has a second factor (enrolled by `sign_in` above): the session
    // starts at the code step.
    assert_eq!(resp.headers()["location"], "/signin/code");
    let code = app.next_code(ADMIN_EMAIL);
    let resp = raw
        .submit("/signin/code", "/signin/code", &[("code", &code)])
        .await;
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            v.to_str()
                .expect("ascii")
                .split(';')
                .next()
                .expect("pair")
                .to_string()
        })
        .find(|c| c.starts_with("__Host-ihms_session="))
        .expect("cookie");
    let plain = crate::common::ca_client(app.ca_pem.as_bytes(), false);
    let ok = plain
        .get(app.url("/orders"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(ok.status(), StatusCode::OK);
    let (_, html2) = raw.page("/orders").await;
    let csrf2 = input_value(&html2, "csrf").expect("csrf");
    raw.client
        .post(raw.url("/signout"))
        .form(&[("csrf", csrf2.as_str())])
        .send()
        .await
        .expect("post");
    let dead = plain
        .get(app.url("/orders"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(dead.status(), StatusCode::SEE_OTHER);
    // The first browser's session is independent and still alive.
    assert!(!csrf.is_empty());
    assert_eq!(admin.page("/orders").await.0, StatusCode::OK);
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_account_even_with_the_right_password() {
    let app = spawn_app_with(|c| c.signin_max_failures = 3).await;
    let browser = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    for _ in 0..3 {
        let resp = browser
            .submit(
                "/signin",
                "/signin",
                &[("email", ADMIN_EMAIL), ("password", "wrong password!!")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let html = resp.text().await.expect("html");
        assert!(
            html.contains("do not match"),
            "same message for every failure"
        );
    }
    let resp = browser
        .submit(
            "/signin",
            "/signin",
            &[("email", ADMIN_EMAIL), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    // Another account from the same address is not blocked yet.
    let resp = browser
        .submit(
            "/signin",
            "/signin",
            &[("email", "nobody@ihms.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_emails_and_wrong_passwords_look_the_same() {
    let app = spawn_app().await;
    let browser = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let a = browser
        .submit(
            "/signin",
            "/signin",
            &[("email", "nobody@ihms.test"), ("password", PASSWORD)],
        )
        .await;
    let b = browser
        .submit(
            "/signin",
            "/signin",
            &[("email", ADMIN_EMAIL), ("password", "not the password")],
        )
        .await;
    assert_eq!(a.status(), b.status());
    let (a, b) = (a.text().await.expect("a"), b.text().await.expect("b"));
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("csrf") && !l.contains("value="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&a), strip(&b));
}

#[tokio::test]
async fn idle_and_absolute_timeouts_end_sessions() {
    use ihms_connect::store::{accounts, sessions};
    let dir = tempfile::tempdir().expect("dir");
    let cfg = crate::common::test_config(&dir);
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSWORD).expect("pw");
    ihms_connect::ops::init(&cfg, ADMIN_EMAIL, "Ada", &pw).expect("init");
    let store = ihms_connect::ops::open_store(&cfg).expect("store");
    let user = accounts::user_by_email(&store, ADMIN_EMAIL)
        .expect("q")
        .expect("user");
    let (token, _) = sessions::start_session(&store, &user, None).expect("session");
    assert!(
        sessions::session(&store, &token, 60_000, 3_600_000)
            .expect("q")
            .is_some()
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(
        sessions::session(&store, &token, 5, 3_600_000)
            .expect("q")
            .is_none(),
        "idle timeout"
    );
    let (token, _) = sessions::start_session(&store, &user, None).expect("session");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(
        sessions::session(&store, &token, 60_000, 5)
            .expect("q")
            .is_none(),
        "absolute timeout"
    );
    assert!(
        sessions::session(&store, &token, 60_000, 3_600_000)
            .expect("q")
            .is_none(),
        "expired sessions are deleted"
    );
}

#[tokio::test]
async fn api_tokens_expire_and_can_be_revoked_at_once() {
    let app = spawn_app().await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let resp = admin
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[("name", "revoke-me"), ("expires_days", "30")],
        )
        .await;
    let created = resp.text().await.expect("html");
    let start = created.find("id=\"new-token\">").expect("shown once") + "id=\"new-token\">".len();
    let token = created[start..start + created[start..].find('<').expect("end")]
        .trim()
        .to_string();
    assert_eq!(
        app.get_json(&token, "/api/v1/orders").await.0,
        StatusCode::OK
    );
    let (_, html) = admin.page("/account/tokens").await;
    assert!(html.contains("Expires"));
    // The revoke form in the row of the token named "revoke-me".
    let row = html.find("revoke-me").expect("listed");
    let at = row + html[row..].find("/account/tokens/").expect("form") + "/account/tokens/".len();
    let id = html[at..at + 36].to_string();
    let resp = admin
        .submit(
            "/account/tokens",
            &format!("/account/tokens/{id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_json(&token, "/api/v1/orders").await.0,
        StatusCode::UNAUTHORIZED,
        "revoked at once"
    );
    // Someone else's token id answers 404.
    let other = admin.api_token().await;
    let (_, html) = admin.page("/account/tokens").await;
    let other_id: String = html
        .match_indices("/account/tokens/")
        .map(|(at, m)| html[at + m.len()..at + m.len() + 36].to_string())
        .next()
        .expect("a token");
    crate::common::create_user(
        &app,
        "second@ihms.test",
        "staff",
        &crate::common::agency_id(&app).await,
    )
    .await;
    let second = sign_in(&app, "second@ihms.test", PASSWORD).await;
    let resp = second
        .submit(
            "/account/tokens",
            &format!("/account/tokens/{other_id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_json(&other, "/api/v1/orders").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = crate::common::test_config(&dir);
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSWORD).expect("pw");
    ihms_connect::ops::init(&cfg, ADMIN_EMAIL, "Ada", &pw).expect("init");
    let store = ihms_connect::ops::open_store(&cfg).expect("store");
    let user = ihms_connect::store::accounts::user_by_email(&store, ADMIN_EMAIL)
        .expect("q")
        .expect("user");
    let event = ihms_connect::store::audit::Event::anonymous(
        "token.create",
        None,
        ihms_connect::store::audit::Outcome::Ok,
    );
    let past = ihms_connect::store::now_ms() - 1;
    use ihms_connect::store::sessions;
    let secret =
        sessions::create_token_until(&store, user.id, "old", Some(past), event).expect("token");
    assert!(sessions::token_user(&store, &secret).expect("q").is_none());
}
