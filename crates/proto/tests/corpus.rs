//! Replays the committed fuzz corpora (fuzz/corpus/<target>/) on stable,
//! through the same checks the fuzz targets run, so CI exercises every seed
//! and every crash the fuzzers ever found.

use std::path::{Path, PathBuf};

use udpchat_proto::fuzzing;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    // A missing or emptied corpus must not pass silently.
    assert!(files.len() >= 20, "{target}: only {} files", files.len());
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    for path in corpus(target) {
        let bytes = std::fs::read(&path).expect("corpus file");
        let result = std::panic::catch_unwind(|| check(&bytes));
        assert!(result.is_ok(), "{} fails the check", path.display());
    }
}

#[test]
fn client_corpus_round_trips() {
    replay("parse_client", fuzzing::check_client);
}

#[test]
fn relay_corpus_round_trips() {
    replay("parse_relay", fuzzing::check_relay);
}
