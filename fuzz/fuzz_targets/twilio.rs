//! Fuzzes the twilio verifier with arbitrary headers, URL, clock and body.
#![no_main]

use hookline::verify::Scheme;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookline_fuzz::run(Scheme::Twilio, data));
