//! `--stack NAME`: the table and queues of a deployed stack, from its CloudFormation outputs
//! (`TableName`, `FollowupQueueUrl`, `FollowupDeadLetterQueueUrl` in `template.yaml`), so an
//! operator names the stack once instead of copying three values from the console.
//!
//! Explicit `--table`, `--queue-url` and `--dlq-url` still win over the stack's outputs: the
//! stack only fills in what was not given.

use anyhow::{Context, bail};

use crate::{Aws, sdk_msg};

/// The output naming the table.
pub const TABLE_OUTPUT: &str = "TableName";
/// The output naming the follow-up queue's URL.
pub const QUEUE_OUTPUT: &str = "FollowupQueueUrl";
/// The output naming the dead-letter queue's URL.
pub const DLQ_OUTPUT: &str = "FollowupDeadLetterQueueUrl";

/// What the CLI needs of a deployed stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackOutputs {
    /// The stack's name.
    pub stack: String,
    /// The DynamoDB table.
    pub table: String,
    /// The follow-up queue URL.
    pub queue_url: String,
    /// The dead-letter queue URL.
    pub dlq_url: String,
}

impl StackOutputs {
    /// Maps a stack's `(OutputKey, OutputValue)` pairs; an output missing says which and why
    /// (a stack deployed from another template, or still being created).
    pub fn from_outputs<'a>(
        stack: &str,
        outputs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> anyhow::Result<Self> {
        let outputs: Vec<(&str, &str)> = outputs.into_iter().collect();
        let get = |key: &str| {
            outputs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        };
        let missing: Vec<&str> = [TABLE_OUTPUT, QUEUE_OUTPUT, DLQ_OUTPUT]
            .into_iter()
            .filter(|k| get(k).is_none())
            .collect();
        if !missing.is_empty() {
            bail!(
                "stack {stack:?} has no output {} (is it a Hookline stack from this \
                 template.yaml, and finished deploying?)",
                missing.join(", ")
            );
        }
        Ok(Self {
            stack: stack.to_owned(),
            table: get(TABLE_OUTPUT).unwrap_or_default(),
            queue_url: get(QUEUE_OUTPUT).unwrap_or_default(),
            dlq_url: get(DLQ_OUTPUT).unwrap_or_default(),
        })
    }

    /// Reads the outputs of stack `name` with `DescribeStacks`.
    pub async fn describe(aws: &Aws, name: &str) -> anyhow::Result<Self> {
        let cfn = aws_sdk_cloudformation::Client::new(&aws.sdk);
        let out = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| aws.fail(&format!("reading stack {name:?}"), sdk_msg(e)))?;
        let stack = out
            .stacks()
            .first()
            .with_context(|| format!("no stack {name:?}"))?;
        Self::from_outputs(
            name,
            stack
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?, o.output_value()?))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_map_to_table_and_queues() {
        let got = StackOutputs::from_outputs(
            "hookline",
            [
                ("StripeWebhookUrl", "https://x/webhooks/stripe"),
                (TABLE_OUTPUT, "hookline-Table-1"),
                (QUEUE_OUTPUT, "https://sqs/q"),
                (DLQ_OUTPUT, "https://sqs/dlq"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got,
            StackOutputs {
                stack: "hookline".into(),
                table: "hookline-Table-1".into(),
                queue_url: "https://sqs/q".into(),
                dlq_url: "https://sqs/dlq".into(),
            }
        );
    }

    #[test]
    fn a_missing_output_is_named() {
        let err = StackOutputs::from_outputs("other", [(TABLE_OUTPUT, "t")])
            .expect_err("two outputs missing");
        let msg = err.to_string();
        assert!(
            msg.contains("FollowupQueueUrl, FollowupDeadLetterQueueUrl"),
            "{msg}"
        );
        assert!(msg.contains("\"other\""), "{msg}");
    }
}
