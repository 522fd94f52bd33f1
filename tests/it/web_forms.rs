//! The web pages as a browser uses them: CSRF-protected forms, errors beside their
//! fields with what was typed kept, and admin account management.

use reqwest::StatusCode;

use crate::common::{
    ADMIN_EMAIL, PASSWORD, agency_id, create_fixture_orgs, create_user, sign_in, spawn_app,
};

fn order_form<'a>(facility: &'a str, last_name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("referring_facility", facility),
        ("priority", "urgent"),
        ("discharge_date", "2026-12-04"),
        ("face_to_face_date", "2026-11-30"),
        ("notes", "Lives alone.\r\nKey under mat."),
        ("patient.first_name", "Rosalind"),
        ("patient.last_name", last_name),
        ("patient.dob", "1941-02-11"),
        ("patient.sex", "F"),
        ("patient.mrn", "MRN7720019"),
        ("patient.phone", "(727) 555-0142"),
        ("patient.language", "English"),
        ("patient.address.line1", "1200 Gulf Blvd"),
        ("patient.address.line2", ""),
        ("patient.address.city", "Clearwater"),
        ("patient.address.state", "FL"),
        ("patient.address.zip", "33755"),
        ("insurance[0].rank", "primary"),
        ("insurance[0].plan_type", "medicare"),
        ("insurance[0].payer", "Medicare Part A"),
        ("insurance[0].member_id", "1EG4-TE5-MK72"),
        ("insurance[1].rank", "secondary"),
        ("insurance[1].plan_type", ""),
        ("diagnoses[0].code", "i509"),
        ("diagnoses[0].description", "Heart failure, unspecified"),
        ("diagnoses_primary", "0"),
        ("ordering_physician.name", "Dr. Amos Lind"),
        ("ordering_physician.npi", "1234567893"),
        ("svc.home_health", "on"),
        ("svc.home_health.disciplines", "SN"),
        ("svc.home_health.disciplines", "PT"),
        ("svc.home_health.frequency", "SN 2w4"),
        ("svc.dme", "on"),
        ("svc.dme.items[0].hcpcs", "e0260"),
        ("svc.dme.items[0].description", "Hospital bed"),
        ("svc.dme.items[0].quantity", "1"),
    ]
}

#[tokio::test]
async fn staff_enter_an_order_through_the_web_form_and_see_it_in_the_list() {
    let app = spawn_app().await;
    let orgs = create_fixture_orgs(&app).await;
    create_user(
        &app,
        "coordinator@ihms.test",
        "staff",
        &agency_id(&app).await,
    )
    .await;
    let staff = sign_in(&app, "coordinator@ihms.test", PASSWORD).await;
    let resp = staff
        .submit(
            "/orders/new",
            "/orders/new",
            &order_form(&orgs["fac1"], "Pemberton"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.starts_with("/orders/"));
    assert!(!location.contains("Pemberton"), "no PHI in URLs");
    let (status, html) = staff.page(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Pemberton") && html.contains("I50.9") && html.contains("E0260"));
    let (_, list) = staff.page("/orders").await;
    assert!(list.contains("Pemberton"));
    // The facility's planner sees it too; another facility's does not.
    create_user(&app, "planner@bayside.test", "facility_user", &orgs["fac1"]).await;
    create_user(
        &app,
        "planner@gulfcoast.test",
        "facility_user",
        &orgs["fac2"],
    )
    .await;
    let own = sign_in(&app, "planner@bayside.test", PASSWORD).await;
    assert_eq!(own.page(&location).await.0, StatusCode::OK);
    let other = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    let (status, html) = other.page(&location).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!html.contains("Pemberton"));
    assert!(!other.page("/orders").await.1.contains("Pemberton"));
}

#[tokio::test]
async fn a_refused_form_names_each_field_and_keeps_what_was_typed() {
    let app = spawn_app().await;
    let orgs = create_fixture_orgs(&app).await;
    create_user(&app, "planner@bayside.test", "facility_user", &orgs["fac1"]).await;
    let planner = sign_in(&app, "planner@bayside.test", PASSWORD).await;
    let mut fields = order_form("", "Pemberton");
    fields.retain(|(k, _)| *k != "referring_facility");
    for (k, v) in fields.iter_mut() {
        match *k {
            "ordering_physician.npi" => *v = "1234567890",
            "svc.dme.items[0].hcpcs" => *v = "E26",
            "patient.address.zip" => *v = "3375",
            _ => {}
        }
    }
    let resp = planner.submit("/orders/new", "/orders/new", &fields).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    for id in [
        "f-ordering_physician-npi",
        "f-svc-dme-items-0-hcpcs",
        "f-patient-address-zip",
    ] {
        assert!(
            html.contains(&format!("href=\"#{id}\"")),
            "summary links to {id}"
        );
        assert!(
            html.contains(&format!("id=\"{id}-error\"")),
            "error shown at {id}"
        );
    }
    assert!(
        html.contains("value=\"Pemberton\""),
        "typed values are kept"
    );
    assert!(html.contains("value=\"3375\""));
    let (_, list) = planner.page("/orders").await;
    assert!(!list.contains("Pemberton"), "nothing stored");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let app = spawn_app().await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    for (action, body) in [
        (
            "/admin/organizations",
            vec![("name", "Sneaky DME"), ("kind", "dme")],
        ),
        ("/signout", vec![]),
        ("/orders/new", vec![("priority", "routine")]),
    ] {
        let resp = admin
            .client
            .post(admin.url(action))
            .form(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{action}");
        let mut forged = body.clone();
        forged.push(("csrf", "forged"));
        let resp = admin
            .client
            .post(admin.url(action))
            .form(&forged)
            .send()
            .await
            .expect("post");
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{action} with a forged token"
        );
    }
    // A cross-site post with the right token is refused too.
    let (_, html) = admin.page("/admin/organizations").await;
    let csrf = crate::common::input_value(&html, "csrf").expect("csrf");
    let resp = admin
        .client
        .post(admin.url("/admin/organizations"))
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "Sneaky DME"),
            ("kind", "dme"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        !admin
            .page("/admin/organizations")
            .await
            .1
            .contains("Sneaky")
    );
    // Sign-in itself needs its form token.
    let anon = app.client();
    let resp = anon
        .post(app.url("/signin"))
        .form(&[("email", ADMIN_EMAIL), ("password", PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn admins_manage_organizations_and_users_in_the_web_ui() {
    let app = spawn_app().await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let resp = admin
        .submit(
            "/admin/organizations",
            "/admin/organizations",
            &[
                ("name", "Bayview Medical Supply"),
                ("kind", "dme"),
                ("npi", "1830400390"),
                ("city", "Clearwater"),
                ("state", "FL"),
                ("zip", "33755"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = admin
        .submit(
            "/admin/organizations",
            "/admin/organizations",
            &[
                ("name", "Bad NPI Home Health"),
                ("kind", "home_health"),
                ("npi", "1830400391"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        resp.text()
            .await
            .expect("html")
            .contains("id=\"f-npi-error\"")
    );
    let (_, html) = admin.page("/admin/users").await;
    let at = html
        .find("Bayview Medical Supply (")
        .expect("org in picker");
    let vstart = html[..at].rfind("value=\"").expect("value") + 7;
    let org_id = html[vstart..vstart + 36].to_string();
    let resp = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[
                ("name", "Dee Supply"),
                ("email", "dee@bayview.test"),
                ("role", "provider_user"),
                ("organization_id", &org_id),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // A role that does not fit the organization is refused on its field.
    let resp = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[
                ("name", "Wrong Fit"),
                ("email", "wrong@bayview.test"),
                ("role", "facility_user"),
                ("organization_id", &org_id),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Duplicate emails are refused ignoring case.
    let resp = admin
        .submit(
            "/admin/users",
            "/admin/users",
            &[
                ("name", "Dee Again"),
                ("email", "DEE@Bayview.test"),
                ("role", "provider_user"),
                ("organization_id", &org_id),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let dee = sign_in(&app, "dee@bayview.test", PASSWORD).await;
    assert_eq!(dee.page("/orders").await.0, StatusCode::OK);
    // Non-admins get 404 on admin pages.
    assert_eq!(dee.page("/admin/users").await.0, StatusCode::NOT_FOUND);
    assert_eq!(dee.page("/admin/audit").await.0, StatusCode::NOT_FOUND);
    // Disabling ends her session at once.
    let (_, html) = admin.page("/admin/users").await;
    let at = html.find("dee@bayview.test").expect("listed");
    let form_at =
        html[at..].find("/admin/users/").expect("disable form") + at + "/admin/users/".len();
    let user_id = html[form_at..form_at + 36].to_string();
    let resp = admin
        .submit(
            "/admin/users",
            &format!("/admin/users/{user_id}/disable"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, _) = dee.page("/orders").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "disabled user is sent to sign-in"
    );
    let again = crate::common::Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let resp = again
        .submit(
            "/signin",
            "/signin",
            &[("email", "dee@bayview.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// The tags of a page in order: (name, attribute text), good enough for the server's
/// own escaped markup (attribute values never hold `<` or `>`).
fn tags(html: &str) -> Vec<(String, String)> {
    html.split('<')
        .skip(1)
        .filter_map(|chunk| {
            let tag = chunk.split('>').next()?;
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '/')
                .collect();
            (!name.is_empty()).then(|| (name.to_ascii_lowercase(), tag[name.len()..].to_string()))
        })
        .collect()
}

/// The value of `attr` in a tag's attribute text.
fn attr<'a>(attrs: &'a str, attr: &str) -> Option<&'a str> {
    let needle = format!(" {attr}=\"");
    let at = attrs.find(&needle)? + needle.len();
    attrs[at..].split('"').next()
}

/// Checks what every page must hold for people using a keyboard or a screen reader:
/// one `h1`; unique ids; a label tied to every visible control; in-page links and ARIA
/// references that point at something; a form token in every form that posts.
fn assert_well_formed(path: &str, html: &str) {
    assert!(html.contains("</html>"), "{path} rendered fully");
    let tags = tags(html);
    let h1s = tags.iter().filter(|(n, _)| n == "h1").count();
    assert_eq!(h1s, 1, "{path} has one h1");
    let mut ids = std::collections::HashSet::new();
    for (_, a) in &tags {
        if let Some(id) = attr(a, "id") {
            assert!(ids.insert(id.to_string()), "{path}: id {id} is used twice");
        }
    }
    let labelled: std::collections::HashSet<&str> = tags
        .iter()
        .filter(|(n, _)| n == "label")
        .filter_map(|(_, a)| attr(a, "for"))
        .collect();
    for (name, a) in &tags {
        let control = match name.as_str() {
            "input" => !matches!(attr(a, "type"), Some("hidden" | "submit")),
            "select" | "textarea" => true,
            _ => false,
        };
        if control {
            let id = attr(a, "id").unwrap_or_else(|| panic!("{path}: <{name}{a}> has no id"));
            assert!(labelled.contains(id), "{path}: {id} has no label");
        }
        for list in ["aria-describedby", "aria-labelledby"] {
            for id in attr(a, list).unwrap_or("").split_whitespace() {
                assert!(ids.contains(id), "{path}: {list} names missing {id}");
            }
        }
        if let Some(target) = attr(a, "href").and_then(|h| h.strip_prefix('#')) {
            assert!(ids.contains(target), "{path}: link to missing #{target}");
        }
    }
    for form in html.split("<form").skip(1) {
        let form = form.split("</form>").next().unwrap_or("");
        if form.contains("method=\"post\"") {
            assert!(
                form.contains("name=\"csrf\""),
                "{path}: a form posts without its token"
            );
        }
    }
}

#[tokio::test]
async fn every_page_renders_well_formed_for_the_roles_that_may_see_it() {
    let app = crate::common::spawn_app_with(|c| c.signin_max_failures = 2).await;
    let admin = sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let orgs = create_fixture_orgs(&app).await;
    let planner_id = create_user(
        &app,
        "planner@gulfcoast.test",
        "facility_user",
        &orgs["fac2"],
    )
    .await;
    let planner = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    let visitor = || crate::signup::visitor(&app);

    // Something in every queue: a sign-up, a deletion request and a blocked email.
    let resp = crate::signup::sign_up(
        &app,
        "Rita Requester",
        "rita@brightcare.test",
        "home_health",
        "BrightCare Home Health",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign-up sent");
    let resp = planner
        .submit("/account", "/account/delete-request", &[])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "deletion asked for");
    let blocked = visitor();
    for _ in 0..2 {
        let resp = blocked
            .submit(
                "/signin",
                "/signin",
                &[
                    ("email", "nobody@nowhere.test"),
                    ("password", "not the password at all"),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }

    for path in [
        "/orders",
        "/orders/new",
        "/dashboard",
        "/admin/users",
        "/admin/organizations",
        "/admin/audit",
        "/admin/audit?action=signin&outcome=ok",
        "/admin/signups",
        "/admin/deletions",
        "/admin/blocked",
        "/account",
        "/account/password",
        "/account/second-factor",
        "/account/sessions",
        "/account/tokens",
    ] {
        let (status, html) = admin.page(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_well_formed(path, &html);
    }
    let (_, dashboard) = admin.page("/dashboard").await;
    assert!(
        dashboard.contains("1 sign-up awaits approval"),
        "queue counts on the dashboard"
    );
    assert!(dashboard.contains("1 deletion request to process"));

    // A person without a second factor sees the set-up (QR code and key).
    let (status, html) = planner.page("/account/second-factor").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"totp-secret\""), "the enrolment form");
    assert_well_formed("/account/second-factor (enrol)", &html);
    // Refused forms: each error in the summary links to its field.
    for (page, action, fields) in [
        (
            "/account/password",
            "/account/password",
            vec![
                ("current_password", PASSWORD),
                ("password", "short"),
                ("password_confirm", "other"),
            ],
        ),
        (
            "/account",
            "/account/email",
            vec![("new_email", "not-an-email"), ("current_password", "wrong")],
        ),
        (
            "/account/tokens",
            "/account/tokens",
            vec![("name", "  "), ("expires_days", "90")],
        ),
    ] {
        let resp = planner.submit(page, action, &fields).await;
        let html = resp.text().await.expect("html");
        assert!(html.contains("error-summary"), "{action} names the problem");
        assert_well_formed(action, &html);
    }

    // Pages seen before signing in, and the code step of a sign-in.
    for path in ["/signin", "/signup"] {
        let (status, html) = visitor().page(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_well_formed(path, &html);
    }
    let pending = visitor();
    let resp = pending
        .submit(
            "/signin",
            "/signin",
            &[("email", "rita@brightcare.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.headers()["location"], "/signup/pending");
    let (status, html) = pending.page("/signup/pending").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Rita Requester"),
        "the signed-in waiting page"
    );
    assert_well_formed("/signup/pending", &html);
    let coded = visitor();
    let resp = coded
        .submit(
            "/signin",
            "/signin",
            &[("email", ADMIN_EMAIL), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.headers()["location"], "/signin/code");
    let (status, html) = coded.page("/signin/code").await;
    assert_eq!(status, StatusCode::OK);
    assert_well_formed("/signin/code", &html);

    // The reset link shown once to the admin, and the page it opens.
    let resp = admin
        .submit(
            "/admin/users",
            &format!("/admin/users/{planner_id}/reset-link"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    assert_well_formed("/admin/users/{id}/reset-link", &html);
    let at = html.find("id=\"reset-link\">").expect("link shown") + "id=\"reset-link\">".len();
    let link = html[at..at + html[at..].find('<').expect("end")].replace("&#x2f;", "/");
    let reset = link[link.find("/reset/").expect("path")..]
        .trim()
        .to_string();
    let (status, html) = visitor().page(&reset).await;
    assert_eq!(status, StatusCode::OK);
    assert_well_formed("/reset/{secret}", &html);

    let (status, html) = admin.page("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("</html>"));
}

#[tokio::test]
async fn the_first_admin_is_created_with_the_printed_setup_code() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = crate::common::test_config(&dir);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = ihms_connect::ops::start(cfg, async {
        let _ = rx.await;
    })
    .await
    .expect("start");
    let code = running
        .setup_code
        .clone()
        .expect("a setup code while no admin exists");
    let app_base = format!("https://localhost:{}", running.addr.port());
    let ca_pem = running.ca_pem.clone().expect("ca");
    let b = crate::common::Browser {
        client: crate::common::ca_client(ca_pem.as_bytes(), true),
        base: app_base,
    };
    let signin = b.client.get(b.url("/signin")).send().await.expect("get");
    assert_eq!(
        signin.headers()["location"],
        "/setup",
        "sign-in sends to setup while no admin exists"
    );
    let fields = |code: &str| {
        vec![
            ("setup_code", code.to_string()),
            ("name", "Ada Admin".to_string()),
            ("email", "ada@ihms.test".to_string()),
            ("password", PASSWORD.to_string()),
            ("password_confirm", PASSWORD.to_string()),
        ]
    };
    let wrong: Vec<(&str, String)> = fields("not-the-code");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = b.submit("/setup", "/setup", &wrong).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let right: Vec<(&str, String)> = fields(&code);
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = b.submit("/setup", "/setup", &right).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // An admin sets up a second factor before anything else.
    assert_eq!(resp.headers()["location"], "/account/second-factor");
    let (_, html) = b.page("/account/second-factor").await;
    let secret = crate::common::secret_on_page(&html);
    let code =
        ihms_connect::auth::totp::code_at(&secret, ihms_connect::store::now_ms()).expect("code");
    let resp = b
        .submit(
            "/account/second-factor",
            "/account/second-factor/confirm",
            &[("password", PASSWORD), ("code", &code)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        b.page("/admin/users").await.0,
        StatusCode::OK,
        "signed in as the new admin"
    );
    // The setup page is gone once an admin exists.
    let fresh = crate::common::ca_client(ca_pem.as_bytes(), false);
    let gone = fresh.get(b.url("/setup")).send().await.expect("get");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let _ = tx.send(());
    let _ = running.task.await;
}

#[tokio::test]
async fn a_configured_certificate_is_used_as_given() {
    // Make a certificate in one data dir, then serve another with it configured.
    let donor = tempfile::tempdir().expect("donor");
    ihms_connect::tls::ensure_local(donor.path(), &["portal.agency.test".into()]).expect("certs");
    let tls = donor.path().join("tls");
    let app = crate::common::spawn_app_with(|c| {
        c.tls_cert_file = Some(tls.join("server.pem"));
        c.tls_key_file = Some(tls.join("server.key"));
    })
    .await;
    assert!(
        !app.cfg.data_dir.join("tls").exists(),
        "no local CA is made when a certificate is configured"
    );
    let ca = std::fs::read(tls.join("ca.pem")).expect("ca");
    let client = crate::common::ca_client(&ca, false);
    let resp = client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("served with the configured certificate");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn disabling_an_organization_locks_out_its_users_at_once() {
    let app = spawn_app().await;
    let w = crate::common::world(&app).await;
    let planner = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    assert_eq!(planner.page("/orders").await.0, StatusCode::OK);
    let (status, _) = app
        .post_json(
            &app.admin_token,
            &format!("/api/v1/organizations/{}/disable", w.orgs["fac2"]),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        planner.page("/orders").await.0,
        StatusCode::SEE_OTHER,
        "web session ends"
    );
    let (status, _) = app.get_json(&w.fac2_token, "/api/v1/orders").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "API token stops working");
    let again = crate::common::Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    let resp = again
        .submit(
            "/signin",
            "/signin",
            &[("email", "planner@gulfcoast.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no new sign-in");
    let (status, _) = app.get_json(&w.fac3_token, "/api/v1/orders").await;
    assert_eq!(status, StatusCode::OK, "other organizations are unaffected");
}

#[tokio::test]
async fn a_browser_form_post_with_a_null_origin_from_the_same_site_is_accepted() {
    // Under `Referrer-Policy: no-referrer` Chromium and Firefox send `Origin: null` on
    // every form post, with `Sec-Fetch-Site: same-origin`.
    let app = spawn_app().await;
    let b = crate::signup::visitor(&app);
    let (_, html) = b.page("/signin").await;
    let csrf = crate::common::input_value(&html, "csrf").expect("csrf");
    let resp = b
        .client
        .post(b.url("/signin"))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", ADMIN_EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "signed in");
    let resp = b
        .client
        .post(b.url("/signout"))
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "a cross-site post is still refused"
    );
}
