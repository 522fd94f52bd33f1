//! `/healthz` (no authentication: status only, nothing about data) and `/metrics`
//! (Prometheus text, answered only to the configured addresses).
//!
//! Guarantees: neither endpoint reveals PHI or per-party data; metrics carry counts
//! and latencies only.

use std::sync::atomic::{AtomicU64, Ordering};

use poem::http::StatusCode;
use poem::{Request, Response, handler};
use serde_json::json;

use super::AppState;
use super::error::AppError;
use super::extract::state;
use crate::domain::Party;
use crate::store::{backups, now_ms, stats};

/// Request counters kept in memory since start.
#[derive(Default)]
pub struct Metrics {
    pub requests: [AtomicU64; 5],
    /// Cumulative latency buckets (ms): 5, 25, 100, 500, 2500, +Inf.
    pub latency: [AtomicU64; 6],
    pub latency_sum_ms: AtomicU64,
    pub signin_failures: AtomicU64,
}

const BUCKETS_MS: [u64; 5] = [5, 25, 100, 500, 2500];

impl Metrics {
    pub fn observe(&self, status: u16, ms: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.latency[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency[5].fetch_add(1, Ordering::Relaxed);
    }
}

/// Days until the served certificate expires, read from its PEM.
pub fn cert_days_left(cert_pem: &str) -> Option<i64> {
    let parsed = pem::parse(cert_pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(parsed.contents()).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    Some((not_after - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400)
}

fn disk_free_bytes(state: &AppState) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(state.store.dir()).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

const DISK_WARN_BYTES: u64 = 1024 * 1024 * 1024;

#[handler]
pub fn healthz(req: &Request) -> poem::Result<Response> {
    let state = state(req)?;
    let store_ok = state.store.read().is_ok();
    let free = disk_free_bytes(&state);
    let cert_days = state.cert_days_left;
    let mut warnings = Vec::new();
    if free.is_some_and(|f| f < DISK_WARN_BYTES) {
        warnings.push("disk space is low");
    }
    if cert_days.is_some_and(|d| d < 30) {
        warnings.push("the certificate expires within 30 days");
    }
    let last_backup = state
        .store
        .read()
        .ok()
        .and_then(|tx| backups::last(&tx).ok().flatten());
    if state.jobs.failure().is_some() {
        warnings.push("the last scheduled backup failed");
    }
    if state.cfg.backup_dir.is_some() {
        let interval = i64::try_from(state.cfg.backup_interval_hours.saturating_mul(3_600_000))
            .unwrap_or(i64::MAX);
        let stale = last_backup
            .as_ref()
            .is_none_or(|b| now_ms() - b.at_ms > interval.saturating_mul(2));
        if stale {
            warnings.push("no recent backup");
        }
    }
    let status = if !store_ok {
        "error"
    } else if warnings.is_empty() {
        "ok"
    } else {
        "warning"
    };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "store": if store_ok { "ok" } else { "unavailable" },
        "disk_free_bytes": free,
        "certificate_days_left": cert_days,
        "last_backup": last_backup.as_ref().map(|b| json!({
            "at": crate::web::view::rfc3339(b.at_ms),
            "how": b.how,
        })),
        "warnings": warnings,
    });
    let code = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(Response::builder()
        .status(code)
        .content_type("application/json")
        .body(body.to_string()))
}

#[handler]
pub fn metrics(req: &Request) -> poem::Result<Response> {
    let state = state(req)?;
    let from = req.remote_addr().as_socket_addr().map(|a| a.ip());
    if !from.is_some_and(|ip| state.cfg.metrics_allow.contains(&ip)) {
        return Err(AppError::NotFound.into());
    }
    let m = &state.metrics;
    let mut out = String::new();
    out.push_str("# HELP ihms_requests_total HTTP requests by status class.\n# TYPE ihms_requests_total counter\n");
    for (i, c) in m.requests.iter().enumerate() {
        out.push_str(&format!(
            "ihms_requests_total{{class=\"{}xx\"}} {}\n",
            i + 1,
            c.load(Ordering::Relaxed)
        ));
    }
    out.push_str("# HELP ihms_request_duration_ms Request latency.\n# TYPE ihms_request_duration_ms histogram\n");
    for (i, b) in BUCKETS_MS.iter().enumerate() {
        out.push_str(&format!(
            "ihms_request_duration_ms_bucket{{le=\"{b}\"}} {}\n",
            m.latency[i].load(Ordering::Relaxed)
        ));
    }
    let count = m.latency[5].load(Ordering::Relaxed);
    out.push_str(&format!(
        "ihms_request_duration_ms_bucket{{le=\"+Inf\"}} {count}\n"
    ));
    out.push_str(&format!(
        "ihms_request_duration_ms_sum {}\n",
        m.latency_sum_ms.load(Ordering::Relaxed)
    ));
    out.push_str(&format!("ihms_request_duration_ms_count {count}\n"));
    out.push_str("# HELP ihms_signin_failures_total Failed sign-ins.\n# TYPE ihms_signin_failures_total counter\n");
    out.push_str(&format!(
        "ihms_signin_failures_total {}\n",
        m.signin_failures.load(Ordering::Relaxed)
    ));
    out.push_str("# HELP ihms_orders Orders by state.\n# TYPE ihms_orders gauge\n");
    let tx = state.store.read().map_err(AppError::from)?;
    for (status, n) in stats::counts(&tx, Party::Agency).map_err(AppError::from)? {
        out.push_str(&format!(
            "ihms_orders{{state=\"{}\"}} {n}\n",
            status.as_str()
        ));
    }
    let age = backups::last(&tx)
        .map_err(AppError::from)?
        .map_or(-1, |b| (now_ms() - b.at_ms).max(0) / 1000);
    out.push_str(&format!("# HELP ihms_backup_age_seconds Age of the newest backup (-1: none yet).\n# TYPE ihms_backup_age_seconds gauge\nihms_backup_age_seconds {age}\n"));
    Ok(Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
