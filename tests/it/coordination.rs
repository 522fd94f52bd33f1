//! Helpers for the conversation and document tests: fixture orders, provider access,
//! uploads and links through the API, multipart posts from a browser session.

use std::collections::HashMap;
use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    App, Browser, PASSWORD, World, create_user, fixture, input_value, json_of, order_body, shared,
    sign_in,
};

/// The first fixture order of facility `key`, submitted by `token`; returns its id.
pub async fn fixture_order(
    app: &App,
    token: &str,
    orgs: &HashMap<String, String>,
    key: &str,
) -> String {
    let orders = fixture("discharge-orders.json");
    let order = orders
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["referring_facility"] == key)
        .expect("a fixture order of that facility");
    let (status, body) = app
        .post_json(token, "/api/v1/orders", &order_body(order, orgs))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_string()
}

/// Grants (only) these provider organizations access to an order, as the offer
/// workflow will.
pub fn set_provider_access(app: &App, order: &str, providers: &[&str]) {
    let ids = providers
        .iter()
        .map(|p| uuid::Uuid::parse_str(p).expect("org id"))
        .collect();
    let note = ihms_connect::store::audit::Event::anonymous(
        "test.provider_access",
        None,
        ihms_connect::store::audit::Outcome::Ok,
    );
    ihms_connect::store::orders::system_set_provider_access(
        &app.state().store,
        uuid::Uuid::parse_str(order).expect("order id"),
        ids,
        note,
    )
    .expect("provider access");
}

pub fn sample_pdf() -> Vec<u8> {
    std::fs::read(shared("fixtures/sample-referral.pdf")).expect("sample pdf")
}

/// Uploads `bytes` named `filename` to `order` through the API, with `kind` and any
/// extra text fields.
pub async fn upload(
    app: &App,
    token: &str,
    order: &str,
    bytes: Vec<u8>,
    filename: &str,
    kind: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().text("kind", kind.to_string());
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string());
    form = form.part("file", part);
    json_of(
        app.client()
            .post(app.url(&format!("/api/v1/orders/{order}/documents")))
            .bearer_auth(token)
            .multipart(form),
    )
    .await
}

/// Uploads and expects success; returns the document id.
pub async fn upload_ok(
    app: &App,
    token: &str,
    order: &str,
    bytes: Vec<u8>,
    filename: &str,
) -> String {
    let (status, body) = upload(app, token, order, bytes, filename, "face_sheet", &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_string()
}

/// A fresh download link through the API: (status, absolute URL or "").
pub async fn link(app: &App, token: &str, doc: &str) -> (StatusCode, String) {
    let (status, body) = app
        .post_json(token, &format!("/api/v1/documents/{doc}/links"), &json!({}))
        .await;
    let url = body["url"].as_str().map(|u| app.url(u)).unwrap_or_default();
    (status, url)
}

/// GETs `url` with a bearer token: status, headers and the whole body (or the error
/// that cut it short).
pub async fn fetch(
    app: &App,
    token: &str,
    url: &str,
) -> (
    StatusCode,
    reqwest::header::HeaderMap,
    Result<Vec<u8>, String>,
) {
    let resp = app
        .client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| e.to_string());
    (status, headers, body)
}

/// Every file under the data directory's documents folder.
pub fn document_files(app: &App) -> Vec<PathBuf> {
    let dir = app.cfg.data_dir.join("documents");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("documents dir")
        .map(|e| e.expect("entry").path())
        .collect();
    out.sort();
    out
}

/// An API token for a new provider user at the fixture organization `key`.
pub async fn provider_token(app: &App, w: &World, key: &str) -> String {
    let email = format!("intake@{key}.test");
    create_user(app, &email, "provider_user", &w.orgs[key]).await;
    sign_in(app, &email, PASSWORD).await.api_token().await
}

impl Browser {
    /// Posts a multipart form the way the order page does: the CSRF token first, then
    /// `fields`, then an optional file part `(filename, bytes)`.
    pub async fn multipart(
        &self,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, Vec<u8>)>,
    ) -> reqwest::Response {
        let (_, html) = self.page(form_page).await;
        let csrf = input_value(&html, "csrf").expect("csrf field");
        self.multipart_with_csrf(&csrf, action, fields, file).await
    }

    pub async fn multipart_with_csrf(
        &self,
        csrf: &str,
        action: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, Vec<u8>)>,
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new().text("csrf", csrf.to_string());
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        if let Some((name, bytes)) = file {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            );
        }
        self.client
            .post(self.url(action))
            .multipart(form)
            .send()
            .await
            .expect("post")
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| v.to_str().expect("ascii header").to_string())
        .unwrap_or_default()
}

/// Runs `ihms-connect documents <command> --data-dir <the app's>` (the app must be
/// stopped) and returns its standard output.
pub fn documents_cli(app: &App, command: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ihms-connect"))
        .args(["documents", command, "--data-dir"])
        .arg(&app.cfg.data_dir)
        .env_remove("IHMS_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}
