//! `chat-events`: receives Slack Events API webhooks. The pipeline is the shared
//! [`hookline::receiver`]; this crate names its scheme, types the body in [`model`] and maps it
//! in [`handler`].

pub mod handler;
pub mod model;

use hookline::http::ContentKind;
use hookline::receiver::ReceiverSpec;
use hookline::verify::Scheme;

/// Every action kind the mapping emits (the registry gives the worker their union).
pub const ACTION_KINDS: &[&str] = handler::ACTION_KINDS;

/// This function's receiver: source `slack`, Slack's `v0` signatures, JSON bodies.
pub fn spec() -> ReceiverSpec {
    ReceiverSpec {
        source: "slack",
        function: "chat-events",
        route: "/webhooks/slack",
        scheme: Scheme::Slack,
        content: ContentKind::Json,
        // Slack counts a delivery as failed after 3 s and retries it.
        sender_timeout: std::time::Duration::from_secs(3),
        describe: handler::describe,
        action_kinds: ACTION_KINDS,
    }
}
