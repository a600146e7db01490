//! `--version` of both binaries: the name, the version and the commit
//! ("commit unknown" unless the build set `UDPCHAT_COMMIT`, as
//! dist/build.sh does for the release archives).

use std::process::Command;

use crate::support::client::CLIENT_BIN;
use crate::support::relay::RELAY_BIN;

fn version_of(bin: &str) -> String {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    assert!(out.status.success(), "{bin} --version: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn both_binaries_say_their_version_and_commit() {
    let commit = option_env!("UDPCHAT_COMMIT")
        .filter(|c| !c.is_empty())
        .unwrap_or("unknown");
    for (bin, name) in [(CLIENT_BIN, "udpchat"), (RELAY_BIN, "udpchat-relay")] {
        let line = version_of(bin);
        assert_eq!(
            line.trim_end(),
            format!("{name} {} (commit {commit})", env!("CARGO_PKG_VERSION")),
            "{bin}"
        );
    }
}
