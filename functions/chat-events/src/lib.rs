//! `chat-events`: receives Slack Events API webhooks. The pipeline is the shared
//! [`hookline::receiver`]; this crate names its scheme, types the body in [`model`] and maps it
//! in [`handler`].

pub mod handler;
pub mod model;

use hookline::http::ContentKind;
use hookline::receiver::ReceiverSpec;
use hookline::verify::Scheme;

/// This function's receiver: source `slack`, Slack's `v0` signatures, JSON bodies.
pub fn spec() -> ReceiverSpec {
    ReceiverSpec {
        source: "slack",
        function: "chat-events",
        scheme: Scheme::Slack,
        content: ContentKind::Json,
        // Slack counts a delivery as failed after 3 s and retries it.
        sender_timeout: std::time::Duration::from_secs(3),
        describe: handler::describe,
        action_kinds: handler::ACTION_KINDS,
    }
}
