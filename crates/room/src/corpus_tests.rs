//! (Unit tests of the room crate, where the oracle is always built.)
//! Replays the room fuzz target's corpus (fuzz/corpus/room/: seeds, and every
//! crash the fuzzer found, as regression tests) through the same harness the
//! fuzz target uses, on stable, and runs a few thousand pseudo-random inputs
//! through it too.

use std::path::Path;

use crate::fuzzing;

/// SplitMix64: a tiny seeded generator, enough for random fuzz inputs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn room_fuzz_corpus_replays_without_breaking_an_invariant() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/room");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 10,
        "corpus has only {} inputs",
        entries.len()
    );
    for path in &entries {
        let data = std::fs::read(path).expect("readable corpus file");
        let result = std::panic::catch_unwind(|| fuzzing::run(&data));
        assert!(result.is_ok(), "{} breaks an invariant", path.display());
    }
}

#[test]
fn random_inputs_keep_every_room_invariant() {
    let mut rng = SplitMix64(0x0fa2_2ed0);
    for _ in 0..2000 {
        let len = (rng.next() % 2048) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        fuzzing::run(&data);
    }
}
