//! Attacks on the account pages and the agency's account actions: other people's
//! ids and ids with nothing behind them (404, audited), deletions that leave
//! credentials behind, reset links that could never work, and guesses at the
//! password on the second-factor page.

use reqwest::StatusCode;

use crate::common::{
    ADMIN_EMAIL, Browser, PASSWORD, enrol_second_factor, sign_in, spawn_app, world,
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
    assert!(
        !html.contains("Go to sign in"),
        "a signed-in admin is not told to sign in"
    );
}
