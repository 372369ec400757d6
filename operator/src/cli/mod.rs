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
