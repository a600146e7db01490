//! Any bytes through `ClientMsg::parse`; what parses must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| udpchat_proto::fuzzing::check_client(data));
