//! `hookline receivers`: the registry as the local stack and scripts read it (`scripts/dev.sh`
//! builds, configures and probes exactly these functions).

use clap::Args;
use serde::Serialize;

use crate::args::JsonArg;
use crate::output;

/// `hookline receivers`
#[derive(Debug, Args)]
pub struct ReceiversArgs {
    /// Print only the function names, one per line (for shell scripts).
    #[arg(long, conflicts_with = "json")]
    pub names: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

/// One receiver, as listed.
#[derive(Debug, Serialize)]
struct Row {
    function: &'static str,
    route: &'static str,
    source: &'static str,
    scheme: String,
    sender_timeout_ms: u128,
    action_kinds: &'static [&'static str],
}

/// Lists every receiver of the registry.
pub fn run(args: &ReceiversArgs) -> anyhow::Result<()> {
    let rows: Vec<Row> = hookline_receivers::all()
        .into_iter()
        .map(|s| Row {
            function: s.function,
            route: s.route,
            source: s.source,
            scheme: s.scheme.to_string(),
            sender_timeout_ms: s.sender_timeout.as_millis(),
            action_kinds: s.action_kinds,
        })
        .collect();
    if args.names {
        for row in &rows {
            out!("{}", row.function);
        }
        return Ok(());
    }
    output::print(
        args.json.json,
        &["FUNCTION", "ROUTE", "SOURCE", "SCHEME", "ACTION KINDS"],
        &rows,
        |r| {
            vec![
                r.function.to_owned(),
                r.route.to_owned(),
                r.source.to_owned(),
                r.scheme.clone(),
                r.action_kinds.join(","),
            ]
        },
        "no receivers",
    )
}
