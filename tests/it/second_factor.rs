//! The second factor as a person and an attacker meet it: enrolment, the code step,
//! replays, recovery codes, and agency staff who have not enrolled yet.

use reqwest::StatusCode;

use crate::common::{
    App, Browser, PASSWORD, agency_id, create_user, enrol_second_factor, input_value, sign_in,
    spawn_app, spawn_app_with, world,
};
use ihms_connect::store::audit::{self, Filter};

const PLANNER: &str = "planner@gulfcoast.test";

/// The password step alone, as a browser does it: the browser and where it is sent.
async fn password_step(app: &App, email: &str, password: &str) -> (Browser, String) {
    let b = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let resp = b
        .submit(
            "/signin",
            "/signin",
            &[("email", email), ("password", password)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    (b, to)
}

async fn code_step(b: &Browser, code: &str) -> reqwest::Response {
    b.submit("/signin/code", "/signin/code", &[("code", code)])
        .await
}

#[tokio::test]
async fn a_user_enrols_from_the_qr_code_and_then_signs_in_with_a_code() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    let (_, html) = planner.page("/account/second-factor").await;
    assert!(html.contains("<svg"), "the QR code is drawn by the server");
    assert!(!html.contains("<script"), "no JavaScript");
    assert!(html.contains("id=\"totp-secret\""), "the key in text");
    let wrong = planner
        .submit(
            "/account/second-factor",
            "/account/second-factor/confirm",
            &[("password", PASSWORD), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let codes = enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    assert_eq!(codes.len(), 10);
    let (_, html) = planner.page("/account/second-factor").await;
    assert!(html.contains("10 unused recovery codes"));
    assert!(!html.contains(&codes[0]), "recovery codes are shown once");

    let (b, to) = password_step(&app, PLANNER, PASSWORD).await;
    assert_eq!(to, "/signin/code");
    assert_eq!(
        b.page("/orders").await.0,
        StatusCode::SEE_OTHER,
        "the half-signed-in state reaches nothing"
    );
    let resp = code_step(&b, "123456").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = code_step(&b, &app.next_code(PLANNER)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/orders");
    assert_eq!(b.page("/orders").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_code_works_once_and_a_recovery_code_works_once() {
    let mut app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    let recovery = enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;

    let (first, _) = password_step(&app, PLANNER, PASSWORD).await;
    let code = app.next_code(PLANNER);
    assert_eq!(
        code_step(&first, &code).await.status(),
        StatusCode::SEE_OTHER
    );
    let (second, _) = password_step(&app, PLANNER, PASSWORD).await;
    let replay = code_step(&second, &code).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED, "a replayed code");
    assert_eq!(second.page("/orders").await.0, StatusCode::SEE_OTHER);

    let upper = recovery[3].to_uppercase();
    let ok = code_step(&second, &upper).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER, "a recovery code");
    assert_eq!(second.page("/orders").await.0, StatusCode::OK);
    let (_, html) = second.page("/account/second-factor").await;
    assert!(html.contains("9 unused recovery codes"));
    let (third, _) = password_step(&app, PLANNER, PASSWORD).await;
    let again = code_step(&third, &recovery[3]).await;
    assert_eq!(
        again.status(),
        StatusCode::UNAUTHORIZED,
        "a used recovery code"
    );

    app.stop().await;
    let store = ihms_connect::ops::open_store(&app.cfg).expect("open");
    let tx = store.read().expect("read");
    let (entries, _) = audit::list(&tx, &Filter::default(), 10_000).expect("list");
    for action in [
        "mfa.enrol",
        "mfa.recovery_used",
        "signin.code_failed",
        "signin.password_ok",
    ] {
        assert!(entries.iter().any(|e| e.action == action), "{action}");
    }
    let text = serde_json::to_string(&entries).expect("json");
    assert!(!text.contains(&code), "no code in the audit log");
    assert!(
        !text.contains(&recovery[3]),
        "no recovery code in the audit log"
    );
}

#[tokio::test]
async fn agency_staff_without_a_second_factor_reach_nothing_until_enrolled() {
    let app = spawn_app().await;
    let agency = agency_id(&app).await;
    create_user(&app, "newstaff@ihms.test", "staff", &agency).await;
    let (b, to) = password_step(&app, "newstaff@ihms.test", PASSWORD).await;
    assert_eq!(to, "/account/second-factor");
    for path in [
        "/orders",
        "/dashboard",
        "/orders/new",
        "/account/tokens",
        "/account/password",
        "/admin/users",
    ] {
        let (status, _) = b.page(path).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        let resp = b.client.get(b.url(path)).send().await.expect("get");
        assert_eq!(resp.headers()["location"], "/account/second-factor");
    }
    // A form post is refused the same way, even with a valid CSRF token.
    let (_, html) = b.page("/account/second-factor").await;
    let csrf = input_value(&html, "csrf").expect("csrf");
    let resp = b
        .client
        .post(b.url("/account/tokens"))
        .form(&[("csrf", csrf.as_str()), ("name", "sneaky")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    enrol_second_factor(&app, &b, "newstaff@ihms.test", PASSWORD).await;
    assert_eq!(b.page("/orders").await.0, StatusCode::OK);
    assert!(!b.page("/account/tokens").await.1.contains("sneaky"));
    // Signing out works while enrolment is owed, too.
    let (staff2, _) = {
        create_user(&app, "other@ihms.test", "staff", &agency).await;
        password_step(&app, "other@ihms.test", PASSWORD).await
    };
    let (_, html) = staff2.page("/account/second-factor").await;
    let csrf = input_value(&html, "csrf").expect("csrf");
    let out = staff2
        .client
        .post(staff2.url("/signout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(out.headers()["location"], "/signin");
}

#[tokio::test]
async fn every_role_needs_a_second_factor_when_the_operator_requires_it() {
    let app = spawn_app_with(|c| c.require_second_factor_for_all = true).await;
    let w = world(&app).await;
    create_user(
        &app,
        "second@harborhh.test",
        "provider_user",
        &w.orgs["prov1"],
    )
    .await;
    let (b, to) = password_step(&app, "second@harborhh.test", PASSWORD).await;
    assert_eq!(to, "/account/second-factor");
    assert_eq!(b.page("/inbox").await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn turning_the_factor_off_needs_password_and_code_and_is_refused_where_required() {
    let app = spawn_app().await;
    world(&app).await;
    let staff = sign_in(&app, "coordinator@ihms.test", PASSWORD).await;
    let code = app.next_code("coordinator@ihms.test");
    let resp = staff
        .submit(
            "/account/second-factor",
            "/account/second-factor/disable",
            &[("off_password", PASSWORD), ("off_code", &code)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "staff must keep it");

    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    let resp = planner
        .submit(
            "/account/second-factor",
            "/account/second-factor/disable",
            &[("off_password", PASSWORD), ("off_code", "000000")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let code = app.next_code(PLANNER);
    let resp = planner
        .submit(
            "/account/second-factor",
            "/account/second-factor/disable",
            &[
                ("off_password", "not my password at all"),
                ("off_code", &code),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let code = app.next_code(PLANNER);
    let resp = planner
        .submit(
            "/account/second-factor",
            "/account/second-factor/disable",
            &[("off_password", PASSWORD), ("off_code", &code)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, to) = password_step(&app, PLANNER, PASSWORD).await;
    assert_eq!(to, "/orders", "no code step once turned off");
}

#[tokio::test]
async fn enrolling_ends_the_users_other_sessions() {
    let app = spawn_app().await;
    world(&app).await;
    let elsewhere = sign_in(&app, PLANNER, PASSWORD).await;
    let here = sign_in(&app, PLANNER, PASSWORD).await;
    assert_eq!(elsewhere.page("/orders").await.0, StatusCode::OK);
    enrol_second_factor(&app, &here, PLANNER, PASSWORD).await;
    assert_eq!(elsewhere.page("/orders").await.0, StatusCode::SEE_OTHER);
    assert_eq!(here.page("/orders").await.0, StatusCode::OK);
}

#[tokio::test]
async fn wrong_codes_count_as_failed_sign_ins() {
    let app = spawn_app_with(|c| c.signin_max_failures = 3).await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    let (b, _) = password_step(&app, PLANNER, PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(
            code_step(&b, "999999").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let resp = code_step(&b, &app.next_code(PLANNER)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn the_code_step_needs_its_form_token_and_its_own_cookie() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    let (b, _) = password_step(&app, PLANNER, PASSWORD).await;
    let resp = b
        .client
        .post(b.url("/signin/code"))
        .form(&[("code", app.next_code(PLANNER).as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "no CSRF token");
    // A browser that never gave the password has no pending sign-in.
    let stranger = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let (status, _) = stranger.page("/signin").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = stranger.page("/signin/code").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn moving_to_a_new_authenticator_needs_password_and_code_and_ends_other_sessions() {
    let app = spawn_app().await;
    world(&app).await;
    let staff_email = "coordinator@ihms.test";
    let here = sign_in(&app, staff_email, PASSWORD).await;
    let elsewhere = sign_in(&app, staff_email, PASSWORD).await;
    let (_, before) = here.page("/account/second-factor").await;
    assert!(before.contains("is on"));
    let resp = here
        .submit(
            "/account/second-factor",
            "/account/second-factor/replace",
            &[("password", PASSWORD), ("code", "000000")],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong code"
    );
    let code = app.next_code(staff_email);
    let resp = here
        .submit(
            "/account/second-factor",
            "/account/second-factor/replace",
            &[("password", PASSWORD), ("code", &code)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = here.page("/account/second-factor").await;
    assert!(html.contains("Keep my current authenticator"));
    assert_eq!(
        elsewhere.page("/orders").await.0,
        StatusCode::OK,
        "nothing changes until the new one is confirmed"
    );
    let new_secret = crate::common::secret_on_page(&html);
    let code = app.learn_secret(staff_email, new_secret);
    let resp = here
        .submit(
            "/account/second-factor",
            "/account/second-factor/confirm",
            &[("code", &code)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        crate::common::recovery_codes_on_page(&resp.text().await.expect("html")).len(),
        10
    );
    assert_eq!(elsewhere.page("/orders").await.0, StatusCode::SEE_OTHER);
    assert_eq!(here.page("/orders").await.0, StatusCode::OK);
    // The new secret signs in (the helper now answers with it).
    let again = sign_in(&app, staff_email, PASSWORD).await;
    assert_eq!(again.page("/orders").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_pending_sign_in_is_bound_to_its_address_and_expires_after_five_minutes() {
    use ihms_connect::clock::Clock;
    use ihms_connect::store::{accounts, second_factor};
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;

    let store = &app.state().store;
    let user = accounts::user_by_email(store, PLANNER)
        .expect("q")
        .expect("user");
    let now = app.clock.now_ms();
    let token =
        second_factor::start_pending(store, &user, Some("10.1.2.3".into()), now).expect("pending");
    assert!(
        second_factor::pending(store, &token, Some("10.9.9.9"), now)
            .expect("q")
            .is_none(),
        "another address"
    );
    let code = app.next_code(PLANNER);
    let check = |s: &[u8], t: &str, a| ihms_connect::auth::totp::accept(s, t, now, a);
    let step =
        second_factor::second_step(store, &token, Some("10.9.9.9".into()), &code, &check, now)
            .expect("step");
    assert_eq!(step, second_factor::SecondStep::Gone);

    // Through the web: the code step five minutes on sends back to the password.
    let (b, _) = password_step(&app, PLANNER, PASSWORD).await;
    app.clock
        .advance(std::time::Duration::from_secs(5 * 60 + 1));
    assert_eq!(b.page("/signin/code").await.0, StatusCode::SEE_OTHER);
    let code = app.next_code(PLANNER);
    let resp = b
        .submit("/signin", "/signin/code", &[("code", &code)])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/signin");
    assert_eq!(b.page("/orders").await.0, StatusCode::SEE_OTHER);
}

const RESET: &str = "/second-factor-reset";

/// The id in the users page's second-factor reset form for `email`.
async fn reset_form_id(admin: &Browser, email: &str) -> String {
    let (_, html) = admin.page("/admin/users").await;
    let row = html.find(email).expect("listed");
    let end = row + html[row..].find(RESET).expect("form");
    html[end - 36..end].to_string()
}

#[tokio::test]
async fn an_admin_removes_a_lost_second_factor_and_the_user_sets_up_a_new_one() {
    let app = spawn_app().await;
    world(&app).await;
    let staff_email = "coordinator@ihms.test";
    let staff = sign_in(&app, staff_email, PASSWORD).await;
    let admin = sign_in(&app, crate::common::ADMIN_EMAIL, PASSWORD).await;
    let id = reset_form_id(&admin, staff_email).await;
    let marker = RESET;

    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    let refused = planner
        .submit("/orders", &format!("/admin/users/{id}{marker}"), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND, "admins only");

    let resp = admin
        .submit("/admin/users", &format!("/admin/users/{id}{marker}"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let (_, html) = admin.page(&to).await;
    assert!(html.contains("Second factor removed"), "the admin is told");
    // Without a second factor there is nothing to reset: the button is gone.
    let staff_row = |html: &str| {
        let at = html.find(staff_email).expect("listed");
        html[at..at + html[at..].find("</tr>").expect("row end")].to_string()
    };
    assert!(!staff_row(&html).contains(marker), "no reset offered");
    assert_eq!(staff.page("/orders").await.0, StatusCode::SEE_OTHER);
    let (b, to) = password_step(&app, staff_email, PASSWORD).await;
    assert_eq!(to, "/account/second-factor", "set up anew");
    enrol_second_factor(&app, &b, staff_email, PASSWORD).await;
    assert_eq!(b.page("/orders").await.0, StatusCode::OK);
    let (_, html) = admin.page("/admin/users").await;
    assert!(
        staff_row(&html).contains(marker),
        "offered again once set up"
    );
}

#[tokio::test]
async fn after_an_admin_reset_even_an_optional_role_sets_up_a_new_factor_first() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    let admin = sign_in(&app, crate::common::ADMIN_EMAIL, PASSWORD).await;
    let id = reset_form_id(&admin, PLANNER).await;
    let resp = admin
        .submit("/admin/users", &format!("/admin/users/{id}{RESET}"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(planner.page("/orders").await.0, StatusCode::SEE_OTHER);

    // The password may be one allowed only with a second factor: a new one comes
    // first, even though the role does not need one.
    let (b, to) = password_step(&app, PLANNER, PASSWORD).await;
    assert_eq!(to, "/account/second-factor");
    assert_eq!(b.page("/orders").await.0, StatusCode::SEE_OTHER);
    let (_, html) = b.page("/account/second-factor").await;
    assert!(html.contains("An administrator reset your second factor"));
    assert!(
        !html.contains("It is optional for your role"),
        "no mixed message"
    );
    enrol_second_factor(&app, &b, PLANNER, PASSWORD).await;
    assert_eq!(b.page("/orders").await.0, StatusCode::OK);
    let (b, to) = password_step(&app, PLANNER, PASSWORD).await;
    assert_eq!(to, "/signin/code", "the new factor is asked for");
    let resp = code_step(&b, &app.next_code(PLANNER)).await;
    assert_eq!(resp.headers()["location"], "/orders");
}
