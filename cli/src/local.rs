//! `hookline local up`: the table and queues of `template.yaml`, created in the local emulator.
//! Idempotent: what exists is left as it is.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use clap::{Args, Subcommand};
use hookline::config;

use crate::exit::Exit;
use crate::{
    Aws, DEFAULT_QUEUE, DEFAULT_TABLE, LOCAL_RETENTION_DAYS, LOCAL_SECRET, default_sink_addr,
    sdk_msg,
};

/// `hookline local ...`
#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Create the table (TTL, indexes) and the follow-up queue with its DLQ, if missing.
    Up(LocalUpArgs),
}

impl LocalCommand {
    /// Runs the subcommand.
    pub async fn run(self, aws: &Aws) -> anyhow::Result<Exit> {
        match self {
            Self::Up(args) => up(aws, &args).await.map(|()| Exit::Ok),
        }
    }
}

/// `hookline local up`
#[derive(Debug, Args)]
pub struct LocalUpArgs {
    /// Table name.
    #[arg(long, default_value = DEFAULT_TABLE)]
    pub table: String,
    /// Follow-up queue name (the DLQ is `<name>-dlq`).
    #[arg(long, default_value = DEFAULT_QUEUE)]
    pub queue: String,
    /// Also write the functions' environment (KEY=VALUE lines, for `cargo lambda watch
    /// --env-file`): local secret, table, queue, AWS endpoint, action URLs pointing at the sink.
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// Base URL of the action sink, used in the env file (`ACTION_<KIND>_URL=<sink>/<kind>`).
    #[arg(long, default_value_t = format!("http://{}", default_sink_addr()))]
    pub sink_url: String,
    /// `RECONCILE_GRACE_SECS` in the env file: re-enqueue pending follow-ups after this long.
    #[arg(long, default_value_t = 30)]
    pub reconcile_grace_secs: u32,
}

/// Creates what is missing, prints the names and URLs, and writes the env file if asked.
pub async fn up(aws: &Aws, args: &LocalUpArgs) -> anyhow::Result<()> {
    let created = ensure_table(aws, &args.table).await?;
    let (queue_url, dlq_url) = hookline::queue::create_queues(&aws.sqs(), &args.queue)
        .await
        .map_err(|e| aws.fail(&format!("creating queue {:?}", args.queue), e))?;
    let verb = if created { "created" } else { "exists" };
    out!("table {} ({verb})", args.table);
    out!("queue {queue_url}");
    out!("dlq   {dlq_url}");
    if let Some(path) = &args.env_file {
        let env = function_env(aws, args, &queue_url, &dlq_url)?;
        std::fs::write(path, env)
            .with_context(|| format!("writing env file {}", path.display()))?;
        out!("env   {}", path.display());
    }
    Ok(())
}

/// Creates the table unless it exists. True when it was created.
async fn ensure_table(aws: &Aws, table: &str) -> anyhow::Result<bool> {
    let client = aws.dynamo();
    match client.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(false),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(DescribeTableError::ResourceNotFoundException(_))
            ) => {}
        Err(err) => {
            return Err(aws.fail(&format!("describing table {table:?}"), sdk_msg(err)));
        }
    }
    hookline::store::schema::create_table(&client, table)
        .await
        .map_err(|e| aws.fail(&format!("creating table {table:?}"), sdk_msg(e)))?;
    Ok(true)
}

/// The functions' environment, as `KEY='VALUE'` lines (what `cargo lambda watch --env-file`
/// reads; its parser needs the quotes around a value holding `=`, as the secret does).
pub fn function_env(
    aws: &Aws,
    args: &LocalUpArgs,
    queue_url: &str,
    dlq_url: &str,
) -> anyhow::Result<String> {
    let sink = args.sink_url.trim_end_matches('/');
    let mut vars = vec![
        (config::WEBHOOK_SECRETS.to_owned(), LOCAL_SECRET.to_owned()),
        (config::TABLE_NAME.to_owned(), args.table.clone()),
        (
            config::EVENT_RETENTION_DAYS.to_owned(),
            LOCAL_RETENTION_DAYS.to_string(),
        ),
        (config::FOLLOWUP_QUEUE_URL.to_owned(), queue_url.to_owned()),
        (config::FOLLOWUP_DLQ_URL.to_owned(), dlq_url.to_owned()),
        // Local retries come quickly: 2 s doubling to at most 30 s, 8 attempts (one to two
        // minutes of backoff; deployed, the horizon is days: docs/FOLLOWUPS.md).
        (
            config::FOLLOWUP_BACKOFF_BASE_SECS.to_owned(),
            "2".to_owned(),
        ),
        (
            config::FOLLOWUP_BACKOFF_CAP_SECS.to_owned(),
            "30".to_owned(),
        ),
        (config::FOLLOWUP_MAX_ATTEMPTS.to_owned(), "8".to_owned()),
        (
            config::RECONCILE_GRACE_SECS.to_owned(),
            args.reconcile_grace_secs.to_string(),
        ),
        ("AWS_REGION".to_owned(), aws.region()),
    ];
    if aws.endpoint != "AWS" {
        vars.push(("AWS_ENDPOINT_URL".to_owned(), aws.endpoint.clone()));
        vars.push(("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()));
        vars.push(("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()));
    }
    for kind in hookline_receivers::action_kinds() {
        vars.push((
            format!(
                "{}{}_URL",
                config::ACTION_URL_PREFIX,
                kind.to_ascii_uppercase()
            ),
            format!("{sink}/{kind}"),
        ));
    }
    let mut out = String::from(
        "# Written by `hookline local up`: the functions' environment in the local stack.\n",
    );
    for (k, v) in vars {
        if v.contains(['\'', '\n']) {
            anyhow::bail!("{k}: value {v:?} cannot be written to an env file");
        }
        let _ = writeln!(out, "{k}='{v}'");
    }
    Ok(out)
}
