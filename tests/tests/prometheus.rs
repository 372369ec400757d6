//! Autopilot's queries against a real Prometheus: Debian's `prometheus`
//! (scripts/check-rules installs it) on loopback, loading the recording
//! rules of config/monitoring and scraping a crm-server every second
//! (file_sd), while this test offers it a steady request rate.
//!
//! The rules' five-minute windows are cut to eight seconds here, so that a
//! fifteen-second test sees a full window; everything else is as installed.
//! The offered rate is what the test's requests achieved over that window
//! (a busy machine can hold them back), counted as they complete; the CPU
//! is this process's, where the server runs, read from /proc meanwhile.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_operator::autopilot;
use crm_operator::observe::Prometheus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The load the test aims at, req/s.
const RATE: f64 = 25.0;
/// The rules' window, seconds.
const WINDOW: u64 = 8;

/// The `prometheus` binary, or a failure saying how to get one.
fn prometheus_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no `prometheus` on PATH: this test runs a real Prometheus. Install Debian's \
             `prometheus` package (scripts/check-rules does, as scripts/test runs it) and run it again"
        )
    })
}

/// The rule groups of the PrometheusRule manifest, as a rule file.
fn rule_file() -> String {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/monitoring/prometheusrule.yaml");
    let text = std::fs::read_to_string(&manifest).expect("the PrometheusRule manifest");
    let spec = text.find("\nspec:\n").expect("a spec") + "\nspec:\n".len();
    text[spec..]
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("[5m]", &format!("[{WINDOW}s]"))
}

/// Stops the child on drop, so a failing test leaves no Prometheus behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn crm_server(dir: &Path) -> (String, String) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("crm.db").display());
    let db = crm_server::db::Db::connect(&url, 4).await.expect("SQLite");
    db.migrate().await.expect("migrations");
    let state = crm_server::AppState::new(db, "key", crm_server::config::Modules::ALL)
        .expect("metrics registry");
    let serve = |router: axum::Router| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        let addr = listener.local_addr().expect("bound").to_string();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    };
    let api = serve(crm_server::app(state.clone())).await;
    let metrics = serve(crm_server::metrics::router(state)).await;
    (api, metrics)
}

/// One `GET /healthz` with `Connection: close`: whether it answered 200.
async fn get(addr: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_measures_the_offered_request_rate_and_cpu() {
    let binary = prometheus_binary();
    let dir = tempfile::tempdir().expect("scratch directory");
    let (api, metrics) = crm_server(dir.path()).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(dir.path().join("rules.yaml"), rule_file()).expect("rules");
    let targets = serde_json::json!([{
        "targets": [metrics],
        "labels": {"namespace": "shop", "tenant": "acme"},
    }]);
    std::fs::write(dir.path().join("targets.json"), targets.to_string()).expect("targets");
    std::fs::write(
        dir.path().join("prometheus.yaml"),
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n\
         rule_files: [rules.yaml]\n\
         scrape_configs:\n  - job_name: crm-server\n    \
         file_sd_configs: [{files: [targets.json], refresh_interval: 1s}]\n",
    )
    .expect("config");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
    let _prometheus = Running(
        Command::new(&binary)
            .current_dir(dir.path())
            .arg("--config.file=prometheus.yaml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display())),
    );
    let client = Prometheus::new(&format!("http://127.0.0.1:{port}")).expect("URL");

    // RATE req/s from now on, each answered request's time kept.
    let started = Instant::now();
    let answered = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let (api, answered) = (api.clone(), answered.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
            while started.elapsed() < Duration::from_secs(30) {
                tick.tick().await;
                if get(&api).await {
                    answered.lock().expect("times").push(Instant::now());
                }
            }
        })
    };

    // This process's CPU, as /proc counts it, every 200 ms: the server runs
    // in it and reports the same process to Prometheus.
    let cpu = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let cpu = cpu.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                cpu.lock()
                    .expect("cpu")
                    .push((Instant::now(), cpu_seconds()));
            }
        })
    };

    // Once Prometheus scrapes the server, and then has a full window of
    // scrapes, read the rules.
    let scraping = Instant::now() + Duration::from_secs(10);
    loop {
        let up = client
            .query("up")
            .await
            .ok()
            .and_then(|s| crm_operator::observe::single(&s));
        if up == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < scraping,
            "Prometheus did not scrape crm-server within 10 s; its log:\n{}",
            log_text(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(WINDOW + 2)).await;
    let reading = Instant::now() + Duration::from_secs(4);
    let mut last = None;
    let mut offered = 0.0;
    let mut used = 0.0;
    while Instant::now() < reading {
        let asked = Instant::now();
        // Scrapes and rule evaluations lag by up to two seconds.
        let (from, to) = (
            asked - Duration::from_secs(WINDOW + 1),
            asked - Duration::from_secs(1),
        );
        offered = answered
            .lock()
            .expect("times")
            .iter()
            .filter(|t| **t > from && **t <= to)
            .count() as f64
            / WINDOW as f64;
        used = cores_between(&cpu.lock().expect("cpu"), from, to);
        match client.sample("shop", "acme", "1m").await {
            Ok(sample) if sample.requests_per_second.is_some() => {
                last = Some(sample);
                break;
            }
            Ok(sample) => last = Some(sample),
            Err(error) => panic!("{error}; Prometheus log:\n{}", log_text(dir.path())),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    load.abort();
    sampler.abort();
    assert!(
        offered > RATE / 2.0,
        "the server answered only {offered} req/s"
    );
    let sample = last.unwrap_or_default();
    let rate = sample.requests_per_second.unwrap_or_else(|| {
        panic!(
            "no rate from tenant:crm_http_requests:rate5m: {sample:?}; Prometheus log:\n{}",
            log_text(dir.path())
        )
    });
    assert!(
        (rate - offered).abs() <= offered * 0.15,
        "Prometheus measured {rate} req/s, the test offered {offered}"
    );
    let peak = sample.peak_requests_per_second.expect("a peak");
    assert!(peak >= rate, "peak {peak} below the rate {rate}");
    let p95 = sample.p95_seconds.expect("a p95 from the histogram");
    assert!(p95 > 0.0 && p95 < 0.1, "p95 of /healthz: {p95} s");
    let cores = sample
        .cpu_cores
        .unwrap_or_else(|| panic!("no CPU from tenant:crm_cpu_seconds:rate5m: {sample:?}"));
    assert!(
        (cores - used).abs() <= used * 0.15,
        "Prometheus measured {cores} cores, /proc {used}"
    );
    // Autopilot learns from the real sample: the spec's 50 ms a request
    // moves half way towards the measured cost, and its 1 req/s peak
    // towards the measured 25 req/s by no more than half of itself.
    let start = autopilot::Start {
        cost: 50.0,
        peak: 1.0,
        scv: 1.0,
    };
    let learned = autopilot::learn(None, start, &sample).expect("enough to learn from");
    let measured = cores / rate * 1000.0;
    assert!(
        (learned.request_cpu_millis - (50.0 + measured) / 2.0).abs() < 0.01,
        "{learned:?} from {measured} ms a request"
    );
    assert_eq!(learned.peak_requests_per_second, 1.5, "{learned:?}");
    assert_eq!(autopilot::calibrated(&learned).reason, "Calibrated");
}

/// This process's user and system CPU so far, in seconds (/proc counts in
/// USER_HZ, 100 a second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').expect("a command name") + 2..];
    let ticks: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("a tick count"))
        .collect();
    (ticks[0] + ticks[1]) as f64 / 100.0
}

/// Mean cores used between `from` and `to`, from the samples nearest them.
fn cores_between(samples: &[(Instant, f64)], from: Instant, to: Instant) -> f64 {
    let nearest = |at: Instant| {
        samples
            .iter()
            .min_by_key(|(t, _)| if *t > at { *t - at } else { at - *t })
            .copied()
            .expect("CPU samples")
    };
    let ((t0, c0), (t1, c1)) = (nearest(from), nearest(to));
    (c1 - c0) / (t1 - t0).as_secs_f64().max(1e-3)
}

fn log_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
}
