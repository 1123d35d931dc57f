//! The `hookline` command. See the library crate ([`hookline_cli`]) for the commands, and
//! [`hookline_cli::exit`] for the exit codes.

use std::process::ExitCode;

use clap::Parser;
use hookline_cli::cli::Cli;
use hookline_cli::exit;

#[tokio::main]
async fn main() -> ExitCode {
    // clap prints its own usage errors and exits 2.
    let cli = Cli::parse();
    match cli.run().await {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("hookline: {err:#}");
            exit::of_error(&err).into()
        }
    }
}
