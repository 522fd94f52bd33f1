//! Backup throughput benchmark: fills a data directory with 1 GiB of documents
//! through the API of the built binary, stops it, then times `backup export` and
//! `backup restore` beside the reference pipeline the operator would otherwise use
//! (`tar -C data -cf - . | age -r PUB > out`, and `age -d -i ID out | tar -x`) over
//! the same directory, and reports the peak memory (VmHWM) of the backup and restore
//! processes.
//!
//! Each run times the reference and the binary back to back; the ratio printed is
//! the median of the runs' ratios (reference time / binary time), so background load
//! on a shared machine weighs on both sides alike. Caches are not dropped: one
//! warm-up round runs first, and the backup file (written past the page cache) is
//! read once before each timed restore, so both sides read from the page cache.
//!
//! Run with `cargo bench --bench backup` (needs `age`, `age-keygen`, `tar` and `sync`
//! on PATH; GNU `/usr/bin/time` is used for peak memory when present, else
//! `/proc/<pid>/status` is polled). Targets: each way at least 0.8 of the reference
//! pipeline's throughput, peak memory under 128 MiB.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const DOCS: usize = 16;
const DOC_SIZE: usize = 64 * 1024 * 1024;
const RUNS: usize = 3;
const MIB: f64 = 1024.0 * 1024.0;
const GNU_TIME: &str = "/usr/bin/time";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ihms-connect"));
    c.env_remove("IHMS_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY");
    c
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// A field of /proc/<pid>/status, in KiB (None once the process is gone).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// Runs `cmd` to completion; its wall time and peak resident memory in KiB. GNU
/// time reports the kernel's exact figure (ru_maxrss); polling can miss a last peak.
fn measured(mut cmd: Command, scratch: &Path) -> (Duration, u64) {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    if Path::new(GNU_TIME).exists() {
        let report = scratch.join("time.out");
        let mut timed = Command::new(GNU_TIME);
        timed
            .args(["-f", "%M", "-o"])
            .arg(&report)
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => timed.env(k, v),
                None => timed.env_remove(k),
            };
        }
        let t = Instant::now();
        let out = timed.output().expect("run");
        let elapsed = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kib = std::fs::read_to_string(&report)
            .expect("time report")
            .trim()
            .parse()
            .expect("KiB");
        return (elapsed, kib);
    }
    let t = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if let Some(kib) = status_kib(child.id(), "VmHWM:") {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = t.elapsed();
    assert!(status.success(), "the command failed");
    (elapsed, peak)
}

fn timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    run(cmd);
    t.elapsed()
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Stops the service the way systemd does (SIGTERM), so the store closes cleanly.
    fn stop(mut self) {
        run(Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string()));
        for _ in 0..400 {
            if self.child.try_wait().expect("wait").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the service did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data: &Path, config: &Path) -> Server {
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env("IHMS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("server output").expect("line");
        if let Some(at) = line.find("https://") {
            break line[at..].trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

/// Makes a data directory holding `DOCS` documents of `DOC_SIZE` bytes, uploaded
/// through the API of the running binary, which is then stopped.
fn fill(work: &Path) -> PathBuf {
    let data = work.join("data");
    let config = work.join("config.toml");
    std::fs::write(
        &config,
        format!("upload_limit_mib = {}\n", DOC_SIZE / (1024 * 1024) + 1),
    )
    .expect("config");
    let pw = work.join("pw");
    std::fs::write(&pw, "correct horse battery staple\n").expect("pw");
    run(bin()
        .args([
            "init",
            "--admin-email",
            "bench@agency.test",
            "--admin-password-file",
        ])
        .arg(&pw)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data));
    let token = run(bin()
        .args([
            "token",
            "create",
            "--email",
            "bench@agency.test",
            "--data-dir",
        ])
        .arg(&data))
    .trim()
    .to_string();
    let ca = run(bin().args(["tls", "export-ca", "--data-dir"]).arg(&data));

    // One random file (incompressible, like a scan) behind a PDF signature, sent
    // `DOCS` times; each upload is encrypted afresh, so every stored file differs.
    let mut content = vec![0u8; DOC_SIZE];
    getrandom::fill(&mut content).expect("random");
    content[..9].copy_from_slice(b"%PDF-1.7\n");
    let content = bytes::Bytes::from(content);

    let server = start_server(&data, &config);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca")])
            .build()
            .expect("client");
        for _ in 0..100 {
            let health = client.get(format!("{}/healthz", server.base)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let api = |path: &str| format!("{}/api/v1{path}", server.base);
        let post = |path: &str, body: Value| {
            let req = client.post(api(path)).bearer_auth(&token).json(&body);
            async move {
                let resp = req.send().await.expect("send");
                assert!(resp.status().is_success(), "{}", resp.status());
                resp.json::<Value>().await.expect("json")
            }
        };
        let org = post(
            "/organizations",
            json!({ "name": "Bench Hospital", "kind": "referring_facility", "npi": "1234567893",
                    "city": "Tampa", "state": "FL", "zip": "33601" }),
        )
        .await;
        let orders: Value =
            serde_json::from_str(include_str!("../../shared/fixtures/discharge-orders.json"))
                .expect("fixtures");
        let mut order = orders[0].clone();
        order["referring_facility"] = org["id"].clone();
        let order = post("/orders", order).await;
        let url = api(&format!(
            "/orders/{}/documents",
            order["id"].as_str().expect("order")
        ));
        for _ in 0..DOCS {
            let part = reqwest::multipart::Part::stream_with_length(
                reqwest::Body::from(content.clone()),
                DOC_SIZE as u64,
            )
            .file_name("scan.pdf");
            let form = reqwest::multipart::Form::new()
                .text("kind", "other")
                .part("file", part);
            let resp = client
                .post(&url)
                .bearer_auth(&token)
                .multipart(form)
                .send()
                .await
                .expect("upload");
            assert_eq!(resp.status().as_u16(), 201, "upload");
        }
    });
    server.stop();
    data
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

struct Run {
    backup: Duration,
    restore: Duration,
    ref_backup: Duration,
    ref_restore: Duration,
    ref_backup_sync: Duration,
    ref_restore_sync: Duration,
    backup_kib: u64,
    restore_kib: u64,
}

/// Reads `file` once so that it sits in the page cache.
fn warm(file: &Path) {
    let mut f = std::fs::File::open(file).expect("open");
    std::io::copy(&mut f, &mut std::io::sink()).expect("read");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let work = tempfile::Builder::new()
        .prefix("backup-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tmp");
    let w = work.path();
    let t = Instant::now();
    let data = fill(w);
    let size = dir_bytes(&data);
    eprintln!(
        "data directory filled ({:.0} MiB) in {:.1} s",
        size as f64 / MIB,
        t.elapsed().as_secs_f64()
    );

    let key = w.join("age.key");
    run(Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .stderr(Stdio::null()));
    let recipient = run(Command::new("age-keygen").arg("-y").arg(&key))
        .trim()
        .to_string();
    let (ours, theirs) = (w.join("backup.age"), w.join("tar.age"));
    let (into, untar) = (w.join("restored"), w.join("untarred"));
    let quote = |p: &Path| format!("'{}'", p.display());

    let backup = || {
        let mut c = bin();
        c.args(["backup", "export", "--quiet", "--recipient", &recipient])
            .arg("--data-dir")
            .arg(&data)
            .arg("--out")
            .arg(&ours);
        c
    };
    let restore = || {
        let mut c = bin();
        c.args(["backup", "restore", "--quiet"])
            .arg(&ours)
            .arg("--data-dir")
            .arg(&into)
            .arg("--identity")
            .arg(&key);
        c
    };
    let ref_backup = format!(
        "tar -C {} -cf - . | age -r {recipient} > {}",
        quote(&data),
        quote(&theirs)
    );
    let ref_restore = format!(
        "mkdir {dir} && age -d -i {} {} | tar -x -C {dir}",
        quote(&key),
        quote(&theirs),
        dir = quote(&untar)
    );
    // The binary fsyncs what it writes before it reports success; the pipeline
    // does not, so these add it, for context.
    let ref_backup_sync = format!("{ref_backup} && sync {}", quote(&theirs));
    let ref_restore_sync = format!(
        "{ref_restore} && find {} -type f -exec sync {{}} +",
        quote(&untar)
    );
    let clean = || {
        for f in [&ours, &theirs] {
            let _ = std::fs::remove_file(f);
        }
        for d in [&into, &untar] {
            let _ = std::fs::remove_dir_all(d);
        }
        run(&mut Command::new("sync"));
    };

    // Warm-up: both sides once, untimed, so the data and binaries are cached. At
    // most one archive and one restored copy exist at a time (3 GiB with the data).
    run(&mut backup());
    run(&mut restore());
    let backup_size = std::fs::metadata(&ours).expect("backup").len();
    clean();
    run(&mut sh(&ref_backup));
    run(&mut sh(&ref_restore));
    let ref_size = std::fs::metadata(&theirs).expect("tar.age").len();
    clean();

    let mut runs = Vec::new();
    for i in 0..RUNS {
        eprintln!("run {} of {RUNS}", i + 1);
        let ref_backup_t = timed(&mut sh(&ref_backup));
        let ref_restore_t = timed(&mut sh(&ref_restore));
        clean();
        let (backup_t, backup_kib) = measured(backup(), w);
        // The export writes past the page cache; the pipeline's file is cached. Read
        // ours once, untimed, so both restores start from a cached file.
        warm(&ours);
        let (restore_t, restore_kib) = measured(restore(), w);
        clean();
        let ref_backup_sync_t = timed(&mut sh(&ref_backup_sync));
        let ref_restore_sync_t = timed(&mut sh(&ref_restore_sync));
        clean();
        runs.push(Run {
            backup: backup_t,
            restore: restore_t,
            ref_backup: ref_backup_t,
            ref_restore: ref_restore_t,
            ref_backup_sync: ref_backup_sync_t,
            ref_restore_sync: ref_restore_sync_t,
            backup_kib,
            restore_kib,
        });
    }

    let med = |f: fn(&Run) -> Duration| median(runs.iter().map(|r| f(r).as_secs_f64()).collect());
    let ratio = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let rate = |secs: f64| size as f64 / MIB / secs;
    println!(
        "backup: data directory of {:.0} MiB ({DOCS} documents of {} MiB), {RUNS} runs, {} CPUs; times are medians, ratios the median of the runs' ratios",
        size as f64 / MIB,
        DOC_SIZE / (1024 * 1024),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  backup export    {:7.1} MiB/s ({:.2} s)   tar | age    {:7.1} MiB/s ({:.2} s)   ratio {:.2}",
        rate(med(|r| r.backup)),
        med(|r| r.backup),
        rate(med(|r| r.ref_backup)),
        med(|r| r.ref_backup),
        ratio(|r| r.ref_backup.as_secs_f64() / r.backup.as_secs_f64())
    );
    println!(
        "  backup restore   {:7.1} MiB/s ({:.2} s)   age -d | tar {:7.1} MiB/s ({:.2} s)   ratio {:.2}",
        rate(med(|r| r.restore)),
        med(|r| r.restore),
        rate(med(|r| r.ref_restore)),
        med(|r| r.ref_restore),
        ratio(|r| r.ref_restore.as_secs_f64() / r.restore.as_secs_f64())
    );
    println!(
        "  (context: with an fsync of what the pipeline wrote, tar | age {:.1} MiB/s, ratio {:.2}; age -d | tar {:.1} MiB/s, ratio {:.2})",
        rate(med(|r| r.ref_backup_sync)),
        ratio(|r| r.ref_backup_sync.as_secs_f64() / r.backup.as_secs_f64()),
        rate(med(|r| r.ref_restore_sync)),
        ratio(|r| r.ref_restore_sync.as_secs_f64() / r.restore.as_secs_f64())
    );
    println!(
        "  backup file {:.1} MiB, tar | age output {:.1} MiB",
        backup_size as f64 / MIB,
        ref_size as f64 / MIB
    );
    for (i, r) in runs.iter().enumerate() {
        println!(
            "  run {}: export {:.2} s, tar | age {:.2} s, restore {:.2} s, age -d | tar {:.2} s",
            i + 1,
            r.backup.as_secs_f64(),
            r.ref_backup.as_secs_f64(),
            r.restore.as_secs_f64(),
            r.ref_restore.as_secs_f64()
        );
    }
    let peak = |f: fn(&Run) -> u64| runs.iter().map(f).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "  peak memory ({}): backup export {:.1} MiB, backup restore {:.1} MiB",
        if Path::new(GNU_TIME).exists() {
            "max RSS from GNU time"
        } else {
            "VmHWM polled"
        },
        peak(|r| r.backup_kib),
        peak(|r| r.restore_kib)
    );
    println!("  targets: ratio >= 0.80 each way, peak memory < 128 MiB");
}
