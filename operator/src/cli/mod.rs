//! The `crm-operator` command line: `plan` (offline sizing and manifests) and
//! `crd` (the CustomResourceDefinition).

mod admission;
mod plan;
mod render;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use admission::{Problem, admit_document};
pub use plan::{PlanError, plan};

/// Runs a CRM for every CrmTenant: sizes it from its load, builds it, keeps it running.
#[derive(Debug, Parser)]
#[command(name = "crm-operator", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Size CrmTenant manifests offline and print the objects the operator would create.
    ///
    /// Reads single- or multi-document YAML files (`-` for standard input),
    /// checks them as the API server would (schema bounds, enums, unknown
    /// fields, CEL rules), and prints each tenant's sizing followed by its
    /// manifests. Secret values are shown as `<generated>`. Exit code 2 on bad
    /// input, with one message per problem naming the file, tenant and field.
    Plan(PlanArgs),
    /// Print the CrmTenant CustomResourceDefinition as YAML.
    Crd,
    /// Run the controller: reconcile every CrmTenant in the cluster.
    ///
    /// Connects with the in-cluster service account, or the kubeconfig
    /// (`KUBECONFIG`, `~/.kube/config`) outside a cluster.
    Run(RunArgs),
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Watch only this namespace (tenants and their children); all namespaces when absent.
    #[arg(long, env = "CRM_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Reconcile only tenants whose labels match this selector (e.g. `shard=a`),
    /// so several operators can split the tenants between them.
    #[arg(long, env = "CRM_OPERATOR_SELECTOR")]
    pub selector: Option<String>,
    /// Tenants reconciled at the same time.
    #[arg(long, env = "CRM_OPERATOR_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// The crm-server image of tenants whose spec names none.
    #[arg(long, env = "CRM_OPERATOR_SERVER_IMAGE")]
    pub server_image: Option<String>,
    /// Seconds one reconcile may take before it is abandoned and retried
    /// with backoff (a hung API call counts as a transient failure).
    #[arg(long, env = "CRM_OPERATOR_RECONCILE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reconcile_timeout_secs: u64,
    /// Namespace of the Secrets registering shared PostgreSQL servers: a
    /// tenant's `spec.database.shared.server` names a Secret here whose key
    /// `url` holds an admin connection URL of that server.
    #[arg(long, env = "CRM_OPERATOR_SHARED_SERVERS_NAMESPACE", default_value = crate::controller::DEFAULT_SHARED_SERVERS_NAMESPACE)]
    pub shared_servers_namespace: String,
    /// Log format.
    #[arg(long, env = "CRM_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How the operator logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl RunArgs {
    /// The controller settings these flags describe.
    pub fn settings(&self) -> crate::controller::Settings {
        crate::controller::Settings {
            namespace: self.namespace.clone(),
            selector: self.selector.clone(),
            concurrency: self.concurrency,
            default_image: self.server_image.clone(),
            reconcile_timeout: std::time::Duration::from_secs(self.reconcile_timeout_secs),
            shared_servers_namespace: self.shared_servers_namespace.clone(),
            ..crate::controller::Settings::default()
        }
    }
}

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// CrmTenant manifests; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Namespace of tenants whose manifest names none (as kubectl would).
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
}

/// How `plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A sizing summary, then the manifests as YAML.
    Text,
    /// One JSON object per tenant and line: tenant, namespace, sizing, conditions, objects.
    Json,
}

/// Runs the offline subcommands; exit code 2 means bad input.
pub fn run_offline(command: &Command, out: &mut impl Write, err: &mut impl Write) -> ExitCode {
    match command {
        Command::Run(_) => {
            let _ = writeln!(err, "error: `run` is not an offline command");
            ExitCode::FAILURE
        }
        Command::Crd => write_or_fail(out, err, &crm_crds::crd_yaml()),
        Command::Plan(args) => match plan(&args.files, &args.namespace, args.output) {
            Ok(text) => write_or_fail(out, err, &text),
            Err(PlanError::Invalid(problems)) => {
                for problem in problems {
                    let _ = writeln!(err, "error: {problem}");
                }
                ExitCode::from(2)
            }
        },
    }
}

fn write_or_fail(out: &mut impl Write, err: &mut impl Write, text: &str) -> ExitCode {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(err, "error: writing output: {e}");
            ExitCode::FAILURE
        }
    }
}
