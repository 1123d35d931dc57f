//! The `hookline` command. See the library crate ([`hookline_cli`]) for the commands.

use std::process::ExitCode;

use clap::Parser;
use hookline_cli::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("hookline: {err:#}");
            ExitCode::FAILURE
        }
    }
}
