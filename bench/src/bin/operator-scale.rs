//! `operator-scale`: the real controller (`crm_operator::controller::run`)
//! reconciling many tenants against the in-process API-server double.
//!
//! Prints time to converge, API requests and writes per tenant on the first
//! pass and on a full resync (a restarted controller facing unchanged
//! tenants), the reconcile p99 from the operator's own histogram, and the
//! process's peak RSS. `--double-only` fills the double with the same tenants
//! and the children the builders want, without any controller, so the
//! double's share of the peak RSS can be subtracted.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use crm_bench::baseline;
use crm_bench::cluster::{fill_children, pods_ready, quiet, secret_data, wait_all};
use crm_bench::fleet;
use crm_bench::operator::Target;
use crm_bench::pass::{Pass, Timeline};
use crm_bench::proc::{clock_ticks, cpu_ticks, self_status_kib};
use crm_crds::{CrmTenant, Phase};
use crm_operator::controller::Settings;
use crm_tests::ApiDouble;
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

    let target = Target::new(&double, args.operator_binary.as_deref(), "run").await?;

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
    let (raw, raw_held) =
        baseline::run(&tenants, args.concurrency, args.operator_binary.is_some()).await?;
    let raw_cpu = own_cpu() - raw_cpu;

    // First pass: every tenant new.
    let started = Instant::now();
    let held = double.store_held();
    let op = target.start(&settings).await?;
    let start = Instant::now();
    let first_ready = op.wait_ready(start + timeout).await?;
    let mut provisioned_at = started;
    let mut provisioning_held = Duration::ZERO;
    let mut provisioning_writes = 0;
    let (double_cpu, operator_cpu) = (own_cpu(), op.cpu_ticks());
    let mut provisioning_cpu = (0, None);
    let converging = async {
        wait_all(&double, &tenants, start + timeout, |_| true).await?;
        provisioned_at = Instant::now();
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
    let provisioned = (provisioned_at - started).as_secs_f64();
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
    let op = target.start(&settings).await?;
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

    drop(target);
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

/// One pair of [`baseline::run`] and the operator's first pass, on a fresh
/// double of its own, up to every tenant provisioned: their times in
/// seconds.
async fn provisioning_round(
    tenants: &[CrmTenant],
    args: &Args,
    settings: &Settings,
    timeout: Duration,
) -> anyhow::Result<(f64, f64)> {
    let (raw, _) = baseline::run(tenants, args.concurrency, args.operator_binary.is_some()).await?;
    let double = ApiDouble::new();
    for t in tenants {
        double.put_object(t)?;
    }
    let target = Target::new(&double, args.operator_binary.as_deref(), "round").await?;
    let started = Instant::now();
    let op = target.start(settings).await?;
    wait_all(&double, tenants, started + timeout, |_| true).await?;
    let provisioned = started.elapsed().as_secs_f64();
    op.stop().await?;
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
