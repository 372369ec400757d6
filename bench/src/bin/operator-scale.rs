//! `operator-scale`: the real controller (`crm_operator::controller::run`)
//! reconciling many tenants against the in-process API-server double.
//!
//! Prints time to converge, API requests and writes per tenant on the first
//! pass and on a full resync (a restarted controller facing unchanged
//! tenants), the reconcile p99 from the operator's own histogram, and the
//! process's peak RSS. `--double-only` fills the double with the same tenants
//! and the children the builders want, without any controller, so the
//! double's share of the peak RSS can be subtracted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use crm_bench::baseline::{self, Baseline};
use crm_bench::fleet;
use crm_bench::operator::{Operator, counter, serve_double};
use crm_bench::proc::{clock_ticks, cpu_ticks, self_status_kib};
use crm_crds::{CrmTenant, Phase};
use crm_operator::controller::Settings;
use crm_tests::ApiDouble;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Reconcile many tenants against the API double.
#[derive(Debug, Parser)]
#[command(name = "operator-scale", about)]
struct Args {
    /// Tenants, alternately Growth/Managed and Starter/Embedded, over 20 namespaces.
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// Tenants reconciled at once (`crm-operator run --concurrency`).
    #[arg(long, default_value_t = Settings::default().concurrency)]
    concurrency: u16,
    /// Give up converging after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Only fill the double (tenants and their children); no controller.
    #[arg(long)]
    double_only: bool,
    /// Print the first writes of the resync (verb and path), to see what they are.
    #[arg(long, default_value_t = 0)]
    show_resync_writes: usize,
    /// Write the tenants as one multi-document YAML file (for `crm-operator plan`) and exit.
    #[arg(long)]
    write_manifests: Option<PathBuf>,
    /// Run this `crm-operator` binary as a process of its own, against the
    /// double served over HTTP on loopback, and report its own peak RSS.
    #[arg(long)]
    operator_binary: Option<PathBuf>,
    /// Pairs of the raw baseline and the operator's first pass up to every
    /// tenant provisioned, each on fresh doubles, before the full run (the
    /// last pair): the ratio to the raw client is the median of the pairs'.
    /// A single pair moves by a fifth from one run to the next here.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs of the operator under test, on standard error, when RUST_LOG asks.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // Ending the run on Ctrl-C or SIGTERM drops it, and with it the
    // operator's process group (which the terminal's Ctrl-C does not reach).
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = run(args) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = terminate.recv() => bail!("terminated"),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let tenants = fleet::tenants(args.tenants)?;
    if let Some(path) = &args.write_manifests {
        let docs: Vec<String> = tenants
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        std::fs::write(path, docs.join("\n---\n"))?;
        println!("wrote {} tenants to {}", tenants.len(), path.display());
        return Ok(());
    }
    let rss_start = self_status_kib("VmRSS");
    let double = ApiDouble::new();
    for t in &tenants {
        double.put_object(t)?;
    }
    if args.double_only {
        let children = fill_children(&double, &tenants)?;
        println!(
            "double-only tenants={} children={children} rss_start_mib={} vm_hwm_mib={}",
            tenants.len(),
            mib(rss_start),
            mib(self_status_kib("VmHWM")),
        );
        return Ok(());
    }
    let rss_loaded = self_status_kib("VmRSS");
    let settings = Settings {
        default_image: Some("crm-server:bench".into()),
        concurrency: args.concurrency,
        ..Settings::default()
    };
    let timeout = Duration::from_secs(args.timeout);

    let served = match &args.operator_binary {
        Some(binary) => {
            let (addr, task) = serve_double(&double).await?;
            let dir = std::env::temp_dir().join(format!("operator-scale-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            Some((binary.clone(), addr, dir, task))
        }
        None => None,
    };
    let start_operator = async |settings: &Settings| match &served {
        Some((binary, addr, dir, _)) => Operator::process(binary, *addr, dir, settings).await,
        None => Operator::in_process(&double, settings.clone()),
    };

    let mut ratios = Vec::new();
    for round in 1..args.rounds {
        let (raw, operator) = provisioning_round(&tenants, &args, &settings, timeout).await?;
        eprintln!("round {round}: raw {raw:.2}s, operator {operator:.2}s");
        ratios.push(raw / operator);
    }

    // The raw baseline: the same children applied by a plain client to a
    // double of their own, over the same transport as the operator's.
    let own_cpu = || cpu_ticks(std::process::id()).unwrap_or(0);
    let raw_cpu = own_cpu();
    let (raw, raw_held) = raw_baseline(&tenants, args.concurrency, served.is_some()).await?;
    let raw_cpu = own_cpu() - raw_cpu;

    // First pass: every tenant new.
    let started = Instant::now();
    let held = double.store_held();
    let op = start_operator(&settings).await?;
    let start = Instant::now();
    let first_ready = op.wait_ready(start + timeout).await?;
    let mut provisioned = 0.0;
    let mut provisioned_at = started;
    let mut provisioning_held = Duration::ZERO;
    let mut provisioning_writes = 0;
    let (double_cpu, operator_cpu) = (own_cpu(), op.cpu_ticks());
    let mut provisioning_cpu = (0, None);
    let converging = async {
        wait_all(&double, &tenants, start + timeout, |_| true).await?;
        provisioned_at = Instant::now();
        provisioned = (provisioned_at - started).as_secs_f64();
        provisioning_held = double.store_held() - held;
        provisioning_cpu = (
            own_cpu() - double_cpu,
            op.cpu_ticks()
                .zip(operator_cpu)
                .map(|(now, then)| now - then),
        );
        provisioning_writes = double.count_writes_excluding_events();
        pods_ready(&double, &tenants);
        wait_all(&double, &tenants, start + timeout, |p| {
            p == Some(Phase::Ready)
        })
        .await
    };
    if let Err(error) = converging.await {
        // Still print what the pass got to, and the memory so far.
        let partial = Pass::of(&double, &op, start.elapsed().as_secs_f64()).await;
        partial.print("first-pass-unfinished", tenants.len(), args.concurrency);
        print_memory(tenants.len(), rss_start, rss_loaded);
        return Err(error);
    }
    let converged = start.elapsed().as_secs_f64();
    let timeline = Timeline::of(&double.request_log(), started, provisioned_at);
    quiet(&double, start + timeout).await;
    let first = Pass::of(&double, &op, converged).await;
    eprintln!(
        "first pass quiet after {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let stopping = Instant::now();
    op.stop().await?;
    eprintln!(
        "controller stopped in {:.1}s",
        stopping.elapsed().as_secs_f64()
    );

    // Full resync: a fresh controller lists everything and reconciles each
    // unchanged tenant once.
    double.clear_log();
    let secrets_before = secret_data(&double);
    let op = start_operator(&settings).await?;
    let start = Instant::now();
    let resync_ready = op.wait_ready(start + timeout).await?;
    let n = tenants.len() as u64;
    while op.reconciles().await < n {
        if Instant::now() > start + timeout {
            bail!("resync did not reconcile every tenant in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resynced = start.elapsed().as_secs_f64();
    quiet(&double, start + timeout).await;
    let resync = Pass::of(&double, &op, resynced).await;
    let secrets_after = secret_data(&double);
    let changed = secrets_after
        .iter()
        .filter(|(k, v)| secrets_before.get(*k) != Some(*v))
        .count();
    for r in double
        .request_log()
        .iter()
        .filter(|r| r.is_write())
        .take(args.show_resync_writes)
    {
        println!("resync-write {} {}", r.verb, r.path);
    }
    let stopping = Instant::now();
    op.stop().await?;
    eprintln!(
        "controller stopped in {:.1}s",
        stopping.elapsed().as_secs_f64()
    );

    if let Some((.., dir, server)) = served {
        server.abort();
        let _ = std::fs::remove_dir_all(dir);
    }
    println!(
        "raw-baseline objects={} seconds={:.2} objects_per_second={:.1}",
        raw.objects,
        raw.elapsed.as_secs_f64(),
        raw.rate()
    );
    println!(
        "first-pass-provisioned seconds={provisioned:.2} children_per_second={:.1} \
         ratio_to_raw={:.2} writes_per_tenant={:.2}",
        raw.objects as f64 / provisioned,
        raw.elapsed.as_secs_f64() / provisioned,
        provisioning_writes as f64 / tenants.len() as f64,
    );
    timeline.print();
    ratios.push(raw.elapsed.as_secs_f64() / provisioned);
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!(
        "provisioning-rounds rounds={} ratios_to_raw={} median_ratio_to_raw={:.2}",
        ratios.len(),
        shown.join(","),
        median(&mut ratios)
    );
    // Where the time went: on 2 cores, a pass whose CPU seconds approach
    // twice its wall time is bound by CPU, not by waiting.
    let ticks = clock_ticks();
    let seconds = |t: u64| format!("{:.2}", t as f64 / ticks);
    println!(
        "cpu raw_baseline_seconds={} first_pass_double_and_bench_seconds={} \
         first_pass_operator_seconds={}",
        seconds(raw_cpu),
        seconds(provisioning_cpu.0),
        provisioning_cpu.1.map_or_else(|| "-".into(), seconds),
    );
    // The double's store is one lock: the share of a run's time that some
    // request held it is how close that run came to being bound by it.
    println!(
        "store-held raw_seconds={:.2} raw_share={:.2} first_pass_seconds={:.2} \
         first_pass_share={:.2}",
        raw_held.as_secs_f64(),
        raw_held.as_secs_f64() / raw.elapsed.as_secs_f64(),
        provisioning_held.as_secs_f64(),
        provisioning_held.as_secs_f64() / provisioned,
    );
    println!(
        "startup ready_seconds_first_pass={:.2} ready_seconds_restart={:.2}",
        first_ready.as_secs_f64(),
        resync_ready.as_secs_f64()
    );
    first.print("first-pass", tenants.len(), args.concurrency);
    resync.print("resync", tenants.len(), args.concurrency);
    println!(
        "resync-secrets secrets={} data_changed={changed}",
        secrets_after.len()
    );
    print_memory(tenants.len(), rss_start, rss_loaded);
    Ok(())
}

/// One pair of [`raw_baseline`] and the operator's first pass, on a fresh
/// double of its own, up to every tenant provisioned: their times in
/// seconds.
async fn provisioning_round(
    tenants: &[CrmTenant],
    args: &Args,
    settings: &Settings,
    timeout: Duration,
) -> anyhow::Result<(f64, f64)> {
    let (raw, _) = raw_baseline(tenants, args.concurrency, args.operator_binary.is_some()).await?;
    let double = ApiDouble::new();
    for t in tenants {
        double.put_object(t)?;
    }
    let started = Instant::now();
    let (op, served) = match &args.operator_binary {
        Some(binary) => {
            let (addr, task) = serve_double(&double).await?;
            let dir =
                std::env::temp_dir().join(format!("operator-scale-{}-round", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let op = Operator::process(binary, addr, &dir, settings).await?;
            (op, Some((dir, task)))
        }
        None => (Operator::in_process(&double, settings.clone())?, None),
    };
    wait_all(&double, tenants, started + timeout, |_| true).await?;
    let provisioned = started.elapsed().as_secs_f64();
    op.stop().await?;
    if let Some((dir, task)) = served {
        task.abort();
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok((raw.elapsed.as_secs_f64(), provisioned))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Applies the tenants' children with a plain client to a fresh double.
async fn raw_baseline(
    tenants: &[CrmTenant],
    concurrency: u16,
    over_http: bool,
) -> anyhow::Result<(Baseline, Duration)> {
    let double = ApiDouble::new();
    for t in tenants {
        double.put_object(t)?;
    }
    let objects = baseline::children(tenants)?;
    let (client, server) = if over_http {
        let (addr, task) = serve_double(&double).await?;
        let config = kube::Config::new(format!("http://{addr}").parse()?);
        (kube::Client::try_from(config)?, Some(task))
    } else {
        (double.client(), None)
    };
    let held = double.store_held();
    let result = baseline::apply(&client, objects, usize::from(concurrency)).await;
    if let Some(task) = server {
        task.abort();
    }
    Ok((result?, double.store_held() - held))
}

fn print_memory(tenants: usize, rss_start: Option<u64>, rss_loaded: Option<u64>) {
    println!(
        "memory tenants={tenants} rss_start_mib={} rss_tenants_loaded_mib={} vm_hwm_mib={}",
        mib(rss_start),
        mib(rss_loaded),
        mib(self_status_kib("VmHWM")),
    );
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// Waits until every tenant's status describes its current generation with
/// a phase that `phase_ok` accepts.
async fn wait_all(
    double: &ApiDouble,
    tenants: &[CrmTenant],
    deadline: Instant,
    phase_ok: impl Fn(Option<Phase>) -> bool,
) -> anyhow::Result<()> {
    // Read in place: decoding every tenant ten times a second took a
    // quarter of the machine at 1,000 tenants, and held the double's lock.
    let converged = |t: &Value| {
        let generation = t.pointer("/metadata/generation");
        let status = &t["status"];
        let observed = status.get("observedGeneration");
        let phase = status.get("phase").and_then(|p| Phase::deserialize(p).ok());
        observed.is_some() && observed == generation && phase_ok(phase)
    };
    loop {
        let done = double.count_objects::<CrmTenant>("", &converged);
        if done >= tenants.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{done} of {} tenants converged before the timeout",
                tenants.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every Secret's data, by namespace/name.
fn secret_data(double: &ApiDouble) -> BTreeMap<String, Value> {
    double
        .list_objects::<Secret>("")
        .into_iter()
        .map(|s| {
            let key = format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any());
            (key, serde_json::to_value(&s.data).unwrap_or_default())
        })
        .collect()
}

/// Reports every tenant's replicas (and its PostgreSQL) ready, as the
/// Deployment and StatefulSet controllers of a cluster would.
fn pods_ready(double: &ApiDouble, tenants: &[CrmTenant]) {
    for t in tenants {
        let (ns, name) = (t.namespace().unwrap_or_default(), t.name_any());
        let replicas = double
            .get_object::<CrmTenant>(&ns, &name)
            .and_then(|t| t.status?.sizing)
            .map_or(1, |s| s.min_replicas);
        let counts = json!({
            "replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "updatedReplicas": replicas,
            "observedGeneration": 1,
        });
        double.set_status::<Deployment>(&ns, &name, counts);
        let postgres = format!("{name}-postgres");
        let counts = json!({ "replicas": 1, "readyReplicas": 1, "availableReplicas": 1 });
        double.set_status::<StatefulSet>(&ns, &postgres, counts);
    }
}

/// Waits until the double has seen no request for one second.
async fn quiet(double: &ApiDouble, deadline: Instant) {
    let mut seen = double.request_count();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = double.request_count();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// When the first pass's requests came, from the operator's start, up to
/// every tenant provisioned: what went to starting, to the work itself,
/// and to noticing that it was done.
#[derive(Debug)]
struct Timeline {
    first_request: f64,
    first_write: f64,
    last_write: f64,
    provisioned: f64,
}

impl Timeline {
    fn of(log: &[crm_tests::Request], started: Instant, provisioned: Instant) -> Self {
        let since = |at: std::time::Instant| at.saturating_duration_since(started.into_std());
        let seconds =
            |at: Option<&crm_tests::Request>| at.map_or(f64::NAN, |r| since(r.at).as_secs_f64());
        let until: Vec<_> = log
            .iter()
            .filter(|r| r.at <= provisioned.into_std())
            .collect();
        let writes = || {
            until
                .iter()
                .copied()
                .filter(|r| r.is_write() && !r.is_event())
        };
        Self {
            first_request: seconds(until.first().copied()),
            first_write: seconds(writes().next()),
            last_write: seconds(writes().next_back()),
            provisioned: since(provisioned.into_std()).as_secs_f64(),
        }
    }

    fn print(&self) {
        println!(
            "first-pass-timeline first_request_seconds={:.3} first_write_seconds={:.3} \
             last_write_seconds={:.3} provisioned_seconds={:.3}",
            self.first_request, self.first_write, self.last_write, self.provisioned
        );
    }
}

/// Figures of one pass.
#[derive(Debug)]
struct Pass {
    seconds: f64,
    requests: usize,
    writes: usize,
    events: usize,
    reconciles: u64,
    errors: u64,
    p99: String,
    /// The operator process's peak RSS in KiB, when it runs as its own process.
    operator_hwm_kib: Option<u64>,
    /// Writes by verb and resource (`PATCH deployments`), Events excluded.
    by_resource: BTreeMap<String, usize>,
}

impl Pass {
    async fn of(double: &ApiDouble, operator: &Operator, seconds: f64) -> Self {
        let log = double.request_log();
        let text = operator.metrics_text().await.unwrap_or_default();
        let reconciles = |result: &str| {
            let line = format!("crm_operator_reconciles_total{{result=\"{result}\"}}");
            counter(&text, &line)
        };
        Self {
            seconds,
            requests: log.len(),
            writes: double.count_writes_excluding_events(),
            events: log.iter().filter(|r| r.is_event() && r.is_write()).count(),
            reconciles: reconciles("ok"),
            errors: reconciles("error"),
            p99: reconcile_p99(&text),
            operator_hwm_kib: operator.peak_rss_kib(),
            by_resource: writes_by_resource(&log),
        }
    }

    fn print(&self, name: &str, tenants: usize, concurrency: u16) {
        let per = |x: usize| x as f64 / tenants as f64;
        println!(
            "{name} tenants={tenants} concurrency={concurrency} seconds={:.2} requests={} \
             requests_per_tenant={:.2} writes_excl_events={} writes_per_tenant={:.2} \
             event_writes={} reconciles_ok={} reconciles_error={} reconcile_p99={}",
            self.seconds,
            self.requests,
            per(self.requests),
            self.writes,
            per(self.writes),
            self.events,
            self.reconciles,
            self.errors,
            self.p99,
        );
        if let Some(kib) = self.operator_hwm_kib {
            println!(
                "{name}-operator-process vm_hwm_mib={:.1}",
                kib as f64 / 1024.0
            );
        }
        let by: Vec<String> = self
            .by_resource
            .iter()
            .map(|(what, n)| format!("{}={:.2}", what.replace(' ', ":"), per(*n)))
            .collect();
        println!("{name}-writes-per-tenant {}", by.join(" "));
    }
}

/// Counts writes by verb and resource plural, read from the request path
/// (`/apis/apps/v1/namespaces/ns/deployments/name/status` → `PATCH deployments/status`).
fn writes_by_resource(log: &[crm_tests::Request]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in log.iter().filter(|r| r.is_write() && !r.is_event()) {
        let path = request.path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let resource = match segments.iter().position(|s| *s == "namespaces") {
            Some(i) if segments.len() > i + 2 => {
                let mut what = segments[i + 2].to_owned();
                if segments.len() > i + 4 {
                    what = format!("{what}/{}", segments[i + 4]);
                }
                what
            }
            _ => segments.last().copied().unwrap_or_default().to_owned(),
        };
        *counts
            .entry(format!("{} {resource}", request.verb))
            .or_insert(0) += 1;
    }
    counts
}

/// The upper bound of the histogram bucket holding the 99th percentile of
/// successful reconciles, from the Prometheus text (`<=0.05s`).
fn reconcile_p99(text: &str) -> String {
    let buckets: Vec<(String, f64)> = text
        .lines()
        .filter(|l| {
            l.starts_with("crm_operator_reconcile_duration_seconds_bucket")
                && l.contains("result=\"ok\"")
        })
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_owned();
            let count = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((le, count))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, count)| *count >= 0.99 * total)
        .map_or_else(|| "-".into(), |(le, _)| format!("<={le}s"))
}

/// Stores each tenant's desired children as the operator would have created them.
fn fill_children(double: &ApiDouble, tenants: &[CrmTenant]) -> anyhow::Result<usize> {
    let children = baseline::children(tenants)?;
    let count = children.len();
    for (_, _, object) in children {
        put_value(double, object)?;
    }
    Ok(count)
}

fn put_value(double: &ApiDouble, object: Value) -> anyhow::Result<()> {
    fn put<K>(double: &ApiDouble, object: Value) -> anyhow::Result<()>
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
    {
        double.put_object(&serde_json::from_value::<K>(object)?)?;
        Ok(())
    }
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    match kind.as_str() {
        "ServiceAccount" => put::<ServiceAccount>(double, object),
        "Secret" => put::<Secret>(double, object),
        "ConfigMap" => put::<ConfigMap>(double, object),
        "PersistentVolumeClaim" => put::<PersistentVolumeClaim>(double, object),
        "Service" => put::<Service>(double, object),
        "StatefulSet" => put::<StatefulSet>(double, object),
        "Deployment" => put::<Deployment>(double, object),
        "HorizontalPodAutoscaler" => put::<HorizontalPodAutoscaler>(double, object),
        "PodDisruptionBudget" => put::<PodDisruptionBudget>(double, object),
        "NetworkPolicy" => put::<NetworkPolicy>(double, object),
        other => bail!("no typed put for kind {other}"),
    }
}
