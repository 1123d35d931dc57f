//! `order-events`: receives Shopify order and app webhooks. The pipeline is the shared
//! [`hookline::receiver`]; this crate names its scheme, models the bodies in [`model`] and maps
//! them in [`handler`].

pub mod handler;
pub mod model;

use hookline::http::ContentKind;
use hookline::receiver::ReceiverSpec;
use hookline::verify::Scheme;

/// Every action kind the mapping emits.
pub const ACTION_KINDS: &[&str] = handler::ACTION_KINDS;

/// This function's receiver: source `shopify`, Shopify signatures, JSON bodies.
pub fn spec() -> ReceiverSpec {
    ReceiverSpec {
        source: "shopify",
        function: "order-events",
        route: "/webhooks/shopify",
        scheme: Scheme::Shopify,
        content: ContentKind::Json,
        // Shopify counts a delivery as failed when it has no answer within 5 s.
        sender_timeout: std::time::Duration::from_secs(5),
        describe: handler::describe,
        action_kinds: ACTION_KINDS,
    }
}
