//! `crm-operator`: see `crm-operator --help`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use crm_operator::cli::{Cli, Command, LogFormat, RunArgs, log_subscriber, run_offline};
use crm_operator::metrics::Metrics;
use crm_operator::server::{self, Telemetry};
use crm_operator::{client, controller, leader};
use tokio::sync::watch;

/// jemalloc hands freed memory back to the system and fragments less than
/// the system allocator under many threads: at 1,000 tenants the peak RSS
/// with glibc's malloc was about 1.8 × the live heap (bench/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run(args) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        offline => run_offline(
            offline,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let metrics = Arc::new(Metrics::new()?);
        let client = client::instrumented(metrics.clone()).await?;
        let telemetry = Telemetry::new(metrics.clone());
        let listener = server::bind(args.metrics_addr).await?;
        tracing::info!(
            settings = ?args.settings(),
            metrics = %listener.local_addr()?,
            "starting the CrmTenant controller"
        );
        let (stop, stopping) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let endpoints = tokio::spawn(server::serve(
            listener,
            telemetry.clone(),
            stopped(stopping.clone()),
        ));
        match args.election() {
            Some(election) => {
                let standby = telemetry.standby.clone();
                leader::run(
                    client,
                    args.settings(),
                    election,
                    metrics,
                    standby,
                    stopping,
                )
                .await?;
            }
            None => controller::run(client, args.settings(), metrics, stopped(stopping)).await,
        }
        tracing::info!("controller stopped");
        endpoints.await??;
        Ok(())
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = log_subscriber(format, filter, std::io::stdout);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("warning: a log subscriber was already set");
    }
}

async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
