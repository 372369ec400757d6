//! `crm-operator`: see `crm-operator --help`.

use std::process::ExitCode;

use clap::Parser;
use crm_operator::cli::{Cli, run_offline};

fn main() -> ExitCode {
    let cli = Cli::parse();
    run_offline(
        &cli.command,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}
