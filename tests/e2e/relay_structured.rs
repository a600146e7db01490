//! End to end: structured (HELLO) clients and IPv6 against the real relay.

use std::time::Duration;

use crate::support::{ipv6_loopback_available, Member, Relay};
use udpchat_proto::{LeaveReason, Origin, RelayMsg, RoomEvent, MIN_HELLO_LEN};

const QUIET: Duration = Duration::from_millis(300);

fn seq_of(msg: &RelayMsg) -> u64 {
    match msg {
        RelayMsg::Event { seq, .. } => *seq,
        other => panic!("expected EVENT, got {other:?}"),
    }
}

#[test]
fn structured_join_with_cookie_then_numbered_events() {
    let relay = Relay::start(&[]);
    let alice = Member::new(relay.addr);
    let welcome = alice.join_structured("alice");
    let RelayMsg::Welcome {
        nick,
        last_seq,
        ping_interval,
        idle_timeout,
        ..
    } = welcome
    else {
        unreachable!()
    };
    assert_eq!(nick.as_str(), "alice");
    assert_eq!(last_seq, 0);
    assert_eq!((ping_interval, idle_timeout), (15, 60));
    let join = alice.recv_msg();
    assert_eq!(seq_of(&join), 1);
    assert!(matches!(
        join,
        RelayMsg::Event { origin: Origin::Live, event: RoomEvent::Join(ref n), .. } if n.as_str() == "alice"
    ));

    // A classic member in the same room.
    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    bob.expect("* bob joined");
    let join = alice.recv_msg();
    assert_eq!(seq_of(&join), 2);

    alice.send("M alice hi bob");
    bob.expect("alice: hi bob");
    let chat = alice.recv_msg();
    assert_eq!(seq_of(&chat), 3);
    assert!(
        matches!(chat, RelayMsg::Event { event: RoomEvent::Chat { ref text, .. }, .. } if text.as_str() == "hi bob")
    );

    bob.send("Q bob");
    let leave = alice.recv_msg();
    assert_eq!(seq_of(&leave), 4);
    assert!(matches!(
        leave,
        RelayMsg::Event {
            event: RoomEvent::Leave {
                reason: LeaveReason::Quit,
                ..
            },
            ..
        }
    ));

    alice.send("PING t1");
    assert!(
        matches!(alice.recv_msg(), RelayMsg::Pong { last_seq: 4, token: Some(ref t) } if t.as_str() == "t1")
    );
}

#[test]
fn late_joiner_gets_recent_history_before_its_join() {
    let relay = Relay::start(&[]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.send("M alice before you came");
    alice.expect("alice: before you came");

    let carol = Member::new(relay.addr);
    let RelayMsg::Welcome { last_seq, .. } = carol.join_structured("carol") else {
        unreachable!()
    };
    assert_eq!(last_seq, 2);
    // History is contiguous (every kind), so a lost one is a visible gap.
    let first = carol.recv_msg();
    assert!(
        matches!(
            first,
            RelayMsg::Event {
                seq: 1,
                origin: Origin::History,
                ago: _,
                event: RoomEvent::Join(_)
            }
        ),
        "got {first:?}"
    );
    let history = carol.recv_msg();
    assert!(
        matches!(
            history,
            RelayMsg::Event {
                seq: 2,
                origin: Origin::History,
                ago: _,
                event: RoomEvent::Chat { .. }
            }
        ),
        "got {history:?}"
    );
    let join = carol.recv_msg();
    assert!(
        matches!(
            join,
            RelayMsg::Event {
                seq: 3,
                origin: Origin::Live,
                ago: _,
                event: RoomEvent::Join(_)
            }
        ),
        "got {join:?}"
    );
}

#[test]
fn short_cookieless_hello_gets_no_answer() {
    let relay = Relay::start(&[]);
    let c = Member::new(relay.addr);
    let hello = b"HELLO udpchat/1 eve -";
    assert!(hello.len() < MIN_HELLO_LEN);
    c.send(hello);
    c.expect_silence(QUIET);
}

#[test]
fn forged_cookie_is_not_a_join() {
    let relay = Relay::start(&[]);
    let watcher = Member::new(relay.addr);
    watcher.join_classic("watcher");
    watcher.expect("* watcher joined");
    let c = Member::new(relay.addr);
    c.send("HELLO udpchat/1 eve 0123456789abcdef");
    // A stale or forged cookie is answered with a fresh COOKIE, not WELCOME.
    assert!(matches!(c.recv_msg(), RelayMsg::Cookie(_)));
    watcher.expect_silence(QUIET);
}

#[test]
fn structured_impersonation_is_refused() {
    let relay = Relay::start(&[]);
    let alice = Member::new(relay.addr);
    alice.join_structured("alice");
    let _join = alice.recv_msg();
    let mallory = Member::new(relay.addr);
    mallory.join_structured("mallory");
    let _ = alice.recv_msg();
    let _history = mallory.recv_msg(); // EVENT 1 history JOIN alice
    let _ = mallory.recv_msg();

    mallory.send("M alice I am alice");
    assert!(matches!(
        mallory.recv_msg(),
        RelayMsg::Error {
            code: udpchat_proto::ErrorCode::NotYours,
            ..
        }
    ));
    alice.expect_silence(QUIET);
    mallory.send("WHO");
    match mallory.recv_msg() {
        RelayMsg::Who { count, nicks, .. } => {
            assert_eq!(count, 2);
            assert!(nicks.iter().any(|n| n.as_str() == "alice"));
        }
        other => panic!("expected WHO, got {other:?}"),
    }
}

#[test]
fn ipv6_loopback_works() {
    if !ipv6_loopback_available() {
        eprintln!("skipped: ::1 is not available on this machine");
        return;
    }
    let relay = Relay::start(&["--bind", "[::1]:0"]);
    assert!(relay.addr.is_ipv6());
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let bob = Member::new(relay.addr);
    bob.join_structured("bob");
    alice.expect("* bob joined");
    alice.send("M alice over v6");
    bob.recv_msg_until("alice's chat", |m| {
        matches!(m, RelayMsg::Event { event: RoomEvent::Chat { text, .. }, .. } if text.as_str() == "over v6")
    });
}

#[cfg(target_os = "linux")]
#[test]
fn ipv6_client_closed_without_quit_leaves_as_unreachable() {
    if !ipv6_loopback_available() {
        eprintln!("skipped: ::1 is not available on this machine");
        return;
    }
    let relay = Relay::start(&["--bind", "[::1]:0"]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let ghost = Member::new(relay.addr);
    ghost.join_classic("ghost");
    alice.expect("* ghost joined");
    drop(ghost);
    alice.nudge_until("M alice hello?", "* ghost left (unreachable)");
}

#[cfg(target_os = "linux")]
#[test]
fn structured_client_that_exits_is_still_evicted_within_seconds() {
    // The ICMP must come from the member's own address (127.0.0.1, as a real
    // closed port's does), and the member must then stay silent for the
    // grace (2 s here).
    let relay = Relay::start(&["--unreachable-grace", "2s"]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let ghost = Member::new(relay.addr);
    ghost.join_structured("ghost");
    alice.expect("* ghost joined");
    let closed = std::time::Instant::now();
    drop(ghost);
    alice.nudge_until("M alice hello?", "* ghost left (unreachable)");
    eprintln!(
        "structured ghost evicted {:?} after its port closed",
        closed.elapsed()
    );
    relay.expect_stderr("ghost left (unreachable)");
}

/// Whether an IPv6 wildcard socket here also receives IPv4 (dual stack).
fn dual_stack_available() -> bool {
    let Ok(v6) = std::net::UdpSocket::bind("[::]:0") else {
        return false;
    };
    let port = v6.local_addr().unwrap().port();
    let Ok(v4) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    if v4.send_to(b"x", ("127.0.0.1", port)).is_err() {
        return false;
    }
    v6.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    v6.recv_from(&mut [0u8; 8]).is_ok()
}

#[test]
fn dual_stack_wildcard_serves_ipv4_clients() {
    if !dual_stack_available() {
        eprintln!("skipped: no dual-stack IPv6 wildcard socket on this machine");
        return;
    }
    let relay = Relay::start(&["--bind", "[::]:0"]);
    assert!(relay.addr.is_ipv6());
    let v4_relay = std::net::SocketAddr::from(([127, 0, 0, 1], relay.addr.port()));
    let alice = Member::new(v4_relay);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let ghost = Member::new(v4_relay);
    ghost.join_classic("ghost");
    alice.expect("* ghost joined");
    // IPv4 ICMP errors reach the dual-stack socket too (Linux).
    drop(ghost);
    alice.send("M alice v4 over a v6 socket");
    alice.expect("alice: v4 over a v6 socket");
    #[cfg(target_os = "linux")]
    alice.nudge_until("M alice still there?", "* ghost left (unreachable)");
    eprintln!(
        "dual-stack checked: relay {} served IPv4 client {}",
        relay.addr,
        alice.addr()
    );
}

#[test]
fn a_keyed_member_is_heard_only_behind_its_relay_key() {
    let relay = Relay::start(&[]);
    let alice = Member::new(relay.addr);
    alice.join_structured("alice");
    alice.recv_msg(); // JOIN alice
    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    bob.expect("* bob joined");
    alice.recv_msg(); // JOIN bob
    let keys = alice.keys().expect("keyed");
    // Without the relay's key (what a spoofer of alice's address could
    // send): nothing happens, not even an answer.
    for forged in [
        "SAY 1 forged",
        "M alice forged",
        "NICK mallory",
        "N alice",
        "Q alice",
    ] {
        alice.send_raw(forged);
    }
    let wrong = udpchat_proto::SessionKey::from_u64(!keys.relay.unwrap().to_u64());
    alice.send_raw(wrong.prefixed(b"SAY 2 forged"));
    alice.expect_silence(QUIET);
    bob.expect_silence(QUIET);
    // With it, alice speaks as ever (still structured: the forged N did
    // not make her classic).
    alice.send("SAY 3 real");
    bob.expect("alice: real");
    let echo = alice.recv_msg();
    assert!(
        matches!(echo, RelayMsg::Event { event: RoomEvent::Chat { ref text, .. }, .. } if text.as_str() == "real"),
        "{echo:?}"
    );
    // A RESEND beyond the newest event: PONG with the newest.
    alice.send("RESEND 90 99");
    assert!(matches!(
        alice.recv_msg(),
        RelayMsg::Pong {
            last_seq: 3,
            token: None
        }
    ));
}
