//! Backups handled roughly: the command stopped by Ctrl-C or `kill` half-way, crafted
//! archives inside a validly encrypted file, passphrase files an editor mangles, and
//! a leftover `.partial` file. Each leaves nothing half-written and says what is wrong.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::backup::{bin, keygen, ok, refused, restore, with_key};
use crate::common::spawn_app;

fn passphrase_export(data: &Path, pass: &Path, out: &Path) -> Command {
    let mut c = bin();
    c.args(["backup", "export", "--quiet", "--passphrase-file"])
        .arg(pass)
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits until `ready` holds (the command is half-way), then sends `signal`.
fn signal_when(child: &mut Child, signal: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the command never got half-way"
        );
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the command ended before it could be stopped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(sent.success());
}

fn partial(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

#[tokio::test]
async fn ctrl_c_or_kill_during_an_export_or_a_restore_leaves_nothing_half_written() {
    let work = tempfile::tempdir().expect("tmp");
    let mut app = spawn_app().await;
    app.stop().await;
    let data = app.cfg.data_dir.clone();
    // A passphrase costs about a second of scrypt, during which the command has
    // started writing and can be stopped.
    let pass = work.path().join("pass");
    std::fs::write(&pass, "staple battery horse correct\n").expect("pass");

    for signal in ["INT", "TERM"] {
        let out = work.path().join(format!("stopped-{signal}.age"));
        let mut child = passphrase_export(&data, &pass, &out)
            .spawn()
            .expect("export");
        signal_when(&mut child, signal, || partial(&out).exists());
        let done = child.wait_with_output().expect("wait");
        let err = refused(done);
        assert!(err.contains("stopped by a signal"), "{err}");
        assert!(
            !partial(&out).exists(),
            "SIG{signal} left the .partial file"
        );
        assert!(!out.exists());
    }
    // Each stopped export is in the audit log as a failure.
    {
        use ihms_connect::store::audit::{self, Filter, Outcome};
        let store = ihms_connect::ops::open_store(&app.cfg).expect("store");
        let filter = Filter {
            action: Some("backup.export".into()),
            outcome: Some(Outcome::Failed),
            ..Filter::default()
        };
        let tx = store.read().expect("read");
        assert_eq!(audit::list(&tx, &filter, 10).expect("list").0.len(), 2);
    }

    let file = work.path().join("whole.age");
    ok(passphrase_export(&data, &pass, &file)
        .output()
        .expect("export"));
    for signal in ["INT", "TERM"] {
        // A target whose parents do not exist yet: the parents go too.
        let outer = work.path().join(format!("restored-{signal}"));
        let into = outer.join("deep").join("data");
        let mut child = bin()
            .args(["backup", "restore", "--quiet", "--passphrase-file"])
            .arg(&pass)
            .arg("--data-dir")
            .arg(&into)
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("restore");
        // The store file appears once the key opened the backup, before its
        // records are read.
        signal_when(&mut child, signal, || into.join("store.redb").exists());
        let err = refused(child.wait_with_output().expect("wait"));
        assert!(err.contains("stopped by a signal"), "{err}");
        assert!(
            !outer.exists(),
            "SIG{signal} left a half-restored directory"
        );
    }
}

/// Tar entries: name and bytes.
type Entries<'a> = Vec<(&'a str, &'a [u8])>;

/// Encrypts a tar of `entries` to `public`, as anyone holding the public key could.
fn crafted(path: &Path, public: &str, entries: &[(&str, &[u8])]) {
    let recipient: age::x25519::Recipient = public.parse().expect("recipient");
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .expect("encryptor");
    let mut w = enc
        .wrap_output(std::fs::File::create(path).expect("create"))
        .expect("wrap");
    {
        let mut tar = tar::Builder::new(&mut w);
        for (name, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o600);
            tar.append_data(&mut h, name, *body).expect("append");
        }
        tar.finish().expect("finish");
    }
    w.finish().expect("finish");
}

#[tokio::test]
async fn a_crafted_archive_with_an_entry_twice_or_no_backup_inside_is_refused_as_damaged() {
    let work = tempfile::tempdir().expect("tmp");
    let (identity, public) = keygen(work.path(), "backup.key");
    let format: &[u8] = br#"{"format":1,"app_version":"0.1.0"}"#;
    let key: &[u8] = b"0000000000000000000000000000000000000000000000000000000000000000\n";
    let cases: [(&str, Entries<'_>, &str); 3] = [
        (
            "key-twice",
            vec![
                ("ihms-backup/FORMAT", format),
                ("ihms-backup/master.key", key),
                ("ihms-backup/master.key", key),
            ],
            "ihms-backup/master.key appears twice",
        ),
        (
            "format-twice",
            vec![
                ("ihms-backup/FORMAT", format),
                ("ihms-backup/FORMAT", format),
            ],
            "ihms-backup/FORMAT appears twice",
        ),
        (
            "not-a-backup",
            vec![("notes.txt", b"hello")],
            "not an IHMS Connect backup",
        ),
    ];
    for (name, entries, why) in cases {
        let file = work.path().join(format!("{name}.age"));
        crafted(&file, &public, &entries);
        let err = refused(with_key(&["backup", "verify"], &file, &identity));
        assert!(
            err.contains("damaged") && err.contains(why),
            "{name}: {err}"
        );
        let into = work.path().join(format!("into-{name}"));
        let err = refused(restore(&file, &identity, &into));
        assert!(err.contains(why), "{name}: {err}");
        assert!(!err.contains("decryption failed"), "{name}: {err}");
        assert!(!into.exists(), "{name} left files behind");
    }
    // Plain text that is no tar at all, validly encrypted.
    let file = work.path().join("text.age");
    {
        let recipient: age::x25519::Recipient = public.parse().expect("recipient");
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .expect("encryptor");
        let mut w = enc
            .wrap_output(std::fs::File::create(&file).expect("create"))
            .expect("wrap");
        std::io::Write::write_all(&mut w, b"hello\n").expect("write");
        w.finish().expect("finish");
    }
    let err = refused(with_key(&["backup", "verify"], &file, &identity));
    assert!(err.contains("not an IHMS Connect backup"), "{err}");
}

#[tokio::test]
async fn a_new_backup_refuses_a_passphrase_with_spaces_at_either_end_or_a_second_line() {
    let work = tempfile::tempdir().expect("tmp");
    let mut app = spawn_app().await;
    app.stop().await;
    for (name, text, why) in [
        ("trailing", "staple battery horse correct   \n", "spaces"),
        ("blank", "                \n", "spaces"),
        (
            "two-lines",
            "staple battery horse correct\nsecond\n",
            "one line",
        ),
    ] {
        let pass = work.path().join(name);
        std::fs::write(&pass, text).expect("pass");
        let out = work.path().join(format!("{name}.age"));
        let err = refused(
            passphrase_export(&app.cfg.data_dir, &pass, &out)
                .output()
                .expect("export"),
        );
        assert!(err.contains(why), "{name}: {err}");
        assert!(!out.exists() && !partial(&out).exists());
    }
}

#[tokio::test]
async fn odd_paths_are_refused_by_name_and_nothing_is_replaced() {
    let work = tempfile::tempdir().expect("tmp");
    let mut app = spawn_app().await;
    app.stop().await;
    let (identity, public) = keygen(work.path(), "backup.key");
    // A dangling symbolic link at the output name is not overwritten.
    let out = work.path().join("link.age");
    let target = work.path().join("nowhere");
    std::os::unix::fs::symlink(&target, &out).expect("symlink");
    let err = refused(crate::backup::export(&app.cfg.data_dir, &out, &public));
    assert!(err.contains("already exists"), "{err}");
    assert!(out.symlink_metadata().expect("link").is_symlink());
    assert!(!target.exists() && !partial(&out).exists());
    // A directory given as the backup file.
    let err = refused(with_key(&["backup", "verify"], work.path(), &identity));
    assert!(err.contains("is a directory"), "{err}");
}

#[tokio::test]
async fn an_export_never_shares_a_partial_file_with_another_one() {
    let work = tempfile::tempdir().expect("tmp");
    let mut app = spawn_app().await;
    app.stop().await;
    let (_, public) = keygen(work.path(), "backup.key");
    let out = work.path().join("b.age");
    // Another export to the same name is under way (or was killed outright).
    std::fs::write(partial(&out), b"someone else's bytes").expect("partial");
    let err = refused(crate::backup::export(&app.cfg.data_dir, &out, &public));
    assert!(err.contains(".partial exists"), "{err}");
    assert_eq!(
        std::fs::read(partial(&out)).expect("partial"),
        b"someone else's bytes"
    );
    assert!(!out.exists());
}

#[test]
fn config_check_never_echoes_a_secret_key_and_reads_the_passphrase_file() {
    let work = tempfile::tempdir().expect("tmp");
    let check = |toml: &str| {
        let file = work.path().join("config.toml");
        std::fs::write(&file, toml).expect("config");
        bin()
            .args(["config", "check", "--config"])
            .arg(&file)
            .output()
            .expect("config check")
    };
    let secret = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZSMZ9Y5";
    let err = refused(check(&format!("backup_recipients = [\"{secret}\"]\n")));
    assert!(err.contains("secret key"), "{err}");
    assert!(!err.contains("QYQSZ"), "the secret key was echoed: {err}");

    let pass = work.path().join("backup.pass");
    let with_pass = format!(
        "backup_dir = {:?}\nbackup_passphrase_file = {:?}\n",
        work.path().join("backups"),
        pass
    );
    let err = refused(check(&with_pass));
    assert!(err.contains("backup_passphrase_file"), "{err}");
    std::fs::write(&pass, "staple battery horse correct  \n").expect("pass");
    let err = refused(check(&with_pass));
    assert!(err.contains("spaces"), "{err}");
    std::fs::write(&pass, "staple battery horse correct\n").expect("pass");
    ok(check(&with_pass));
}

#[test]
fn a_service_that_goes_away_mid_snapshot_leaves_no_backup_and_says_so() {
    use std::io::{BufRead, BufReader, Write};
    let work = tempfile::tempdir().expect("tmp");
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let (_, public) = keygen(work.path(), "backup.key");
    // A service that starts the snapshot and then dies.
    let listener = std::os::unix::net::UnixListener::bind(data.join("control.sock")).expect("bind");
    let service = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("request");
        let mut w = &stream;
        w.write_all(b"{\"ok\":true,\"estimate\":1000}\n")
            .expect("reply");
        w.write_all(&1000u32.to_be_bytes()).expect("frame");
        w.write_all(&[0u8; 10]).expect("part of it");
    });
    let out = work.path().join("b.age");
    let err = refused(crate::backup::export(&data, &out, &public));
    service.join().expect("service");
    assert!(err.contains("closed the connection"), "{err}");
    assert!(!out.exists() && !partial(&out).exists());
}
