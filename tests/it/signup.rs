//! Sign-up, approval and what a pending or rejected account can reach.

use ihms_connect::store::audit::{self, Filter};
use ihms_connect::store::{accounts, sessions, signups};
use reqwest::StatusCode;

use crate::common::{
    ADMIN_EMAIL, App, Browser, PASSWORD, fixture, order_body, sign_in, spawn_app, spawn_app_with,
    world,
};

pub fn visitor(app: &App) -> Browser {
    Browser {
        client: app.client(),
        base: app.base.clone(),
    }
}

/// Submits the sign-up form as a new visitor would.
pub async fn sign_up(
    app: &App,
    name: &str,
    email: &str,
    kind: &str,
    org: &str,
) -> reqwest::Response {
    visitor(app)
        .submit(
            "/signup",
            "/signup",
            &[
                ("name", name),
                ("email", email),
                ("phone", "727-555-0142"),
                ("kind", kind),
                ("organization", org),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The id in the first `/admin/signups/{id}/...` form of a page.
fn first_signup_id(html: &str) -> String {
    let at = html.find("/admin/signups/").expect("a sign-up form") + "/admin/signups/".len();
    html[at..at + 36].to_string()
}

fn audited(app: &App, action: &str) -> Vec<audit::Entry> {
    let tx = app.state().store.read().expect("read");
    let filter = Filter {
        action: Some(action.into()),
        ..Filter::default()
    };
    audit::list(&tx, &filter, 100).expect("list").0
}

#[tokio::test]
async fn a_person_signs_up_waits_for_approval_and_signs_in_once_staff_approve() {
    let app = spawn_app().await;
    let (_, signin) = visitor(&app).page("/signin").await;
    assert!(
        signin.contains("href=\"/signup\""),
        "sign-in links to sign-up"
    );

    let resp = sign_up(
        &app,
        "Nora Quinn",
        "nora@sunrisehh.test",
        "home_health",
        "Sunrise Home Health",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/signup/pending");

    // Signing in while pending lands on the waiting page and nowhere else.
    let pending = sign_in(&app, "nora@sunrisehh.test", PASSWORD).await;
    let (status, html) = pending.page("/signup/pending").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Waiting for approval"));
    assert!(html.contains("Sunrise Home Health"));

    // Staff see the count and the queue.
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, dash) = admin.page("/dashboard").await;
    assert!(
        dash.contains("1 sign-up awaits approval"),
        "dashboard count"
    );
    assert!(dash.contains("awaiting approval</span>"), "nav badge");
    let (status, queue) = admin.page("/admin/signups").await;
    assert_eq!(status, StatusCode::OK);
    assert!(queue.contains("Nora Quinn") && queue.contains("nora@sunrisehh.test"));
    let id = first_signup_id(&queue);
    // Not into an organization that does not fit the role, and not without the token.
    let agency = crate::common::agency_id(&app).await;
    let resp = admin
        .submit(
            "/admin/signups",
            &format!("/admin/signups/{id}/approve"),
            &[("organization_id", agency.as_str())],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = admin
        .client
        .post(admin.url(&format!("/admin/signups/{id}/approve")))
        .form(&[("organization_id", "new")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(pending.page("/signup/pending").await.0, StatusCode::OK);
    let resp = admin
        .submit(
            "/admin/signups",
            &format!("/admin/signups/{id}/approve"),
            &[("organization_id", "new")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, queue) = admin.page("/admin/signups").await;
    assert!(queue.contains("No sign-ups waiting"));
    let (_, orgs) = admin.page("/admin/organizations").await;
    assert!(orgs.contains("Sunrise Home Health"), "organization created");

    // The session started while pending does not carry over.
    let (status, _) = pending.page("/orders").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let nora = sign_in(&app, "nora@sunrisehh.test", PASSWORD).await;
    let (status, html) = nora.page("/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Sunrise Home Health"),
        "acts for its organization"
    );

    for action in ["signup.request", "signup.approve", "org.create"] {
        assert!(!audited(&app, action).is_empty(), "{action} audited");
    }
    let approve = &audited(&app, "signup.approve")[0];
    assert_eq!(approve.object.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn pending_and_rejected_accounts_reach_nothing() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = order_body(&fixture("discharge-orders.json")[0], &w.orgs);
    let (status, created) = app.post_json(&w.fac2_token, "/api/v1/orders", &order).await;
    assert_eq!(status, StatusCode::CREATED);
    let order_id = created["id"].as_str().expect("id").to_string();

    sign_up(
        &app,
        "Pat Pending",
        "pat@gulfcoast.test",
        "referring_facility",
        "Gulf Coast Medical Center",
    )
    .await;
    let pending = sign_in(&app, "pat@gulfcoast.test", PASSWORD).await;
    let order_page = format!("/orders/{order_id}");
    for path in [
        "/orders",
        order_page.as_str(),
        "/dashboard",
        "/orders/new",
        "/admin/users",
        "/admin/signups",
        "/admin/audit",
        "/account",
        "/account/tokens",
    ] {
        let resp = pending
            .client
            .get(pending.url(path))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&resp), "/signup/pending", "{path}");
        let body = resp.text().await.expect("body");
        assert!(
            !body.contains("Pemberton") && !body.contains("DO-"),
            "{path}"
        );
    }
    // Forms (with the session's own token) and the API are refused too.
    let (_, html) = pending.page("/signup/pending").await;
    let csrf = crate::common::input_value(&html, "csrf").expect("csrf");
    let resp = pending
        .client
        .post(pending.url("/account/tokens"))
        .form(&[("csrf", csrf.as_str()), ("name", "sneaky")])
        .send()
        .await
        .expect("post");
    assert_eq!(location(&resp), "/signup/pending");
    let api = pending
        .client
        .get(pending.url("/api/v1/orders"))
        .send()
        .await
        .expect("api");
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let store = &app.state().store;
    let pat = accounts::user_by_email(store, "pat@gulfcoast.test")
        .expect("q")
        .expect("user");
    let event = audit::Event::anonymous("token.create", None, audit::Outcome::Ok);
    assert!(
        sessions::create_token(store, pat.id, "cli", event.clone()).is_err(),
        "a pending account gets no token"
    );

    // Staff (not only admins) reject it with a reason.
    let staff = sign_in(&app, "coordinator@ihms.test", PASSWORD).await;
    let (_, queue) = staff.page("/admin/signups").await;
    let id = first_signup_id(&queue);
    let resp = staff
        .submit(
            "/admin/signups",
            &format!("/admin/signups/{id}/reject"),
            &[("reason", "")],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required"
    );
    let resp = staff
        .submit(
            "/admin/signups",
            &format!("/admin/signups/{id}/reject"),
            &[("reason", "Not a partner facility")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(!audited(&app, "signup.reject").is_empty());

    // The rejected account: its session is gone, sign-in says what a wrong password says.
    let resp = pending
        .client
        .get(pending.url("/orders"))
        .send()
        .await
        .expect("get");
    assert_eq!(location(&resp), "/signin");
    let rejected = visitor(&app)
        .submit(
            "/signin",
            "/signin",
            &[("email", "pat@gulfcoast.test"), ("password", PASSWORD)],
        )
        .await;
    let wrong = visitor(&app)
        .submit(
            "/signin",
            "/signin",
            &[
                ("email", "planner@gulfcoast.test"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(rejected.status(), wrong.status());
    let strip = |s: String| {
        s.lines()
            .filter(|l| !l.contains("csrf") && !l.contains("value="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip(rejected.text().await.expect("a")),
        strip(wrong.text().await.expect("b"))
    );
    assert!(sessions::create_token(store, pat.id, "cli", event).is_err());

    // A provider or facility user cannot open the queue (audited 404).
    let planner = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    assert_eq!(
        planner.page("/admin/signups").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(!audited(&app, "signup.access").is_empty());
}

#[tokio::test]
async fn a_sign_up_with_a_taken_email_looks_exactly_like_a_fresh_one_and_creates_nothing() {
    let app = spawn_app().await;
    let store = &app.state().store;
    let admin_before = accounts::user_by_email(store, ADMIN_EMAIL)
        .expect("q")
        .expect("admin");
    let taken = sign_up(&app, "Mallory", ADMIN_EMAIL, "dme", "Bay DME").await;
    let fresh = sign_up(&app, "Mallory", "mallory@baydme.test", "dme", "Bay DME").await;
    assert_eq!(taken.status(), fresh.status());
    assert_eq!(location(&taken), location(&fresh));
    let headers = |r: &reqwest::Response| {
        let mut h: Vec<String> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date" && *k != "set-cookie")
            .map(|(k, v)| format!("{k}: {v:?}"))
            .collect();
        h.sort();
        h
    };
    assert_eq!(headers(&taken), headers(&fresh));
    let (taken, fresh) = (
        taken.text().await.expect("a"),
        fresh.text().await.expect("b"),
    );
    assert_eq!(taken, fresh);

    // Nothing changed for the taken email; one request waits, for the fresh one.
    let admin_after = accounts::user_by_email(store, ADMIN_EMAIL)
        .expect("q")
        .expect("admin");
    assert_eq!(admin_before, admin_after);
    assert_eq!(signups::queue_counts(store).expect("counts"), (1, 0));
    let dup = audited(&app, "signup.duplicate");
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0].object, None);
    assert_eq!(dup[0].actor, None);
    let text = serde_json::to_string(&dup[0]).expect("json");
    assert!(!text.contains("ada.admin"), "no email in the entry");
    // The pending account of the fresh email does not take over the taken one.
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(admin.page("/admin/users").await.0, StatusCode::OK);
}

#[tokio::test]
async fn sign_ups_are_throttled_per_address_and_need_the_form_token() {
    let app = spawn_app_with(|c| c.signup_per_address_per_hour = 2).await;
    for i in 0..2 {
        let resp = sign_up(
            &app,
            "Sam",
            &format!("sam{i}@caregivers.test"),
            "caregiver",
            "Care",
        )
        .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    }
    let resp = sign_up(&app, "Sam", "sam9@caregivers.test", "caregiver", "Care").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(
        accounts::user_by_email(&app.state().store, "sam9@caregivers.test")
            .expect("q")
            .is_none()
    );
    // Without the double-submit token nothing is created.
    let resp = visitor(&app)
        .client
        .post(app.url("/signup"))
        .form(&[
            ("name", "Eve"),
            ("email", "eve@caregivers.test"),
            ("phone", "7275550142"),
            ("kind", "caregiver"),
            ("organization", "Care"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_refused_sign_up_names_each_field_and_keeps_what_was_typed_but_the_password() {
    let app = spawn_app().await;
    let resp = visitor(&app)
        .submit(
            "/signup",
            "/signup",
            &[
                ("name", "Kim Lee"),
                ("email", "kim@"),
                ("phone", "12"),
                ("kind", "agency"),
                ("organization", "Kim's Rehab"),
                ("password", "tiny pw"),
                ("password_confirm", "tiny pw"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    for f in ["f-email", "f-phone", "f-kind", "f-password"] {
        assert!(html.contains(&format!("href=\"#{f}\"")), "{f} named");
    }
    assert!(html.contains("Kim Lee"));
    assert!(!html.contains("tiny pw"));
    assert_eq!(
        signups::queue_counts(&app.state().store).expect("counts"),
        (0, 0)
    );
}

#[tokio::test]
async fn a_disabled_sign_up_leaves_the_queue_and_cannot_be_approved() {
    let app = spawn_app().await;
    sign_up(&app, "Tess", "tess@baydme.test", "dme", "Bay DME").await;
    let store = &app.state().store;
    assert_eq!(signups::queue_counts(store).expect("counts"), (1, 0));
    let tess = accounts::user_by_email(store, "tess@baydme.test")
        .expect("q")
        .expect("pending user");
    let (status, _) = app
        .post_json(
            &app.admin_token,
            &format!("/api/v1/users/{}/disable", tess.id),
            &serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(signups::queue_counts(store).expect("counts"), (0, 0));
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let resp = admin
        .submit(
            "/admin/signups",
            &format!("/admin/signups/{}/approve", tess.id),
            &[("organization_id", "new")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn staff_link_a_sign_up_to_an_existing_organization_deliberately_never_by_default() {
    let app = spawn_app().await;
    let orgs = crate::common::create_fixture_orgs(&app).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let prov1 = &orgs["prov1"];
    let name = fixture("organizations.json")["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|o| o["key"] == "prov1")
        .expect("prov1")["name"]
        .as_str()
        .expect("name")
        .to_string();
    sign_up(
        &app,
        "Ivy Ng",
        "ivy@provider.test",
        "home_health",
        &name.to_uppercase(),
    )
    .await;
    let (_, queue) = admin.page("/admin/signups").await;
    // Offered first and marked, but never preselected: anyone can type that name.
    let first_option = queue.find("<option value=\"new\"").expect("new option");
    let next = first_option + queue[first_option..].find("</option>").expect("end") + 9;
    let second = &queue[next..next + queue[next..].find("</option>").expect("end")];
    assert!(second.contains(prov1.as_str()) && second.contains("the name given"));
    assert_eq!(
        queue.matches(" selected>").count(),
        1,
        "only the empty choice"
    );
    let id = first_signup_id(&queue);
    let resp = admin
        .submit(
            "/admin/signups",
            &format!("/admin/signups/{id}/approve"),
            &[("organization_id", prov1.as_str())],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let ivy = accounts::user_by_email(&app.state().store, "ivy@provider.test")
        .expect("q")
        .expect("user");
    assert_eq!(ivy.org_id.to_string(), *prov1);
    assert_eq!(ivy.role.as_str(), "provider_user");
    assert!(
        audited(&app, "org.create").len() == orgs.len() + 1,
        "no new organization"
    );
    sign_in(&app, "ivy@provider.test", PASSWORD).await;
}
