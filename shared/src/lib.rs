//! Hookline's shared crate: everything a webhook receiver needs besides its own payload mapping.
//!
//! The receiver flow (docs/ARCHITECTURE.md): guards ([`http`]) → signature verification ([`verify`]) →
//! typed parsing, only possible from a [`verify::Verified`] body → one DynamoDB transaction
//! ([`store`]) → a batch send of follow-ups ([`queue`]) → a JSON answer ([`http`]).

#![warn(missing_docs)]

pub mod allowlist;
pub mod clock;
pub mod config;
pub mod followup;
pub mod http;
pub mod metrics;
pub mod model;
pub mod queue;
pub mod receiver;
pub mod reconcile;
pub mod secret;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod verify;
pub mod worker;
