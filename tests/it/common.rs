//! `spawn_app()` and helpers shared by the integration tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ihms_connect::auth::totp;
use ihms_connect::clock::{Clock, OffsetClock};
use ihms_connect::config::Config;
use ihms_connect::ops;
use ihms_connect::web::AppState;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "ada.admin@ihms.test";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn shared(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(path)
}

pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(shared(&format!("fixtures/{name}"))).expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}

/// A configuration for tests: temp data dir, port 0, cheap password hashing.
pub fn test_config(dir: &TempDir) -> Config {
    Config {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        password_hash_memory_kib: 64,
        password_hash_iterations: 1,
        ..Config::default()
    }
}

/// A client that trusts only `ca_pem`, does not follow redirects, and keeps cookies
/// when asked.
pub fn ca_client(ca_pem: &[u8], cookies: bool) -> Client {
    let ca = reqwest::Certificate::from_pem(ca_pem).expect("ca");
    Client::builder()
        .tls_certs_only([ca])
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .build()
        .expect("client")
}

/// Each enrolled user's TOTP secret and last used step, by email.
pub type Authenticators = Arc<Mutex<HashMap<String, (Vec<u8>, u64)>>>;

pub struct App {
    pub base: String,
    pub ca_pem: String,
    pub admin_token: String,
    pub cfg: Config,
    pub dir: TempDir,
    /// Decides when document links expire; tests move it forward.
    pub clock: Arc<OffsetClock>,
    /// The running server's state (None once stopped).
    pub state: Option<Arc<AppState>>,
    /// Each enrolled user's TOTP secret and the last step a code was used for, so
    /// `sign_in` can answer the code step like an authenticator app.
    pub totp: Authenticators,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> App {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(&dir);
    tweak(&mut cfg);
    let pw = dir.path().join("admin-password");
    std::fs::write(&pw, PASSWORD).expect("write password");
    ops::init(&cfg, ADMIN_EMAIL, "Ada Admin", &pw).expect("init");
    let admin_token = ops::create_token(&cfg, ADMIN_EMAIL, "tests").expect("token");
    start(cfg, dir, admin_token, Default::default()).await
}

/// Starts a server on an existing data directory (`cfg.data_dir`, inside `dir`).
pub async fn start(cfg: Config, dir: TempDir, admin_token: String, totp: Authenticators) -> App {
    let (tx, rx) = oneshot::channel::<()>();
    let clock = Arc::new(OffsetClock::default());
    let running = ops::start_with_clock(cfg.clone(), clock.clone(), async {
        let _ = rx.await;
    })
    .await
    .expect("start");
    let ca_pem = running.ca_pem.clone().unwrap_or_default();
    App {
        base: format!("https://localhost:{}", running.addr.port()),
        ca_pem,
        admin_token,
        cfg,
        dir,
        clock,
        state: Some(running.state),
        totp,
        shutdown: Some(tx),
        task: Some(running.task),
    }
}

impl App {
    /// A client that trusts only this server's CA, keeps cookies and does not
    /// follow redirects (so tests see them).
    pub fn client(&self) -> Client {
        ca_client(self.ca_pem.as_bytes(), true)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server and waits for it to finish (the store is closed after).
    pub async fn stop(&mut self) {
        self.state = None;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the server and starts it again on the same data directory.
    pub async fn restart(mut self) -> App {
        self.stop().await;
        let App {
            cfg,
            dir,
            admin_token,
            totp,
            ..
        } = self;
        start(cfg, dir, admin_token, totp).await
    }

    /// The running server's state, for `system_` helpers.
    pub fn state(&self) -> &AppState {
        self.state.as_deref().expect("server running")
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        json_of(
            self.client()
                .post(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    pub async fn get_json(&self, token: &str, path: &str) -> (StatusCode, Value) {
        json_of(self.client().get(self.url(path)).bearer_auth(token)).await
    }

    /// A TOTP code for `email` that the server will take now: for a step later than
    /// the last one used, moving the test clock on when both steps in reach are spent.
    pub fn next_code(&self, email: &str) -> String {
        const STEP_MS: u64 = totp::STEP_SECS * 1000;
        let mut known = self.totp.lock().expect("totp lock");
        let (secret, last) = known.get_mut(email).expect("enrolled through sign_in");
        loop {
            let now = self.clock.now_ms() as u64 / STEP_MS;
            let step = (*last + 1).max(now);
            if step <= now + 1 {
                *last = step;
                return totp::code_at(secret, (step * STEP_MS) as i64).expect("code");
            }
            self.clock
                .advance(std::time::Duration::from_millis(STEP_MS));
        }
    }

    /// Remembers a secret read from the enrolment page; gives the code to confirm it.
    pub fn learn_secret(&self, email: &str, secret: Vec<u8>) -> String {
        let mut known = self.totp.lock().expect("totp lock");
        let last = known.get(email).map(|(_, l)| *l).unwrap_or(0);
        known.insert(email.to_string(), (secret, last));
        drop(known);
        self.next_code(email)
    }
}

/// The TOTP secret shown (base32, in groups) on an enrolment page.
pub fn secret_on_page(html: &str) -> Vec<u8> {
    let at = html.find("id=\"totp-secret\">").expect("secret shown") + "id=\"totp-secret\">".len();
    let end = html[at..].find('<').expect("end") + at;
    let b32: String = html[at..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    totp_rs::Secret::try_from_base32(&b32)
        .expect("base32")
        .as_bytes()
        .to_vec()
}

/// The recovery codes shown once after enrolment.
pub fn recovery_codes_on_page(html: &str) -> Vec<String> {
    html.split("<code class=\"recovery-code\">")
        .skip(1)
        .filter_map(|s| s.split('<').next().map(str::to_string))
        .collect()
}

/// Enrols a second factor for the signed-in `browser` as a person would: reads the
/// key from the page, confirms with a code; gives the recovery codes.
pub async fn enrol_second_factor(
    app: &App,
    browser: &Browser,
    email: &str,
    password: &str,
) -> Vec<String> {
    let (status, html) = browser.page("/account/second-factor").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<svg"), "QR code shown as inline SVG");
    let code = app.learn_secret(email, secret_on_page(&html));
    let resp = browser
        .submit(
            "/account/second-factor",
            "/account/second-factor/confirm",
            &[("password", password), ("code", &code)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "second factor confirmed");
    let codes = recovery_codes_on_page(&resp.text().await.expect("html"));
    assert_eq!(codes.len(), 10);
    codes
}

/// Sends a request and returns its status and JSON body (null when not JSON).
pub async fn json_of(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("send");
    let status = resp.status();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

/// The value of `<input ... name="NAME" value="...">` in a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')?;
    Some(
        html[start..start + end]
            .replace("&#x2f;", "/")
            .replace("&#x3d;", "="),
    )
}

/// A browser-like session for one user.
pub struct Browser {
    pub client: Client,
    pub base: String,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let resp = self.client.get(self.url(path)).send().await.expect("get");
        (resp.status(), resp.text().await.expect("text"))
    }

    /// Posts a form with the CSRF token taken from `form_page`.
    pub async fn submit(
        &self,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let (_, html) = self.page(form_page).await;
        let csrf = input_value(&html, "csrf").expect("csrf field");
        let mut body: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        body.extend_from_slice(fields);
        self.client
            .post(self.url(action))
            .form(&body)
            .send()
            .await
            .expect("post")
    }

    /// Creates an API token through the account page and returns it.
    pub async fn api_token(&self) -> String {
        let resp = self
            .submit("/account/tokens", "/account/tokens", &[("name", "tests")])
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let html = resp.text().await.expect("text");
        let start =
            html.find("id=\"new-token\">").expect("token shown") + "id=\"new-token\">".len();
        let end = html[start..].find('<').expect("end");
        html[start..start + end].trim().to_string()
    }
}

pub async fn sign_in(app: &App, email: &str, password: &str) -> Browser {
    let browser = Browser {
        client: app.client(),
        base: app.base.clone(),
    };
    sign_in_with(app, browser, email, password).await
}

/// `sign_in` from a browser set up by the caller (its own User-Agent, say).
pub async fn sign_in_with(app: &App, browser: Browser, email: &str, password: &str) -> Browser {
    let resp = browser
        .submit(
            "/signin",
            "/signin",
            &[("email", email), ("password", password)],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "sign-in of {email} should redirect"
    );
    // Agency staff and admins need a second factor: enrolled at the first sign-in,
    // asked for at every later one.
    match resp.headers()["location"].to_str().expect("location") {
        "/signin/code" => {
            let code = app.next_code(email);
            let resp = browser
                .submit("/signin/code", "/signin/code", &[("code", &code)])
                .await;
            assert_eq!(resp.status(), StatusCode::SEE_OTHER, "code step of {email}");
        }
        "/account/second-factor" => {
            enrol_second_factor(app, &browser, email, password).await;
        }
        _ => {}
    }
    browser
}

/// The organizations of `organizations.json`, created through the API; returns key → id.
pub async fn create_fixture_orgs(app: &App) -> HashMap<String, String> {
    let orgs = fixture("organizations.json");
    let mut ids = HashMap::new();
    for group in ["referring_facilities", "providers"] {
        for org in orgs[group].as_array().expect("list") {
            let (status, body) = app
                .post_json(&app.admin_token, "/api/v1/organizations", org)
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.insert(
                org["key"].as_str().expect("key").to_string(),
                body["id"].as_str().expect("id").to_string(),
            );
        }
    }
    ids
}

pub async fn create_user(app: &App, email: &str, role: &str, org_id: &str) -> String {
    let body = json!({ "email": email, "name": format!("User {email}"), "role": role,
                       "organization_id": org_id, "password": PASSWORD });
    let (status, body) = app
        .post_json(&app.admin_token, "/api/v1/users", &body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_string()
}

/// A fixture order with its facility key replaced by the organization id.
pub fn order_body(order: &Value, orgs: &HashMap<String, String>) -> Value {
    let mut body = order.clone();
    let key = order["referring_facility"].as_str().expect("facility key");
    body["referring_facility"] = json!(orgs[key]);
    body
}

/// The world most tests need: fixture orgs, users at two facilities, a provider
/// and a staff user, each with an API token.
pub struct World {
    pub orgs: HashMap<String, String>,
    pub fac2_token: String,
    pub fac3_token: String,
    pub provider_token: String,
    pub staff_token: String,
}

pub async fn world(app: &App) -> World {
    let orgs = create_fixture_orgs(app).await;
    let agency = agency_id(app).await;
    create_user(
        app,
        "planner@gulfcoast.test",
        "facility_user",
        &orgs["fac2"],
    )
    .await;
    create_user(
        app,
        "planner@pinellasrehab.test",
        "facility_user",
        &orgs["fac3"],
    )
    .await;
    create_user(app, "intake@harborhh.test", "provider_user", &orgs["prov1"]).await;
    create_user(app, "coordinator@ihms.test", "staff", &agency).await;
    let mut tokens = Vec::new();
    for email in [
        "planner@gulfcoast.test",
        "planner@pinellasrehab.test",
        "intake@harborhh.test",
        "coordinator@ihms.test",
    ] {
        tokens.push(sign_in(app, email, PASSWORD).await.api_token().await);
    }
    World {
        orgs,
        fac2_token: tokens[0].clone(),
        fac3_token: tokens[1].clone(),
        provider_token: tokens[2].clone(),
        staff_token: tokens[3].clone(),
    }
}

/// The agency organization's id, read from the admin's user page.
pub async fn agency_id(app: &App) -> String {
    let admin = sign_in(app, ADMIN_EMAIL, PASSWORD).await;
    let (_, html) = admin.page("/admin/users").await;
    // The agency is the organization listed as "(Agency)" in the new-user picker.
    let marker = "(Agency)";
    let at = html.find(marker).expect("agency option");
    let before = &html[..at];
    let vstart = before.rfind("value=\"").expect("option value") + 7;
    let vend = before[vstart..].find('"').expect("end") + vstart;
    before[vstart..vend].to_string()
}

/// Asserts that `dir`, and everything under it, is for its owner alone.
pub fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::symlink_metadata(dir)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "{} is mode {:o}",
        dir.display(),
        mode & 0o777
    );
    if std::fs::symlink_metadata(dir).expect("stat").is_dir() {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            assert_private(&entry.expect("entry").path());
        }
    }
}
