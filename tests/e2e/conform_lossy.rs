//! End to end: `udpchat-conform relay --loss --dup --reorder --seed`, the
//! checks of repair behind the kit's seeded lossy path: our relay passes
//! them, and our relay behind a proxy that drops every RESEND (a relay
//! that ignores RESEND, as the kit sees it) fails exactly the repair check.

use std::process::Command;
use std::time::Duration;

use udpchat_conform::lossy::{FaultSettings, NOT_UNDER_FAULTS};
use udpchat_conform::runner::run_with_faults;
use udpchat_conform::{Options, Outcome, Report};

use crate::support::drop_proxy::DropProxy;
use crate::support::{Relay, TempFile};

const CONFORM_BIN: &str = env!("CARGO_BIN_EXE_udpchat-conform");

const FAULTS: FaultSettings = FaultSettings {
    loss: 0.2,
    dup: 0.1,
    reorder: 0.1,
    seed: 7,
};

fn run_lossy(target: std::net::SocketAddr) -> Report {
    run_with_faults(
        &Options {
            target,
            timeout: Duration::from_secs(5),
            only: Vec::new(),
        },
        Some(FAULTS),
    )
    .expect("the relay answers")
}

fn console(report: &Report) -> String {
    udpchat_conform::report::console::render(report, udpchat_proto::Lang::En)
}

/// The three checks of repair pass under 20 % loss, 10 % duplicates and
/// 10 % reordering; every other check is skipped as not run under faults.
#[test]
fn conform_lossy_our_relay_passes_the_repair_checks_under_faults() {
    let relay = Relay::start(&[]);
    let report = run_lossy(relay.addr);
    let text = console(&report);
    assert_eq!(report.failed_ids(), Vec::<&str>::new(), "{text}");
    let passed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .map(|r| r.check.id)
        .collect();
    assert_eq!(
        passed,
        [
            "struct.say.once",
            "struct.resend.repair",
            "struct.private.ack"
        ],
        "{text}"
    );
    for r in &report.results {
        if let Outcome::Skip { why } = &r.outcome {
            assert_eq!(why, NOT_UNDER_FAULTS, "{}", r.check.id);
        }
    }
    assert_eq!(report.faults, Some(FAULTS));
    assert!(
        text.contains("--loss 0.2 --dup 0.1 --reorder 0.1 --seed 7"),
        "the report names the faults and the seed:\n{text}"
    );
}

/// A relay that ignores RESEND fails the repair check and no other.
#[test]
fn conform_lossy_catches_a_relay_that_ignores_resend() {
    let relay = Relay::start(&[]);
    let proxy = DropProxy::start(relay.addr, b"RESEND ");
    let report = run_lossy(proxy.addr);
    assert_eq!(
        report.failed_ids(),
        ["struct.resend.repair"],
        "{}",
        console(&report)
    );
}

/// The binary: the flags, exit 0, and the JSON and JUnit name the faults.
#[test]
fn conform_lossy_binary_writes_the_faults_into_the_json_and_junit() {
    let relay = Relay::start(&[]);
    let json = TempFile::new("lossy.json");
    let junit = TempFile::new("lossy.xml");
    let out = Command::new(CONFORM_BIN)
        .args(["relay", &relay.addr.to_string(), "--timeout", "5s"])
        .args([
            "--loss",
            "0.2",
            "--dup",
            "0.1",
            "--reorder",
            "0.1",
            "--seed",
            "7",
        ])
        .args(["--only", "struct.say"])
        .arg("--json")
        .arg(&json.0)
        .arg("--junit")
        .arg(&junit.0)
        .output()
        .expect("run udpchat-conform");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let json = std::fs::read_to_string(&json.0).expect("JSON written");
    assert!(
        json.contains("\"faults\":{\"loss\":0.2,\"dup\":0.1,\"reorder\":0.1,\"seed\":7}"),
        "{json}"
    );
    let junit = std::fs::read_to_string(&junit.0).expect("JUnit written");
    assert!(
        junit.contains(" --loss 0.2 --dup 0.1 --reorder 0.1 --seed 7\" tests="),
        "{junit}"
    );
    let bad = Command::new(CONFORM_BIN)
        .args(["relay", &relay.addr.to_string(), "--loss", "0.9"])
        .output()
        .expect("run udpchat-conform");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use 0 to 0.5"));
}
