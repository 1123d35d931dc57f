//! Fuzzes the static header verifier with arbitrary headers, URL, clock and body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookline_fuzz::run(hookline_fuzz::static_scheme(), data));
