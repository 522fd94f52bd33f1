//! The coordination workflow over HTTPS: three fixture orders driven from
//! `submitted` to `completed` (or `cancelled`) by staff, facility and provider users,
//! with a decline, a need-info round trip, a withdrawal and a cancel, checking at
//! every stage that each provider sees exactly its own lines and offers.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{App, PASSWORD, create_user, fixture, order_body, sign_in, spawn_app, world};

async fn step(app: &App, token: &str, path: &str, body: Value) -> Value {
    let (status, out) = app.post_json(token, path, &body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {out}");
    out
}

async fn refused(app: &App, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let (status, out) = app.post_json(token, path, &body).await;
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::NOT_FOUND,
        "{path}: {status} {out}"
    );
    (status, out)
}

async fn provider_token(
    app: &App,
    orgs: &std::collections::HashMap<String, String>,
    key: &str,
) -> String {
    let email = format!("intake@{key}.test");
    create_user(app, &email, "provider_user", &orgs[key]).await;
    sign_in(app, &email, PASSWORD).await.api_token().await
}

fn fixture_order(id: &str) -> Value {
    fixture("discharge-orders.json")
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["fixture_id"] == id)
        .expect("fixture")
        .clone()
}

async fn submit(
    app: &App,
    token: &str,
    orgs: &std::collections::HashMap<String, String>,
    id: &str,
) -> String {
    let (status, body) = app
        .post_json(
            token,
            "/api/v1/orders",
            &order_body(&fixture_order(id), orgs),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_string()
}

fn offer_of(order: &Value, line: usize, provider: &str) -> String {
    order["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line"] == json!(line))
        .and_then(|l| l["offers"].as_array())
        .and_then(|offers| {
            offers
                .iter()
                .rev()
                .find(|o| o["provider"] == json!(provider))
        })
        .and_then(|o| o["id"].as_str())
        .expect("offer")
        .to_string()
}

async fn eligible(app: &App, staff: &str, id: &str) {
    step(
        app,
        staff,
        &format!("/api/v1/orders/{id}/review"),
        json!({}),
    )
    .await;
    step(
        app,
        staff,
        &format!("/api/v1/orders/{id}/coverage"),
        json!({"plan": 0, "result": "eligible", "method": "electronic_270_271", "reference": "TRN-55120"}),
    )
    .await;
}

#[tokio::test]
async fn a_home_health_order_goes_from_submitted_to_completed_with_a_decline_and_questions() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let prov1 = w.provider_token.clone(); // Harbor Home Health (prov1)
    let prov3 = provider_token(&app, &w.orgs, "prov3").await;
    let id = submit(&app, &w.fac3_token, &w.orgs, "order-014").await;
    let base = format!("/api/v1/orders/{id}");

    // Offering before review and coverage is refused with a reason.
    let (_, body) = refused(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/offers"),
        json!({"providers": [w.orgs["prov1"]]}),
    )
    .await;
    assert_eq!(body["errors"][0]["field"], json!("coverage"));
    // Need-info round trip with the facility.
    step(&app, &w.staff_token, &format!("{base}/review"), json!({})).await;
    let asked = step(
        &app,
        &w.staff_token,
        &format!("{base}/ask"),
        json!({"question": "Is the patient homebound?"}),
    )
    .await;
    assert_eq!(asked["status"], json!("needs_info"));
    let (_, facility_view) = app.get_json(&w.fac3_token, &base).await;
    assert_eq!(
        facility_view["question"],
        json!("Is the patient homebound?"),
        "the facility sees it waits on them"
    );
    let (_, body) = refused(
        &app,
        &w.fac3_token,
        &format!("{base}/answer"),
        json!({"text": ""}),
    )
    .await;
    assert_eq!(body["errors"][0]["field"], json!("answer"));
    let answered = step(
        &app,
        &w.fac3_token,
        &format!("{base}/answer"),
        json!({"text": "Yes, leaves home for dialysis only."}),
    )
    .await;
    assert_eq!(answered["status"], json!("in_review"));
    step(
        &app,
        &w.staff_token,
        &format!("{base}/coverage"),
        json!({"plan": 0, "result": "eligible", "method": "portal", "reference": "AB-77"}),
    )
    .await;

    // Service fit lists both fitting home health providers and says why others do not.
    let (_, fit) = app.get_json(&w.staff_token, &format!("{base}/fit")).await;
    let fits: Vec<&str> = fit["lines"][0]["fits"]
        .as_array()
        .expect("fits")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(
        fits.contains(&w.orgs["prov1"].as_str()) && fits.contains(&w.orgs["prov3"].as_str()),
        "{fit}"
    );
    let prov2 = fit["lines"][0]["others"]
        .as_array()
        .expect("others")
        .iter()
        .find(|p| p["id"] == json!(w.orgs["prov2"]))
        .expect("prov2 listed");
    assert!(!prov2["reasons"].as_array().expect("reasons").is_empty());
    let (status, _) = app.get_json(&prov1, &format!("{base}/fit")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only the agency sees fit");

    // Offer to both; a non-fitting provider is refused.
    let (_, body) = refused(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/offers"),
        json!({"providers": [w.orgs["prov2"]]}),
    )
    .await;
    assert_eq!(body["errors"][0]["field"], json!("providers"));
    let offered = step(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/offers"),
        json!({"providers": [w.orgs["prov1"], w.orgs["prov3"]]}),
    )
    .await;
    assert_eq!(offered["status"], json!("pending_placement"));
    let (o1, o3) = (
        offer_of(&offered, 0, &w.orgs["prov1"]),
        offer_of(&offered, 0, &w.orgs["prov3"]),
    );

    // Each provider sees the order with only its own offer.
    for (token, mine, theirs) in [(&prov1, &o1, &o3), (&prov3, &o3, &o1)] {
        let (status, view) = app.get_json(token, &base).await;
        assert_eq!(status, StatusCode::OK);
        let text = view.to_string();
        assert!(
            text.contains(mine.as_str()) && !text.contains(theirs.as_str()),
            "own offer only"
        );
        assert!(
            view.get("coverage").is_none(),
            "coverage stays with the agency"
        );
        let (_, list) = app.get_json(token, "/api/v1/orders").await;
        assert_eq!(list["items"].as_array().expect("items").len(), 1);
    }
    // A provider cannot answer another provider's offer.
    refused(
        &app,
        &prov1,
        &format!("{base}/offers/{o3}/respond"),
        json!({"answer": "accepted"}),
    )
    .await;
    // Decline needs a reason; then prov1 loses access.
    let (_, body) = refused(
        &app,
        &prov1,
        &format!("{base}/offers/{o1}/respond"),
        json!({"answer": "declined"}),
    )
    .await;
    assert_eq!(body["errors"][0]["field"], json!("reason"));
    step(
        &app,
        &prov1,
        &format!("{base}/offers/{o1}/respond"),
        json!({"answer": "declined", "reason": "no_capacity"}),
    )
    .await;
    let (status, _) = app.get_json(&prov1, &base).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a declined provider loses access"
    );
    let (_, list) = app.get_json(&prov1, "/api/v1/orders").await;
    assert_eq!(list["items"], json!([]));
    // prov3 asks a question, staff reply, prov3 accepts; award, start, complete.
    step(
        &app,
        &prov3,
        &format!("{base}/offers/{o3}/respond"),
        json!({"answer": "need_info", "question": "Wound vac?"}),
    )
    .await;
    refused(
        &app,
        &w.staff_token,
        &format!("{base}/offers/{o3}/award"),
        json!({}),
    )
    .await;
    step(
        &app,
        &w.staff_token,
        &format!("{base}/offers/{o3}/reply"),
        json!({"text": "No wound vac."}),
    )
    .await;
    step(
        &app,
        &prov3,
        &format!("{base}/offers/{o3}/respond"),
        json!({"answer": "accepted"}),
    )
    .await;
    let placed = step(
        &app,
        &w.staff_token,
        &format!("{base}/offers/{o3}/award"),
        json!({}),
    )
    .await;
    assert_eq!(placed["status"], json!("placed"));
    let (_, body) = refused(&app, &prov3, &format!("{base}/lines/0/start"), json!({})).await;
    assert_eq!(body["errors"][0]["field"], json!("date"));
    refused(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/start"),
        json!({"date": "2026-12-06"}),
    )
    .await;
    let started = step(
        &app,
        &prov3,
        &format!("{base}/lines/0/start"),
        json!({"date": "2026-12-06"}),
    )
    .await;
    assert_eq!(started["status"], json!("in_service"));
    let done = step(&app, &w.staff_token, &format!("{base}/complete"), json!({})).await;
    assert_eq!(done["status"], json!("completed"));
    refused(
        &app,
        &w.fac3_token,
        &format!("{base}/cancel"),
        json!({"reason": "too late"}),
    )
    .await;

    // The timeline shows every step in order, with who and when.
    let whats: Vec<&str> = done["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["what"].as_str())
        .collect();
    for expected in [
        "Submitted",
        "Taken into review",
        "Asked the facility for information",
        "Information provided",
        "Coverage checked",
        "Offered",
        "Declined",
        "Asked a question",
        "Agency replied",
        "Accepted",
        "Awarded",
        "Care started",
        "Completed",
    ] {
        assert!(whats.contains(&expected), "{expected} in {whats:?}");
    }
    let (_, fac) = app.get_json(&w.fac3_token, &base).await;
    let fac_whats: Vec<&str> = fac["timeline"]
        .as_array()
        .expect("t")
        .iter()
        .filter_map(|e| e["what"].as_str())
        .collect();
    assert!(
        !fac_whats.contains(&"Declined"),
        "the facility does not see provider answers"
    );
    assert_eq!(fac["lines"][0]["offers"], json!([]));
}

#[tokio::test]
async fn a_dme_order_is_withdrawn_then_reoffered_and_delivered() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let prov5 = provider_token(&app, &w.orgs, "prov5").await;
    let id = submit(&app, &w.fac3_token, &w.orgs, "order-012").await;
    let base = format!("/api/v1/orders/{id}");
    eligible(&app, &w.staff_token, &id).await;
    let offered = step(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/offers"),
        json!({"providers": [w.orgs["prov5"]]}),
    )
    .await;
    let first = offer_of(&offered, 0, &w.orgs["prov5"]);
    let (status, _) = app.get_json(&prov5, &base).await;
    assert_eq!(status, StatusCode::OK);
    step(
        &app,
        &w.staff_token,
        &format!("{base}/offers/{first}/withdraw"),
        json!({}),
    )
    .await;
    let (status, _) = app.get_json(&prov5, &base).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a withdrawn provider loses access"
    );
    refused(
        &app,
        &prov5,
        &format!("{base}/offers/{first}/respond"),
        json!({"answer": "accepted"}),
    )
    .await;
    let again = step(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/offers"),
        json!({"providers": [w.orgs["prov5"]]}),
    )
    .await;
    let second = offer_of(&again, 0, &w.orgs["prov5"]);
    assert_ne!(first, second);
    step(
        &app,
        &prov5,
        &format!("{base}/offers/{second}/respond"),
        json!({"answer": "accepted"}),
    )
    .await;
    // Starting a line that is offered but not yet awarded says why.
    let (status, body) = app
        .post_json(
            &prov5,
            &format!("{base}/lines/0/start"),
            &json!({"date": "2026-12-04"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], json!("status"));
    step(
        &app,
        &w.staff_token,
        &format!("{base}/offers/{second}/award"),
        json!({}),
    )
    .await;
    step(
        &app,
        &prov5,
        &format!("{base}/lines/0/start"),
        json!({"date": "2026-12-04"}),
    )
    .await;
    let done = step(&app, &w.staff_token, &format!("{base}/complete"), json!({})).await;
    assert_eq!(done["status"], json!("completed"));
}

#[tokio::test]
async fn a_three_line_order_is_placed_with_three_providers_who_each_see_only_their_line() {
    let app = spawn_app().await;
    let w = world(&app).await;
    // The directory is kept by admins: Hillsborough takes Medicare now, and
    // Suncoast Oxygen adds walkers.
    let (status, _) = app
        .post_json(&app.admin_token, &format!("/api/v1/organizations/{}/profile", w.orgs["prov7"]),
                   &json!({"service_zips": ["33602", "33511"], "payers_accepted": ["self_pay", "medicaid", "va", "medicare"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post_json(&app.admin_token, &format!("/api/v1/organizations/{}/profile", w.orgs["prov5"]),
                   &json!({"service_zips": ["33602", "33511", "34683", "34689", "33755"],
                           "payers_accepted": ["medicaid", "medicare", "medicare_advantage", "va"],
                           "hcpcs": ["E0143", "E0163", "E0240", "E0277", "E0601", "E1390", "K0001", "E0135"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post_json(
            &w.staff_token,
            &format!("/api/v1/organizations/{}/profile", w.orgs["prov5"]),
            &json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "only admins keep the directory"
    );
    let tokens = [
        provider_token(&app, &w.orgs, "prov2").await,
        provider_token(&app, &w.orgs, "prov5").await,
        provider_token(&app, &w.orgs, "prov7").await,
    ];
    let keys = ["prov2", "prov5", "prov7"];
    let id = submit(&app, &w.staff_token, &w.orgs, "order-005").await;
    let base = format!("/api/v1/orders/{id}");
    eligible(&app, &w.staff_token, &id).await;
    let mut offers = Vec::new();
    let mut order = Value::Null;
    for (line, key) in keys.iter().enumerate() {
        order = step(
            &app,
            &w.staff_token,
            &format!("{base}/lines/{line}/offers"),
            json!({"providers": [w.orgs[*key]]}),
        )
        .await;
        offers.push(offer_of(&order, line, &w.orgs[*key]));
    }
    assert_eq!(order["lines"].as_array().expect("lines").len(), 3);
    for (i, token) in tokens.iter().enumerate() {
        let (status, view) = app.get_json(token, &base).await;
        assert_eq!(status, StatusCode::OK);
        let lines = view["lines"].as_array().expect("lines");
        assert_eq!(lines.len(), 1, "{} sees one line", keys[i]);
        assert_eq!(lines[0]["line"], json!(i));
        assert_eq!(view["services"].as_array().expect("services").len(), 1);
        assert_eq!(
            view["patient"]["last_name"], order["patient"]["last_name"],
            "the header is shared"
        );
        for (j, other) in offers.iter().enumerate() {
            assert_eq!(view.to_string().contains(other.as_str()), i == j);
        }
        step(
            &app,
            token,
            &format!("{base}/offers/{}/respond", offers[i]),
            json!({"answer": "accepted"}),
        )
        .await;
    }
    for (i, offer) in offers.iter().enumerate() {
        let o = step(
            &app,
            &w.staff_token,
            &format!("{base}/offers/{offer}/award"),
            json!({}),
        )
        .await;
        let expected = if i < 2 { "pending_placement" } else { "placed" };
        assert_eq!(o["status"], json!(expected), "after award {i}");
    }
    for (i, token) in tokens.iter().enumerate() {
        // The provider's own line index, as it sees it, is the order's line index.
        step(
            &app,
            token,
            &format!("{base}/lines/{i}/start"),
            json!({"date": "2026-12-05"}),
        )
        .await;
    }
    let done = step(&app, &w.staff_token, &format!("{base}/complete"), json!({})).await;
    assert_eq!(done["status"], json!("completed"));
}

#[tokio::test]
async fn a_cancelled_order_closes_its_offers_and_providers_lose_access() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let prov5 = provider_token(&app, &w.orgs, "prov5").await;
    let id = submit(&app, &w.fac2_token, &w.orgs, "order-022").await;
    let base = format!("/api/v1/orders/{id}");
    eligible(&app, &w.staff_token, &id).await;
    step(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/offers"),
        json!({"providers": [w.orgs["prov5"]]}),
    )
    .await;
    assert_eq!(app.get_json(&prov5, &base).await.0, StatusCode::OK);
    let (_, body) = refused(
        &app,
        &w.fac2_token,
        &format!("{base}/cancel"),
        json!({"reason": " "}),
    )
    .await;
    assert_eq!(body["errors"][0]["field"], json!("reason"));
    refused(
        &app,
        &w.fac3_token,
        &format!("{base}/cancel"),
        json!({"reason": "not ours"}),
    )
    .await;
    let cancelled = step(
        &app,
        &w.fac2_token,
        &format!("{base}/cancel"),
        json!({"reason": "Patient chose another agency"}),
    )
    .await;
    assert_eq!(cancelled["status"], json!("cancelled"));
    assert_eq!(
        cancelled["cancel_reason"],
        json!("Patient chose another agency")
    );
    assert_eq!(app.get_json(&prov5, &base).await.0, StatusCode::NOT_FOUND);
    refused(&app, &w.staff_token, &format!("{base}/review"), json!({})).await;
}

#[tokio::test]
async fn search_export_and_dashboard_show_only_what_the_caller_may_see() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let mine = submit(&app, &w.fac2_token, &w.orgs, "order-022").await;
    let theirs = submit(&app, &w.fac3_token, &w.orgs, "order-012").await;
    let o22 = fixture_order("order-022");
    let o12 = fixture_order("order-012");
    let last22 = o22["patient"]["last_name"].as_str().expect("name");
    let mrn12 = o12["patient"]["mrn"].as_str().expect("mrn");
    // Staff find either by name, MRN, date of birth or number.
    for q in [
        last22.to_lowercase(),
        o22["patient"]["mrn"].as_str().expect("m").to_string(),
        o22["patient"]["dob"].as_str().expect("d").to_string(),
    ] {
        let (status, found) = app
            .post_json(&w.staff_token, "/api/v1/orders/search", &json!({ "q": q }))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            found["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|i| i["id"] == json!(mine)),
            "{q}"
        );
    }
    let (_, found) = app
        .post_json(
            &w.staff_token,
            "/api/v1/orders/search",
            &json!({ "q": mrn12 }),
        )
        .await;
    assert_eq!(found["items"][0]["id"], json!(theirs));
    // The facility finds its own order but never the other facility's.
    let (_, found) = app
        .post_json(
            &w.fac2_token,
            "/api/v1/orders/search",
            &json!({ "q": mrn12 }),
        )
        .await;
    assert_eq!(found["items"], json!([]));
    let (_, found) = app
        .post_json(
            &w.fac2_token,
            "/api/v1/orders/search",
            &json!({ "q": last22 }),
        )
        .await;
    assert_eq!(found["items"][0]["id"], json!(mine));
    // On the web, search is a form post: the text never appears in a URL.
    let planner = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    let resp = planner
        .submit("/orders", "/orders/search", &[("q", last22)])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.url().as_str().contains(last22));
    let html = resp.text().await.expect("html");
    assert!(html.contains(&mine) && !html.contains(&theirs));
    assert!(
        !html.contains("export.csv"),
        "no export link that would export the whole list instead of the results"
    );
    let (_, list) = planner.page("/orders").await;
    assert!(list.contains("export.csv"), "the list offers its export");
    // CSV export holds exactly the caller's orders.
    let resp = app
        .client()
        .get(app.url("/api/v1/orders/export.csv"))
        .bearer_auth(&w.fac2_token)
        .send()
        .await
        .expect("csv");
    assert_eq!(resp.status(), StatusCode::OK);
    let csv = resp.text().await.expect("text");
    assert!(
        csv.contains(last22) && !csv.contains(o12["patient"]["last_name"].as_str().expect("n"))
    );
    assert_eq!(csv.lines().count(), 2, "header and one order");
    // Dashboard counts follow the caller's scope.
    let (_, staff) = app.get_json(&w.staff_token, "/api/v1/dashboard").await;
    assert_eq!(staff["total"], json!(2));
    assert_eq!(staff["waiting"].as_array().expect("w").len(), 2);
    let (_, fac) = app.get_json(&w.fac2_token, "/api/v1/dashboard").await;
    assert_eq!(fac["total"], json!(1));
    assert!(fac.get("providers").is_none());
    let (_, prov) = app.get_json(&w.provider_token, "/api/v1/dashboard").await;
    assert_eq!(prov["total"], json!(0));
}

#[tokio::test]
async fn the_workflow_works_through_the_web_pages_alone() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let id = submit(&app, &w.fac3_token, &w.orgs, "order-014").await;
    let page = format!("/orders/{id}");
    let staff = sign_in(&app, "coordinator@ihms.test", PASSWORD).await;
    let planner = sign_in(&app, "planner@pinellasrehab.test", PASSWORD).await;
    let provider = sign_in(&app, "intake@harborhh.test", PASSWORD).await; // prov1
    let post = |b: &crate::common::Browser, action: String, fields: Vec<(&'static str, String)>| {
        let b = crate::common::Browser {
            client: b.client.clone(),
            base: b.base.clone(),
        };
        let page = page.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.submit(&page, &action, &fields).await
        }
    };
    let resp = post(&staff, format!("{page}/steps/review"), vec![]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = post(
        &staff,
        format!("{page}/steps/ask"),
        vec![("question", "Stairs at home?".into())],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = planner.page(&page).await;
    assert!(
        html.contains("Stairs at home?"),
        "the facility sees the question"
    );
    let resp = post(
        &planner,
        format!("{page}/steps/answer"),
        vec![("text", "Three steps, rail on left.".into())],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // Offering before coverage is refused on the page with the reason shown.
    let resp = post(
        &staff,
        format!("{page}/lines/0/offer"),
        vec![("providers", w.orgs["prov1"].clone())],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    assert!(html.contains("eligible"));
    // A refused form comes back as it was filled in.
    let ticked = format!("value=\"{}\" checked", w.orgs["prov1"]);
    assert!(html.contains(&ticked), "the ticked provider stays ticked");
    let resp = post(
        &staff,
        format!("{page}/steps/coverage"),
        vec![
            ("plan", "0".into()),
            ("result", "not_eligible".into()),
            ("method", "".into()),
            ("reference", "REF-TYPED-9".into()),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("value=\"REF-TYPED-9\""),
        "the reference is kept"
    );
    assert!(html.contains("<option value=\"not_eligible\" selected>"));
    assert!(
        !html.contains("name=\"csrf\" value=\"\""),
        "never an empty token"
    );
    let cov = vec![
        ("plan", "0".into()),
        ("result", "eligible".into()),
        ("method", "phone".into()),
        ("reference", "REF-1".into()),
    ];
    assert_eq!(
        post(&staff, format!("{page}/steps/coverage"), cov)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let resp = post(
        &staff,
        format!("{page}/lines/0/offer"),
        vec![("providers", w.orgs["prov1"].clone())],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // The provider's inbox shows the offer; it accepts on the page.
    let (_, inbox) = provider.page("/inbox").await;
    assert!(inbox.contains(&id), "offer listed in the inbox");
    let (_, json) = app
        .get_json(&w.provider_token, &format!("/api/v1/orders/{id}"))
        .await;
    let offer = json["lines"][0]["offers"][0]["id"]
        .as_str()
        .expect("offer")
        .to_string();
    // Declining with "Other" needs details: refused, the choices are kept.
    let resp = post(
        &provider,
        format!("{page}/offers/{offer}/respond"),
        vec![
            ("answer", "declined".into()),
            ("reason", "other".into()),
            ("reason_text", "".into()),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    assert!(html.contains("value=\"declined\" checked"));
    assert!(html.contains("<option value=\"other\" selected>"));
    let resp = post(
        &provider,
        format!("{page}/offers/{offer}/respond"),
        vec![("answer", "accepted".into())],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // Answered, the offer leaves the inbox.
    let (_, inbox) = provider.page("/inbox").await;
    assert!(!inbox.contains(&id), "an answered offer leaves the inbox");
    assert_eq!(
        post(&staff, format!("{page}/offers/{offer}/award"), vec![])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let resp = post(
        &provider,
        format!("{page}/lines/0/start"),
        vec![("date", "2026-02-30".into())],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.expect("html");
    assert!(
        html.contains("value=\"2026-02-30\""),
        "the typed date is kept"
    );
    let resp = post(
        &provider,
        format!("{page}/lines/0/start"),
        vec![("date", "2026-12-07".into())],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        post(&staff, format!("{page}/steps/complete"), vec![])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let (_, html) = staff.page(&page).await;
    assert!(html.contains("Completed") && html.contains("Care started"));
    // The dashboard renders for every role and counts the completed order.
    for b in [&staff, &planner, &provider] {
        let (status, html) = b.page("/dashboard").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<svg"), "a server-drawn chart");
    }
    // Another facility's user gets 404 on every workflow route of this order.
    let other = sign_in(&app, "planner@gulfcoast.test", PASSWORD).await;
    for action in [
        "steps/cancel",
        "steps/answer",
        "lines/0/start",
        &format!("offers/{offer}/respond"),
    ] {
        let resp = crate::common::Browser {
            client: other.client.clone(),
            base: other.base.clone(),
        }
        .submit(
            "/orders",
            &format!("{page}/{action}"),
            &[("reason", "x"), ("text", "x"), ("date", "2026-12-08")],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{action}");
    }
}

#[tokio::test]
async fn admins_keep_the_provider_directory_on_its_page() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let admin = sign_in(&app, crate::common::ADMIN_EMAIL, PASSWORD).await;
    let page = format!("/admin/organizations/{}", w.orgs["prov4"]);
    let (status, html) = admin.page(&page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("E0260"));
    let resp = admin
        .submit(
            &page,
            &format!("{page}/profile"),
            &[
                ("service_zips", "33602 33511"),
                ("payers_accepted", "medicare"),
                ("hcpcs", "E0260, E026"),
            ],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a bad HCPCS code is refused"
    );
    let resp = admin
        .submit(
            &page,
            &format!("{page}/profile"),
            &[
                ("service_zips", "33602 33511"),
                ("payers_accepted", "medicare"),
                ("hcpcs", "E0260, E0135"),
                ("paused", "on"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, html) = admin.page(&page).await;
    assert!(html.contains("33511") && html.contains("E0135"));
    let staff = sign_in(&app, "coordinator@ihms.test", PASSWORD).await;
    assert_eq!(staff.page(&page).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn coverage_stays_with_the_agency_and_closed_orders_cannot_change() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let prov5 = provider_token(&app, &w.orgs, "prov5").await;
    let id = submit(&app, &w.fac3_token, &w.orgs, "order-012").await;
    let base = format!("/api/v1/orders/{id}");
    step(&app, &w.staff_token, &format!("{base}/review"), json!({})).await;
    step(
        &app,
        &w.staff_token,
        &format!("{base}/coverage"),
        json!({"plan": 0, "result": "not_eligible", "method": "phone", "reference": "R0"}),
    )
    .await;
    step(
        &app,
        &w.staff_token,
        &format!("{base}/coverage-override"),
        json!({"reason": "LATE OVERRIDE"}),
    )
    .await;
    let offered = step(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/offers"),
        json!({"providers": [w.orgs["prov5"]]}),
    )
    .await;
    let offer = offer_of(&offered, 0, &w.orgs["prov5"]);
    for token in [&w.fac3_token, &prov5] {
        let (_, view) = app.get_json(token, &base).await;
        let text = view.to_string();
        assert!(
            !text.contains("LATE OVERRIDE") && !text.contains("Coverage"),
            "coverage is agency-only: {text}"
        );
    }
    // Accepting twice does not count twice.
    step(
        &app,
        &prov5,
        &format!("{base}/offers/{offer}/respond"),
        json!({"answer": "accepted"}),
    )
    .await;
    step(
        &app,
        &prov5,
        &format!("{base}/offers/{offer}/respond"),
        json!({"answer": "need_info", "question": "Floor plan?"}),
    )
    .await;
    step(
        &app,
        &w.staff_token,
        &format!("{base}/offers/{offer}/reply"),
        json!({"text": "Ground floor."}),
    )
    .await;
    step(
        &app,
        &prov5,
        &format!("{base}/offers/{offer}/respond"),
        json!({"answer": "accepted"}),
    )
    .await;
    let (_, dash) = app.get_json(&w.staff_token, "/api/v1/dashboard").await;
    let p = dash["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["id"] == json!(w.orgs["prov5"]))
        .expect("prov5");
    assert_eq!(p["acceptance_rate"], json!(100), "{p}");
    step(
        &app,
        &w.staff_token,
        &format!("{base}/offers/{offer}/award"),
        json!({}),
    )
    .await;
    let (_, body) = refused(
        &app,
        &prov5,
        &format!("{base}/lines/0/start"),
        json!({"date": "2026-W50-4"}),
    )
    .await;
    assert_eq!(body["errors"][0]["field"], json!("date"));
    refused(
        &app,
        &prov5,
        &format!("{base}/lines/0/start"),
        json!({"date": "1900-01-01"}),
    )
    .await;
    step(
        &app,
        &prov5,
        &format!("{base}/lines/0/start"),
        json!({"date": "2026-12-04"}),
    )
    .await;
    refused(
        &app,
        &prov5,
        &format!("{base}/lines/0/start"),
        json!({"date": "2026-12-05"}),
    )
    .await;
    step(&app, &w.staff_token, &format!("{base}/complete"), json!({})).await;
    let (_, body) = refused(
        &app,
        &w.staff_token,
        &format!("{base}/coverage-override"),
        json!({"reason": "after the fact"}),
    )
    .await;
    assert_eq!(body["errors"][0]["field"], json!("status"));
}

#[tokio::test]
async fn an_order_completes_only_when_every_line_has_started_and_refusals_are_audited() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let prov1 = w.provider_token.clone();
    let prov4 = provider_token(&app, &w.orgs, "prov4").await;
    let id = submit(&app, &w.fac2_token, &w.orgs, "order-006").await; // home health (prov1) + DME (prov4)
    let base = format!("/api/v1/orders/{id}");
    eligible(&app, &w.staff_token, &id).await;
    let mut offers = Vec::new();
    for (line, key) in [(0, "prov1"), (1, "prov4")] {
        let o = step(
            &app,
            &w.staff_token,
            &format!("{base}/lines/{line}/offers"),
            json!({"providers": [w.orgs[key]]}),
        )
        .await;
        offers.push(offer_of(&o, line, &w.orgs[key]));
    }
    for (token, offer) in [(&prov1, &offers[0]), (&prov4, &offers[1])] {
        step(
            &app,
            token,
            &format!("{base}/offers/{offer}/respond"),
            json!({"answer": "accepted"}),
        )
        .await;
        step(
            &app,
            &w.staff_token,
            &format!("{base}/offers/{offer}/award"),
            json!({}),
        )
        .await;
    }
    step(
        &app,
        &prov1,
        &format!("{base}/lines/0/start"),
        json!({"date": "2026-12-04"}),
    )
    .await;
    let (_, body) = refused(&app, &w.staff_token, &format!("{base}/complete"), json!({})).await;
    assert_eq!(body["errors"][0]["field"], json!("status"));
    // Bad line indexes are named as `line`.
    for bad in ["-1", "18446744073709551616", "abc"] {
        let (status, body) = app
            .post_json(
                &prov1,
                &format!("{base}/lines/{bad}/start"),
                &json!({"date": "2026-12-04"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(body["errors"][0]["field"], json!("line"));
    }
    // prov1 acting on prov4's line is refused, and the refusal is audited.
    let (status, _) = app
        .post_json(
            &prov1,
            &format!("{base}/lines/1/start"),
            &json!({"date": "2026-12-04"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    step(
        &app,
        &prov4,
        &format!("{base}/lines/1/start"),
        json!({"date": "2026-12-05"}),
    )
    .await;
    step(&app, &w.staff_token, &format!("{base}/complete"), json!({})).await;
    let admin = sign_in(&app, crate::common::ADMIN_EMAIL, PASSWORD).await;
    let (_, html) = admin
        .page("/admin/audit?action=order.start&outcome=refused")
        .await;
    assert!(html.contains(&id), "refused start audited");
    let (_, html) = admin
        .page("/admin/audit?action=order.complete&outcome=refused")
        .await;
    assert!(html.contains(&id), "refused completion audited");
}

#[tokio::test]
async fn a_declined_provider_loses_the_order_its_thread_and_its_documents() {
    use crate::coordination::{link, sample_pdf, upload_ok};
    let app = spawn_app().await;
    let w = world(&app).await;
    let prov1 = w.provider_token.clone();
    let prov3 = provider_token(&app, &w.orgs, "prov3").await;
    let id = submit(&app, &w.fac3_token, &w.orgs, "order-014").await;
    let base = format!("/api/v1/orders/{id}");
    eligible(&app, &w.staff_token, &id).await;
    let offered = step(
        &app,
        &w.staff_token,
        &format!("{base}/lines/0/offers"),
        json!({"providers": [w.orgs["prov1"], w.orgs["prov3"]]}),
    )
    .await;
    let (o1, o3) = (
        offer_of(&offered, 0, &w.orgs["prov1"]),
        offer_of(&offered, 0, &w.orgs["prov3"]),
    );
    // Each provider talks in its own thread and shares a document there.
    let thread1 = format!("provider:{}", w.orgs["prov1"]);
    let (status, _) = app
        .post_json(
            &prov1,
            &format!("{base}/messages"),
            &json!({"thread": thread1, "body": "Can start Monday."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let doc1 = upload_ok(&app, &prov1, &id, sample_pdf(), "visit-plan.pdf").await;
    assert_eq!(link(&app, &prov1, &doc1).await.0, StatusCode::CREATED);
    // prov3 never sees prov1's thread or document.
    let (status, _) = app
        .get_json(&prov3, &format!("{base}/messages?thread={thread1}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(link(&app, &prov3, &doc1).await.0, StatusCode::NOT_FOUND);
    // prov1 declines: the order, its thread and its document answer 404 from now on.
    step(
        &app,
        &prov1,
        &format!("{base}/offers/{o1}/respond"),
        json!({"answer": "declined", "reason": "no_capacity"}),
    )
    .await;
    assert_eq!(app.get_json(&prov1, &base).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_json(&prov1, &format!("{base}/messages?thread={thread1}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(link(&app, &prov1, &doc1).await.0, StatusCode::NOT_FOUND);
    // The agency still sees all of it; prov3 carries on.
    assert_eq!(
        app.get_json(&w.staff_token, &format!("{base}/messages?thread={thread1}"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        link(&app, &w.staff_token, &doc1).await.0,
        StatusCode::CREATED
    );
    step(
        &app,
        &w.staff_token,
        &format!("{base}/offers/{o3}/withdraw"),
        json!({}),
    )
    .await;
    assert_eq!(
        app.get_json(&prov3, &base).await.0,
        StatusCode::NOT_FOUND,
        "withdrawn"
    );
}

#[tokio::test]
async fn a_providers_inbox_holds_every_open_offer_however_many_orders_it_sees() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let provider = sign_in(&app, "intake@harborhh.test", PASSWORD).await; // prov1
    // More orders offered to the provider than one page of its orders holds; the
    // oldest one's offer is still open.
    let mut ids = Vec::new();
    for _ in 0..201 {
        let id = submit(&app, &w.fac3_token, &w.orgs, "order-014").await;
        eligible(&app, &w.staff_token, &id).await;
        step(
            &app,
            &w.staff_token,
            &format!("/api/v1/orders/{id}/lines/0/offers"),
            json!({"providers": [w.orgs["prov1"]]}),
        )
        .await;
        ids.push(id);
    }
    let (_, inbox) = provider.page("/inbox").await;
    for id in [&ids[0], &ids[200]] {
        assert!(inbox.contains(id.as_str()), "{id} listed");
    }
    // Answered, an offer leaves the inbox; the rest stay.
    let order = app
        .get_json(&w.provider_token, &format!("/api/v1/orders/{}", ids[0]))
        .await
        .1;
    let offer = offer_of(&order, 0, &w.orgs["prov1"]);
    step(
        &app,
        &w.provider_token,
        &format!("/api/v1/orders/{}/offers/{offer}/respond", ids[0]),
        json!({"answer": "declined", "reason": "no_capacity"}),
    )
    .await;
    let (_, inbox) = provider.page("/inbox").await;
    assert!(!inbox.contains(ids[0].as_str()), "a declined offer leaves");
    assert!(inbox.contains(ids[1].as_str()), "the next oldest stays");
}
