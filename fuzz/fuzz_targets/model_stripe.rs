//! Fuzzes the Stripe payload model (`hookline::model::stripe`: the envelope and its typed objects)
//! and `payment-events`' mapping with arbitrary bodies: no panic, `describe` agrees with
//! `describe_event`, parse errors name no body text. See `hookline_fuzz::models`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookline_fuzz::models::stripe(data));
