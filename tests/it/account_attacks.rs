//! Attacks on the account features: other people's ids, half-finished sign-ins that
//! outlive a new password, deletions that leave credentials behind, and a second
//! factor turned off under a password only long enough with it.

use reqwest::StatusCode;

use crate::common::{
    ADMIN_EMAIL, App, Browser, PASSWORD, enrol_second_factor, sign_in, spawn_app, world,
};

const PLANNER: &str = "planner@gulfcoast.test";
const OTHER: &str = "planner@pinellasrehab.test";

/// The id of the first token listed on a user's tokens page.
async fn first_token_id(b: &Browser) -> String {
    let (_, html) = b.page("/account/tokens").await;
    let end = html.find("/revoke\"").expect("revoke form");
    html[end - 36..end].to_string()
}

#[tokio::test]
async fn revoking_another_users_token_answers_404_keeps_it_working_and_is_audited() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let victim = sign_in(&app, OTHER, PASSWORD).await;
    let victim_token_id = first_token_id(&victim).await;
    let attacker = sign_in(&app, PLANNER, PASSWORD).await;
    let resp = attacker
        .submit(
            "/account/tokens",
            &format!("/account/tokens/{victim_token_id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_json(&w.fac3_token, "/api/v1/orders").await.0,
        StatusCode::OK,
        "the victim's token still works"
    );
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, audit) = admin
        .page("/admin/audit?action=token.revoke&outcome=refused")
        .await;
    assert!(audit.contains(&victim_token_id), "the refusal is audited");
    let resp = attacker
        .submit("/account/tokens", "/account/tokens/not-an-id/revoke", &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

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
async fn processing_a_deletion_erases_the_second_factor_and_any_half_finished_sign_in() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    let resp = planner
        .submit("/account", "/account/delete-request", &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, html) = admin.page("/admin/deletions").await;
    let end = html.find("/process\"").expect("request listed");
    let id = html[end - 36..end].to_string();
    let resp = admin
        .submit(
            "/admin/deletions",
            &format!("/admin/deletions/{id}/process"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let uid = uuid::Uuid::parse_str(&id).expect("id");
    let store = &app.state().store;
    let factor =
        ihms_connect::store::second_factor::get(&store.read().expect("read"), uid).expect("get");
    assert!(
        factor.is_none(),
        "the TOTP secret and recovery code hashes are erased with the account"
    );
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
async fn a_wrong_password_on_the_second_factor_page_is_audited_like_a_wrong_code() {
    let app = spawn_app().await;
    world(&app).await;
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    enrol_second_factor(&app, &planner, PLANNER, PASSWORD).await;
    let code = app.next_code(PLANNER);
    for (action, prefix) in [
        ("/account/second-factor/replace", ""),
        ("/account/second-factor/disable", "off_"),
    ] {
        let resp = planner
            .submit(
                "/account/second-factor",
                action,
                &[
                    (&format!("{prefix}password"), "a guess at the password"),
                    (&format!("{prefix}code"), &code),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{action}");
    }
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, audit) = admin
        .page("/admin/audit?action=mfa.password_failed&outcome=failed")
        .await;
    assert_eq!(
        audit
            .matches("<span class=\"mono\">mfa.password_failed</span>")
            .count(),
        2,
        "each guess is recorded"
    );
    assert!(
        audit.contains("<option value=\"mfa.password_failed\" selected>"),
        "and the action can be picked in the filter"
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
async fn account_queue_and_admin_actions_on_an_id_with_nothing_waiting_answer_404_and_are_audited()
{
    let app = spawn_app().await;
    world(&app).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    // An active account: not waiting for approval, nor for deletion.
    let (_, users) = admin.page("/admin/users").await;
    let row = users.find(PLANNER).expect("listed");
    let end = row + users[row..].find("/reset-link").expect("form");
    let active = users[end - 36..end].to_string();
    let unknown = uuid::Uuid::now_v7().to_string();
    let cases = [
        (
            format!("/admin/signups/{active}/approve"),
            vec![("organization_id", "new")],
            "signup.approve",
            active.clone(),
        ),
        (
            format!("/admin/signups/{active}/reject"),
            vec![("reason", "Not a partner")],
            "signup.reject",
            active.clone(),
        ),
        (
            format!("/admin/deletions/{active}/process"),
            vec![],
            "account.delete",
            active.clone(),
        ),
        (
            format!("/admin/users/{unknown}/reset-link"),
            vec![],
            "password.reset_link",
            unknown.clone(),
        ),
        (
            format!("/admin/users/{unknown}/second-factor-reset"),
            vec![],
            "mfa.admin_reset",
            unknown.clone(),
        ),
    ];
    for (path, fields, action, id) in cases {
        let resp = admin.submit("/admin/users", &path, &fields).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let (_, audit) = admin
            .page(&format!("/admin/audit?action={action}&outcome=refused"))
            .await;
        assert!(audit.contains(&id), "{path}: the refusal is audited");
    }
    let (_, html) = admin.page("/admin/users").await;
    assert!(html.contains(PLANNER), "the account is untouched");
    let planner = sign_in(&app, PLANNER, PASSWORD).await;
    assert_eq!(planner.page("/orders").await.0, StatusCode::OK);
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
async fn disabling_a_user_that_does_not_exist_answers_404_and_is_audited() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let (status, _) = app
        .post_json(
            &app.admin_token,
            &format!("/api/v1/users/{unknown}/disable"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let other = uuid::Uuid::now_v7().to_string();
    let resp = admin
        .submit(
            "/admin/users",
            &format!("/admin/users/{other}/disable"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (_, audit) = admin
        .page("/admin/audit?action=user.disable&outcome=refused")
        .await;
    assert!(audit.contains(&unknown), "through the API");
    assert!(audit.contains(&other), "through the page");
    let before = audit
        .matches("<span class=\"mono\">user.disable</span>")
        .count();
    let (status, _) = app
        .post_json(
            &app.admin_token,
            "/api/v1/users/not-an-id/disable",
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let resp = admin
        .submit("/admin/users", "/admin/users/not-an-id/disable", &[])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (_, audit) = admin
        .page("/admin/audit?action=user.disable&outcome=refused")
        .await;
    assert_eq!(
        audit
            .matches("<span class=\"mono\">user.disable</span>")
            .count(),
        before + 2,
        "an id that does not even parse is refused on the record too"
    );
}

#[tokio::test]
async fn a_reset_link_is_refused_for_an_account_waiting_for_approval() {
    let app = spawn_app().await;
    let resp = crate::signup::sign_up(
        &app,
        "Maria Lopez",
        "maria@gulfcoast.test",
        "referring_facility",
        "Gulf Coast Medical",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, users) = admin.page("/admin/users").await;
    let row = users.find("maria@gulfcoast.test").expect("listed");
    let end = row + users[row..].find("/reset-link").expect("form");
    let id = &users[end - 36..end];
    let resp = admin
        .submit(
            "/admin/users",
            &format!("/admin/users/{id}/reset-link"),
            &[],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "no link that could only ever answer 404"
    );
    let html = resp.text().await.expect("html");
    assert!(html.contains("only an active account"), "says why");
    assert!(!html.contains("/reset/"), "no link shown");
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
