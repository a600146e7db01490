//! End to end: `udpchat-conform relay` against the real relay (every check
//! passes) and against broken relays, each of which must fail exactly the
//! checks its bug breaks, and no others: the classic relay of
//! `support::broken_relay` for the classic and extension checks, and our
//! relay behind a fault proxy (`support::drop_proxy`) for the structured
//! ones.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use udpchat_conform::{registry, run, Group, Options, Outcome, Report};

use crate::support::broken_relay::{BrokenRelay, Faults};
use crate::support::drop_proxy::{DropProxy, Fault};
use crate::support::{Member, Relay, TempFile};

const CONFORM_BIN: &str = env!("CARGO_BIN_EXE_udpchat-conform");

/// Generous: a passing check never waits for it (absence is shown with a
/// barrier message, not a timeout); only the checks a broken relay fails
/// by silence wait this long.
const TIMEOUT: Duration = Duration::from_secs(5);

fn run_against(faults: Faults) -> Report {
    let relay = BrokenRelay::start(faults);
    run(&Options {
        target: relay.addr,
        timeout: TIMEOUT,
        only: Vec::new(),
    })
    .expect("the broken relay answers")
}

/// Asserts the failed checks are exactly `want`, that the structured group
/// is skipped as one group (these relays are classic only), and that
/// nothing else was skipped.
fn assert_fails_exactly(faults: Faults, want: &[&str]) {
    let report = run_against(faults);
    assert_eq!(
        report.failed_ids(),
        want,
        "{faults:?}:\n{}",
        console(&report)
    );
    assert!(report.group_skip(Group::Structured).is_some());
    for r in &report.results {
        if let Outcome::Skip { why } = &r.outcome {
            assert_eq!(
                r.check.group,
                Group::Structured,
                "{} skipped: {why}",
                r.check.id
            );
        }
    }
    assert_eq!(report.must_passed(), want.is_empty());
}

fn console(report: &Report) -> String {
    udpchat_conform::report::console::render(report, udpchat_proto::Lang::En)
}

#[test]
fn conform_a_classic_relay_without_bugs_passes_and_skips_structured_as_one_group() {
    assert_fails_exactly(Faults::default(), &[]);
}

#[test]
fn conform_catches_a_relay_that_truncates_at_1024_bytes() {
    assert_fails_exactly(
        Faults {
            truncates_at_1024: true,
            ..Faults::default()
        },
        &[
            "classic.text.801-refused",
            "classic.datagram.over-1024-refused",
        ],
    );
}

#[test]
fn conform_catches_a_relay_that_trims_spaces() {
    assert_fails_exactly(
        Faults {
            trims_spaces: true,
            ..Faults::default()
        },
        &["classic.text.spaces-kept"],
    );
}

#[test]
fn conform_catches_a_relay_that_trusts_the_nickname_inside_m() {
    assert_fails_exactly(
        Faults {
            trusts_nick_in_m: true,
            ..Faults::default()
        },
        &["classic.identity.forged-m", "classic.identity.forged-q"],
    );
}

#[test]
fn conform_catches_a_relay_that_never_sends_a_leave_notice() {
    assert_fails_exactly(
        Faults {
            no_leave_notice: true,
            ..Faults::default()
        },
        &["classic.quit.leave-notice"],
    );
}

#[test]
fn conform_catches_a_relay_whose_who_exceeds_1024_bytes() {
    assert_fails_exactly(
        Faults {
            who_unpaged: true,
            ..Faults::default()
        },
        &["ext.who.paging"],
    );
}

#[test]
fn conform_catches_a_relay_that_compares_nicknames_with_case() {
    assert_fails_exactly(
        Faults {
            nick_case_sensitive: true,
            ..Faults::default()
        },
        &["classic.join.nick-case"],
    );
}

#[test]
fn conform_catches_a_relay_that_relays_to_two_members_only() {
    assert_fails_exactly(
        Faults {
            relays_to_two: true,
            ..Faults::default()
        },
        &["classic.chat.fan-out", "ext.msg.private"],
    );
}

#[test]
fn conform_catches_a_relay_that_mangles_emoji() {
    assert_fails_exactly(
        Faults {
            mangles_emoji: true,
            ..Faults::default()
        },
        &["classic.text.unicode-kept"],
    );
}

#[test]
fn conform_catches_a_relay_that_refuses_texts_over_700_bytes() {
    assert_fails_exactly(
        Faults {
            text_limit_700: true,
            ..Faults::default()
        },
        &["classic.text.800-accepted"],
    );
}

#[test]
fn conform_catches_a_relay_that_relays_control_characters() {
    assert_fails_exactly(
        Faults {
            relays_control_chars: true,
            ..Faults::default()
        },
        &["classic.text.control-refused"],
    );
}

#[test]
fn conform_catches_a_relay_that_strips_only_the_lf_of_cr_lf() {
    assert_fails_exactly(
        Faults {
            strips_only_lf: true,
            ..Faults::default()
        },
        &["classic.ending.crlf"],
    );
}

#[test]
fn conform_catches_a_relay_that_forgets_a_bare_lf_ending() {
    assert_fails_exactly(
        Faults {
            lf_ending_forgotten: true,
            ..Faults::default()
        },
        &["classic.ending.lf"],
    );
}

#[test]
fn conform_catches_a_relay_that_drops_a_member_that_sends_invalid_utf8() {
    assert_fails_exactly(
        Faults {
            drops_member_on_bad_utf8: true,
            ..Faults::default()
        },
        &["classic.robust.garbage"],
    );
}

#[test]
fn conform_catches_a_relay_that_refuses_a_repeated_join() {
    assert_fails_exactly(
        Faults {
            refuses_repeated_join: true,
            ..Faults::default()
        },
        &["classic.join.repeat-ok"],
    );
}

#[test]
fn conform_catches_a_relay_that_lets_a_member_join_again_under_another_nickname() {
    assert_fails_exactly(
        Faults {
            rejoin_renames: true,
            ..Faults::default()
        },
        &["classic.join.already-joined"],
    );
}

#[test]
fn conform_catches_a_relay_that_never_checks_for_a_taken_nickname() {
    assert_fails_exactly(
        Faults {
            accepts_taken_nick: true,
            ..Faults::default()
        },
        &["classic.join.nick-taken", "classic.join.nick-case"],
    );
}

#[test]
fn conform_catches_a_relay_that_ignores_ping() {
    assert_fails_exactly(
        Faults {
            no_pong: true,
            ..Faults::default()
        },
        &["ext.ping.pong"],
    );
}

#[test]
fn conform_catches_a_relay_that_sends_msg_to_everyone() {
    assert_fails_exactly(
        Faults {
            msg_to_everyone: true,
            ..Faults::default()
        },
        &["ext.msg.private"],
    );
}

#[test]
fn conform_catches_a_relay_that_ignores_nick() {
    assert_fails_exactly(
        Faults {
            ignores_nick: true,
            ..Faults::default()
        },
        &["ext.nick.rename"],
    );
}

/// A relay that answers a bare `N` with `OK\n` fails `classic.join.ok`,
/// and with it every check that needs a member joined the classic way:
/// all classic and extension checks.
#[test]
fn conform_catches_a_relay_that_answers_ok_with_a_line_feed() {
    let every_join: Vec<&str> = registry::all()
        .iter()
        .filter(|c| c.group != Group::Structured)
        .map(|c| c.id)
        .collect();
    assert_eq!(every_join[0], "classic.join.ok");
    assert_fails_exactly(
        Faults {
            ok_always_lf: true,
            ..Faults::default()
        },
        &every_join,
    );
}

/// A course relay that knows only N, M and Q fails nothing: each extension
/// check is skipped (it answered `unknown-verb`), the structured ones as a
/// group.
#[test]
fn conform_skips_the_extensions_a_classic_only_relay_lacks() {
    let report = run_against(Faults {
        classic_only: true,
        ..Faults::default()
    });
    assert_eq!(
        report.failed_ids(),
        Vec::<&str>::new(),
        "{}",
        console(&report)
    );
    for r in &report.results {
        let skipped = matches!(r.outcome, Outcome::Skip { .. });
        assert_eq!(
            skipped,
            r.check.group != Group::Classic,
            "{}: {:?}",
            r.check.id,
            r.outcome
        );
        if let (Group::Extensions, Outcome::Skip { why }) = (r.check.group, &r.outcome) {
            assert!(why.contains("does not implement"), "{why}");
        }
    }
    assert!(report.must_passed());
}

/// The binary against the real relay: exit 0, the summary line last, and
/// the JSON and JUnit files agree with it. `--max-per-ip 0`: every member
/// of the kit comes from 127.0.0.1, and the default (4 members, 8 joins
/// and 1 a second per IP address) would make the run slow and the `WHO`
/// check unable to fill two pages.
#[test]
fn conform_binary_passes_every_check_against_our_relay() {
    let relay = Relay::start(&["--max-per-ip", "0"]);
    let json = TempFile::new("conform.json");
    let junit = TempFile::new("conform.xml");
    let out = Command::new(CONFORM_BIN)
        .args([
            "relay",
            &relay.addr.to_string(),
            "--timeout",
            "5s",
            "--json",
        ])
        .arg(&json.0)
        .arg("--junit")
        .arg(&junit.0)
        .output()
        .expect("run udpchat-conform");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = registry::all().len();
    assert_eq!(
        stdout.lines().last(),
        Some(format!("{total} passed, 0 failed, 0 skipped").as_str()),
        "{stdout}"
    );
    let json = std::fs::read_to_string(&json.0).expect("JSON written");
    assert!(
        json.contains(&format!("\"passed\":{total},\"failed\":0,\"skipped\":0")),
        "{json}"
    );
    assert_eq!(
        json.matches("\"outcome\":\"pass\"").count(),
        total,
        "{json}"
    );
    let junit = std::fs::read_to_string(&junit.0).expect("JUnit written");
    assert!(
        junit.contains(&format!("tests=\"{total}\" failures=\"0\" skipped=\"0\"")),
        "{junit}"
    );
    assert_eq!(junit.matches("<testcase ").count(), total);
    // It left nobody behind: every member it joined has quit.
    let after = Member::new(relay.addr);
    after.join_classic("after");
    after.send("WHO");
    let who = after.recv_until("the WHO answer", |l| l.starts_with("* online"));
    assert_eq!(who, "* online (1): after");
}

/// A relay that speaks Chinese (`--lang zh`) passes too: the kit knows
/// both languages' lines (joins, leaves, renames, private lines, WHO pages).
#[test]
fn conform_passes_a_relay_that_speaks_chinese() {
    let relay = Relay::start(&["--max-per-ip", "0", "--lang", "zh"]);
    let report = run(&Options {
        target: relay.addr,
        timeout: TIMEOUT,
        only: vec!["classic.".to_owned(), "ext.".to_owned()],
    })
    .expect("the relay answers");
    assert_eq!(
        report.failed_ids(),
        Vec::<&str>::new(),
        "{}",
        console(&report)
    );
    assert_eq!(report.passed(), report.results.len());
}

/// A broken relay through the binary: exit 1, the failure's evidence on
/// stdout, and the words in Chinese with --lang zh.
#[test]
fn conform_binary_exits_1_with_evidence_when_a_must_fails() {
    let relay = BrokenRelay::start(Faults {
        trims_spaces: true,
        ..Faults::default()
    });
    let out = Command::new(CONFORM_BIN)
        .args([
            "relay",
            &relay.addr.to_string(),
            "--timeout",
            "5s",
            "--lang",
            "zh",
        ])
        .args([
            "--only",
            "classic.text.spaces-kept",
            "--only",
            "classic.join.ok",
        ])
        .output()
        .expect("run udpchat-conform");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("失败  classic.text.spaces-kept"),
        "{stdout}"
    );
    assert!(
        stdout.contains("two leading"),
        "the datagrams are shown:\n{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("1 项通过，1 项失败，0 项跳过"),
        "{stdout}"
    );
}

/// Nothing answers: a clear error and exit 2, not a report of failures.
#[test]
fn conform_binary_exits_2_when_nothing_answers() {
    // A socket that never reads: the kit's datagrams go nowhere.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let out = Command::new(CONFORM_BIN)
        .args([
            "relay",
            &silent.local_addr().expect("bound").to_string(),
            "--timeout",
            "200ms",
        ])
        .output()
        .expect("run udpchat-conform");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no answer from"), "{stderr}");
    assert!(out.stdout.is_empty());
    // Nothing listens on port 9 of loopback (a port below the ephemeral
    // range, so no relay of a parallel test can hold it): the computer says
    // "port unreachable" (or, if a discard service listens, nothing).
    let out = Command::new(CONFORM_BIN)
        .args(["relay", "127.0.0.1:9", "--timeout", "200ms"])
        .output()
        .expect("run udpchat-conform");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nothing listens on") || stderr.contains("no answer from"),
        "{stderr}"
    );
    let usage = Command::new(CONFORM_BIN)
        .args(["relay", "127.0.0.1:1", "--timeout", "soon"])
        .output()
        .expect("run udpchat-conform");
    assert_eq!(usage.status.code(), Some(2));
    let unknown = Command::new(CONFORM_BIN)
        .args(["relay", "127.0.0.1:1", "--only", "classic.nosuch"])
        .output()
        .expect("run udpchat-conform");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no check id starts with"));
}

/// The structured checks can fail too: our relay told to send no history
/// on join fails exactly `struct.history.join`. (Its history of 16 events
/// has dropped event 1 by `struct.resend.gone`, which must then get `GONE`.)
#[test]
fn conform_catches_a_relay_that_sends_no_history_on_join() {
    let relay = Relay::start(&[
        "--max-per-ip",
        "0",
        "--history-on-join",
        "0",
        "--history",
        "16",
    ]);
    let report = run(&Options {
        target: relay.addr,
        timeout: TIMEOUT,
        only: vec!["struct.".to_owned()],
    })
    .expect("the relay answers");
    assert_eq!(
        report.failed_ids(),
        ["struct.history.join"],
        "{}",
        console(&report)
    );
    assert_eq!(report.passed(), report.results.len() - 1);
}

/// Runs the structured checks against our relay (started with `args`)
/// behind a proxy with `fault`, and asserts the failed checks are exactly
/// `want` and every other one passed.
fn assert_struct_fails_exactly(args: &[&str], fault: Fault, want: &[&str]) {
    let relay = Relay::start(&[&["--max-per-ip", "0"], args].concat());
    let proxy = DropProxy::with_fault(relay.addr, fault);
    let report = run(&Options {
        target: proxy.addr,
        timeout: TIMEOUT,
        only: vec!["struct.".to_owned()],
    })
    .expect("the relay answers");
    assert_eq!(
        report.failed_ids(),
        want,
        "{fault:?}:\n{}",
        console(&report)
    );
    assert_eq!(report.passed(), report.results.len() - want.len());
}

/// Never sends `GONE` (its history of 16 events has dropped event 1 by
/// then): `struct.resend.gone` and no other.
#[test]
fn conform_catches_a_relay_that_never_sends_gone() {
    assert_struct_fails_exactly(
        &["--history", "16"],
        Fault::DropFromRelay(b" GONE "),
        &["struct.resend.gone"],
    );
}

/// Skips a sequence number (the second of three live events never comes).
#[test]
fn conform_catches_a_relay_whose_event_numbers_skip_one() {
    assert_struct_fails_exactly(
        &[],
        Fault::DropFromRelay(b"number 2 "),
        &["struct.event.contiguous"],
    );
}

/// The classic observer gets a SAY's text twice.
#[test]
fn conform_catches_a_relay_that_relays_a_say_twice() {
    assert_struct_fails_exactly(
        &[],
        Fault::DuplicateFromRelay(b"only once "),
        &["struct.say.once"],
    );
}

/// Sends `PRIVATE` once and never again while no `ACK` came.
#[test]
fn conform_catches_a_relay_that_never_repeats_private() {
    assert_struct_fails_exactly(
        &[],
        Fault::DropRepeatsFromRelay(b" PRIVATE "),
        &["struct.private.ack"],
    );
}

/// Answers a cookie-less `HELLO` under 64 bytes (the proxy pads it).
#[test]
fn conform_catches_a_relay_that_answers_a_short_hello() {
    assert_struct_fails_exactly(&[], Fault::PadShortHello, &["struct.cookie.padding"]);
}

/// Acts on a keyed member's datagrams that lack the relay's key (the proxy
/// adds it).
#[test]
fn conform_catches_a_relay_that_acts_on_unkeyed_datagrams() {
    assert_struct_fails_exactly(
        &[],
        Fault::KeyUnprefixed,
        &["struct.key.unprefixed-dropped"],
    );
}

/// Sends no key in its `WELCOME` (the proxy takes it off, and keys what
/// the kit then sends unkeyed): the round trip fails, and so does the
/// unkeyed-datagram check, whose forgeries the proxy keys too.
#[test]
fn conform_catches_a_relay_whose_welcome_has_no_key() {
    assert_struct_fails_exactly(
        &[],
        Fault::HideRelayKey,
        &["struct.cookie.round-trip", "struct.key.unprefixed-dropped"],
    );
}
