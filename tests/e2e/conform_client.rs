//! End to end: `udpchat-conform client` playing the relay for our client
//! (every check passes) and for the deliberately broken clients of
//! `support/broken_client.py` (python3), each of which must fail exactly
//! the check of the rule it breaks, and no other.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use udpchat_conform::client::{run, Options, CHECKS};
use udpchat_conform::{Group, Outcome, Report};

use crate::support::process::fresh_state_dir;
use crate::support::TempFile;

const CONFORM_BIN: &str = env!("CARGO_BIN_EXE_udpchat-conform");
const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_udpchat");

/// Generous: a passing check never waits for it (it ends when what it
/// waits for arrives); only a check a broken client fails by silence
/// waits this long.
const TIMEOUT: Duration = Duration::from_secs(10);

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/support/broken_client.py")
        .to_string_lossy()
        .into_owned()
}

/// Whether python3 runs here (Debian and the CI images have it); the
/// tests of the broken clients say so loudly and pass without it.
fn python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 is not installed; the broken-client tests need it");
    }
    ok
}

fn console(report: &Report) -> String {
    udpchat_conform::report::console::render(report, udpchat_proto::Lang::En)
}

/// The faults of `broken_client.py` that join with `HELLO`.
const STRUCTURED: &[&str] = &[
    "structured",
    "never-retransmits",
    "no-resend",
    "no-rejoin",
    "unprefixed-say",
];

/// Runs the kit against the broken client `fault`.
fn run_broken(fault: &str) -> Report {
    let structured = STRUCTURED.contains(&fault);
    let mut command = vec![
        "python3".to_owned(),
        script(),
        "{addr}".to_owned(),
        fault.to_owned(),
    ];
    if structured {
        command.push("pyclient".to_owned());
    }
    run(&Options {
        command,
        timeout: TIMEOUT,
        name: (!structured).then(|| "carol".to_owned()),
        only: Vec::new(),
    })
    .expect("the kit runs")
}

/// The failed checks are exactly `want`; a classic client skips the
/// structured checks as one group and nothing else; a structured one skips
/// nothing.
fn assert_fails_exactly(fault: &str, want: &[&str]) {
    let report = run_broken(fault);
    assert_eq!(report.failed_ids(), want, "{fault}:\n{}", console(&report));
    let classic = !STRUCTURED.contains(&fault);
    assert_eq!(
        report.group_skip(Group::ClientStructured).is_some(),
        classic,
        "{}",
        console(&report)
    );
    for r in &report.results {
        if let Outcome::Skip { why } = &r.outcome {
            assert!(
                classic && r.check.group == Group::ClientStructured,
                "{} skipped: {why}\n{}",
                r.check.id,
                console(&report)
            );
        }
    }
    assert_eq!(report.results.len(), CHECKS.len());
    assert_eq!(report.must_passed(), want.is_empty());
}

/// Our client, piped, through the binary: exit 0, every check passes, the
/// JSON and JUnit files agree, and no client process is left behind.
#[test]
fn conform_client_our_client_passes_every_check() {
    let state = fresh_state_dir("conform-client-state");
    let json = TempFile::new("conform-client.json");
    let junit = TempFile::new("conform-client.xml");
    let out = Command::new(CONFORM_BIN)
        .args(["client", "--timeout", "5s", "--json"])
        .arg(&json.0)
        .arg("--junit")
        .arg(&junit.0)
        .args(["--", CLIENT_BIN, "--relay", "{addr}", "--nick", "alice"])
        .arg("--state-dir")
        .arg(&state.0)
        .output()
        .expect("run udpchat-conform");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = CHECKS.len();
    assert_eq!(
        stdout.lines().last(),
        Some(format!("{total} passed, 0 failed, 0 skipped").as_str()),
        "{stdout}"
    );
    assert!(
        stdout.starts_with("udpchat-conform: checking a client"),
        "{stdout}"
    );
    let json = std::fs::read_to_string(&json.0).expect("JSON written");
    assert!(json.contains("\"mode\":\"client\""), "{json}");
    assert!(
        json.contains(&format!("\"passed\":{total},\"failed\":0,\"skipped\":0")),
        "{json}"
    );
    let junit = std::fs::read_to_string(&junit.0).expect("JUnit written");
    assert!(
        junit.contains(&format!("tests=\"{total}\" failures=\"0\" skipped=\"0\"")),
        "{junit}"
    );
    assert_eq!(junit.matches("<testcase ").count(), total);
    // Every client the kit started was killed and reaped: no process runs
    // with this test's state directory on its command line.
    #[cfg(target_os = "linux")]
    {
        let marker = state.0.to_string_lossy().into_owned();
        let left: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&marker))
            .collect();
        assert!(left.is_empty(), "clients left behind: {left:?}");
    }
}

/// A correct course client (N, M; a name typed first) passes every check
/// it can, and skips the structured ones as one group.
#[test]
fn conform_client_a_course_client_passes_and_skips_structured_as_one_group() {
    if python3() {
        assert_fails_exactly("none", &[]);
    }
}

/// A correct minimal structured client passes everything: the broken
/// structured client below differs from it only in its fault.
#[test]
fn conform_client_a_minimal_structured_client_passes() {
    if python3() {
        assert_fails_exactly("structured", &[]);
    }
}

#[test]
fn conform_client_catches_a_client_that_never_retransmits() {
    if python3() {
        assert_fails_exactly("never-retransmits", &["client.say.retransmit"]);
    }
}

#[test]
fn conform_client_catches_a_client_that_trims_spaces() {
    if python3() {
        assert_fails_exactly("trims-spaces", &["client.text.spaces-kept"]);
    }
}

#[test]
fn conform_client_catches_a_client_that_sends_over_1024_bytes() {
    if python3() {
        assert_fails_exactly("over-1024", &["client.datagram.max-1024"]);
    }
}

#[test]
fn conform_client_catches_a_client_that_prints_control_characters() {
    if python3() {
        assert_fails_exactly("raw-control", &["client.show.no-control"]);
    }
}

#[test]
fn conform_client_catches_a_client_that_never_asks_for_missing_events() {
    if python3() {
        assert_fails_exactly("no-resend", &["client.resend.gap"]);
    }
}

#[test]
fn conform_client_catches_a_client_that_does_not_rejoin_a_restarted_relay() {
    if python3() {
        assert_fails_exactly("no-rejoin", &["client.rejoin.restart"]);
    }
}

#[test]
fn conform_client_catches_a_client_whose_say_lacks_the_relays_key() {
    if python3() {
        assert_fails_exactly("unprefixed-say", &["client.chat.identity"]);
    }
}

#[test]
fn conform_client_catches_a_client_that_sends_the_cr_of_a_crlf_line() {
    if python3() {
        assert_fails_exactly("keeps-cr", &["client.datagram.line-endings"]);
    }
}

/// A client that exits at once (here ours without --nick) fails the join
/// at once, and the evidence says that it exited and what it said.
#[test]
fn conform_client_reports_a_client_that_exits_before_joining() {
    let report = run(&Options {
        command: vec![
            CLIENT_BIN.to_owned(),
            "--relay".to_owned(),
            "{addr}".to_owned(),
        ],
        timeout: TIMEOUT,
        name: None,
        only: vec!["client.join.first".to_owned()],
    })
    .expect("the kit runs");
    assert_eq!(report.failed_ids(), ["client.join.first"]);
    let Outcome::Fail { problem, .. } = &report.results[0].outcome else {
        unreachable!("it failed");
    };
    assert!(problem.contains("the client had exited"), "{problem}");
    assert!(problem.contains("nick"), "{problem}");
    assert!(
        report.duration < TIMEOUT,
        "it did not wait for a dead client"
    );
}

/// Through the binary: a MUST failed is exit 1 with the evidence, in
/// Chinese with --lang zh; a missing command is a usage error (exit 2).
#[test]
fn conform_client_binary_exits_1_on_a_failed_must_and_2_without_a_command() {
    let usage = Command::new(CONFORM_BIN)
        .args(["client", "--timeout", "1s"])
        .output()
        .expect("run udpchat-conform");
    assert_eq!(usage.status.code(), Some(2));
    if !python3() {
        return;
    }
    let out = Command::new(CONFORM_BIN)
        .args([
            "client",
            "--timeout",
            "5s",
            "--lang",
            "zh",
            "--name",
            "carol",
        ])
        .args(["--only", "client.join", "--only", "client.text"])
        .args(["--", "python3"])
        .arg(script())
        .args(["{addr}", "trims-spaces"])
        .output()
        .expect("run udpchat-conform");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("失败  client.text.spaces-kept"), "{stdout}");
    assert!(stdout.contains("M carol two leading"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("1 项通过，1 项失败，1 项跳过"),
        "{stdout}"
    );
}
