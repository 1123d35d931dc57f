//! Fuzzes the whole request path of every receiver in the registry: an API Gateway event
//! (arbitrary method, headers, body; half genuinely signed) through `Receiver::prepare`, with the
//! invariants of `hookline_fuzz::request_path` (an unsigned request never gets through, every
//! error is a 4xx, quarantine ids are signed or the body's SHA-256).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookline_fuzz::request_path::run(data));
