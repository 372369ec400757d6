//! `loadgen`: drives crm-server on loopback with a fixed request mix and
//! prints one line of figures per step.
//!
//! Open loop (`--rate`): requests leave at Poisson-distributed intended times
//! whatever the server does, and latency counts from the intended time, so a
//! stalled server shows as queueing instead of fewer requests (no coordinated
//! omission). Closed loop (`--concurrency`): C clients back to back, for the
//! throughput at saturation; with one client nothing queues, so each latency
//! is one request's service time, and the line's `mean_ms` and `scv` (exact,
//! from every latency) are the service time's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use clap::Parser;
use crm_bench::mix::{Generator, Mix, Planned, Rng};
use crm_bench::moments::Moments;
use crm_bench::{latency_histogram, proc, quantile_ms};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Open- or closed-loop load against crm-server.
#[derive(Debug, Parser)]
#[command(name = "loadgen", about)]
struct Args {
    /// Server base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key (`CRM_API_KEY` of the server).
    #[arg(long, env = "CRM_API_KEY", hide_env_values = true)]
    key: String,
    /// Which requests to send.
    #[arg(long, value_enum, default_value = "standard")]
    mix: Mix,
    /// Contacts the database was seeded with (`crm-server seed --contacts`).
    #[arg(long, default_value_t = 100_000)]
    contacts: u64,
    /// Open loop: offered rates in req/s, one step each, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "concurrency")]
    rate: Vec<f64>,
    /// Closed loop: this many clients back to back.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds each step runs.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of unrecorded load before the first step.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Requests in flight at most (open loop); more wait, and their wait counts.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// Server process whose utime+stime per request is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// PostgreSQL postmaster whose CPU (with its backends) per request is reported.
    #[arg(long)]
    db_pid: Option<u32>,
    /// Seed of the request sequence and arrival times.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Figures of one step.
#[derive(Debug, Default)]
struct Step {
    sent: u64,
    ok: u64,
    errors: u64,
    unfinished: u64,
    elapsed: f64,
    server_ticks: Option<u64>,
    db_ticks: Option<u64>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Every latency of a step: the histogram for quantiles, exact moments for
/// the mean and scv.
#[derive(Clone, Debug)]
struct Latencies {
    histogram: Histogram<u64>,
    moments: Moments,
}

/// What every request task shares.
#[derive(Clone, Debug)]
struct Shared {
    client: HttpClient,
    url: Arc<str>,
    auth: Arc<str>,
    latencies: Arc<Mutex<Latencies>>,
    ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl Shared {
    async fn send(&self, req: Planned, intended: Instant) {
        let path = if req.path.starts_with("/healthz") {
            req.path
        } else {
            format!("/api/v1{}", req.path)
        };
        let ok = self.exchange(&path, req.method, req.body).await;
        let latency = intended.elapsed();
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        latencies.histogram.saturating_record(micros.max(1));
        latencies.moments.record(latency);
        let counter = if ok { &self.ok } else { &self.errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends one request and drains the answer; true on a 2xx.
    async fn exchange(&self, path: &str, method: http::Method, body: Option<String>) -> bool {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header(http::header::AUTHORIZATION, &*self.auth)
            .header(http::header::ACCEPT_ENCODING, "gzip");
        if body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let Ok(request) = builder.body(Full::new(Bytes::from(body.unwrap_or_default()))) else {
            return false;
        };
        let Ok(response) = self.client.request(request).await else {
            return false;
        };
        let success = response.status().is_success();
        success && response.into_body().collect().await.is_ok()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.url.starts_with("http://127.0.0.1") || args.url.starts_with("http://localhost")) {
        bail!("loadgen only targets loopback, not {}", args.url);
    }
    if args.rate.is_empty() && args.concurrency.is_none() {
        bail!("give --rate R[,R...] (open loop) or --concurrency C (closed loop)");
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.max_in_flight.max(args.concurrency.unwrap_or(0)))
        .build(connector);
    let shared = Shared {
        client,
        url: args.url.trim_end_matches('/').into(),
        auth: format!("Bearer {}", args.key).into(),
        latencies: Arc::new(Mutex::new(Latencies {
            histogram: latency_histogram(),
            moments: Moments::default(),
        })),
        ok: Arc::new(AtomicU64::new(0)),
        errors: Arc::new(AtomicU64::new(0)),
    };
    let ticks = proc::clock_ticks();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut generator = Generator::new(args.mix, args.contacts, args.seed, run);
    let mut arrivals = Rng::new(args.seed ^ 0x5EED);

    if args.warmup > 0.0 {
        let warm = Duration::from_secs_f64(args.warmup);
        match (args.concurrency, args.rate.first()) {
            (Some(c), _) => closed_loop(&shared, &mut generator, c, warm, &args).await,
            (None, Some(&rate)) => {
                open_loop(&shared, &mut generator, &mut arrivals, rate, warm, &args).await
            }
            (None, None) => Step::default(),
        };
    }
    let steps: Vec<Option<f64>> = match args.concurrency {
        Some(_) => vec![None],
        None => args.rate.iter().copied().map(Some).collect(),
    };
    let duration = Duration::from_secs_f64(args.duration);
    for rate in steps {
        reset(&shared);
        let step = match (rate, args.concurrency) {
            (Some(rate), _) => {
                open_loop(
                    &shared,
                    &mut generator,
                    &mut arrivals,
                    rate,
                    duration,
                    &args,
                )
                .await
            }
            (None, Some(c)) => closed_loop(&shared, &mut generator, c, duration, &args).await,
            (None, None) => continue,
        };
        print_step(&shared, &args, rate, &step, ticks)?;
    }
    Ok(())
}

fn reset(shared: &Shared) {
    let mut latencies = shared
        .latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    latencies.histogram.reset();
    latencies.moments.reset();
    drop(latencies);
    shared.ok.store(0, Ordering::Relaxed);
    shared.errors.store(0, Ordering::Relaxed);
}

/// CPU ticks of the server and the database right now.
fn cpu_now(args: &Args) -> (Option<u64>, Option<u64>) {
    (
        args.server_pid.and_then(proc::cpu_ticks),
        args.db_pid.and_then(proc::tree_cpu_ticks),
    )
}

fn since(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    Some(after?.saturating_sub(before?))
}

async fn open_loop(
    shared: &Shared,
    generator: &mut Generator,
    arrivals: &mut Rng,
    rate: f64,
    duration: Duration,
    args: &Args,
) -> Step {
    let permits = Arc::new(Semaphore::new(args.max_in_flight));
    let mut tasks = JoinSet::new();
    let (server0, db0) = cpu_now(args);
    let start = Instant::now();
    let end = start + duration;
    let mut intended = start;
    let mut sent = 0;
    loop {
        intended += Duration::from_secs_f64(arrivals.exponential(1.0 / rate));
        if intended >= end {
            break;
        }
        tokio::time::sleep_until(intended).await;
        // Waiting for a permit delays the send, not the intended time.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let request = generator.next_request();
        let task_shared = shared.clone();
        tasks.spawn(async move {
            task_shared.send(request, intended).await;
            drop(permit);
        });
        sent += 1;
        while tasks.try_join_next().is_some() {}
    }
    let unfinished = drain(&mut tasks).await;
    let elapsed = start.elapsed().as_secs_f64();
    let (server1, db1) = cpu_now(args);
    Step {
        sent,
        ok: shared.ok.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        unfinished,
        elapsed,
        server_ticks: since(server0, server1),
        db_ticks: since(db0, db1),
    }
}

/// Waits up to 30 s for the requests still in flight; returns how many never finished.
async fn drain(tasks: &mut JoinSet<()>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tasks.is_empty() {
        if tokio::time::timeout_at(deadline, tasks.join_next())
            .await
            .is_err()
        {
            let left = tasks.len() as u64;
            tasks.abort_all();
            return left;
        }
    }
    0
}

async fn closed_loop(
    shared: &Shared,
    generator: &mut Generator,
    concurrency: usize,
    duration: Duration,
    args: &Args,
) -> Step {
    // Each client gets its own slice of the request sequence up front.
    let per_client = 200_000 / concurrency.max(1);
    let mut tasks = JoinSet::new();
    let (server0, db0) = cpu_now(args);
    let start = Instant::now();
    let end = start + duration;
    let sent = Arc::new(AtomicU64::new(0));
    for _ in 0..concurrency {
        let requests: Vec<Planned> = (0..per_client).map(|_| generator.next_request()).collect();
        let task_shared = shared.clone();
        let sent = sent.clone();
        tasks.spawn(async move {
            for request in requests.into_iter().cycle() {
                if Instant::now() >= end {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                task_shared.send(request, Instant::now()).await;
            }
        });
    }
    let unfinished = drain(&mut tasks).await;
    let elapsed = start.elapsed().as_secs_f64();
    let (server1, db1) = cpu_now(args);
    Step {
        sent: sent.load(Ordering::Relaxed),
        ok: shared.ok.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        unfinished,
        elapsed,
        server_ticks: since(server0, server1),
        db_ticks: since(db0, db1),
    }
}

fn print_step(
    shared: &Shared,
    args: &Args,
    rate: Option<f64>,
    step: &Step,
    ticks_per_second: f64,
) -> anyhow::Result<()> {
    let Latencies {
        histogram: hist,
        moments,
    } = shared
        .latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mean_ms = moments
        .mean_ms()
        .map_or_else(|| "-".into(), |m| format!("{m:.3}"));
    let scv = moments
        .scv()
        .map_or_else(|| "-".into(), |s| format!("{s:.3}"));
    let done = (step.ok + step.errors).max(1) as f64;
    let per_request = |ticks: Option<u64>| {
        ticks.map_or_else(
            || "-".to_owned(),
            |t| format!("{:.3}", t as f64 / ticks_per_second * 1000.0 / done),
        )
    };
    let load = match (rate, args.concurrency) {
        (Some(r), _) => format!("open rate={r:.0}"),
        (None, Some(c)) => format!("closed concurrency={c}"),
        (None, None) => "-".into(),
    };
    let server_cores = step.server_ticks.map_or_else(
        || "-".into(),
        |t| format!("{:.2}", t as f64 / ticks_per_second / step.elapsed),
    );
    println!(
        "mix={:?} {load} duration_s={:.1} sent={} ok={} errors={} unfinished={} throughput={:.1} \
         p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} max_ms={:.2} mean_ms={mean_ms} scv={scv} \
         count={} server_cpu_ms_per_req={} server_cores={server_cores} db_cpu_ms_per_req={}",
        args.mix,
        step.elapsed,
        step.sent,
        step.ok,
        step.errors,
        step.unfinished,
        step.ok as f64 / step.elapsed,
        quantile_ms(&hist, 0.50),
        quantile_ms(&hist, 0.95),
        quantile_ms(&hist, 0.99),
        hist.max() as f64 / 1000.0,
        moments.count(),
        per_request(step.server_ticks),
        per_request(step.db_ticks),
    );
    if step.ok == 0 {
        bail!("no request succeeded; is the server up and the key right?");
    }
    Ok(())
}
