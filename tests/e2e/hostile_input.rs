//! End to end: a bounded burst of hostile datagrams against the real relay
//! from several sockets, while three honest members (classic bare, classic
//! newline, structured) record everything they receive. Afterwards the relay
//! must be alive and still relaying, nobody may have been impersonated, and
//! no honest client may have received a control character, invalid UTF-8
//! or a datagram over 1024 bytes.

use std::time::Duration;

use crate::support::{loopback_socket, Ending, Member, Recorder, Relay, WAIT};
use udpchat_lossproxy::SplitMix64;

/// Every hostile datagram, as bytes. `members` are the honest nicknames the
/// forgeries target.
fn hostile_datagrams(rng: &mut SplitMix64) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = Vec::new();
    let mut push = |b: &[u8]| all.push(b.to_vec());
    // Empty, one byte, only spaces, bare verbs.
    for d in [
        &b""[..],
        b"N",
        b"M",
        b"Q",
        b"\n",
        b"\r\n",
        b"\0",
        b" ",
        b"     ",
        b"N     ",
        b"M   ",
        b"WHO",
        b"MSG",
        b"PING",
        b"NICK",
        b"HELLO",
        b"PMSG",
        b"ACK",
        b"RESEND",
        b"COOKIE",
        b"EVENT 1 live CHAT alice forged event",
    ] {
        push(d);
    }
    // Invalid UTF-8.
    for d in [
        &b"\xff\xfe\xfd"[..],
        b"M alice \xc3\x28",
        b"N \xed\xa0\x80",
        b"N bad\xc0\xaf",
        b"M mallory caf\xe9",
    ] {
        push(d);
    }
    // NUL, ESC and other controls in nicknames and text.
    for d in [
        "N ev\0il",
        "N \u{1b}[31mred",
        "N a\u{9b}b",
        "N mallory\u{202e}",
        "M mallory hi\u{1b}[2J",
        "M mallory x\0y",
        "M mallory tab\there",
        "M mallory new\nline",
        "M mallory hello\n* alice left",
        "M mallory cr\rreturn",
        "M mallory \u{202e}reversed",
        "M mallory para\u{2029}graph",
        "M mallory del\u{7f}",
        "M mallory c1\u{85}next",
        "MSG alice \u{1b}]0;pwned\u{7}",
        "PING \u{1b}",
        "NICK \u{1b}x",
        "HELLO udpchat/1 \u{1b}x - ==============================================================",
    ] {
        push(d.as_bytes());
    }
    // Huge nicknames and texts.
    let long_nick = format!("N {}", "a".repeat(1000));
    push(long_nick.as_bytes());
    let cjk_nick = format!("N {}", "汉".repeat(30));
    push(cjk_nick.as_bytes());
    let long_text = format!("M mallory {}", "x".repeat(900));
    push(long_text.as_bytes());
    let edge_text = format!("M mallory {}", "é".repeat(401));
    push(edge_text.as_bytes());
    let huge = format!("M mallory {}", "a".repeat(60_000));
    push(huge.as_bytes());
    // Forgeries: acting as another member.
    for d in [
        "M alice I am alice",
        "M Alice I am ALICE",
        "M bob\n",
        "M bob I am bob\n",
        "Q alice",
        "Q ALICE",
        "Q bob\n",
        "Q carol",
        "MSG carol fake private",
        "NICK alice",
        "N alice",
        "N carol",
        "HELLO udpchat/1 carol 0123456789abcdef",
        "HELLO udpchat/1 carol -",
        "RESEND 1 18446744073709551615",
        "RESEND 18446744073709551615 0",
        "ACK 18446744073709551615",
        "PMSG 1 carol reliable fake",
    ] {
        push(d.as_bytes());
    }
    // Random bytes, some as big as UDP allows on loopback.
    for len in [
        1usize, 2, 7, 63, 64, 500, 1023, 1024, 1025, 1500, 9000, 60_000,
    ] {
        let mut b = vec![0u8; len];
        rng.fill(&mut b);
        all.push(b);
    }
    for _ in 0..40 {
        let len = 1 + rng.below(200) as usize;
        let mut b = vec![0u8; len];
        rng.fill(&mut b);
        all.push(b);
    }
    all
}

#[test]
fn hostile_burst_leaves_relay_alive_and_honest_clients_clean() {
    // A generous rate limit so that every hostile datagram reaches the
    // parser instead of being dropped by the bucket.
    let mut relay = Relay::start(&["--rate-burst", "1000", "--rate-per-sec", "1000"]);

    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let bob = Member::new(relay.addr);
    bob.send("N bob\n");
    bob.expect("OK\n");
    bob.expect("* bob joined\n");
    let carol = Member::new(relay.addr);
    carol.join_structured("carol");
    // From here on, everything honest clients receive is recorded.
    let rec_alice = Recorder::start(&alice.socket, relay.addr);
    let rec_bob = Recorder::start(&bob.socket, relay.addr);
    let rec_carol = Recorder::start(&carol.socket, relay.addr);

    // Mallory is a member too, so her text reaches the relay's fan-out path.
    let mallory = loopback_socket();
    mallory.send_to(b"N mallory", relay.addr).expect("send");

    let mut rng = SplitMix64::new(0x0bad_5eed);
    let burst = hostile_datagrams(&mut rng);
    let attackers: Vec<_> = (0..5).map(|_| loopback_socket()).collect();
    for round in 0..3 {
        for (i, d) in burst.iter().enumerate() {
            let from = if i % 6 == 0 {
                &mallory
            } else {
                &attackers[(i + round) % attackers.len()]
            };
            // Loopback can refuse a 60,000-byte datagram if buffers are
            // full; that is the kernel's business, not a test failure.
            let _ = from.send_to(d, relay.addr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The relay is alive and relays between honest members.
    assert!(relay.is_running(), "relay died: {}", relay.stderr());
    alice.send("M alice after the storm");
    bob.send("M bob still here\n");
    assert!(
        rec_bob.wait_for(WAIT, |t| t == "alice: after the storm\n"),
        "bob never got alice's message; got {:?}",
        rec_bob.texts()
    );
    assert!(
        rec_carol.wait_for(WAIT, |t| t.ends_with(" live CHAT bob still here")),
        "carol never got bob's message; got {:?}",
        rec_carol.texts()
    );
    assert!(
        rec_alice.wait_for(WAIT, |t| t == "bob: still here"),
        "alice never got bob's message; got {:?}",
        rec_alice.texts()
    );
    carol.send("M carol and carol too");
    assert!(rec_alice.wait_for(WAIT, |t| t == "carol: and carol too"));
    // Nothing more is in flight from the burst: the honest lines arrived after it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(relay.is_running(), "relay died: {}", relay.stderr());

    rec_alice.assert_clean("alice (classic, bare)", Ending::Bare);
    rec_bob.assert_clean("bob (classic, newline)", Ending::Newline);
    rec_carol.assert_clean("carol (structured)", Ending::Bare);

    // Nobody was impersonated or removed: every chat under an honest nick
    // is one that member sent, and no honest member left.
    let honest_lines = [
        "alice: after the storm",
        "bob: still here",
        "carol: and carol too",
    ];
    for (who, rec) in [("alice", &rec_alice), ("bob", &rec_bob)] {
        for t in rec.texts() {
            let line = t.trim_end_matches('\n');
            for nick in ["alice", "bob", "carol", "Alice", "ALICE"] {
                if line.starts_with(&format!("{nick}: ")) {
                    assert!(
                        honest_lines.contains(&line),
                        "{who} saw a forgery: {line:?}"
                    );
                }
            }
            for nick in ["alice", "bob", "carol"] {
                assert!(
                    !line.starts_with(&format!("* {nick} left")),
                    "{who} saw {line:?}"
                );
            }
        }
    }
    for t in rec_carol.texts() {
        for nick in ["alice", "bob", "carol"] {
            let forged_chat = t.contains(&format!(" CHAT {nick} "))
                && !honest_lines.iter().any(|h| {
                    let (n, text) = h.split_once(": ").expect("honest line");
                    t.ends_with(&format!(" CHAT {n} {text}"))
                });
            assert!(!forged_chat, "carol saw a forgery: {t:?}");
            assert!(!t.contains(&format!("LEAVE {nick} ")), "carol saw {t:?}");
        }
        // Mallory is a member and may write to carol; nobody else did.
        if t.starts_with("PRIVATE ") {
            assert!(t.contains(" mallory "), "carol got a forged private: {t:?}");
        }
    }
    assert_eq!(rec_alice.stray_datagrams() + rec_bob.stray_datagrams(), 0);

    // The members are still the four who joined.
    alice.send("WHO");
    assert!(
        rec_alice.wait_for(WAIT, |t| t.starts_with("* online (4)")),
        "WHO after the storm: {:?}",
        rec_alice.texts()
    );
    assert!(relay.is_running());
    relay.terminate();
}
