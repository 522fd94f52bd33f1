//! The `ihms-connect` command line: `serve`, `init`, `token create`, `audit verify`,
//! `tls export-ca`, `documents export-identity`, `documents rotate-link-key`,
//! `audit checkpoint` and `backup export|verify|restore|keygen`.
//! Every failure is one line on stderr and a non-zero exit.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ihms_connect::config::{Config, Overrides};
use ihms_connect::{ops, tls};

/// Writes to stdout; a closed pipe (`| head`) is an error on stderr, not a panic.
macro_rules! out {
    () => {
        writeln!(std::io::stdout()).context("cannot write to standard output")?
    };
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*).context("cannot write to standard output")?
    };
}

/// Like `out!` without the line end.
macro_rules! out_part {
    ($($arg:tt)*) => {
        write!(std::io::stdout(), $($arg)*).context("cannot write to standard output")?
    };
}

#[derive(Parser)]
#[command(
    name = "ihms-connect",
    version,
    about = "IHMS Connect: discharge orders, coordinated securely"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Data directory (store, keys, certificates) [default: ./data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (TOML)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTPS service (initialises an empty data directory on first start)
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on [default: 127.0.0.1:8443]
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Initialise a data directory with the agency's first admin, non-interactively
    Init {
        #[command(flatten)]
        common: Common,
        /// The first admin's email
        #[arg(long)]
        admin_email: String,
        /// A file holding the first admin's password (one line)
        #[arg(long, value_name = "FILE")]
        admin_password_file: PathBuf,
        /// The first admin's display name
        #[arg(long, default_value = "Administrator")]
        admin_name: String,
    },
    /// API tokens
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The service's TLS certificates
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// The configuration file
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Stored documents: the age identity and the link-signing keys
    Documents {
        #[command(subcommand)]
        command: DocumentsCommand,
    },
    /// Encrypted backups: export (also while the service runs), verify, restore
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Args, Clone)]
struct Unlock {
    /// An age identity file (AGE-SECRET-KEY-1...) that opens the backup
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// A file holding the passphrase the backup was encrypted with
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// No progress output
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Write an encrypted backup of the store, documents and configuration (works while the service runs)
    Export {
        #[command(flatten)]
        common: Common,
        /// The backup file to write (must not exist)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// An age public key (age1...) to encrypt to; repeat for several [default: backup_recipients from the configuration]
        #[arg(long, value_name = "AGE_PUBLIC_KEY")]
        recipient: Vec<String>,
        /// Encrypt with the passphrase in this file instead
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// No progress output
        #[arg(long)]
        quiet: bool,
    },
    /// Check a backup file completely without restoring it
    Verify {
        /// The backup file
        file: PathBuf,
        #[command(flatten)]
        unlock: Unlock,
    },
    /// Restore a backup into an empty data directory and verify the result
    Restore {
        /// The backup file
        file: PathBuf,
        /// The empty (or new) data directory to restore into
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        unlock: Unlock,
    },
    /// Make a new age key pair for backups: writes the identity file, prints the public key
    Keygen {
        /// Where to write the identity (must not exist); keep it off this machine
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file and print the settings in force
    Check {
        /// The file to check
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DocumentsCommand {
    /// Print the document identity (AGE-SECRET-KEY-...) so `age -d -i` can decrypt a stored file (audited; stop the service first)
    ExportIdentity {
        #[command(flatten)]
        common: Common,
    },
    /// Start signing document links with a new key; links signed with the current key keep working until they expire (stop the service first)
    RotateLinkKey {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it on stdout (stop the service first)
    Create {
        #[command(flatten)]
        common: Common,
        /// The user's email
        #[arg(long)]
        email: String,
        /// A label for the token
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Write the whole log as JSON lines, oldest first (stop the service first)
    Export {
        #[command(flatten)]
        common: Common,
        /// Where to write (default: standard output)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check the hash chain; exit 0 with a summary, or non-zero naming the first bad entry
    Verify {
        #[command(flatten)]
        common: Common,
        /// Also prove the log extends this saved checkpoint (detects removed newest entries and rollbacks)
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Record a signed checkpoint of the chain head now and print it (works while the service runs)
    Checkpoint {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Print the local CA certificate (PEM) so workstations can trust it
    ExportCa {
        #[command(flatten)]
        common: Common,
    },
}

fn config(common: &Common, listen: Option<SocketAddr>) -> Result<Config> {
    Ok(Config::load(&Overrides {
        config_file: common.config.clone(),
        data_dir: common.data_dir.clone(),
        listen,
    })?)
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("IHMS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => std::future::pending::<()>().await,
    }
    tracing::info!("shutting down");
}

async fn serve(cfg: Config) -> Result<()> {
    let running = ops::start(cfg.clone(), shutdown_signal()).await?;
    let host = match running.addr.ip() {
        ip if ip.is_loopback() => "localhost".to_string(),
        ip => ip.to_string(),
    };
    out!(
        "IHMS Connect is listening on https://{}:{}",
        host,
        running.addr.port()
    );
    if let Some(ca) = &running.ca_pem {
        out!("Local CA SHA-256 fingerprint: {}", tls::fingerprint(ca)?);
        out!(
            "Export the CA for workstations with: ihms-connect tls export-ca --data-dir {}",
            cfg.data_dir.display()
        );
    }
    if let Some(code) = &running.setup_code {
        out!();
        out!("No admin exists yet. Create the first admin at:");
        out!("  https://{}:{}/setup", host, running.addr.port());
        out!("with this one-time setup code:");
        out!("  {code}");
        out!("(or stop the service and run `ihms-connect init`)");
    }
    tracing::info!(addr = %running.addr, "listening");
    running.task.await.context("server task failed")??;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { common, listen } => {
            let cfg = config(&common, listen)?;
            init_logging();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(cfg))
        }
        Command::Init {
            common,
            admin_email,
            admin_password_file,
            admin_name,
        } => {
            let cfg = config(&common, None)?;
            ops::init(&cfg, &admin_email, &admin_name, &admin_password_file)?;
            out!(
                "initialised {}; first admin created",
                cfg.data_dir.display()
            );
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    common,
                    email,
                    name,
                },
        } => {
            let cfg = config(&common, None)?;
            out!("{}", ops::create_token(&cfg, &email, &name)?);
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Export { common, out },
        } => {
            let cfg = config(&common, None)?;
            let store = ops::open_store(&cfg)?;
            let count = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    let n = ihms_connect::store::audit::export(&store, &mut w)?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
                None => ihms_connect::store::audit::export(&store, &mut std::io::stdout().lock())?,
            };
            eprintln!("exported {count} audit entries");
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { common, checkpoint },
        } => {
            let cfg = config(&common, None)?;
            match checkpoint {
                Some(file) => out!("{}", ops::verify_audit_checkpoint(&cfg, &file)?),
                None => out!("{}", ops::verify_audit(&cfg)?),
            }
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Checkpoint { common },
        } => {
            let cfg = config(&common, None)?;
            out!("{}", ops::audit_checkpoint(&cfg)?);
            Ok(())
        }
        Command::Backup { command } => backup(command),
        Command::Config {
            command: ConfigCommand::Check { config: file },
        } => {
            let cfg = Config::load(&Overrides {
                config_file: Some(file.clone()),
                ..Overrides::default()
            })?;
            ihms_connect::backup::check_settings(&cfg).context("setting backup_passphrase_file")?;
            out!("{} is valid; settings in force:", file.display());
            out_part!(
                "{}",
                toml::to_string(&cfg).context("cannot show the settings")?
            );
            Ok(())
        }
        Command::Tls {
            command: TlsCommand::ExportCa { common },
        } => {
            let cfg = config(&common, None)?;
            if !cfg.data_dir.is_dir() {
                anyhow::bail!("data directory {} does not exist", cfg.data_dir.display());
            }
            out_part!("{}", tls::ca_pem(&cfg.data_dir)?);
            Ok(())
        }
        Command::Documents {
            command: DocumentsCommand::ExportIdentity { common },
        } => {
            let cfg = config(&common, None)?;
            out!("{}", ops::export_document_identity(&cfg)?);
            Ok(())
        }
        Command::Documents {
            command: DocumentsCommand::RotateLinkKey { common },
        } => {
            let cfg = config(&common, None)?;
            let id = ops::rotate_link_key(&cfg)?;
            out!(
                "document links are now signed with key {id}; links signed with the previous key work until they expire"
            );
            Ok(())
        }
    }
}

fn backup(command: BackupCommand) -> Result<()> {
    match command {
        BackupCommand::Export {
            common,
            out,
            recipient,
            passphrase_file,
            quiet,
        } => {
            let cfg = config(&common, None)?;
            ihms_connect::backup::interrupt::watch()
                .context("cannot listen for Ctrl-C and stop signals")?;
            let summary =
                ops::backup_export(&cfg, &out, &recipient, passphrase_file.as_deref(), quiet)?;
            out!("{summary}");
        }
        BackupCommand::Verify { file, unlock } => {
            out!(
                "{}",
                ops::backup_verify(
                    &file,
                    unlock.identity.as_deref(),
                    unlock.passphrase_file.as_deref(),
                    unlock.quiet
                )?
            );
        }
        BackupCommand::Restore {
            file,
            data_dir,
            unlock,
        } => {
            ihms_connect::backup::interrupt::watch()
                .context("cannot listen for Ctrl-C and stop signals")?;
            out!(
                "{}",
                ops::backup_restore(
                    &file,
                    &data_dir,
                    unlock.identity.as_deref(),
                    unlock.passphrase_file.as_deref(),
                    unlock.quiet
                )?
            );
        }
        BackupCommand::Keygen { out } => out!("{}", ops::backup_keygen(&out)?),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Everything the binary writes (store, keys, certificates, backups, restored
    // data) is for the service account alone, however the shell or unit was set up.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
