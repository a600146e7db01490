//! Replays the room fuzz target's corpus (fuzz/corpus/room/: seeds, and every
//! crash the fuzzer found, as regression tests) through the same harness the
//! fuzz target uses, on stable, and runs a few thousand pseudo-random inputs
//! through it too.

use std::path::Path;

use udpchat_lossproxy::SplitMix64;
use udpchat_room::fuzzing;

#[test]
fn room_fuzz_corpus_replays_without_breaking_an_invariant() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/room");
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
    let mut rng = SplitMix64::new(0x0fa2_2ed0);
    let mut data = Vec::new();
    for _ in 0..2000 {
        let len = rng.below(2048) as usize;
        data.resize(len, 0);
        rng.fill(&mut data);
        fuzzing::run(&data);
    }
}
