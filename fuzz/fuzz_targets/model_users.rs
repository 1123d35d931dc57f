//! Fuzzes the Standard Webhooks user-event model (`hookline::model::users`) and `user-events`'
//! mapping with arbitrary bodies, with and without a message id (first byte): no panic,
//! `describe` agrees with `describe_event`, parse errors name no body text. See
//! `hookline_fuzz::models`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookline_fuzz::models::users(data));
