//! The argument groups several commands share: the table, the follow-up queue, and `--json`.
//! Each command's own arguments live in its module; only what two or more commands flatten in
//! is here, with how it resolves against `--stack`.

use clap::Args;

use crate::{Aws, DEFAULT_QUEUE, DEFAULT_TABLE};

/// The table to read.
#[derive(Debug, Args)]
pub struct TableArg {
    /// Table name (default: `--stack`'s, else the local stack's `hookline-local`).
    #[arg(long = "table", env = "TABLE_NAME")]
    pub name: Option<String>,
}

impl TableArg {
    /// The table: `--table`, else the stack's, else the local stack's.
    pub fn name(&self, aws: &Aws) -> String {
        match (&self.name, &aws.stack) {
            (Some(name), _) => name.clone(),
            (None, Some(stack)) => stack.table.clone(),
            (None, None) => DEFAULT_TABLE.to_owned(),
        }
    }
}

/// The follow-up queue, by URL or by name.
#[derive(Debug, Args)]
pub struct QueueArg {
    /// Follow-up queue URL (default: `--stack`'s, else looked up by `--queue`).
    #[arg(long, env = "FOLLOWUP_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// Follow-up queue name, used when no URL is given.
    #[arg(long, default_value = DEFAULT_QUEUE)]
    pub queue: String,
}

impl QueueArg {
    /// The queue URL.
    pub async fn url(&self, aws: &Aws) -> anyhow::Result<String> {
        match (&self.queue_url, &aws.stack) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(stack)) => Ok(stack.queue_url.clone()),
            (None, None) => aws.queue_url(&self.queue).await,
        }
    }
}

/// `--json`, offered only by the commands that print rows (listings and bulk reports).
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON (one document) instead of a table, for scripts.
    #[arg(long)]
    pub json: bool,
}
