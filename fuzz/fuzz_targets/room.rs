//! Whole-room fuzzing: the input becomes a sequence of datagrams from several
//! addresses, time steps, unreachable reports and operator actions, and the
//! room's invariants are checked after every step. The harness lives in
//! `udpchat_room::fuzzing` (feature `fuzzing`) so that
//! crates/room/src/corpus_tests.rs replays corpus/room/ with the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| udpchat_room::fuzzing::run(data));
