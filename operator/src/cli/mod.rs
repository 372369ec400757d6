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
pub use plan::{DEFAULT_MAX_INPUT_MIB, PlanError, ReadLimits, plan};

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
    ///
    /// Documents are read one at a time, with no limit on their number (a
    /// whole fleet from `kustomize build ... | crm-operator plan -`); each
    /// input may be up to `--max-input-mib` large.
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
    /// Seconds reconciles wait at start for every watch to list what exists,
    /// so that a restart re-applies nothing; past that they go on with
    /// whatever the caches hold (a watch may lack a permission).
    #[arg(long, env = "CRM_OPERATOR_CACHE_SYNC_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub cache_sync_timeout_secs: u64,
    /// Namespace of the Secrets registering shared PostgreSQL servers: a
    /// tenant's `spec.database.shared.server` names a Secret here whose key
    /// `url` holds an admin connection URL of that server.
    #[arg(long, env = "CRM_OPERATOR_SHARED_SERVERS_NAMESPACE", default_value = crate::controller::DEFAULT_SHARED_SERVERS_NAMESPACE)]
    pub shared_servers_namespace: String,
    /// Namespaces of the monitoring stack, as a label selector
    /// (`key=value[,key=value…]`): the tenants' network policies admit
    /// their pods to the metrics port of crm-server, and nowhere else. An
    /// empty value admits no scraper.
    #[arg(
        long,
        env = "CRM_OPERATOR_MONITORING_NAMESPACE_SELECTOR",
        default_value = "kubernetes.io/metadata.name=monitoring",
        value_parser = NamespaceSelector::parse
    )]
    pub monitoring_namespace_selector: NamespaceSelector,
    /// Prometheus's base URL (`http://prometheus.monitoring.svc:9090`): each
    /// tenant's request rate, CPU per request and p95 are read there every
    /// `spec.autopilot.intervalSeconds` into `status.observed`, and tenants
    /// with `spec.autopilot.enabled` are sized from them. Needs the recording
    /// rules of config/monitoring.
    #[arg(long, env = "CRM_PROMETHEUS_URL", value_parser = prometheus_url)]
    pub prometheus_url: Option<String>,
    /// Log format.
    #[arg(long, env = "CRM_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(
        long,
        env = "CRM_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: std::net::SocketAddr,
    /// Reconcile only while holding a Lease, so that of several replicas
    /// exactly one works and another takes over when it stops.
    #[arg(long, env = "CRM_OPERATOR_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "CRM_OPERATOR_LEASE_NAME", default_value = "crm-operator")]
    pub lease_name: String,
    /// Namespace of the leader Lease: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "crm-operator-system")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease; the pod name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a lease lasts: how long a standby waits for a leader that died.
    #[arg(long, env = "CRM_OPERATOR_LEASE_DURATION_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_duration_secs: u64,
}

/// `--prometheus-url`, refused at start when it cannot name a server.
fn prometheus_url(text: &str) -> Result<String, String> {
    crate::observe::Prometheus::new(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

/// A namespace label selector given on the command line; empty selects none.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceSelector(
    pub Option<Box<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>>,
);

impl NamespaceSelector {
    fn parse(text: &str) -> Result<Self, String> {
        crate::labels::parse_selector(text).map(|s| NamespaceSelector(s.map(Box::new)))
    }
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
            cache_sync_timeout: std::time::Duration::from_secs(self.cache_sync_timeout_secs),
            shared_servers_namespace: self.shared_servers_namespace.clone(),
            monitoring_namespaces: self.monitoring_namespace_selector.0.as_deref().cloned(),
            prometheus_url: self.prometheus_url.clone(),
            ..crate::controller::Settings::default()
        }
    }

    /// The leader election these flags describe, when it is on.
    pub fn election(&self) -> Option<crate::leader::Election> {
        if !self.leader_election {
            return None;
        }
        let identity = self
            .identity
            .clone()
            .unwrap_or_else(|| format!("crm-operator-{}", std::process::id()));
        Some(crate::leader::Election {
            lease_name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone(),
            identity,
            duration_secs: self.lease_duration_secs,
            // Renew when a third of the lease is gone, as client-go does.
            renew_before_secs: (self.lease_duration_secs * 2 / 3).max(1),
        })
    }
}

/// The operator's log subscriber: `RUST_LOG`-style `filter`, lines to
/// `writer`. In JSON, each line carries the current span, so the lines of a
/// reconcile name the tenant and its trace id.
pub fn log_subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
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
    /// The most read from one FILE (or standard input), in MiB; larger input
    /// is refused with an error that names this flag.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MAX_INPUT_MIB, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_input_mib: u64,
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
        Command::Plan(args) => match plan(
            &args.files,
            &args.namespace,
            args.output,
            ReadLimits {
                max_input_mib: args.max_input_mib,
            },
        ) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["crm-operator", "run"].iter().chain(args))
            .expect("valid arguments");
        match cli.command {
            Command::Run(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn leader_election_is_off_unless_asked_for() {
        assert_eq!(run_args(&[]).election(), None);
        assert_eq!(run_args(&["--leader-election", "false"]).election(), None);
        let election = run_args(&[
            "--leader-election",
            "--identity",
            "pod-a",
            "--lease-namespace",
            "ops",
        ])
        .election()
        .expect("on");
        assert_eq!(election.identity, "pod-a");
        assert_eq!(election.namespace, "ops");
        assert_eq!(election.lease_name, "crm-operator");
        // 15 s leases renewed every 5 s.
        assert_eq!(
            (election.duration_secs, election.renew_before_secs),
            (15, 10)
        );
    }

    #[test]
    fn metrics_listen_on_port_8080_by_default() {
        assert_eq!(run_args(&[]).metrics_addr.port(), 8080);
        let addr = run_args(&["--metrics-addr", "127.0.0.1:9090"]).metrics_addr;
        assert_eq!(addr.to_string(), "127.0.0.1:9090");
    }

    #[test]
    fn the_monitoring_namespace_is_monitoring_unless_told_otherwise() {
        let default = run_args(&[]).settings().monitoring_namespaces;
        assert_eq!(default, Some(crate::labels::namespace_named("monitoring")));
        let args = ["--monitoring-namespace-selector", "team=observability"];
        let chosen = run_args(&args).settings().monitoring_namespaces;
        let labels = chosen.and_then(|s| s.match_labels).expect("labels");
        assert_eq!(labels["team"], "observability");
        let none = run_args(&["--monitoring-namespace-selector", ""]).settings();
        assert_eq!(none.monitoring_namespaces, None);
        let bad = [
            "crm-operator",
            "run",
            "--monitoring-namespace-selector",
            "monitoring",
        ];
        let error = Cli::try_parse_from(bad)
            .expect_err("not key=value")
            .to_string();
        assert!(error.contains("key=value"), "{error}");
    }
}
