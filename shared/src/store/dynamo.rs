//! DynamoDB implementation of the event store (being written).

/// The event store.
#[derive(Debug, Clone)]
pub struct EventStore;
