//! The daily retention job (domain.md, "Retention and requests").
//!
//! Guarantees: orders completed or cancelled more than `retention_years` ago and not
//! on legal hold are purged with their messages and documents, each in its own
//! audited commit, and their document files shredded after the commit; sessions and
//! expired API tokens older than `technical_retention_days` go in one audited
//! commit; nothing else is touched, and the audit log is kept whole.

use uuid::Uuid;

use crate::config::Config;
use crate::store::{Result, Store, retention};

const DAY_MS: i64 = 86_400_000;

/// What one run removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub orders: usize,
    pub documents: usize,
    pub technical: usize,
}

/// Runs the rules as of `now_ms`; `shred` removes a purged document's file.
pub fn run(store: &Store, cfg: &Config, now_ms: i64, shred: &dyn Fn(Uuid)) -> Result<Report> {
    let years = i64::from(cfg.retention_years);
    // Calendar years vary by a day; a quarter day a year keeps the cut-off on the safe side.
    let order_cutoff = now_ms - years * 365 * DAY_MS - years * DAY_MS / 4;
    let due = {
        let tx = store.read()?;
        retention::due_orders(&tx, order_cutoff)?
    };
    let mut report = Report::default();
    for id in due {
        let Some(docs) = retention::purge_order(store, id, order_cutoff, "retention.purge_order")?
        else {
            continue;
        };
        report.orders += 1;
        report.documents += docs.len();
        for doc in docs {
            shred(doc);
        }
    }
    let technical_cutoff = now_ms - i64::from(cfg.technical_retention_days) * DAY_MS;
    report.technical = retention::purge_technical(store, technical_cutoff)?;
    if report != Report::default() {
        tracing::info!(
            orders = report.orders,
            documents = report.documents,
            technical = report.technical,
            "retention job purged records"
        );
    }
    Ok(report)
}
