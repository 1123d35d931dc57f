//! One conditional transition of a follow-up, and how it recognises its own earlier success
//! (docs/FOLLOWUPS.md, "Every transition recognises its own earlier success").
//!
//! The SDK retries a write whose answer was lost, and that retry fails the write's own
//! condition. Each transition therefore writes a token of its own with the state it moves to (a
//! claim its lease token, a finish the lease token as `last_lease`, an operator's reset a fresh
//! `reset_token`) and asks for the item as it is when the condition fails (`ALL_OLD`): our token
//! with our target state there means the refusal met our own write, which is then reported as
//! written ([`transition`]).

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::codec::{Item, OUTBOX, opt_s};
use super::dynamo::dynamo_err;
use super::{ActionStatus, StoreError};

pub(super) fn lease_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The lease token a finish of an event action records in its outbox entry, and of a sync on the
/// entity: the finish's proof of its own write.
pub(super) const LAST_LEASE: &str = "last_lease";
/// See [`LAST_LEASE`].
pub(super) const SYNC_LAST_LEASE: &str = "sync_last_lease";
/// The fresh token an operator's reset of an event action writes in its outbox entry.
pub(super) const RESET_TOKEN: &str = "reset_token";
/// See [`RESET_TOKEN`].
pub(super) const SYNC_RESET_TOKEN: &str = "sync_reset_token";

/// What a transition leaves behind that only it writes: its `token` in `token_attr` next to the
/// `status` it moves the follow-up to, both in outbox entry `entry` (an event action) or on the
/// item itself (`None`: a sync).
pub(super) struct Stamp<'a> {
    pub(super) entry: Option<&'a str>,
    pub(super) token_attr: &'a str,
    pub(super) token: &'a str,
    pub(super) status_attr: &'a str,
    pub(super) status: ActionStatus,
}

impl Stamp<'_> {
    /// True when `item` carries this stamp: the transition that wrote it was this one.
    pub(super) fn on(&self, item: &Item) -> bool {
        let holder = match self.entry {
            None => item,
            Some(k) => match item.get(OUTBOX) {
                Some(AttributeValue::M(o)) => match o.get(k) {
                    Some(AttributeValue::M(e)) => e,
                    _ => return false,
                },
                _ => return false,
            },
        };
        opt_s(holder, self.token_attr) == Some(self.token)
            && opt_s(holder, self.status_attr) == Some(self.status.as_str())
    }
}

/// How a conditional transition ended.
pub(super) enum Transition {
    /// Written, by this request or by its own earlier attempt whose answer was lost: the item as
    /// it is now (`ALL_NEW`, or `ALL_OLD` of the refused retry, which is the same item).
    Written(Item),
    /// Refused by its condition: the item as it was, when there was one.
    Refused(Option<Item>),
}

/// Sends one conditional transition. A refusal that finds `stamp` on the item is the SDK's
/// retry meeting this transition's own write (its first answer was lost): written.
pub(super) async fn transition(
    req: UpdateItemFluentBuilder,
    stamp: &Stamp<'_>,
) -> Result<Transition, StoreError> {
    transition_if(req, stamp.status.as_str(), |item| stamp.on(item)).await
}

/// [`transition`] for a write whose own mark is not a token beside a status: `ours` says whether
/// the item a refused retry found is this write's own (`label` names it in the log line).
pub(super) async fn transition_if(
    req: UpdateItemFluentBuilder,
    label: &str,
    ours: impl Fn(&Item) -> bool,
) -> Result<Transition, StoreError> {
    let res = req
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match res {
        Ok(out) => Ok(Transition::Written(out.attributes.unwrap_or_default())),
        Err(e) if is_condition_failure(&e) => {
            let old = match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
                _ => None,
            };
            match old {
                Some(item) if ours(&item) => {
                    tracing::info!(
                        status = label,
                        "a retried transition found its own earlier write"
                    );
                    Ok(Transition::Written(item))
                }
                old => Ok(Transition::Refused(old)),
            }
        }
        Err(e) => Err(dynamo_err("UpdateItem", e)),
    }
}

pub(super) fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    e: &aws_sdk_dynamodb::error::SdkError<E>,
) -> bool {
    e.as_service_error()
        .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}
