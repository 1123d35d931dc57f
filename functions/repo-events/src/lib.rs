//! `repo-events`: receives GitHub repository webhooks. The pipeline is the shared
//! [`hookline::receiver`]; this crate names its scheme, models the bodies in [`model`] and maps
//! them in [`handler`].

pub mod handler;
pub mod model;

use hookline::http::ContentKind;
use hookline::receiver::ReceiverSpec;
use hookline::verify::Scheme;

/// Every action kind the mapping emits.
pub const ACTION_KINDS: &[&str] = handler::ACTION_KINDS;

/// This function's receiver: source `github`, GitHub signatures, JSON or form-encoded bodies
/// (the webhook's content type setting).
pub fn spec() -> ReceiverSpec {
    ReceiverSpec {
        source: "github",
        function: "repo-events",
        route: "/webhooks/github",
        scheme: Scheme::GitHub,
        content: ContentKind::JsonOrForm,
        // GitHub gives up on a delivery after 10 s, and never retries it by itself.
        sender_timeout: std::time::Duration::from_secs(10),
        describe: handler::describe,
        action_kinds: ACTION_KINDS,
    }
}
