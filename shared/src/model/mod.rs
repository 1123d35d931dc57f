//! Payload models (being written).
