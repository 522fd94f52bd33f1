//! The built binary: first start, non-interactive init, tokens, audit verify, and a
//! one-line error with a non-zero exit for every misuse.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::PASSWORD;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ihms-connect"));
    c.env_remove("IHMS_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY");
    c
}

fn run(args: &[&str], data_dir: &Path) -> Output {
    bin()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run")
}

fn cheap_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "password_hash_memory_kib = 64\npassword_hash_iterations = 1\n",
    )
    .expect("config");
    path
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(text.trim().lines().count(), 1, "one line expected: {text}");
    assert!(text.starts_with("error: "), "{text}");
    text
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["init", "--help"],
        vec!["token", "create", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "export", "--help"],
        vec!["config", "check", "--help"],
        vec!["tls", "export-ca", "--help"],
        vec!["documents", "export-identity", "--help"],
        vec!["documents", "rotate-link-key", "--help"],
        vec!["audit", "checkpoint", "--help"],
        vec!["backup", "export", "--help"],
        vec!["backup", "verify", "--help"],
        vec!["backup", "restore", "--help"],
        vec!["backup", "keygen", "--help"],
    ] {
        let out = bin().args(&args).output().expect("run");
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn init_then_token_then_verify_and_init_refuses_an_initialised_dir() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).expect("pw");
    let cfg = cheap_config(tmp.path());
    let init = |data: &Path| {
        bin()
            .args([
                "init",
                "--admin-email",
                "it@agency.test",
                "--admin-password-file",
            ])
            .arg(&pw)
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(data)
            .output()
            .expect("run")
    };
    let out = init(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = init(&data);
    assert!(!again.status.success());
    assert!(stderr_line(&again).contains("already initialised"));

    let token = bin()
        .args([
            "token",
            "create",
            "--email",
            "IT@agency.test",
            "--name",
            "ehr",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run");
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let secret = String::from_utf8_lossy(&token.stdout).trim().to_string();
    assert!(secret.starts_with("ihms_") && secret.len() > 40, "{secret}");
    assert_eq!(
        String::from_utf8_lossy(&token.stdout).lines().count(),
        1,
        "only the token on stdout"
    );

    let unknown = bin()
        .args(["token", "create", "--email", "nobody@agency.test"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run");
    assert!(!unknown.status.success());
    stderr_line(&unknown);

    let verify = run(&["audit", "verify"], &data);
    assert!(verify.status.success());
    let line = String::from_utf8_lossy(&verify.stdout);
    assert!(line.starts_with("audit chain intact:"), "{line}");
    assert_eq!(line.trim().lines().count(), 1);

    let export = run(&["audit", "export"], &data);
    assert!(export.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let summary = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(
        summary.contains(&format!("{} entries", lines.len())),
        "{summary}"
    );
    assert_eq!(lines[0]["seq"], 1);

    let ca = run(&["tls", "export-ca"], &data);
    assert!(ca.status.success());
    assert!(String::from_utf8_lossy(&ca.stdout).starts_with("-----BEGIN CERTIFICATE-----"));
    // Whatever the caller's umask, the data directory is the service account's alone.
    crate::common::assert_private(&data);

    // Output into a pipe nobody reads any more (`| head` that has quit): one clear
    // line and a non-zero exit, never a panic.
    for args in [&["tls", "export-ca"][..], &["audit", "verify"][..]] {
        let mut child = bin()
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert!(!out.status.success(), "{args:?}");
        let line = stderr_line(&out);
        assert!(line.contains("cannot write to standard output"), "{line}");
    }
}

#[test]
fn misuse_is_one_clear_line_and_a_non_zero_exit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("missing");
    let out = run(&["audit", "verify"], &missing);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("does not exist"));
    let out = run(&["token", "create", "--email", "a@b.test"], &missing);
    assert!(!out.status.success());
    stderr_line(&out);

    // A password file that is missing or too short.
    let data = tmp.path().join("data");
    for (file, expect) in [
        (tmp.path().join("nope"), "cannot read password file"),
        (tmp.path().join("short"), "password must be at least 15"),
    ] {
        if file.ends_with("short") {
            std::fs::write(&file, "short\n").expect("write");
        }
        let out = bin()
            .args([
                "init",
                "--admin-email",
                "it@agency.test",
                "--admin-password-file",
            ])
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("run");
        assert!(!out.status.success());
        assert!(stderr_line(&out).contains(expect));
        assert!(!data.join("store.redb").exists(), "nothing half-written");
    }

    // An uninitialised but existing directory.
    std::fs::create_dir_all(&data).expect("mkdir");
    let out = run(&["audit", "verify"], &data);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("not an initialised data directory"));

    // A malformed config file.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "listen = 42\n").expect("write");
    let out = bin()
        .args(["audit", "verify", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("bad.toml"));
}

#[test]
fn a_data_dir_of_an_unknown_version_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let cfg = ihms_connect::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    {
        let (store, _) = ihms_connect::ops::open_or_create_store(&cfg).expect("create");
        store
            .system_raw_put("bootstrap", b"format_version", Some(&99u32.to_be_bytes()))
            .expect("put");
    }
    let out = run(&["audit", "verify"], &data);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("format version 99"));
}

/// Starts `serve` on an empty data dir, reads its banner up to the setup
/// instructions (or until it exits), and returns the child.
fn serve(data: &Path, cfg: &Path, listen: &str) -> (Served, Vec<String>) {
    let mut child = bin()
        .args(["serve", "--listen", listen, "--config"])
        .arg(cfg)
        .arg("--data-dir")
        .arg(data)
        .env("IHMS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    while lines.len() < 9 {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        let done = line.contains("ihms-connect init");
        lines.push(line.trim_end().to_string());
        if done {
            break;
        }
    }
    (Served(child), lines)
}

/// A running `serve` child that is killed if a test fails before stopping it.
struct Served(std::process::Child);

impl std::ops::Deref for Served {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn serve_on_an_empty_dir_prints_setup_answers_health_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let cfg = cheap_config(tmp.path());
    let (mut child, lines) = serve(&data, &cfg, "127.0.0.1:0");
    let all = lines.join("\n");
    assert!(all.contains("listening on https://localhost:"), "{all}");
    assert!(all.contains("SHA-256 fingerprint"), "{all}");
    assert!(
        all.contains("/setup") && all.contains("setup code"),
        "{all}"
    );
    let port: u16 = all
        .split("https://localhost:")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    // The data dir now holds the keys and certificates.
    assert!(data.join("master.key").exists() && data.join("tls/ca.pem").exists());

    // A second instance on the same port fails with one line.
    let (mut second, _) = serve(
        &tmp.path().join("data2"),
        &cfg,
        &format!("127.0.0.1:{port}"),
    );
    let status = second.wait().expect("wait");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut err)
        .expect("read");
    assert!(
        err.contains("error: cannot listen on") && err.contains("already in use"),
        "{err}"
    );

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let ca = std::fs::read(data.join("tls/ca.pem")).expect("ca");
    rt.block_on(async {
        let client = crate::common::ca_client(&ca, false);
        let health = client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), 200);
    });
    // SIGTERM: a graceful, successful exit.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    let mut waited = 0;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
        assert!(waited < 150, "did not stop on SIGTERM");
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn config_check_accepts_the_example_and_names_what_is_wrong() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.example.toml");
    let out = bin()
        .args(["config", "check", "--config"])
        .arg(&example)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen = \"0.0.0.0:8443\""));
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"0.0.0.0:8443\"\nsesion_idle_minutes = 5\n").expect("write");
    let out = bin()
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr_line(&out).contains("sesion_idle_minutes"),
        "unknown keys are named"
    );
}

#[test]
fn systemd_accepts_the_unit() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed; skipping");
        return;
    };
    assert!(probe.status.success());
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/ihms-connect.service"),
    )
    .expect("unit");
    // Point ExecStart at the built binary so the check does not need an install.
    let unit = unit.replace("/usr/bin/ihms-connect", env!("CARGO_BIN_EXE_ihms-connect"));
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("ihms-connect.service");
    std::fs::write(&path, unit).expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("ihms-connect.service:"),
        "{text}"
    );
}

#[test]
fn sighup_reloads_the_certificate() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ihms_connect::tls::ensure_local(&a, &[]).expect("certs a");
    ihms_connect::tls::ensure_local(&b, &[]).expect("certs b");
    let live = tmp.path().join("live");
    std::fs::create_dir_all(&live).expect("dir");
    let copy = |from: &Path| {
        std::fs::copy(from.join("tls/server.pem"), live.join("cert.pem")).expect("cert");
        std::fs::copy(from.join("tls/server.key"), live.join("key.pem")).expect("key");
    };
    copy(&a);
    let cfg = tmp.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "password_hash_memory_kib = 64\npassword_hash_iterations = 1\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
            live.join("cert.pem"),
            live.join("key.pem")
        ),
    )
    .expect("config");
    let (mut child, lines) = serve(&tmp.path().join("data"), &cfg, "127.0.0.1:0");
    let all = lines.join("\n");
    let port: u16 = all
        .split("https://localhost:")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let health = |ca_dir: &Path| {
        let ca = std::fs::read(ca_dir.join("tls/ca.pem")).expect("ca");
        let client = crate::common::ca_client(&ca, false);
        rt.block_on(async {
            client
                .get(format!("https://localhost:{port}/healthz"))
                .send()
                .await
                .is_ok()
        })
    };
    // Under load the listener may take a moment after the address is printed.
    let up = (0..100).any(|_| {
        let ok = health(&a);
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(up && !health(&b), "serves certificate A");
    copy(&b);
    Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status()
        .expect("hup");
    let mut switched = false;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(100));
        if health(&b) {
            switched = true;
            break;
        }
    }
    assert!(switched && !health(&a), "serves certificate B after SIGHUP");
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("term");
    let _ = child.wait();
}
