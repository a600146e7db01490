//! The relay's start and its record (issue 13, "where and record"): the
//! where-to-join lines after the `listening` line, and the transcript's
//! hygiene (start and stop lines, numbering across restarts, kick reasons,
//! mode 0600, no symbolic links, `--local-time`).

use std::net::{IpAddr, UdpSocket};

use crate::support::{run_relay_to_exit, Member, Relay, TempFile};

/// The stdout lines after the `listening` line, up to and including the
/// `no console` line that `--no-console` makes the last one of the block.
fn start_block(relay: &Relay) -> Vec<String> {
    relay.expect_stdout("the no-console line ending the start block", |l| {
        l.starts_with("no console") || l.starts_with("没有控制台")
    });
    let all = relay.stdout.all();
    let end = all
        .iter()
        .position(|l| l.starts_with("no console") || l.starts_with("没有控制台"))
        .expect("found above");
    all[1..end].to_vec()
}

/// Checks one where-to-join block: a header naming `ip`, then the two
/// lines a student types, with this `ip` and `port`. Returns the IP.
fn check_block(header: &str, lines: &[String], port: u16) -> IpAddr {
    // "students join at 192.168.1.20 (wlan0):" (the interface name may be missing)
    let rest = header
        .strip_prefix("students join at ")
        .and_then(|r| r.strip_suffix(':'))
        .unwrap_or_else(|| panic!("header {header:?}"));
    let ip_text = rest.split(" (").next().unwrap_or(rest);
    let ip: IpAddr = ip_text
        .parse()
        .unwrap_or_else(|e| panic!("no address in {header:?}: {e}"));
    assert!(header.ends_with(':'), "{header:?}");
    let addr = std::net::SocketAddr::new(ip, port);
    assert_eq!(
        lines[0],
        format!("  udpchat --relay {addr} --nick YOURNAME"),
        "after {header:?}"
    );
    assert_eq!(
        lines[1],
        format!("  course client: host {ip} port {port}"),
        "after {header:?}"
    );
    ip
}

#[test]
fn where_to_join_lists_this_computers_addresses_with_the_line_to_type() {
    // The wildcard address, as a classroom relay runs; nothing is sent.
    let relay = Relay::start(&["--bind", "0.0.0.0:0", "--no-console"]);
    let port = relay.addr.port();
    let block = start_block(&relay);
    assert!(!block.is_empty(), "no where-to-join lines");
    if block.len() == 1 {
        // A machine without a network (a CI container, say).
        assert!(
            block[0].starts_with(
                "where to join: this computer has no network address besides loopback"
            ),
            "{block:?}"
        );
        eprintln!("note: this machine has no address besides loopback");
        return;
    }
    assert_eq!(block.len() % 3, 0, "blocks of three lines: {block:#?}");
    for chunk in block.chunks(3) {
        let ip = check_block(&chunk[0], &chunk[1..], port);
        assert!(ip.is_ipv4(), "bound to 0.0.0.0 but {ip} listed");
        assert!(!ip.is_loopback(), "{ip} listed");
        // It really is an address of this computer: it can be bound
        // (binding sends nothing).
        assert!(
            UdpSocket::bind((ip, 0)).is_ok(),
            "{ip} is not an address of this computer"
        );
    }
}

#[test]
fn a_relay_bound_to_loopback_says_only_this_computer_can_join() {
    let relay = Relay::start(&["--no-console"]);
    let port = relay.addr.port();
    assert_eq!(
        start_block(&relay),
        [
            format!(
                "only this computer can join at 127.0.0.1 (a loopback address); to let students in, \
                 start the relay with --bind 0.0.0.0:{port}:"
            ),
            format!("  udpchat --relay 127.0.0.1:{port} --nick YOURNAME"),
            format!("  course client: host 127.0.0.1 port {port}"),
        ]
    );
    let zh = Relay::start(&["--no-console", "--lang", "zh"]);
    let port = zh.addr.port();
    let block = start_block(&zh);
    assert!(
        block[0].starts_with("只有这台电脑能加入 127.0.0.1"),
        "{block:?}"
    );
    assert_eq!(
        block[1],
        format!("  udpchat --relay 127.0.0.1:{port} --nick 你的名字")
    );
    assert_eq!(
        block[2],
        format!("  课程客户端：host 127.0.0.1 port {port}")
    );
}

#[test]
fn with_a_join_code_the_lines_to_type_carry_it() {
    let relay = Relay::start(&["--no-console", "--join-code", "maple7"]);
    let port = relay.addr.port();
    let block = start_block(&relay);
    assert_eq!(
        block[1..],
        [
            format!("  udpchat --relay 127.0.0.1:{port} --nick YOURNAME --code maple7"),
            format!("  course client: host 127.0.0.1 port {port}, name: YOURNAME maple7"),
        ]
    );
}

/// Every line's timestamp and the text after it.
fn transcript_lines(file: &TempFile) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(&file.0).expect("transcript exists");
    assert!(text.ends_with('\n'), "torn last line: {text:?}");
    text.lines()
        .map(|l| {
            let (stamp, rest) = l.split_once(' ').expect("timestamp then text");
            (stamp.to_owned(), rest.to_owned())
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn transcript_numbering_continues_across_restarts_with_start_stop_and_kick_reason() {
    use std::os::unix::fs::PermissionsExt as _;
    let file = TempFile::new("restart-transcript");
    // Run 1, in UTC+8 local time (a POSIX TZ string: no zone database needed).
    let mut relay = Relay::start_with_env(
        &["--transcript", file.as_str(), "--local-time"],
        true,
        &[("TZ", "XXX-8")],
    );
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    alice.expect("* bob joined");
    relay.console("/kick bob too noisy");
    alice.expect("* bob was removed by the host");
    let first_addr = relay.addr;
    assert_eq!(relay.terminate().code(), Some(0), "{}", relay.stderr());
    let mode = std::fs::metadata(&file.0).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "transcript mode {mode:o}");

    // Run 2, UTC: the numbers go on.
    let mut relay = Relay::start(&["--transcript", file.as_str()]);
    let carol = Member::new(relay.addr);
    carol.join_classic("carol");
    carol.expect("* carol joined");
    assert_eq!(relay.terminate().code(), Some(0), "{}", relay.stderr());

    let lines = transcript_lines(&file);
    let texts: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            format!("relay started on {first_addr}").as_str(),
            "#1 * alice joined",
            "#2 * bob joined",
            format!("! host removed bob ({}): too noisy", bob.addr()).as_str(),
            "#3 * bob was removed by the host",
            "relay stopped (SIGTERM): goodbye",
            format!(
                "relay started on {}; numbering continues after #3",
                relay.addr
            )
            .as_str(),
            "#4 * carol joined",
            "relay stopped (SIGTERM): goodbye",
        ]
    );
    for (stamp, text) in &lines[..6] {
        // 2026-11-22T08:31:47.123+08:00
        assert!(
            stamp.len() == 29 && stamp.ends_with("+08:00") && stamp.as_bytes()[10] == b'T',
            "run 1 is in local time: {stamp} {text}"
        );
    }
    for (stamp, text) in &lines[6..] {
        assert!(
            stamp.len() == 24 && stamp.ends_with('Z'),
            "run 2 is in UTC: {stamp} {text}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_transcript_that_is_a_symbolic_link_is_refused() {
    let target = TempFile::new("symlink-target");
    std::fs::write(&target.0, "someone else's file\n").unwrap();
    let link = TempFile::new("symlink-transcript");
    std::os::unix::fs::symlink(&target.0, &link.0).unwrap();
    let (status, _out, err) =
        run_relay_to_exit(&["--bind", "127.0.0.1:0", "--transcript", link.as_str()]);
    assert_eq!(status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("is a symbolic link"), "stderr: {err}");
    assert_eq!(
        std::fs::read_to_string(&target.0).unwrap(),
        "someone else's file\n"
    );
}
