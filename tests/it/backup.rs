//! Backups over the built binary: taken while the service runs and writes, restored
//! into an empty directory on which a new server shows the same orders, messages,
//! documents and audit log; refused when the key is wrong or the file is cut, altered
//! or of an unknown format; readable by the reference `age` command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ihms_connect::store::audit;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    ADMIN_EMAIL, App, PASSWORD, fixture, spawn_app, spawn_app_with, start, test_config, world,
};
use crate::coordination::{fetch, fixture_order, link, sample_pdf, upload_ok};

pub(crate) fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ihms-connect"));
    c.env_remove("IHMS_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY");
    c
}

pub(crate) fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs the binary expecting failure; returns its one-line error.
pub(crate) fn refused(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// A new backup key pair: (identity file, public key).
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let public = ok(bin()
        .args(["backup", "keygen", "--out"])
        .arg(&path)
        .output()
        .expect("keygen"));
    (path, public.trim().to_string())
}

pub(crate) fn export(data: &Path, out: &Path, recipient: &str) -> Output {
    bin()
        .args([
            "backup",
            "export",
            "--quiet",
            "--recipient",
            recipient,
            "--data-dir",
        ])
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .expect("export")
}

pub(crate) fn with_key(args: &[&str], file: &Path, identity: &Path) -> Output {
    bin()
        .args(args)
        .arg(file)
        .arg("--quiet")
        .arg("--identity")
        .arg(identity)
        .output()
        .expect("run")
}

pub(crate) fn restore(file: &Path, identity: &Path, into: &Path) -> Output {
    bin()
        .args(["backup", "restore", "--quiet", "--data-dir"])
        .arg(into)
        .arg(file)
        .arg("--identity")
        .arg(identity)
        .output()
        .expect("restore")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn patient_names() -> Vec<String> {
    fixture("discharge-orders.json")
        .as_array()
        .expect("orders")
        .iter()
        .flat_map(|o| {
            [
                o["patient"]["first_name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                o["patient"]["last_name"].as_str().unwrap_or("").to_string(),
            ]
        })
        .filter(|n| n.len() > 3)
        .collect()
}

async fn all_orders(app: &App, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/api/v1/orders?limit=200".to_string();
    loop {
        let (status, body) = app.get_json(token, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        out.extend(body["items"].as_array().expect("items").iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orders?limit=200&cursor={c}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn a_backup_taken_while_orders_are_written_restores_exactly_the_snapshot() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let (status, _) = app
        .post_json(
            &w.fac2_token,
            &format!("/api/v1/orders/{order}/messages"),
            &json!({"thread": "facility", "body": "Walker delivered before discharge?"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let pdf = sample_pdf();
    let doc = upload_ok(&app, &w.fac2_token, &order, pdf.clone(), "referral.pdf").await;
    let before = all_orders(&app, &app.admin_token).await;

    // Keep writing orders while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let (base, ca, token, orgs) = (
            app.base.clone(),
            app.ca_pem.clone(),
            w.fac2_token.clone(),
            w.orgs.clone(),
        );
        tokio::spawn(async move {
            let client = crate::common::ca_client(ca.as_bytes(), false);
            let orders = fixture("discharge-orders.json");
            let body = crate::common::order_body(&orders[0], &orgs);
            let mut written = 0;
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .post(format!("{base}/api/v1/orders"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("post");
                assert_eq!(resp.status(), StatusCode::CREATED);
                written += 1;
            }
            written
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let work = tempfile::tempdir().expect("tmp");
    let (identity, public) = keygen(work.path(), "backup.key");
    let file = work.path().join("backup.age");
    let data = app.cfg.data_dir.clone();
    let (f, p) = (file.clone(), public.clone());
    let summary = tokio::task::spawn_blocking(move || ok(export(&data, &f, &p)))
        .await
        .expect("export");
    assert!(summary.contains("backup written to"), "{summary}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");
    assert!(written > 0, "the writer ran during the backup");

    // The control socket is for root and the service user only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(app.cfg.data_dir.join("control.sock"))
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // No patient name in the backup file; the reference age CLI opens it.
    let raw = std::fs::read(&file).expect("backup");
    assert!(raw.starts_with(b"age-encryption.org/v1\n"));
    let plain = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&identity)
        .arg(&file)
        .output()
        .expect("age CLI (Debian package age)");
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(contains(&plain.stdout, b"ihms-backup/manifest.json"));
    for name in patient_names() {
        assert!(!contains(&raw, name.as_bytes()), "{name} in the backup");
        assert!(
            !contains(&plain.stdout, name.as_bytes()),
            "{name} in the plaintext tar"
        );
    }

    let verified = ok(with_key(&["backup", "verify"], &file, &identity));
    assert!(verified.contains("is intact"), "{verified}");
    // Off a terminal, progress is plain lines on stderr that end at 100%.
    let loud = bin()
        .args(["backup", "verify"])
        .arg(&file)
        .arg("--identity")
        .arg(&identity)
        .output()
        .expect("verify");
    let err = String::from_utf8_lossy(&loud.stderr).to_string();
    assert!(loud.status.success() && !err.contains('\r'), "{err}");
    assert!(err.trim_end().ends_with("(100%)"), "{err}");

    // Restore into an empty directory; the audit chain verifies.
    let target = tempfile::tempdir().expect("tmp");
    let restored_dir = target.path().join("data");
    let out = ok(restore(&file, &identity, &restored_dir));
    assert!(out.contains("audit chain intact"), "{out}");
    crate::common::assert_private(&restored_dir);
    ok(bin()
        .args(["audit", "verify", "--data-dir"])
        .arg(&restored_dir)
        .output()
        .expect("verify"));

    // Every audit entry of the restored log (but the restore's own) is the source's.
    let restored_entries = {
        let mut cfg = test_config(&target);
        cfg.data_dir = restored_dir.clone();
        let store = ihms_connect::ops::open_store(&cfg).expect("open restored");
        let mut entries = Vec::new();
        let mut seq = 1;
        while let Some(e) = audit::system_entry(&store, seq).expect("entry") {
            entries.push(e);
            seq += 1;
        }
        entries
    };
    let (last, snapshot) = restored_entries.split_last().expect("entries");
    assert_eq!(last.action, "backup.restore");
    for e in snapshot {
        let source = audit::system_entry(&app.state().store, e.seq)
            .expect("source entry")
            .expect("present in the source");
        assert_eq!(source.hash, e.hash, "entry {}", e.seq);
    }

    // A server on the restored directory shows what the source showed.
    let mut cfg = test_config(&target);
    cfg.data_dir = restored_dir.clone();
    let restored = start(cfg, target, app.admin_token.clone(), app.totp.clone()).await;
    let after = all_orders(&restored, &restored.admin_token).await;
    for o in &before {
        assert!(after.contains(o), "order {} lost or changed", o["id"]);
    }
    let source_now = all_orders(&app, &app.admin_token).await;
    for o in &after {
        assert!(
            source_now.contains(o),
            "order {} not from the source",
            o["id"]
        );
    }
    assert!(after.len() >= before.len() && after.len() < source_now.len() + 1);
    let path = format!("/api/v1/orders/{order}/messages?thread=facility");
    assert_eq!(
        app.get_json(&w.fac2_token, &path).await,
        restored.get_json(&w.fac2_token, &path).await
    );
    let (status, url) = link(&restored, &w.fac2_token, &doc).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = fetch(&restored, &w.fac2_token, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.expect("body"), pdf);

    // People sign in on the restored box with their passwords.
    let b = crate::common::sign_in(&restored, ADMIN_EMAIL, PASSWORD).await;
    let (status, _) = b.page("/orders").await;
    assert_eq!(status, StatusCode::OK);
}

/// An initialised, stopped data directory with one order, and a backup of it.
async fn stopped_backup(work: &Path) -> (App, PathBuf, PathBuf, String) {
    let mut app = spawn_app().await;
    let w = world(&app).await;
    fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    app.stop().await;
    let (identity, public) = keygen(work, "backup.key");
    let file = work.join("backup.age");
    let out = ok(export(&app.cfg.data_dir, &file, &public));
    assert!(out.contains("backup written"), "{out}");
    (app, file, identity, public)
}

#[tokio::test]
async fn wrong_keys_cut_or_altered_files_and_unknown_formats_are_refused_and_leave_nothing() {
    let work = tempfile::tempdir().expect("tmp");
    let (app, file, identity, public) = stopped_backup(work.path()).await;

    // The stopped service's backup verifies and restores.
    ok(with_key(&["backup", "verify"], &file, &identity));

    let (other, _) = keygen(work.path(), "other.key");
    let err = refused(with_key(&["backup", "verify"], &file, &other));
    assert!(err.contains("wrong key"), "{err}");
    let pass = work.path().join("pass");
    std::fs::write(&pass, "a long enough passphrase").expect("pass");
    let err = refused(
        bin()
            .args(["backup", "verify", "--passphrase-file"])
            .arg(&pass)
            .arg(&file)
            .output()
            .expect("run"),
    );
    assert!(err.contains("use --identity"), "{err}");

    let raw = std::fs::read(&file).expect("backup");
    let cut = work.path().join("cut.age");
    std::fs::write(&cut, &raw[..raw.len() - 100]).expect("cut");
    let err = refused(with_key(&["backup", "verify"], &cut, &identity));
    assert!(err.contains("truncated"), "{err}");

    let altered = work.path().join("altered.age");
    let mut bytes = raw.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&altered, &bytes).expect("altered");
    let err = refused(with_key(&["backup", "verify"], &altered, &identity));
    assert!(err.contains("altered"), "{err}");

    // A failed restore leaves the target as it found it.
    let target = work.path().join("restore-here");
    let err = refused(restore(&cut, &identity, &target));
    assert!(err.contains("truncated"), "{err}");
    assert!(!target.exists(), "a failed restore left files behind");
    std::fs::create_dir(&target).expect("mkdir");
    let err = refused(restore(&altered, &identity, &target));
    assert!(err.contains("altered"), "{err}");
    assert_eq!(std::fs::read_dir(&target).expect("dir").count(), 0);
    let err = refused(restore(&file, &other, &target));
    assert!(err.contains("wrong key"), "{err}");
    assert_eq!(std::fs::read_dir(&target).expect("dir").count(), 0);
    std::fs::write(target.join("keep.txt"), "mine").expect("write");
    let err = refused(restore(&file, &identity, &target));
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(target.join("keep.txt"))
            .ok()
            .as_deref(),
        Some("mine")
    );

    // A backup of a future format is named as such.
    let future = work.path().join("future.age");
    {
        let recipient: age::x25519::Recipient = public.parse().expect("recipient");
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .expect("encryptor");
        let mut w = enc
            .wrap_output(std::fs::File::create(&future).expect("create"))
            .expect("wrap");
        {
            let mut tar = tar::Builder::new(&mut w);
            let body = br#"{"format":99,"app_version":"9.0.0"}"#;
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o600);
            tar.append_data(&mut h, "ihms-backup/FORMAT", &body[..])
                .expect("append");
            tar.finish().expect("finish");
        }
        w.finish().expect("finish");
    }
    let err = refused(with_key(&["backup", "verify"], &future, &identity));
    assert!(err.contains("format version 99"), "{err}");

    // An existing file is never overwritten by an export.
    let err = refused(export(&app.cfg.data_dir, &file, &public));
    assert!(err.contains("already exists"), "{err}");
}

#[tokio::test]
async fn a_passphrase_backup_opens_with_its_passphrase_only() {
    let work = tempfile::tempdir().expect("tmp");
    let mut app = spawn_app().await;
    app.stop().await;
    let pass = work.path().join("pass");
    std::fs::write(&pass, "staple battery horse correct\n").expect("pass");
    let file = work.path().join("b.age");
    ok(bin()
        .args(["backup", "export", "--quiet", "--passphrase-file"])
        .arg(&pass)
        .arg("--data-dir")
        .arg(&app.cfg.data_dir)
        .arg("--out")
        .arg(&file)
        .output()
        .expect("export"));
    let verify = |p: &Path| {
        bin()
            .args(["backup", "verify", "--quiet", "--passphrase-file"])
            .arg(p)
            .arg(&file)
            .output()
            .expect("verify")
    };
    ok(verify(&pass));
    let wrong = work.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all").expect("wrong");
    let err = refused(verify(&wrong));
    assert!(err.contains("wrong key"), "{err}");
}

#[tokio::test]
async fn a_checkpoint_catches_a_store_rolled_back_to_an_older_copy() {
    let mut app = spawn_app().await;
    let w = world(&app).await;
    app.stop().await;
    let data = app.cfg.data_dir.clone();
    let old = tempfile::tempdir().expect("tmp");
    std::fs::copy(data.join("store.redb"), old.path().join("store.redb")).expect("copy");

    // More happens, then a checkpoint is taken.
    let mut app = app.restart().await;
    fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    app.stop().await;
    let cp = ok(bin()
        .args(["audit", "checkpoint", "--data-dir"])
        .arg(&data)
        .output()
        .expect("checkpoint"));
    let cp_file = app.dir.path().join("cp.json");
    std::fs::write(&cp_file, &cp).expect("save");
    let verify = || {
        bin()
            .args(["audit", "verify", "--data-dir"])
            .arg(&data)
            .arg("--checkpoint")
            .arg(&cp_file)
            .output()
            .expect("verify")
    };
    let out = ok(verify());
    assert!(out.contains("extends the checkpoint"), "{out}");

    // Roll the store back: the chain alone still looks whole, the checkpoint does not.
    std::fs::copy(old.path().join("store.redb"), data.join("store.redb")).expect("rollback");
    ok(bin()
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .expect("verify"));
    let err = refused(verify());
    assert!(err.contains("rolled back"), "{err}");

    // An edited checkpoint is refused too.
    let mut edited: Value = serde_json::from_str(&cp).expect("json");
    edited["entries"] = json!(1);
    std::fs::write(&cp_file, edited.to_string()).expect("save");
    let err = refused(verify());
    assert!(err.contains("signature"), "{err}");
}

#[tokio::test]
async fn scheduled_backups_keep_the_newest_and_failures_show_on_health() {
    let keys = tempfile::tempdir().expect("tmp");
    let (identity, public) = keygen(keys.path(), "backup.key");
    let backups = keys.path().join("backups");
    let app = spawn_app_with(|c| {
        c.backup_dir = Some(backups.clone());
        c.backup_recipients = vec![public.clone()];
        c.backup_keep = 2;
    })
    .await;
    let health = || async {
        let (_, body) = crate::common::json_of(app.client().get(app.url("/healthz"))).await;
        body
    };
    assert!(health().await["last_backup"].is_null());
    // A service killed in the middle of a scheduled backup left its partial file.
    std::fs::create_dir_all(&backups).expect("mkdir");
    let killed = backups.join("ihms-backup-20261201T020000.000Z.age.partial");
    std::fs::write(&killed, "half a backup").expect("partial");
    let other = backups.join("notes.age.partial");
    std::fs::write(&other, "not ours").expect("other");
    for _ in 0..3 {
        ihms_connect::backup::schedule::backup_now(app.state()).expect("backup");
    }
    let kept = ihms_connect::backup::schedule::listed(&backups);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        !killed.exists(),
        "the killed backup's partial file stays forever"
    );
    assert!(
        other.exists(),
        "a file the service did not name was removed"
    );
    ok(with_key(&["backup", "verify"], &kept[1], &identity));
    let body = health().await;
    assert_eq!(body["last_backup"]["how"], "scheduled", "{body}");
    assert_eq!(body["status"], "ok", "{body}");

    // The newest backup holds the record of the one before; restored, the box
    // still shows no backup of its own.
    let target = keys.path().join("restored");
    ok(restore(&kept[1], &identity, &target));
    let mut cfg = app.cfg.clone();
    cfg.data_dir = target;
    let store = ihms_connect::ops::open_store(&cfg).expect("open restored");
    let tx = store.read().expect("read");
    let last = ihms_connect::store::backups::last(&tx).expect("last");
    assert_eq!(
        last, None,
        "the source's backups are not the restored box's"
    );

    // The backup directory becomes unusable: the failure is a health warning.
    std::fs::remove_dir_all(&backups).expect("rm");
    std::fs::write(&backups, "not a directory").expect("file");
    ihms_connect::backup::schedule::run_backup(app.state());
    let body = health().await;
    assert_eq!(body["status"], "warning", "{body}");
    assert!(
        body["warnings"].to_string().contains("backup failed"),
        "{body}"
    );
    // And on the admin's pages.
    let admin = crate::common::sign_in(&app, ADMIN_EMAIL, PASSWORD).await;
    let (_, html) = admin.page("/orders").await;
    assert!(html.contains("the last scheduled backup failed"), "{html}");
}

#[tokio::test]
async fn a_document_removed_while_a_backup_reads_the_files_is_shredded_after_it() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let order = fixture_order(&app, &w.fac2_token, &w.orgs, "fac2").await;
    let doc = upload_ok(&app, &w.fac2_token, &order, sample_pdf(), "face.pdf").await;
    let file = app
        .cfg
        .data_dir
        .join("documents")
        .join(format!("{doc}.age"));
    let hold = app.state().docs.hold_files();
    let (status, _) = app
        .post_json(
            &w.fac2_token,
            &format!("/api/v1/documents/{doc}/delete"),
            &json!({"reason": "wrong patient"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(file.exists(), "kept while the backup reads it");
    drop(hold);
    assert!(!file.exists(), "shredded once the backup is done");
}
