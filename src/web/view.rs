//! Server-rendered pages: templates embedded in the binary, rendered from typed,
//! serializable views. Autoescaping is on for every `.html` template.

use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use poem::web::Html;
use rust_embed::RustEmbed;
use serde::Serialize;

use super::error::AppError;

#[derive(RustEmbed)]
#[folder = "templates/"]
struct TemplateFiles;

#[derive(RustEmbed)]
#[folder = "assets/"]
pub struct Assets;

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn load() -> Result<Self, String> {
        let mut env = Environment::new();
        for name in TemplateFiles::iter() {
            let file =
                TemplateFiles::get(&name).ok_or_else(|| format!("template {name} missing"))?;
            let text = String::from_utf8(file.data.into_owned())
                .map_err(|_| format!("template {name} is not UTF-8"))?;
            env.add_template_owned(name.to_string(), text)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Self { env })
    }

    pub fn names(&self) -> Vec<String> {
        TemplateFiles::iter().map(|n| n.to_string()).collect()
    }

    /// Renders `name` with the page's own view merged over the common layout data.
    pub fn render(
        &self,
        name: &str,
        base: &Base,
        page: impl Serialize,
    ) -> Result<Html<String>, AppError> {
        let ctx = context! { ..Value::from(Serde(&page)), ..Value::from(Serde(base)) };
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map(Html)
            .map_err(|e| AppError::Internal(format!("template {name}: {e:#}")))
    }
}

/// What the layout needs on every page.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Base {
    pub title: String,
    pub agency_name: String,
    pub user: Option<UserView>,
    pub csrf: String,
    pub active: &'static str,
    pub notice: Option<String>,
    /// Offers awaiting a provider user's answer (the inbox badge).
    pub inbox_count: usize,
    /// Agency users: accounts waiting for them (nav and dashboard badges).
    pub queues: QueueCounts,
    /// Admins: an operational problem to act on (a failed scheduled backup).
    pub ops_alert: Option<String>,
}

/// Sign-ups awaiting approval and deletion requests awaiting an admin (counts only).
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct QueueCounts {
    pub signups: usize,
    pub deletions: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub role_label: &'static str,
    pub org_name: String,
}

#[derive(Serialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// Formats epoch milliseconds as `2026-12-03 14:05 UTC`.
pub fn when(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// RFC 3339 for the API.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A wait as a person reads it: "1 second", "40 seconds", "15 minutes".
pub fn wait_text(wait: std::time::Duration) -> String {
    let secs = wait.as_secs().max(1);
    match secs {
        1 => "1 second".into(),
        2..=119 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}
