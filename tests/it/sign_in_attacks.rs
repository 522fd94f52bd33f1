//! Attacks on signing in: a half-finished sign-in that outlives a new password, a
//! second-factor replacement finished from another session, a second factor turned
//! off under a password only long enough with it, and guesses at codes and
//! passwords sent one after another or all at once.

use reqwest::StatusCode;

use crate::common::{
    ADMIN_EMAIL, App, Browser, PASSWORD, enrol_second_factor, sign_in, spawn_app, world,
};

const PLANNER: &str = "planner@gulfcoast.test";

fn anonymous(app: &App) -> Browser {
    Browser {
        client: app.client(),
        base: app.base.clone(),
    }
}

/// Signs in with the password only, as someone who learned it would, and stops at
/// the code step.
async fn reach_code_step(app: &App, email: &str, password: &str) -> Browser {
    let thief = anonymous(app);
    let resp = thief
        .submit(
            "/signin",
            "/signin",
            &[("email", email), ("password", password)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/signin/code");
    thief
}

/// Posts a right code at the code step; gives where it leads.
async fn finish_code_step(app: &App, thief: &Browser, email: &str) -> String {
    let code = app.next_code(email);
    // The form token of any anonymous page fits: it is tied to the browser, not the
    // page.
    let resp = thief
        .submit("/signin", "/signin/code", &[("code", &code)])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string()
}

/// Issues a reset link for `email` from the admin's users page; gives its secret.
async fn reset_secret(admin: &Browser, email: &str) -> String {
    let (_, html) = admin.page("/admin/users").await;
    let row = html.find(email).expect("user listed");
    let end = row + html[row..].find("/reset-link").expect("reset form");
    let id = &html[end - 36..end];
    let resp = admin
        .submit(
            "/admin/users",
            &format!("/admin/users/{id}/reset-link"),
            &[],
        )
        .await;
    let html = resp.text().await.expect("html").replace("&#x2f;", "/");
    let at = html.find("/reset/").expect("link shown") + "/reset/".len();
    html[at..at + html[at..].find('<').expect("end")]
        .trim()
        .to_string()
}

#[tokio::test]
async fn a_sign_in_waiting_for_its_code_dies_when_the_password_is_changed_or_reset() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;

    let thief = reach_code_step(&app, PLANNER, PASSWORD).await;
    let changed = "harbor violet pencil thunder";
    let resp = planner
        .submit(
            "/account/password",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("password", changed),
                ("password_confirm", changed),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        finish_code_step(&app, &thief, PLANNER).await,
        "/signin",
        "a sign-in started with the old password cannot finish after a change"
    );
    assert_eq!(thief.page("/orders").await.0, StatusCode::SEE_OTHER);

    let thief = reach_code_step(&app, PLANNER, changed).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let secret = reset_secret(&admin, PLANNER).await;
    let reset = "copper lantern meadow seventeen";
    let resp = anonymous(&app)
        .submit(
            "/signin",
            "/reset",
            &[
                ("secret", &secret),
                ("password", reset),
                ("password_confirm", reset),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "reset done");
    assert_eq!(
        finish_code_step(&app, &thief, PLANNER).await,
        "/signin",
        "nor after a reset"
    );
    assert_eq!(thief.page("/orders").await.0, StatusCode::SEE_OTHER);
    let owner = sign_in(&app, PLANNER, reset).await;
    assert_eq!(owner.page("/orders").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_second_factor_cannot_be_turned_off_under_a_password_too_short_without_it() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    let short = "vqx7 lumo brik";
    let resp = planner
        .submit(
            "/account/password",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("password", short),
                ("password_confirm", short),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "12 to 14 are fine with it");
    let code = app.next_code(PLANNER);
    let resp = planner
        .submit(
            "/account/second-factor",
            "/account/second-factor/disable",
            &[("off_password", short), ("off_code", &code)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    assert!(html.contains("at least 15"), "says why");
    let again = anonymous(&app);
    let resp = again
        .submit(
            "/signin",
            "/signin",
            &[("email", PLANNER), ("password", short)],
        )
        .await;
    assert_eq!(
        resp.headers()["location"],
        "/signin/code",
        "the second factor stays in force"
    );
}

#[tokio::test]
async fn another_session_cannot_see_or_confirm_a_replacement_the_owner_left_open() {
    let app = spawn_app().await;
    world(&app).await;
    let staff = "coordinator@ihms.test";
    let owner = sign_in(&app, staff, PASSWORD).await;
    // A second session of the same user: a cookie someone else got hold of.
    let stolen = sign_in(&app, staff, PASSWORD).await;
    let code = app.next_code(staff);
    let resp = owner
        .submit(
            "/account/second-factor",
            "/account/second-factor/replace",
            &[("password", PASSWORD), ("code", &code)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, owners_page) = owner.page("/account/second-factor").await;
    let new_secret = crate::common::secret_on_page(&owners_page);

    let (status, page) = stolen.page("/account/second-factor").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("id=\"totp-secret\""),
        "the new secret is shown only to the session that asked for it"
    );
    let stolen_code = ihms_connect::auth::totp::code_at(
        &new_secret,
        ihms_connect::clock::Clock::now_ms(&*app.clock),
    )
    .expect("code");
    let resp = stolen
        .submit(
            "/account/second-factor",
            "/account/second-factor/confirm",
            &[("code", &stolen_code)],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "nothing to confirm here"
    );
    assert_eq!(
        owner.page("/orders").await.0,
        StatusCode::OK,
        "the owner was not signed out"
    );
    let again = sign_in(&app, staff, PASSWORD).await;
    assert_eq!(
        again.page("/orders").await.0,
        StatusCode::OK,
        "the old authenticator still signs in"
    );
}

#[tokio::test]
async fn a_code_attempt_held_back_by_the_throttle_answers_429_and_is_audited() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    app.clock.freeze();
    let thief = reach_code_step(&app, PLANNER, PASSWORD).await;
    let mut statuses = Vec::new();
    let mut last = String::new();
    for _ in 0..4 {
        let resp = thief
            .submit("/signin", "/signin/code", &[("code", "000000")])
            .await;
        statuses.push(resp.status().as_u16());
        last = resp.text().await.expect("html");
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 429],
        "two free failures, then a wait"
    );
    assert!(
        last.contains("Try again in 1 second."),
        "says how long, as the password step does"
    );
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, audit) = admin
        .page("/admin/audit?action=signin.throttled&outcome=refused")
        .await;
    assert_eq!(
        audit
            .matches("<span class=\"mono\">signin.throttled</span>")
            .count(),
        1,
        "the held-back attempt is recorded"
    );
}

#[tokio::test]
async fn a_burst_of_parallel_wrong_passwords_gets_no_more_tries_than_one_at_a_time() {
    let app = spawn_app().await;
    world(&app).await;
    app.clock.freeze();
    // Each guess from its own browser, all sent at once.
    let mut browsers = Vec::new();
    for _ in 0..20 {
        let b = anonymous(&app);
        let (_, html) = b.page("/signin").await;
        let csrf = crate::common::input_value(&html, "csrf").expect("csrf");
        browsers.push((b, csrf));
    }
    let guesses = browsers.iter().enumerate().map(|(i, (b, csrf))| {
        let guess = format!("wrong guess number {i}");
        async move {
            b.client
                .post(b.url("/signin"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("email", PLANNER),
                    ("password", guess.as_str()),
                ])
                .send()
                .await
                .expect("post")
                .status()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let held = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + held, 20, "{statuses:?}");
    assert!(
        checked <= 3,
        "two free failures and one that starts the delay, not {checked}"
    );
}
