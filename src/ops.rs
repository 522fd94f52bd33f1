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

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{self, MasterKey};
use crate::documents;
use crate::domain::account::NewUserInput;
use crate::store::audit::{self, Event, Outcome, Verdict};
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
    let (acceptor, addr) = web::bind(listen, &tls, reload_on_hangup(state.cfg.clone()))
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
    let task = tokio::spawn(web::serve(state.clone(), acceptor, shutdown));
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
