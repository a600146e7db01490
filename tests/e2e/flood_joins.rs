//! End to end: hundreds of addresses flood the real relay with classic `N`
//! joins under fresh nicknames, then with cookie-less structured `HELLO`s
//! that never complete, while two members keep chatting. The member count
//! must stay within `--max-clients`, half-open joins must cost no memory
//! (the relay's RSS stays within a generous bound), and every message of the
//! existing members must get through. Bounded: 300 + 300 sockets, a few
//! thousand datagrams, well under a minute.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::support::{
    check_datagram, loopback_ip, loopback_socket_on, rss_kib, Ending, Member, Recorder, Relay, WAIT,
};
use udpchat_proto::{ClientMsg, Nick, Token, VERSION};

const MAX_CLIENTS: usize = 50;
const FLOODERS: usize = 300;

/// Alice says `text` and waits for the echo; retries (at most 5 times) if
/// the flood made the kernel drop it. Returns how many sends it took.
fn say(alice: &Member, rec: &Recorder, text: &str) -> u32 {
    let line = format!("alice: {text}");
    for attempt in 1..=5 {
        alice.send(format!("M alice {text}"));
        if rec.wait_for(Duration::from_secs(3), |t| t == line) {
            return attempt;
        }
    }
    panic!("alice's {text:?} never echoed; got {:?}", rec.texts());
}

fn online_count(alice: &Member, rec: &Recorder) -> usize {
    let before = rec.texts().len();
    alice.send("WHO");
    let deadline = Instant::now() + WAIT;
    loop {
        let texts = rec.texts();
        if let Some(t) = texts[before..].iter().find(|t| t.starts_with("* online (")) {
            let n = t["* online (".len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok());
            return n.unwrap_or_else(|| panic!("bad WHO line {t:?}"));
        }
        assert!(Instant::now() < deadline, "no WHO answer: {texts:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hello(nick: &str) -> Vec<u8> {
    ClientMsg::Hello {
        version: Token::new(VERSION).expect("valid"),
        nick: Nick::new(nick).expect("valid"),
        cookie: None,
        since: None,
        resume: None,
        key: None,
        code: None,
    }
    .encode()
}

#[test]
fn join_floods_stay_within_max_clients_cost_no_memory_and_members_keep_chatting() {
    let max = MAX_CLIENTS.to_string();
    let mut relay = Relay::start(&["--max-clients", &max]);
    let pid = relay.pid();

    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let carol = Member::new(relay.addr);
    carol.join_structured("carol");
    let rec_alice = Recorder::start(&alice.socket, relay.addr);
    let rec_carol = Recorder::start(&carol.socket, relay.addr);
    let mut tries = vec![say(&alice, &rec_alice, "before the flood")];
    std::thread::sleep(Duration::from_millis(200));
    let rss_start = rss_kib(pid).expect("relay RSS readable");

    // Phase 1: 300 addresses, 5 rounds each of `N` with a fresh nickname.
    // Each on its own loopback IP address: from one IP address the default
    // --max-per-ip 4 would stop the flood long before --max-clients.
    let flooders: Vec<UdpSocket> = (0..FLOODERS)
        .map(|i| loopback_socket_on(loopback_ip(i)))
        .collect();
    for round in 0..5 {
        for (i, s) in flooders.iter().enumerate() {
            let _ = s.send_to(format!("N f{round}x{i}").as_bytes(), relay.addr);
        }
        tries.push(say(&alice, &rec_alice, &format!("during N flood {round}")));
    }
    std::thread::sleep(Duration::from_millis(500));
    let members_after_n = online_count(&alice, &rec_alice);
    let rss_after_n = rss_kib(pid).expect("relay RSS readable");
    assert!(
        members_after_n <= MAX_CLIENTS,
        "{members_after_n} members with --max-clients {MAX_CLIENTS}"
    );
    assert!(
        members_after_n > MAX_CLIENTS / 2,
        "the flood should have filled the room: {members_after_n}"
    );

    // Phase 2: 300 other addresses, 20 rounds each of a cookie-less HELLO
    // with a fresh nickname: half-open joins the relay must not remember.
    let half_open: Vec<UdpSocket> = (0..FLOODERS)
        .map(|i| loopback_socket_on(loopback_ip(FLOODERS + i)))
        .collect();
    let mut hellos = 0;
    for round in 0..20 {
        for (i, s) in half_open.iter().enumerate() {
            if s.send_to(&hello(&format!("h{round}y{i}")), relay.addr)
                .is_ok()
            {
                hellos += 1;
            }
        }
        if round % 5 == 4 {
            tries.push(say(
                &alice,
                &rec_alice,
                &format!("during HELLO flood {round}"),
            ));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after_hello = rss_kib(pid).expect("relay RSS readable");
    let members_after_hello = online_count(&alice, &rec_alice);
    assert_eq!(
        members_after_hello, members_after_n,
        "half-open joins must not add members"
    );

    // The flood answers (COOKIE, room-full) are small and clean; none is a
    // WELCOME, since no flooder completed the cookie round trip.
    let mut buf = [0u8; 2048];
    let mut cookies = 0;
    for s in &half_open {
        s.set_nonblocking(true).expect("nonblocking");
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            // Another test's relay may still send to a reused port.
            if from != relay.addr {
                continue;
            }
            check_datagram(&buf[..n], Ending::Bare).expect("clean answer to a flooder");
            assert!(n < 64, "answer to a HELLO larger than the HELLO: {n} bytes");
            assert!(
                buf.starts_with(b"COOKIE "),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            cookies += 1;
        }
    }

    // Existing members still chat, both ways.
    tries.push(say(&alice, &rec_alice, "after the flood"));
    carol.send("M carol me too");
    assert!(
        rec_alice.wait_for(WAIT, |t| t == "carol: me too"),
        "carol's message after the flood"
    );
    for text in [
        "before the flood",
        "during N flood 4",
        "during HELLO flood 19",
        "after the flood",
    ] {
        assert!(
            rec_carol.wait_for(WAIT, |t| t.ends_with(&format!(" CHAT alice {text}"))),
            "carol missed {text:?}"
        );
    }
    rec_alice.assert_clean("alice", Ending::Bare);
    rec_carol.assert_clean("carol", Ending::Bare);

    // RSS bounds, generous (the relay is a debug build): the N flood adds at
    // most MAX_CLIENTS members, the HELLO flood nothing but its rate-limit
    // buckets.
    let growth_n = rss_after_n.saturating_sub(rss_start);
    let growth_hello = rss_after_hello.saturating_sub(rss_after_n);
    eprintln!(
        "flood_joins: members {members_after_n}/{MAX_CLIENTS} after {} N datagrams from {FLOODERS} \
         addresses; {hellos} half-open HELLOs from {FLOODERS} addresses got {cookies} COOKIEs; \
         RSS {rss_start} KiB -> {rss_after_n} KiB (N flood) -> {rss_after_hello} KiB (HELLO flood); \
         alice's sends per message {tries:?}",
        5 * FLOODERS
    );
    assert!(growth_n < 8 * 1024, "N flood grew RSS by {growth_n} KiB");
    assert!(
        growth_hello < 4 * 1024,
        "HELLO flood grew RSS by {growth_hello} KiB"
    );
    assert!(relay.is_running(), "relay died: {}", relay.stderr());
    relay.terminate();
}
