//! Attacks on the account features: other people's ids, half-finished sign-ins that
//! outlive a new password, deletions that leave credentials behind, and a second
//! factor turned off under a password only long enough with it.

use reqwest::StatusCode;

use crate::common::{ADMIN_EMAIL, Browser, PASSWORD, sign_in, spawn_app, world};

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
