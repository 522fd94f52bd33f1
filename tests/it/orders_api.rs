//! Orders through the JSON API: every fixture order submitted by its facility,
//! visibility checked for every user, every invalid fixture refused by field.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{fixture, order_body, spawn_app, world};

async fn all_ids(app: &crate::common::App, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = "/api/v1/orders?limit=7".to_string();
    loop {
        let (status, page) = app.get_json(token, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["items"].as_array().expect("items") {
            ids.push(item["id"].as_str().expect("id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orders?limit=7&cursor={c}"),
            None => break,
        }
    }
    ids
}

#[tokio::test]
async fn facility_users_submit_fixture_orders_and_each_party_sees_only_its_own() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let orders = fixture("discharge-orders.json");
    let mut by_facility: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut numbers = std::collections::HashSet::new();
    for order in orders.as_array().expect("orders") {
        let key = order["referring_facility"].as_str().expect("key");
        let token = match key {
            "fac2" => &w.fac2_token,
            "fac3" => &w.fac3_token,
            _ => &w.staff_token, // staff enter orders on behalf of other facilities
        };
        let (status, body) = app
            .post_json(token, "/api/v1/orders", &order_body(order, &w.orgs))
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{} {body}",
            order["fixture_id"]
        );
        assert!(body["number"].as_str().expect("number").starts_with("DO-"));
        assert!(
            numbers.insert(body["number"].as_str().expect("n").to_string()),
            "numbers are unique"
        );
        by_facility
            .entry(key.to_string())
            .or_default()
            .push(body["id"].as_str().expect("id").to_string());
    }
    let total = orders.as_array().expect("orders").len();

    // Staff see everything, newest first, across pages.
    let staff = all_ids(&app, &w.staff_token).await;
    assert_eq!(staff.len(), total);
    let mut created: Vec<String> = by_facility.values().flatten().cloned().collect();
    created.sort();
    let mut seen = staff.clone();
    seen.sort();
    assert_eq!(seen, created);

    // Facility users see exactly their facility's orders.
    for (token, key) in [(&w.fac2_token, "fac2"), (&w.fac3_token, "fac3")] {
        let mut mine = all_ids(&app, token).await;
        mine.sort();
        let mut expected = by_facility[key].clone();
        expected.sort();
        assert_eq!(mine, expected, "{key} list");
    }
    // A provider with no offers sees nothing.
    assert!(all_ids(&app, &w.provider_token).await.is_empty());

    // Details: own orders open; every foreign id answers 404 like a missing one.
    for (key, ids) in &by_facility {
        for id in ids {
            for (token, own) in [
                (&w.fac2_token, "fac2"),
                (&w.fac3_token, "fac3"),
                (&w.provider_token, "-"),
            ] {
                let (status, body) = app.get_json(token, &format!("/api/v1/orders/{id}")).await;
                if key == own {
                    assert_eq!(status, StatusCode::OK);
                    assert_eq!(body["id"], json!(id));
                    assert_eq!(body["status"], json!("submitted"));
                    assert!(body["patient"]["last_name"].is_string());
                } else {
                    assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "{own} must not see {key}'s order"
                    );
                    assert!(!body.to_string().contains("patient"));
                }
            }
            let (status, _) = app
                .get_json(&w.staff_token, &format!("/api/v1/orders/{id}"))
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    for bogus in [
        "00000000-0000-7000-8000-000000000000",
        "not-an-id",
        "..%2F..%2Fetc",
    ] {
        let (status, _) = app
            .get_json(&w.staff_token, &format!("/api/v1/orders/{bogus}"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn an_order_reads_back_normalized_with_its_fields() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let mut order = order_body(&fixture("discharge-orders.json")[1], &w.orgs); // order-002, fac4, medicare
    order["diagnoses"][0]["code"] = json!("e119");
    let (status, created) = app
        .post_json(&w.staff_token, "/api/v1/orders", &order)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, got) = app
        .get_json(
            &w.staff_token,
            &format!("/api/v1/orders/{}", created["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["number"], created["number"]);
    assert_eq!(got["diagnoses"][0]["code"], json!("E11.9"));
    assert_eq!(got["patient"]["first_name"], order["patient"]["first_name"]);
    assert_eq!(got["insurance"][0]["member_id"], json!("4E81FN6RN23"));
    assert_eq!(got["services"][0]["kind"], json!("home_health"));
    assert_eq!(got["referring_facility"], order["referring_facility"]);
    assert!(got["created_at"].as_str().expect("created").ends_with('Z'));
}

#[tokio::test]
async fn facility_users_cannot_file_for_another_facility_and_providers_cannot_file() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture("discharge-orders.json")[0].clone(); // fac2
    // fac3's user naming fac2 is refused, naming the field.
    let (status, body) = app
        .post_json(
            &w.fac3_token,
            "/api/v1/orders",
            &order_body(&order, &w.orgs),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], json!("referring_facility"));
    // Omitting it files for the user's own facility.
    let mut own = order.clone();
    own.as_object_mut()
        .expect("obj")
        .remove("referring_facility");
    let (status, created) = app.post_json(&w.fac2_token, "/api/v1/orders", &own).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, got) = app
        .get_json(
            &w.fac2_token,
            &format!("/api/v1/orders/{}", created["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(got["referring_facility"], json!(w.orgs["fac2"]));
    // Staff must name an existing referring facility (a provider's id is refused).
    let mut wrong = order.clone();
    wrong["referring_facility"] = json!(w.orgs["prov1"]);
    let (status, body) = app
        .post_json(&w.staff_token, "/api/v1/orders", &wrong)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], json!("referring_facility"));
    // Providers cannot submit at all.
    let (status, _) = app
        .post_json(
            &w.provider_token,
            "/api/v1/orders",
            &order_body(&order, &w.orgs),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_invalid_fixture_is_refused_naming_its_field_and_nothing_is_stored() {
    let app = spawn_app().await;
    let w = world(&app).await;
    for case in fixture("invalid-orders.json").as_array().expect("cases") {
        let field = case["field"].as_str().expect("field");
        let (status, body) = app
            .post_json(
                &w.staff_token,
                "/api/v1/orders",
                &order_body(&case["order"], &w.orgs),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{field} not named in {fields:?}");
        // No PHI echoed back in the error.
        let text = body.to_string();
        let last = case["order"]["patient"]["last_name"].as_str().unwrap_or("");
        if !last.is_empty() {
            assert!(!text.contains(last), "error echoed a patient name");
        }
    }
    let (_, page) = app.get_json(&w.staff_token, "/api/v1/orders").await;
    assert_eq!(page["items"], json!([]), "nothing stored");
}

#[tokio::test]
async fn api_errors_are_problem_json_and_wrong_types_name_their_field() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let mut order = order_body(&fixture("discharge-orders.json")[2], &w.orgs);
    order["services"][0]["items"][0]["quantity"] = json!("lots");
    let resp = app
        .client()
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&w.staff_token)
        .json(&order)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body["errors"][0]["field"],
        json!("services[0].items[0].quantity")
    );

    // No token, a bad token, and malformed JSON.
    let resp = app
        .client()
        .get(app.url("/api/v1/orders"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (status, _) = app.get_json("ihms_forged", "/api/v1/orders").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = app
        .client()
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&w.staff_token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Non-admins cannot create users or organizations.
    let (status, _) = app
        .post_json(
            &w.staff_token,
            "/api/v1/organizations",
            &json!({"name": "X", "kind": "dme"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lists_filter_by_status_and_page_with_cursors() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let orders = fixture("discharge-orders.json");
    let mut created = Vec::new();
    for order in orders.as_array().expect("orders").iter().take(5) {
        let (_, body) = app
            .post_json(
                &w.staff_token,
                "/api/v1/orders",
                &order_body(order, &w.orgs),
            )
            .await;
        created.push(body["id"].as_str().expect("id").to_string());
    }
    let (_, page) = app.get_json(&w.staff_token, "/api/v1/orders?limit=2").await;
    let first: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        first,
        vec![created[4].as_str(), created[3].as_str()],
        "newest first"
    );
    let (_, last) = app.get_json(&w.staff_token, "/api/v1/orders?limit=5").await;
    assert!(last["next_cursor"].is_null(), "no cursor on the last page");
    let (_, none) = app
        .get_json(&w.staff_token, "/api/v1/orders?status=completed")
        .await;
    assert_eq!(none["items"], json!([]));
    let (_, sub) = app
        .get_json(&w.staff_token, "/api/v1/orders?status=submitted&limit=50")
        .await;
    assert_eq!(sub["items"].as_array().expect("items").len(), 5);
    let (status, body) = app
        .get_json(&w.staff_token, "/api/v1/orders?status=bogus")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], json!("status"));
}

#[tokio::test]
async fn agency_users_list_organizations_with_their_ids_and_others_cannot() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let (status, body) = app.get_json(&w.staff_token, "/api/v1/organizations").await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().expect("items");
    assert!(
        items
            .iter()
            .any(|o| o["id"] == json!(w.orgs["fac1"]) && o["kind"] == json!("referring_facility"))
    );
    let prov4 = items
        .iter()
        .find(|o| o["id"] == json!(w.orgs["prov4"]))
        .expect("prov4");
    assert!(
        prov4["profile"]["hcpcs"]
            .as_array()
            .expect("hcpcs")
            .contains(&json!("E0260")),
        "directory kept from the fixture"
    );
    let (status, _) = app.get_json(&w.fac2_token, "/api/v1/organizations").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
