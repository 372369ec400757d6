//! `crm-operator`: see `crm-operator --help`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use crm_operator::cli::{Cli, Command, LogFormat, RunArgs, run_offline};
use crm_operator::controller;
use crm_operator::metrics::Metrics;

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
        let client = kube::Client::try_default().await?;
        tracing::info!(settings = ?args.settings(), "starting the CrmTenant controller");
        let metrics = Arc::new(Metrics::new()?);
        controller::run(client, args.settings(), metrics, shutdown_signal()).await;
        tracing::info!("controller stopped");
        Ok(())
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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
