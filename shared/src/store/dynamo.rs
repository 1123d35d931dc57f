//! The event store on one DynamoDB table: its client, table, clock and timers, and how an SDK
//! failure is sorted into transient (the caller retries, a receiver answers 503) or permanent (a
//! receiver quarantines the event). The invariants are the module's (`mod.rs`, docs/DATA.md).

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use super::StoreError;
use crate::clock::SharedClock;

/// The event store on one DynamoDB table. Cheap to clone; built once per cold start.
#[derive(Debug, Clone)]
pub struct EventStore {
    pub(super) client: Client,
    pub(super) table: String,
    pub(super) retention_secs: i64,
    pub(super) clock: SharedClock,
    /// How long after it is recorded a pending follow-up is due for the reconciler, ms.
    pub(super) grace_ms: i64,
}

/// Sorts an SDK failure into transient (retry) or permanent (the request itself is refused).
pub(super) fn dynamo_err<E>(op: &'static str, err: SdkError<E>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let permanent = match &err {
        SdkError::ServiceError(se) => matches!(
            se.err().code(),
            Some(
                "ValidationException"
                    | "ItemCollectionSizeLimitExceededException"
                    | "SerializationException"
            )
        ),
        SdkError::ConstructionFailure(_) => true,
        _ => false,
    };
    let message = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
    if permanent {
        StoreError::Permanent { op, message }
    } else {
        StoreError::Transient { op, message }
    }
}

pub(super) fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent {
        op: "build",
        message: e.to_string(),
    }
}

impl EventStore {
    /// A store on `table`, keeping event records for `retention_days`.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        retention_days: i64,
        clock: SharedClock,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            retention_secs: retention_days.saturating_mul(86_400),
            clock,
            grace_ms: 300_000,
        }
    }

    /// A store that plans with this code but reaches no DynamoDB (its client has no endpoint it
    /// could answer on): what the in-memory double plans with, so the items it keeps are the
    /// items this store would write.
    pub(super) fn detached(table: &str, retention_days: i64, clock: SharedClock) -> Self {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        Self::new(Client::from_conf(config), table, retention_days, clock)
    }

    /// The same store, with pending follow-ups due for the reconciler `grace` after they are
    /// recorded or released (default 5 minutes; `RECONCILE_GRACE_SECS`).
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The clock the store stamps records with.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// How long an event record is kept (its TTL), in seconds: the deduplication window.
    pub fn retention_secs(&self) -> i64 {
        self.retention_secs
    }
}
