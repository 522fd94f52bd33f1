//! Document throughput benchmark: uploads and downloads a 100 MiB file over HTTPS to
//! the built binary running as its own process, beside the reference `age` command
//! line encrypting and decrypting the same file locally, and reports the server's
//! memory growth (VmRSS before, VmHWM after) while it did so.
//!
//! Each run times the CLI and the server back to back; the ratio printed is the
//! median of the runs' ratios (CLI time / server time), so background load on a
//! shared machine skews both sides alike. Before each timed step, `sync` writes out
//! what the previous one left dirty, so no step pays for another's write-back. The
//! client runs in this process, on the same CPUs as the server; the share of CPU
//! time left idle during uploads shows whether they were bound by the CPUs.
//!
//! Run with `cargo bench --bench documents` (needs `age`, `age-keygen` and `sync` on
//! PATH). Targets: each way at least 0.7 of the reference CLI's throughput, memory
//! growth under 64 MiB.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

const SIZE: usize = 100 * 1024 * 1024;
const RUNS: usize = 5;
const MIB: f64 = 1024.0 * 1024.0;

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

/// A field of /proc/<pid>/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("field")
}

struct Server {
    child: Child,
    base: String,
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
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

struct Run {
    up: Duration,
    down: Duration,
    cli_enc: Duration,
    cli_dec: Duration,
    cli_enc_sync: Duration,
    /// Share of the machine's CPU time left idle during the upload.
    up_idle: f64,
}

/// The machine's CPU time so far, in clock ticks: (idle, all).
fn cpu_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").expect("stat");
    let fields: Vec<u64> = text
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().expect("ticks"))
        .collect();
    (fields[3] + fields[4], fields.iter().sum())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn best(times: &[Duration]) -> Duration {
    times.iter().copied().min().expect("runs")
}

fn mib_per_s(d: Duration) -> f64 {
    SIZE as f64 / MIB / d.as_secs_f64()
}

/// Writes out what the previous step left dirty in the page cache, so that its
/// write-back does not run during (and count against) the next timed step.
fn settle() {
    run(&mut Command::new("sync"));
}

fn timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    run(cmd);
    t.elapsed()
}

fn main() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "upload_limit_mib = 128\n").expect("config");
    let pw = tmp.path().join("pw");
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

    // The file: a PDF signature, then random bytes (incompressible, like a scan).
    let input = tmp.path().join("input.pdf");
    {
        let mut f = std::fs::File::create(&input).expect("input");
        let mut block = vec![0u8; 1024 * 1024];
        for i in 0..SIZE / block.len() {
            getrandom::fill(&mut block).expect("random");
            if i == 0 {
                block[..9].copy_from_slice(b"%PDF-1.7\n");
            }
            f.write_all(&block).expect("write");
        }
    }

    // The reference CLI, locally, same file.
    let key = tmp.path().join("age.key");
    run(Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .stderr(Stdio::null()));
    let recipient = run(Command::new("age-keygen").arg("-y").arg(&key))
        .trim()
        .to_string();
    let (enc, dec) = (tmp.path().join("cli.age"), tmp.path().join("cli.out"));
    let age_enc = || {
        let mut c = Command::new("age");
        c.args(["-r", &recipient, "-o"]).arg(&enc).arg(&input);
        c
    };
    let age_dec = || {
        let mut c = Command::new("age");
        c.arg("-d")
            .arg("-i")
            .arg(&key)
            .arg("-o")
            .arg(&dec)
            .arg(&enc);
        c
    };

    let server = start_server(&data, &config);
    let pid = server.child.id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (runs, rss_before, hwm_after) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca")])
            .build()
            .expect("client");
        // Wait until the server answers (it prints its address just before serving).
        for _ in 0..100 {
            let health = client.get(format!("{}/healthz", server.base)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let api = |path: &str| format!("{}/api/v1{path}", server.base);
        let post = |path: String, body: Value| {
            let req = client.post(api(&path)).bearer_auth(&token).json(&body);
            async move {
                let resp = req.send().await.expect("send");
                assert!(resp.status().is_success(), "{}", resp.status());
                resp.json::<Value>().await.expect("json")
            }
        };
        let org = post(
            "/organizations".into(),
            json!({ "name": "Bench Hospital", "kind": "referring_facility", "npi": "1234567893",
                    "city": "Tampa", "state": "FL", "zip": "33601" }),
        )
        .await;
        let orders: Value =
            serde_json::from_str(include_str!("../../shared/fixtures/discharge-orders.json"))
                .expect("fixtures");
        let mut order = orders[0].clone();
        order["referring_facility"] = org["id"].clone();
        let order = post("/orders".into(), order).await;
        let order_id = order["id"].as_str().expect("order").to_string();

        // The client sends from memory: it runs on the same two cores as the server,
        // so it should cost as little as it can.
        let content = bytes::Bytes::from(std::fs::read(&input).expect("read input"));
        let upload = |len: usize| {
            let client = client.clone();
            let url = api(&format!("/orders/{order_id}/documents"));
            let token = token.clone();
            let body = content.slice(..len);
            async move {
                let part = reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::from(body),
                    len as u64,
                )
                .file_name("scan.pdf");
                let form = reqwest::multipart::Form::new()
                    .text("kind", "other")
                    .part("file", part);
                let t = Instant::now();
                let resp = client
                    .post(url)
                    .bearer_auth(&token)
                    .multipart(form)
                    .send()
                    .await
                    .expect("upload");
                let status = resp.status();
                let body: Value = resp.json().await.expect("json");
                assert_eq!(status.as_u16(), 201, "{body}");
                (t.elapsed(), body["id"].as_str().expect("id").to_string())
            }
        };
        let download = |doc: String| {
            let client = client.clone();
            let token = token.clone();
            let base = server.base.clone();
            let links = api(&format!("/documents/{doc}/links"));
            async move {
                let t = Instant::now();
                let link: Value = client
                    .post(links)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("link")
                    .json()
                    .await
                    .expect("json");
                let url = format!("{base}{}", link["url"].as_str().expect("url"));
                let resp = client
                    .get(url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("get");
                assert_eq!(resp.status().as_u16(), 200);
                let mut stream = resp.bytes_stream();
                let mut total = 0usize;
                while let Some(chunk) = stream.next().await {
                    total += chunk.expect("chunk").len();
                }
                (t.elapsed(), total)
            }
        };

        // Warm up the server's pools with a small round trip, then measure.
        let (_, small) = upload(256 * 1024).await;
        download(small).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_before = status_kib(pid, "VmRSS:");
        // Each run times the CLI and the server back to back, so that whatever else
        // the machine is doing weighs on both sides of a ratio alike.
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            settle();
            let cli_enc = timed(&mut age_enc());
            settle();
            let before = cpu_ticks();
            let (up, doc) = upload(SIZE).await;
            let after = cpu_ticks();
            settle();
            let cli_dec = timed(&mut age_dec());
            settle();
            let (down, total) = download(doc).await;
            assert_eq!(total, SIZE, "the whole file comes back");
            // For context only: the CLI does not fsync its output; the server must.
            let t = Instant::now();
            run(&mut age_enc());
            run(Command::new("sync").arg("--data").arg(&enc));
            runs.push(Run {
                up,
                down,
                cli_enc,
                cli_dec,
                cli_enc_sync: t.elapsed(),
                up_idle: (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64,
            });
        }
        (runs, rss_before, status_kib(pid, "VmHWM:"))
    });
    drop(server);

    println!(
        "documents: {} MiB file, {RUNS} runs, {} CPUs; throughput is the best run, ratio the median of the runs' ratios",
        SIZE / (1024 * 1024),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let pick = |f: fn(&Run) -> Duration| best(&runs.iter().map(f).collect::<Vec<_>>());
    let ratio = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    println!(
        "  upload over HTTPS    {:7.1} MiB/s   age CLI encrypt {:7.1} MiB/s   ratio {:.2}",
        mib_per_s(pick(|r| r.up)),
        mib_per_s(pick(|r| r.cli_enc)),
        ratio(|r| r.cli_enc.as_secs_f64() / r.up.as_secs_f64())
    );
    println!(
        "  download over HTTPS  {:7.1} MiB/s   age CLI decrypt {:7.1} MiB/s   ratio {:.2}",
        mib_per_s(pick(|r| r.down)),
        mib_per_s(pick(|r| r.cli_dec)),
        ratio(|r| r.cli_dec.as_secs_f64() / r.down.as_secs_f64())
    );
    println!(
        "  (context: age CLI encrypt + fsync of its output {:7.1} MiB/s; upload ratio to that {:.2})",
        mib_per_s(pick(|r| r.cli_enc_sync)),
        ratio(|r| r.cli_enc_sync.as_secs_f64() / r.up.as_secs_f64())
    );
    println!(
        "  (context: CPU idle during uploads {:.0}% of both CPUs' time)",
        100.0 * median(runs.iter().map(|r| r.up_idle).collect())
    );
    for (i, r) in runs.iter().enumerate() {
        println!(
            "  run {}: upload {:.3} s, CLI encrypt {:.3} s, download {:.3} s, CLI decrypt {:.3} s",
            i + 1,
            r.up.as_secs_f64(),
            r.cli_enc.as_secs_f64(),
            r.down.as_secs_f64(),
            r.cli_dec.as_secs_f64()
        );
    }
    let growth = hwm_after.saturating_sub(rss_before) as f64 / 1024.0;
    println!(
        "  server memory: VmRSS {:.1} MiB before, VmHWM {:.1} MiB after, growth {growth:.1} MiB",
        rss_before as f64 / 1024.0,
        hwm_after as f64 / 1024.0
    );
    println!("  targets: ratio >= 0.70 each way, memory growth < 64 MiB");
}
