//! The one configuration struct, loaded once: built-in defaults, then the TOML file,
//! then `IHMS_*` environment variables, then command-line flags. Nothing reads
//! configuration anywhere else; the loaded value is passed down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0}: {1}")]
    File(String, String),
    #[error("setting {0}: {1}")]
    Invalid(&'static str, String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the store, keys and certificates live.
    pub data_dir: PathBuf,
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// Extra DNS names or IP addresses for the generated certificate
    /// (`localhost` and `127.0.0.1` are always included).
    pub hostnames: Vec<String>,
    /// A PEM certificate chain and key to use instead of the generated ones.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The master key file; defaults to `$CREDENTIALS_DIRECTORY/master.key` under
    /// systemd, else `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    pub agency_name: String,
    pub agency_email: String,
    pub agency_phone: String,
    pub agency_fax: String,
    pub session_idle_minutes: u64,
    pub session_absolute_hours: u64,
    /// Failed sign-ins per account (and, times ten, per address) before a cool-down.
    pub signin_max_failures: u32,
    pub signin_cooldown_minutes: u64,
    /// Sign-up requests accepted from one address per hour.
    pub signup_per_address_per_hour: u32,
    /// argon2id cost. Lower it only for tests; the defaults follow OWASP guidance.
    pub password_hash_memory_kib: u32,
    pub password_hash_iterations: u32,
    /// How many password hashes may run at once; further sign-ins wait in a short
    /// queue and are turned away when it is full.
    pub password_hash_concurrency: usize,
    pub page_size: usize,
    /// Addresses allowed to read `/metrics` (everyone else gets 404).
    pub metrics_allow: Vec<std::net::IpAddr>,
    /// An offer with no answer after this many hours shows as overdue.
    pub offer_overdue_hours: u64,
    /// Largest accepted document, in MiB.
    pub upload_limit_mib: u64,
    /// How long a signed document link works after it is issued.
    pub document_link_minutes: u64,
    /// Document uploads and downloads one user may run at once.
    pub transfers_per_user: usize,
    /// An upload that sends nothing, or a download whose client takes nothing, for
    /// this long is ended.
    pub transfer_idle_seconds: u64,
    pub retention_years: u32,
    pub technical_retention_days: u32,
    /// Where scheduled backups are written; none configured means no scheduled
    /// backups (the `backup export` command works either way).
    pub backup_dir: Option<PathBuf>,
    /// age public keys (`age1…`) backups are encrypted to.
    pub backup_recipients: Vec<String>,
    /// A file holding a passphrase to encrypt backups with instead of recipients.
    pub backup_passphrase_file: Option<PathBuf>,
    pub backup_interval_hours: u64,
    /// How many scheduled backups to keep in `backup_dir`.
    pub backup_keep: usize,
    /// Where signed audit checkpoints are saved (default `<data_dir>/checkpoints`;
    /// better on another disk or host).
    pub checkpoint_dir: Option<PathBuf>,
    pub checkpoint_interval_hours: u64,
    /// Require a second factor of every user, not only agency admins and staff.
    pub require_second_factor_for_all: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            hostnames: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            master_key_file: None,
            agency_name: "IHMS".into(),
            agency_email: "intake@ihmsconnect.com".into(),
            agency_phone: "727-212-2304".into(),
            agency_fax: "813-364-7807".into(),
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            signin_max_failures: 5,
            signin_cooldown_minutes: 15,
            signup_per_address_per_hour: 10,
            password_hash_memory_kib: 19 * 1024,
            password_hash_iterations: 2,
            password_hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            page_size: 25,
            offer_overdue_hours: 24,
            metrics_allow: vec![
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            ],
            upload_limit_mib: 25,
            document_link_minutes: 5,
            transfers_per_user: 4,
            transfer_idle_seconds: 60,
            retention_years: 7,
            technical_retention_days: 30,
            backup_dir: None,
            backup_recipients: Vec::new(),
            backup_passphrase_file: None,
            backup_interval_hours: 24,
            backup_keep: 7,
            checkpoint_dir: None,
            checkpoint_interval_hours: 24,
            require_second_factor_for_all: false,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// How long a document transfer may stall before it is ended.
    pub fn transfer_idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.transfer_idle_seconds)
    }

    /// The upload limit in bytes.
    pub fn upload_limit_bytes(&self) -> u64 {
        self.upload_limit_mib.saturating_mul(1024 * 1024)
    }

    pub fn load(over: &Overrides) -> Result<Self, ConfigError> {
        let env_file = std::env::var_os("IHMS_CONFIG").map(PathBuf::from);
        let mut cfg = match over.config_file.as_ref().or(env_file.as_ref()) {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        cfg.apply_env()?;
        if let Some(dir) = &over.data_dir {
            cfg.data_dir = dir.clone();
        }
        if let Some(listen) = over.listen {
            cfg.listen = listen;
        }
        cfg.check()?;
        Ok(cfg)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File(shown.clone(), e.to_string()))?;
        toml::from_str(&text).map_err(|e| ConfigError::File(shown, e.message().to_string()))
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Some(v) = env("IHMS_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("IHMS_LISTEN") {
            self.listen = v.parse().map_err(|_| {
                ConfigError::Invalid(
                    "IHMS_LISTEN",
                    "expected an address like 127.0.0.1:8443".into(),
                )
            })?;
        }
        if let Some(v) = env("IHMS_MASTER_KEY_FILE") {
            self.master_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("IHMS_HOSTNAMES") {
            self.hostnames = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert_file",
                "tls_cert_file and tls_key_file must be given together".into(),
            ));
        }
        if self.session_idle_minutes == 0 || self.session_absolute_hours == 0 {
            return Err(ConfigError::Invalid(
                "session_idle_minutes",
                "session timeouts must be positive".into(),
            ));
        }
        if !(8..=1024 * 1024).contains(&self.password_hash_memory_kib)
            || self.password_hash_iterations == 0
        {
            return Err(ConfigError::Invalid(
                "password_hash_memory_kib",
                "argon2 cost out of range".into(),
            ));
        }
        if self.page_size == 0 || self.page_size > 200 {
            return Err(ConfigError::Invalid(
                "page_size",
                "must be between 1 and 200".into(),
            ));
        }
        if self.upload_limit_mib == 0 || self.upload_limit_mib > 4096 {
            return Err(ConfigError::Invalid(
                "upload_limit_mib",
                "must be between 1 and 4096".into(),
            ));
        }
        if self.transfers_per_user == 0 || self.transfers_per_user > 64 {
            return Err(ConfigError::Invalid(
                "transfers_per_user",
                "must be between 1 and 64".into(),
            ));
        }
        if self.transfer_idle_seconds == 0 || self.transfer_idle_seconds > 3600 {
            return Err(ConfigError::Invalid(
                "transfer_idle_seconds",
                "must be between 1 and 3600".into(),
            ));
        }
        if self.document_link_minutes == 0 || self.document_link_minutes > 24 * 60 {
            return Err(ConfigError::Invalid(
                "document_link_minutes",
                "must be between 1 and 1440".into(),
            ));
        }
        if self.backup_interval_hours == 0 || self.checkpoint_interval_hours == 0 {
            return Err(ConfigError::Invalid(
                "backup_interval_hours",
                "backup and checkpoint intervals must be at least 1 hour".into(),
            ));
        }
        if self.backup_keep == 0 {
            return Err(ConfigError::Invalid(
                "backup_keep",
                "must keep at least 1 backup".into(),
            ));
        }
        if !self.backup_recipients.is_empty() && self.backup_passphrase_file.is_some() {
            return Err(ConfigError::Invalid(
                "backup_recipients",
                "set backup_recipients or backup_passphrase_file, not both".into(),
            ));
        }
        if let Err(e) = crate::backup::parse_recipients(&self.backup_recipients) {
            return Err(ConfigError::Invalid("backup_recipients", e.to_string()));
        }
        if self.backup_dir.is_some()
            && self.backup_recipients.is_empty()
            && self.backup_passphrase_file.is_none()
        {
            return Err(ConfigError::Invalid(
                "backup_dir",
                "scheduled backups need backup_recipients or backup_passphrase_file".into(),
            ));
        }
        if self.retention_years < 6 {
            return Err(ConfigError::Invalid(
                "retention_years",
                "orders are kept at least 6 years".into(),
            ));
        }
        if self.technical_retention_days == 0 {
            return Err(ConfigError::Invalid(
                "technical_retention_days",
                "must be at least 1 day".into(),
            ));
        }
        // Zero would switch sign-in throttling off without saying so.
        if !(1..=1000).contains(&self.signin_max_failures) {
            return Err(ConfigError::Invalid(
                "signin_max_failures",
                "must be between 1 and 1000".into(),
            ));
        }
        if !(1..=7 * 24 * 60).contains(&self.signin_cooldown_minutes) {
            return Err(ConfigError::Invalid(
                "signin_cooldown_minutes",
                "must be between 1 and 10080 (a week)".into(),
            ));
        }
        if self.password_hash_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "password_hash_concurrency",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Where the master key is read from (and, on first start, created).
    pub fn master_key_path(&self) -> PathBuf {
        if let Some(p) = &self.master_key_file {
            return p.clone();
        }
        if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
            let p = PathBuf::from(dir).join("master.key");
            if p.exists() {
                return p;
            }
        }
        self.data_dir.join("master.key")
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
