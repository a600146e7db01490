//! End to end: the relay as a process: flags and exit codes, the operator
//! console, the transcript, shutdown on SIGTERM, unreachable clients.

use crate::support::{
    eventually, run_relay_to_exit, Member, Relay, TempFile, LISTENING_PREFIX, WAIT,
};
use std::net::UdpSocket;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

#[test]
fn bad_flag_is_a_one_line_error_and_exit_code_2() {
    for args in [
        &["--frobnicate"][..],
        &["--idle-timeout", "soon"],
        &["--bind", "not-an-address"],
        &["--lang", "fr"],
        &["--max-clients", "0"],
    ] {
        let (status, stdout, stderr) = run_relay_to_exit(args);
        assert_eq!(status.code(), Some(2), "{args:?}: stderr {stderr:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: stderr {stderr:?}");
        assert!(
            stderr.starts_with("udpchat-relay: "),
            "{args:?}: stderr {stderr:?}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stdout.is_empty(), "{args:?}: stdout {stdout:?}");
    }
}

#[test]
fn help_exits_0_and_lists_the_flags() {
    let (status, stdout, _) = run_relay_to_exit(&["--help"]);
    assert_eq!(status.code(), Some(0));
    for flag in [
        "--bind",
        "--max-clients",
        "--idle-timeout",
        "--classic-idle-timeout",
        "--no-classic",
        "--transcript",
        "--transcript-private",
        "--lang",
        "--rate-burst",
        "--rate-per-sec",
        "--history",
        "--history-on-join",
        "--send-queue",
        "--stats-interval",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}:\n{stdout}");
    }
}

#[test]
fn address_in_use_is_a_one_line_error_and_exit_code_2() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stdout, stderr) = run_relay_to_exit(&["--bind", &addr]);
    assert_eq!(status.code(), Some(2), "stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "stderr {stderr:?}");
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(!stdout.contains(LISTENING_PREFIX), "{stdout}");
}

#[test]
fn unopenable_transcript_is_a_start_up_error() {
    let (status, stdout, stderr) = run_relay_to_exit(&[
        "--bind",
        "127.0.0.1:0",
        "--transcript",
        "/nonexistent-dir-udpchat/transcript.log",
    ]);
    assert_eq!(status.code(), Some(2), "stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "stderr {stderr:?}");
    assert!(stderr.contains("transcript"), "{stderr}");
    assert!(!stdout.contains(LISTENING_PREFIX), "{stdout}");
}

#[test]
fn listening_line_is_exact() {
    let relay = Relay::start(&[]);
    assert!(relay.addr.ip().is_loopback());
    assert_ne!(relay.addr.port(), 0);
}

#[test]
fn operator_console_through_a_pipe() {
    let mut relay = Relay::start_with_console(&[]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    bob.expect("* bob joined");
    alice.expect("* bob joined");

    relay.console("please open chapter 3");
    alice.expect("[host] please open chapter 3");
    bob.expect("[host] please open chapter 3");

    relay.console("/who");
    relay.expect_stdout("with the member count", |l| l == "2 members");
    relay.expect_stdout("listing alice", |l| l.trim_start().starts_with("alice "));
    relay.expect_stdout("listing bob", |l| l.trim_start().starts_with("bob "));

    relay.console("/kick bob too noisy");
    let bye = bob.recv_text();
    assert!(bye.contains("too noisy"), "bob got {bye:?}");
    alice.expect("* bob was removed by the host");
    relay.expect_stdout("confirming the kick", |l| l.contains("kicked bob"));

    relay.console("/kick nobody");
    relay.expect_stdout("refusing the kick", |l| l.contains("nobody"));

    // End of input must not stop the relay.
    relay.close_stdin();
    relay.expect_stderr("end of input");
    assert!(relay.is_running());
    alice.send("M alice still open?");
    alice.expect("alice: still open?");
}

#[test]
fn console_quit_says_goodbye_and_exits_0() {
    let mut relay = Relay::start_with_console(&[]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    relay.console("/quit class is over");
    alice.expect("* the relay is shutting down: class is over");
    let status = relay.wait_exit(WAIT).expect("relay exits after /quit");
    assert_eq!(status.code(), Some(0));
}

#[cfg(unix)]
#[test]
fn transcript_after_sigterm_is_complete_and_members_get_bye() {
    let file = TempFile::new("sigterm-transcript");
    let mut relay = Relay::start_with_console(&["--transcript", file.as_str()]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let bob = Member::new(relay.addr);
    bob.send("N bob\n");
    assert_eq!(bob.recv_text(), "OK\n");
    bob.expect("* bob joined\n");
    alice.send("M alice first message");
    bob.expect("alice: first message\n");
    relay.console("host says hi");
    bob.expect("[host] host says hi\n");
    bob.send("Q bob\n");
    alice.expect("* bob left");

    let status = relay.terminate();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", relay.stderr());
    let bye = alice.recv_text();
    assert!(
        bye.starts_with("* the relay is shutting down"),
        "alice got {bye:?}"
    );

    let text = std::fs::read_to_string(&file.0).expect("transcript exists");
    assert!(text.ends_with('\n'), "torn last line: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    let bodies: Vec<&str> = lines
        .iter()
        .map(|l| {
            // "2026-11-22T00:31:47.123Z #1 * alice joined"
            let (stamp, rest) = l.split_once(' ').expect("timestamp then text");
            assert_eq!(stamp.len(), 24, "{l:?}");
            assert!(
                stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
                "{l:?}"
            );
            rest
        })
        .collect();
    let started = format!("relay started on {}", relay.addr);
    assert_eq!(
        bodies,
        [
            started.as_str(),
            "#1 * alice joined",
            "#2 * bob joined",
            "#3 alice: first message",
            "#4 [host] host says hi",
            "#5 * bob left",
            "relay stopped (SIGTERM): goodbye",
        ]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn client_closed_without_quit_leaves_as_unreachable() {
    let relay = Relay::start(&[]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let ghost = Member::new(relay.addr);
    ghost.join_classic("ghost");
    ghost.expect("* ghost joined");
    alice.expect("* ghost joined");

    // The ghost's program exits without Q: its port is now closed.
    drop(ghost);
    // The next message makes the relay send to the dead port; the ICMP port
    // unreachable that comes back removes the ghost.
    alice.nudge_until("M alice anyone there?", "* ghost left (unreachable)");
    relay.expect_stderr("ghost left (unreachable)");

    // The nickname is free again.
    let again = Member::new(relay.addr);
    again.join_classic("ghost");
}

#[cfg(target_os = "linux")]
#[test]
fn a_member_reported_unreachable_that_speaks_again_is_restored() {
    // A long grace: this test is about the way back, not the eviction.
    let relay = Relay::start(&["--unreachable-grace", "120s"]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let ghost = Member::new(relay.addr);
    ghost.join_classic("ghost");
    alice.expect("* ghost joined");
    let ghost_addr = ghost.addr();
    // Its port closes; the relay's next datagrams to it draw ICMP port
    // unreachable from its own address (127.0.0.1): muted, not removed.
    drop(ghost);
    let muted = eventually(|| {
        alice.send("M alice anyone there?");
        std::thread::sleep(Duration::from_millis(200));
        relay.stderr().contains("port reported unreachable")
    });
    assert!(muted, "ghost was never muted; stderr:\n{}", relay.stderr());
    // The same port open again (a client that was only away): it speaks,
    // and gets the room again at once.
    let Ok(socket) = UdpSocket::bind(ghost_addr) else {
        eprintln!("skipped: {ghost_addr} was taken meanwhile");
        return;
    };
    let ghost = Member::from_socket(socket, relay.addr);
    ghost.send("WHO");
    ghost.expect("* online (2): alice, ghost");
    relay.expect_stderr("spoke again");
    alice.send("M alice welcome back");
    ghost.expect("alice: welcome back");
    assert!(!relay.stderr().contains("left (unreachable)"));
}

#[test]
fn refusals_are_logged_as_warnings() {
    let relay = Relay::start(&[]);
    let stranger = Member::new(relay.addr);
    stranger.send("M nobody hello");
    assert!(stranger.recv_text().starts_with("ERROR not-joined"));
    relay.expect_stderr("not-joined");
    assert!(eventually(|| relay.stderr().contains("WARN")));
    stranger.expect_silence(QUIET);
}

#[test]
fn idle_classic_member_is_evicted_by_the_loop_timer() {
    let relay = Relay::start(&["--classic-idle-timeout", "1s"]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    // Nothing sent: the relay's own timer must fire (no datagram wakes it).
    let bye = alice.recv_text();
    assert!(bye.starts_with("* you were disconnected"), "got {bye:?}");
    relay.expect_stderr("alice left (timeout)");
}

#[test]
fn stats_line_is_logged_periodically() {
    let relay = Relay::start(&["--stats-interval", "200ms"]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    // Only the member count is exact: parallel tests reuse loopback ports,
    // so a stray datagram may add to the other counters.
    let log = relay.expect_stderr("stats: 1 members");
    assert!(log.contains("datagrams in "), "{log}");
}

#[test]
fn private_messages_reach_the_transcript_only_with_the_flag() {
    for private in [false, true] {
        let file = TempFile::new(&format!("private-{private}"));
        let mut args = vec!["--transcript", file.as_str()];
        if private {
            args.push("--transcript-private");
        }
        let relay = Relay::start(&args);
        let alice = Member::new(relay.addr);
        alice.join_classic("alice");
        alice.expect("* alice joined");
        let bob = Member::new(relay.addr);
        bob.join_classic("bob");
        bob.expect("* bob joined");
        alice.send("MSG bob psst");
        bob.expect("[private from alice] psst");
        alice.expect("[private to bob] psst");
        alice.send("M alice public");
        bob.expect("alice: public");
        let text = std::fs::read_to_string(&file.0).unwrap();
        assert!(text.contains("alice: public"), "{text}");
        assert_eq!(
            text.contains("private alice -> bob: psst"),
            private,
            "--transcript-private {private}:\n{text}"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigint_also_says_goodbye_and_exits_0() {
    let mut relay = Relay::start(&["--lang", "zh"]);
    let alice = Member::new(relay.addr);
    alice.send("N alice\n");
    assert_eq!(alice.recv_text(), "OK\n");
    alice.expect("* alice 加入了聊天室\n");
    assert_eq!(relay.signal("INT").code(), Some(0));
    let bye = alice.recv_text();
    assert!(
        bye.starts_with("* 服务器即将关闭") && bye.ends_with('\n'),
        "got {bye:?}"
    );
}

#[test]
fn transcript_survives_kill_9_with_whole_lines() {
    let file = TempFile::new("kill9-transcript");
    let relay = Relay::start(&["--transcript", file.as_str(), "--rate-burst", "1000"]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    for i in 0..50 {
        alice.send(format!("M alice line {i} 你好"));
        alice.expect(&format!("alice: line {i} 你好"));
    }
    // Dropping the Relay kills it with SIGKILL: no chance to flush anything.
    drop(relay);
    let text = std::fs::read_to_string(&file.0).expect("transcript exists");
    assert!(text.ends_with('\n'), "torn last line");
    let lines: Vec<&str> = text.lines().collect();
    // The start line, the join, 50 chats; no stop line after kill -9.
    assert_eq!(lines.len(), 52, "{text}");
    assert!(lines[0].contains(" relay started on "), "{text}");
    for (i, line) in lines[2..].iter().enumerate() {
        assert!(
            line.ends_with(&format!("#{} alice: line {i} 你好", i + 2)),
            "{line:?}"
        );
    }
}

#[test]
fn garbage_and_oversized_datagrams_do_not_stop_the_relay() {
    let mut relay = Relay::start(&[]);
    let junk = Member::new(relay.addr);
    // Deterministic junk: a small LCG, bounded count; includes empty,
    // invalid UTF-8, control bytes and datagrams far over 1024 bytes.
    let mut x: u32 = 12345;
    for i in 0..500usize {
        let len = match i % 5 {
            0 => 0,
            1 => 1025,
            2 => 60_000,
            _ => i % 300,
        };
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        junk.send(&bytes);
    }
    assert!(relay.is_running());
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
}
