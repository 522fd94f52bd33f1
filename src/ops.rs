//! The operator's commands behind the CLI: prepare a data directory, create the
//! first admin, mint API tokens, verify the audit chain, and run the server.
//!
//! Guarantees: a data directory is initialised completely or reported as failed
//! (master key, store, certificates); commands that need the store refuse an
//! uninitialised directory or a wrong master key with one clear sentence.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};

use crate::backup;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{self, MasterKey};
use crate::documents;
use crate::domain::account::NewUserInput;
use crate::store::audit::{self, Event, Outcome, Verdict};
use crate::store::backups::{self, LastBackup};
use crate::store::checkpoint;
use crate::store::{Store, accounts, sessions};
use crate::tls::{self, TlsMaterial};
use crate::web::{self, AppState};

/// Opens the store of an initialised data directory.
pub fn open_store(cfg: &Config) -> Result<Store> {
    let dir = &cfg.data_dir;
    if !dir.is_dir() {
        bail!("data directory {} does not exist", dir.display());
    }
    if !Store::exists(dir) {
        bail!(
            "{} is not an initialised data directory; start the service once or run `ihms-connect init`",
            dir.display()
        );
    }
    let master = MasterKey::load(&cfg.master_key_path())?;
    Ok(Store::open(dir, &master)?)
}

/// Opens the store, creating the data directory, master key and store on first use.
/// Returns whether it was created now.
pub fn open_or_create_store(cfg: &Config) -> Result<(Store, bool)> {
    let dir = &cfg.data_dir;
    if Store::exists(dir) {
        return Ok((open_store(cfg)?, false));
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    restrict_dir(dir)?;
    let key_path = cfg.master_key_path();
    let master = if key_path.exists() {
        MasterKey::load(&key_path)?
    } else {
        MasterKey::create(&key_path)?
    };
    Ok((Store::create(dir, &master)?, true))
}

fn restrict_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict permissions of {}", dir.display()))
}

pub fn tls_material(cfg: &Config) -> Result<TlsMaterial> {
    match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => Ok(tls::load_configured(cert, key)?),
        _ => Ok(tls::ensure_local(&cfg.data_dir, &cfg.hostnames)?),
    }
}

fn hasher(cfg: &Config) -> Result<crate::auth::password::Hasher> {
    Ok(crate::auth::password::Hasher::new(
        cfg.password_hash_memory_kib,
        cfg.password_hash_iterations,
        1,
    )?)
}

/// `init`: a new data directory with the agency and its first admin.
pub fn init(cfg: &Config, email: &str, name: &str, password_file: &Path) -> Result<()> {
    if Store::exists(&cfg.data_dir) {
        bail!("{} is already initialised", cfg.data_dir.display());
    }
    let password = read_password_file(password_file)?;
    let input = NewUserInput {
        email: email.into(),
        name: name.into(),
        role: "admin".into(),
        organization_id: uuid::Uuid::nil().to_string(),
        password: password.clone(),
        phone: String::new(),
    };
    let new = input.parse().map_err(|errors| {
        let list: Vec<String> = errors
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect();
        anyhow!("invalid admin: {}", list.join("; "))
    })?;
    let hash = hasher(cfg)?.hash_now(&password)?;
    let (store, _) = open_or_create_store(cfg)?;
    accounts::system_bootstrap(&store, &cfg.agency_name, &new, hash, None)?;
    tls_material(cfg)?;
    Ok(())
}

fn read_password_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password).to_string();
    if password.contains(['\n', '\r']) {
        bail!("the password file {} must hold one line", path.display());
    }
    Ok(password)
}

/// `token create`: a new API token for the user with `email`.
pub fn create_token(cfg: &Config, email: &str, label: &str) -> Result<String> {
    let store = open_store(cfg)?;
    let user =
        accounts::user_by_email(&store, email)?.ok_or_else(|| anyhow!("no user has that email"))?;
    if user.disabled {
        bail!("that user is disabled");
    }
    let event = Event::anonymous("token.create", Some("cli".into()), Outcome::Ok);
    Ok(sessions::create_token(&store, user.id, label, event)?)
}

/// `documents export-identity`: the document identity, for the `age` command line.
pub fn export_document_identity(cfg: &Config) -> Result<String> {
    let store = open_store(cfg)?;
    Ok(documents::export_identity(&store)?)
}

/// `documents rotate-link-key`: returns the new key id.
pub fn rotate_link_key(cfg: &Config) -> Result<u32> {
    let store = open_store(cfg)?;
    Ok(documents::rotate_link_key(&store)?)
}

/// `audit verify`: the one-line summary, or an error naming the first bad entry.
pub fn verify_audit(cfg: &Config) -> Result<String> {
    let store = open_store(cfg)?;
    match audit::verify(&store)? {
        Verdict::Intact { entries, head } => Ok(format!(
            "audit chain intact: {entries} entries, head {head}"
        )),
        Verdict::Broken { seq, why } => bail!("audit chain broken at entry {seq}: {why}"),
    }
}

/// A started server, for tests and `serve`.
pub struct Running {
    pub addr: SocketAddr,
    /// The server's state, for in-process tests and benchmarks.
    pub state: Arc<AppState>,
    pub ca_pem: Option<String>,
    pub setup_code: Option<String>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Prepares the data directory, binds, and starts serving in a task.
pub async fn start(
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running> {
    start_with_clock(cfg, Arc::new(SystemClock), shutdown).await
}

/// `start` with the clock that decides document-link expiry (tests move it).
pub async fn start_with_clock(
    cfg: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running> {
    let (store, _) = open_or_create_store(&cfg)?;
    crate::store::orders::backfill_indexes(&store)?;
    let tls = tls_material(&cfg)?;
    let setup_code = if accounts::has_admin(&store)? {
        None
    } else {
        Some(crypto::random_token()?)
    };
    let ca_pem = tls
        .ca_fingerprint
        .as_ref()
        .and_then(|_| tls::ca_pem(&cfg.data_dir).ok());
    let listen = cfg.listen;
    let mut state = AppState::new(store, cfg, clock).map_err(|e| anyhow!(e))?;
    state.cert_days_left = crate::web::health::cert_days_left(&tls.cert_pem);
    state
        .docs
        .clean_orphans(&state.store)
        .context("cannot clean the documents directory")?;
    if let (Some(code), Ok(mut slot)) = (&setup_code, state.setup_code.lock()) {
        *slot = Some(crypto::sha256(code.as_bytes()));
    }
    let (acceptor, addr) = web::bind(
        listen,
        &tls,
        reload_on_hangup(state.cfg.clone()),
        state.cfg.transfer_idle(),
    )
    .await
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow!("cannot listen on {listen}: the address is already in use")
        }
        _ => anyhow!("cannot listen on {listen}: {e}"),
    })?;
    let state = Arc::new(state);
    audit::record(
        &state.store,
        Event::anonymous("service.start", None, Outcome::Ok),
    )?;
    let control =
        backup::control::listen(state.clone()).context("cannot open the control socket")?;
    let timers = backup::schedule::spawn(state.clone(), std::time::Duration::from_secs(60));
    let served = web::serve(state.clone(), acceptor, shutdown);
    let socket = backup::control::socket_path(&state.cfg.data_dir);
    // The control socket and the timers live exactly as long as the server.
    let task = tokio::spawn(async move {
        let result = served.await;
        control.abort();
        timers.abort();
        let _ = std::fs::remove_file(&socket);
        result
    });
    Ok(Running {
        addr,
        state,
        ca_pem,
        setup_code,
        task,
    })
}

/// Certificates re-read from disk each time the process receives SIGHUP; a
/// reload that fails is logged and the current certificate stays in use.
fn reload_on_hangup(cfg: Config) -> impl futures_util::Stream<Item = TlsMaterial> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = signal(SignalKind::hangup()).ok();
    futures_util::stream::unfold((cfg, hangups), |(cfg, mut hangups)| async move {
        loop {
            match hangups.as_mut() {
                Some(h) => {
                    h.recv().await?;
                }
                None => return None,
            }
            match tls_material(&cfg) {
                Ok(m) => {
                    tracing::info!("certificate reloaded");
                    return Some((m, (cfg, hangups)));
                }
                Err(e) => {
                    tracing::error!(error = %e, "certificate reload failed; keeping the current one")
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------
// Backups and checkpoints.

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn describe(m: &backup::Manifest) -> String {
    format!(
        "{} store records, {} documents ({}), {} audit entries",
        m.records(),
        m.documents,
        megabytes(m.document_bytes),
        m.audit_entries
    )
}

/// `backup export`: through the running service's control socket when it runs,
/// else straight from the store. Returns the summary line.
pub fn backup_export(
    cfg: &Config,
    out: &Path,
    recipients: &[String],
    passphrase_file: Option<&Path>,
    quiet: bool,
) -> Result<String> {
    let protect = backup::Protect::choose(recipients, passphrase_file, cfg)?;
    if !cfg.data_dir.is_dir() {
        bail!("data directory {} does not exist", cfg.data_dir.display());
    }
    let manifest = match backup::control::connect(&cfg.data_dir)? {
        Some(stream) => {
            let mut remote = backup::control::request_backup(&stream)?;
            let progress = backup::progress::Reporter::new("backup", remote.estimate, quiet);
            let mut output = backup::Output::create(out)?;
            output.encrypt_from(&protect, &mut remote, &|n| progress.update(n))?;
            let manifest = remote.finish()?;
            output.finish()?;
            progress.finish();
            manifest
        }
        None => {
            let store = open_store(cfg)?;
            let extras = backup::extras(cfg)?;
            let progress =
                backup::progress::Reporter::new("backup", backup::archive::estimate(&store), quiet);
            let manifest =
                match backup::export_store(&store, &extras, out, &protect, &|n| progress.update(n))
                {
                    Ok(manifest) => manifest,
                    Err(e) => {
                        // As the service audits a snapshot that failed, so does this.
                        let failed =
                            Event::anonymous("backup.export", Some("cli".into()), Outcome::Failed);
                        let _ = audit::record(&store, failed);
                        return Err(e.into());
                    }
                };
            progress.finish();
            backup::keep_backup_checkpoint(&store, cfg, &manifest.checkpoint);
            backups::record(
                &store,
                &LastBackup {
                    at_ms: manifest.created_ms,
                    audit_entries: manifest.audit_entries,
                    how: "command".into(),
                },
                Event::anonymous("backup.export", Some("cli".into()), Outcome::Ok)
                    .object(manifest.records()),
            )?;
            manifest
        }
    };
    Ok(format!(
        "backup written to {}: {}",
        out.display(),
        describe(&manifest)
    ))
}

/// The key that opens a backup file, and progress sized to the file.
fn opening(
    file: &Path,
    identity: Option<&Path>,
    passphrase_file: Option<&Path>,
    label: &'static str,
    quiet: bool,
) -> Result<(backup::Unlock, backup::progress::Reporter)> {
    let unlock = backup::Unlock::choose(identity, passphrase_file)?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    Ok((unlock, backup::progress::Reporter::new(label, size, quiet)))
}

/// `backup verify`: the summary line of an intact backup.
pub fn backup_verify(
    file: &Path,
    identity: Option<&Path>,
    passphrase_file: Option<&Path>,
    quiet: bool,
) -> Result<String> {
    let (unlock, progress) = opening(file, identity, passphrase_file, "verify", quiet)?;
    let manifest = backup::restore::verify(file, &unlock, &|n| progress.update(n))?;
    progress.finish();
    Ok(format!(
        "backup {} is intact (format {}, IHMS Connect {}): {}",
        file.display(),
        manifest.format,
        manifest.app_version,
        describe(&manifest)
    ))
}

/// `backup restore`: restores into an empty directory; the summary line.
pub fn backup_restore(
    file: &Path,
    dir: &Path,
    identity: Option<&Path>,
    passphrase_file: Option<&Path>,
    quiet: bool,
) -> Result<String> {
    let (unlock, progress) = opening(file, identity, passphrase_file, "restore", quiet)?;
    let restored = backup::restore::restore(file, &unlock, dir, &|n| progress.update(n))?;
    progress.finish();
    Ok(format!(
        "restored {} into {}: {}; audit chain intact ({} entries with this restore)\nthe master key is {}/master.key and the configuration in force at the backup is {}/{}",
        file.display(),
        dir.display(),
        describe(&restored.manifest),
        restored.audit_entries,
        dir.display(),
        dir.display(),
        backup::restore::CONFIG_COPY,
    ))
}

/// `audit checkpoint`: a signed checkpoint saved in the checkpoint directory
/// (through the running service when it runs). Returns where and what.
pub fn audit_checkpoint(cfg: &Config) -> Result<String> {
    if !cfg.data_dir.is_dir() {
        bail!("data directory {} does not exist", cfg.data_dir.display());
    }
    let cp = match backup::control::connect(&cfg.data_dir)? {
        Some(stream) => backup::control::request_checkpoint(&stream)?,
        None => {
            let store = open_store(cfg)?;
            let cp = {
                let tx = store.read()?;
                checkpoint::make(&store, &tx)?
            };
            backup::write_checkpoint_to(&backup::checkpoint_dir(&store, cfg), &cp)?;
            audit::record(
                &store,
                Event::anonymous("audit.checkpoint", Some("cli".into()), Outcome::Ok)
                    .object(cp.entries),
            )?;
            cp
        }
    };
    Ok(serde_json::to_string_pretty(&cp)?)
}

/// `audit verify --checkpoint FILE`: proves the log extends the saved checkpoint.
pub fn verify_audit_checkpoint(cfg: &Config, file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read checkpoint {}", file.display()))?;
    let cp = checkpoint::parse(&text)
        .map_err(|_| anyhow!("{} is not a checkpoint file", file.display()))?;
    let store = open_store(cfg)?;
    match checkpoint::check(&store, &cp)? {
        checkpoint::CheckpointVerdict::Extends { checkpoint, now } => Ok(format!(
            "audit chain intact and extends the checkpoint: {checkpoint} entries at the checkpoint, {now} now"
        )),
        checkpoint::CheckpointVerdict::Refused(why) => bail!("checkpoint check failed: {why}"),
    }
}

/// `backup keygen`: writes a new age identity (0600) and returns its public key.
pub fn backup_keygen(out: &Path) -> Result<String> {
    use age::secrecy::ExposeSecret;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let identity = age::x25519::Identity::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    let public = identity.to_public().to_string();
    writeln!(file, "# public key: {public}")?;
    writeln!(file, "{}", identity.to_string().expose_secret())?;
    file.sync_all()?;
    Ok(public)
}
