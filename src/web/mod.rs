//! The HTTPS server: routes, the security headers every response carries, and
//! `serve`, which tests call with a port-0 listener.
//!
//! Guarantees: every response (pages, API, assets, 404s and errors) carries HSTS, a
//! strict CSP (a served document: a stricter, sandboxing one), nosniff,
//! `Referrer-Policy: no-referrer`, `frame-ancestors 'none'`, and `Cache-Control:
//! no-store` (static assets alone may be cached). Errors are mapped
//! to HTML or problem JSON in one place (`error`).

pub mod api;
mod api_documents;
pub mod api_workflow;
mod coordination;
pub mod dashboard;
mod deadline;
pub mod delivery;
pub mod error;
pub mod export;
pub mod extract;
pub mod fit;
pub mod health;
pub mod multipart;
pub mod order_form;
pub mod pages;
pub mod steps;
pub mod submit;
pub mod transfers;
pub mod upload;
pub mod view;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::endpoint::EmbeddedFilesEndpoint;
use poem::http::{HeaderValue, StatusCode};
use poem::listener::{
    Acceptor, AcceptorExt, Listener, RustlsCertificate, RustlsConfig, TcpListener,
};
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, Server, get};

use crate::auth::password::Hasher;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::Config;
use crate::documents::Documents;
use crate::store::Store;
use crate::tls::TlsMaterial;
use error::AppError;
use view::{Assets, Base, Templates};

pub struct AppState {
    /// Shared with the sign-in throttle, which keeps its counts in the store.
    pub store: Arc<Store>,
    pub cfg: Config,
    pub docs: Documents,
    pub templates: Templates,
    pub hasher: Hasher,
    pub throttle: Throttle,
    /// Sign-up requests per source address (keyed by address alone).
    pub signup_throttle: crate::auth::window::WindowLimit,
    /// SHA-256 of the one-time first-admin setup code, while no admin exists.
    pub setup_code: Mutex<Option<[u8; 32]>>,
    pub metrics: health::Metrics,
    /// Days until the served certificate expires (set at start).
    pub cert_days_left: Option<i64>,
    /// State of the timed jobs (scheduled backups).
    pub jobs: crate::backup::schedule::Jobs,
    /// Decides when links, pending sign-ins and TOTP steps expire.
    pub clock: Arc<dyn Clock>,
    /// Document uploads and downloads running now.
    pub transfers: transfers::Transfers,
}

impl AppState {
    pub fn new(store: Store, cfg: Config, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let hasher = Hasher::new(
            cfg.password_hash_memory_kib,
            cfg.password_hash_iterations,
            cfg.password_hash_concurrency,
        )
        .map_err(|e| e.to_string())?;
        let store = Arc::new(store);
        let throttle = Throttle::new(
            store.clone(),
            clock.clone(),
            cfg.signin_max_failures,
            Duration::from_secs(cfg.signin_cooldown_minutes.saturating_mul(60)),
        );
        let signup_throttle = crate::auth::window::WindowLimit::new(
            cfg.signup_per_address_per_hour,
            Duration::from_secs(3600),
        );
        let cfg_transfers = cfg.transfers_per_user;
        let docs = Documents::open(&store, clock.clone(), cfg.document_link_minutes)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            store,
            cfg,
            docs,
            templates: Templates::load()?,
            hasher,
            throttle,
            signup_throttle,
            setup_code: Mutex::new(None),
            metrics: health::Metrics::default(),
            cert_days_left: None,
            jobs: Default::default(),
            clock,
            transfers: transfers::Transfers::new(cfg_transfers),
        })
    }

    pub fn anonymous_base(&self, title: &str) -> Base {
        Base {
            title: title.into(),
            agency_name: self.cfg.agency_name.clone(),
            ..Base::default()
        }
    }
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

fn secure_headers(resp: &mut Response, cacheable: bool) {
    let h = resp.headers_mut();
    let set = |h: &mut poem::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    );
    // A served document keeps its stricter, sandboxing policy.
    if h.get("content-security-policy")
        .is_none_or(|v| v != delivery::DOCUMENT_CSP)
    {
        set(h, "content-security-policy", CSP);
    }
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    if cacheable {
        set(h, "cache-control", "public, max-age=3600");
    } else {
        set(h, "cache-control", "no-store");
        set(h, "pragma", "no-cache");
    }
}

/// Turns any error reaching the page router into an HTML page (or a redirect to
/// sign-in).
fn page_error(state: &AppState, err: poem::Error) -> Response {
    let app = err.downcast_ref::<AppError>();
    if let Some(app) = app {
        error::log_internal(app);
        let to = match app {
            AppError::SignInRequired => Some("/signin"),
            AppError::AwaitingApproval => Some("/signup/pending"),
            _ => None,
        };
        if let Some(to) = to {
            return Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header("location", to)
                .finish();
        }
        if matches!(app, AppError::SecondFactorRequired) {
            return Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header("location", "/account/second-factor")
                .finish();
        }
    }
    let status = app.map_or(err.status(), AppError::status);
    let (heading, message) = match (status.as_u16(), app) {
        (404, _) => (
            "Not found".to_string(),
            "There is nothing here, or you do not have access to it.".to_string(),
        ),
        (500, _) => (
            "Something went wrong".to_string(),
            "The error was logged. Please try again.".to_string(),
        ),
        (_, Some(app)) => (
            status.canonical_reason().unwrap_or("Error").to_string(),
            app.public_message(),
        ),
        _ => (
            status.canonical_reason().unwrap_or("Error").to_string(),
            "The request could not be handled.".into(),
        ),
    };
    let base = state.anonymous_base(&heading);
    let page =
        serde_json::json!({ "status": status.as_u16(), "heading": heading, "message": message });
    let mut resp = match state.templates.render("error.html", &base, page) {
        Ok(html) => html.into_response(),
        Err(_) => heading.into_response(),
    };
    resp.set_status(status);
    if let Some(secs) = app.and_then(AppError::retry_after) {
        resp.headers_mut().insert("retry-after", secs.into());
    }
    resp
}

/// All routes, with state, error mapping and security headers applied.
pub fn app(state: Arc<AppState>) -> impl Endpoint {
    let page_state = state.clone();
    let metrics_state = state.clone();
    let pages = pages::routes().catch_all_error(move |err| {
        let state = page_state.clone();
        async move { page_error(&state, err) }
    });
    let api = api::routes().catch_all_error(|err| async move { error::api_error(err) });
    Route::new()
        .nest("/api/v1", api)
        .at("/healthz", get(health::healthz))
        .at("/metrics", get(health::metrics))
        .nest("/assets", EmbeddedFilesEndpoint::<Assets>::new())
        .nest("/", pages)
        .data(state)
        .around(move |ep, req| {
            let observed = metrics_state.clone();
            async move {
            let path = loggable_path(req.uri().path());
            let method = req.method().clone();
            let started = std::time::Instant::now();
            let cacheable = req.uri().path().starts_with("/assets/");
            let mut resp = ep.get_response(req).await;
            secure_headers(&mut resp, cacheable);
            // Paths carry ids only (never PHI); query strings are not logged.
            let ms = started.elapsed().as_millis() as u64;
            observed.metrics.observe(resp.status().as_u16(), ms);
            tracing::info!(%method, path = %path, status = resp.status().as_u16(), ms, "request");
            Ok(resp)
            }
        })
}

/// A request path fit for the log: route words, ids and numbers are kept; any
/// other segment (which could be something a user typed) becomes `~`.
fn loggable_path(path: &str) -> String {
    const WORDS: &[&str] = &[
        "api",
        "v1",
        "orders",
        "new",
        "admin",
        "users",
        "organizations",
        "audit",
        "account",
        "tokens",
        "sessions",
        "end",
        "end-others",
        "blocked",
        "unblock",
        "signin",
        "signout",
        "setup",
        "healthz",
        "assets",
        "style.css",
        "steps",
        "lines",
        "offers",
        "disable",
        "profile",
        "search",
        "dashboard",
        "inbox",
        "fit",
        "export.csv",
        "review",
        "ask",
        "answer",
        "coverage",
        "coverage-override",
        "complete",
        "cancel",
        "offer",
        "start",
        "respond",
        "reply",
        "withdraw",
        "award",
        "documents",
        "links",
        "content",
        "open",
        "delete",
        "legal-hold",
        "messages",
        "threads",
        "download",
        "signup",
        "signups",
        "pending",
        "approve",
        "reject",
        "deletions",
        "process",
        "email",
        "export",
        "delete-request",
        "password",
        "second-factor",
        "confirm",
        "replace",
        "code",
        "reset-link",
        "reset",
        "second-factor-reset",
    ];
    path.split('/')
        .map(|seg| {
            let keep = seg.is_empty()
                || WORDS.contains(&seg)
                || uuid::Uuid::parse_str(seg).is_ok()
                || (seg.len() <= 6 && seg.bytes().all(|b| b.is_ascii_digit()));
            if keep { seg } else { "~" }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub fn rustls_config(tls: &TlsMaterial) -> RustlsConfig {
    RustlsConfig::new().fallback(
        RustlsCertificate::new()
            .cert(tls.cert_pem.clone().into_bytes())
            .key(tls.key_pem.clone().into_bytes()),
    )
}

/// Binds `listen` (port 0 allowed) with TLS; returns the acceptor and the address
/// actually bound. Each item `reload` yields replaces the certificate for new
/// connections (the service sends one on SIGHUP). A connection idle for `idle`
/// either way is closed (see `deadline`).
pub async fn bind<R>(
    listen: std::net::SocketAddr,
    tls: &TlsMaterial,
    reload: R,
    idle: Duration,
) -> std::io::Result<(impl Acceptor + use<R>, std::net::SocketAddr)>
where
    R: futures_util::Stream<Item = TlsMaterial> + Send + 'static,
{
    use futures_util::StreamExt;
    let first = futures_util::stream::once(std::future::ready(rustls_config(tls)));
    let configs = first.chain(reload.map(|m| rustls_config(&m))).boxed();
    let tcp = TcpListener::bind(listen).into_acceptor().await?;
    let acceptor = deadline::IdleDeadline { inner: tcp, idle }.rustls(configs);
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| std::io::Error::other("no local address"))?;
    Ok((acceptor, addr))
}

/// Runs the server until `shutdown` resolves, then drains requests for up to 10 s.
pub async fn serve(
    state: Arc<AppState>,
    acceptor: impl Acceptor + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    Server::new_with_acceptor(acceptor)
        .name("ihms-connect")
        .run_with_graceful_shutdown(app(state), shutdown, Some(Duration::from_secs(10)))
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_paths_keep_ids_and_route_words_only() {
        assert_eq!(
            super::loggable_path("/api/v1/orders/Eugene%20Okafor"),
            "/api/v1/orders/~"
        );
        assert_eq!(super::loggable_path("/orders/MRN2833706"), "/orders/~");
        assert_eq!(
            super::loggable_path("/reset/kQ2x-Secret_Link_Value"),
            "/reset/~",
            "a reset link's secret is never logged"
        );
        let id = "01a23c3e-a243-771c-8447-d51a56d328fc";
        assert_eq!(
            super::loggable_path(&format!("/orders/{id}/lines/0/start")),
            format!("/orders/{id}/lines/0/start")
        );
    }
}
