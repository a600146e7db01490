//! A short smoke test of loss repair with the real binaries: two real
//! `udpchat` clients (piped mode) and an `nc`-style classic client talk to
//! the real relay through the seeded loss proxy (crates/lossproxy) at 10%
//! loss.
//!
//! Loss, timing and retry behaviour are tested at length on the simulator
//! (crates/netsim/tests/loss.rs: 20%, 5% and burst loss over several seeds,
//! on a virtual clock); this only checks that the real processes, sockets
//! and timers do the same, in a few seconds.

use std::collections::HashSet;
use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Client, Relay};
use udpchat_lossproxy::{Impairment, LossProxy, ProxyConfig};

const PER_CLIENT: usize = 10;
const NICKS: [&str; 2] = ["ann", "ben"];

/// The chat payloads (`m:...`) a client displayed, in order.
fn payloads(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(": m:").map(|(_, p)| format!("m:{p}")))
        .collect()
}

/// A classic client on a plain socket: `N` until `OK`.
fn classic_join(socket: &UdpSocket, nick: &str) -> bool {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let _ = socket.send(format!("N {nick}").as_bytes());
        let wait = Instant::now() + Duration::from_millis(300);
        while Instant::now() < wait {
            if let Ok(n) = socket.recv(&mut buf) {
                if &buf[..n] == b"OK" {
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn two_clients_and_a_classic_one_through_10_percent_loss_get_every_message_once_in_order() {
    let relay = Relay::start_with_console(&[]);
    let config = ProxyConfig {
        seed: 0x5300_0010,
        // No duplicates towards the relay: the classic `M` carries no id,
        // so a copy would be relayed twice.
        to_relay: Impairment {
            drop: 0.1,
            duplicate: 0.0,
            reorder: 0.02,
        },
        to_client: Impairment {
            drop: 0.1,
            duplicate: 0.03,
            reorder: 0.02,
        },
        max_hold: Duration::from_millis(100),
    };
    let proxy = LossProxy::start(relay.addr, config).expect("start loss proxy");
    let addr = proxy.addr().to_string();
    let mut clients: Vec<Client> = NICKS.iter().map(|n| Client::joined(&addr, n)).collect();

    let classic = UdpSocket::bind("127.0.0.1:0").expect("bind");
    classic.connect(proxy.addr()).expect("connect");
    classic
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    assert!(
        classic_join(&classic, "cla"),
        "the classic client never got OK"
    );

    for i in 0..PER_CLIENT {
        for (client, nick) in clients.iter_mut().zip(NICKS) {
            client.say(&format!("m:{nick}:{i:02}"));
        }
    }
    // Ten, so that "at least one reaches the room" cannot fail by chance
    // (10% loss each: one in 10^10).
    for i in 0..10 {
        let _ = classic.send(format!("M cla m:cla:{i:02}").as_bytes());
    }

    let want: HashSet<String> = NICKS
        .iter()
        .flat_map(|n| (0..PER_CLIENT).map(move |i| format!("m:{n}:{i:02}")))
        .collect();
    let mut classic_lines = Vec::new();
    let mut buf = [0u8; 2048];
    // A few seconds normally (once 32 s: a lost tail waits for the 15 s
    // keepalive); generous for a loaded machine.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    loop {
        while let Ok(n) = classic.recv(&mut buf) {
            classic_lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let seen: Vec<Vec<String>> = clients.iter().map(|c| payloads(&c.stdout.all())).collect();
        let complete = seen
            .iter()
            .all(|s| want.is_subset(&s.iter().cloned().collect()));
        // Both show the room's one order, the classic messages included.
        if complete && seen.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every message arrived: {seen:#?}; stderr {:#?}",
            clients.iter().map(|c| c.stderr.all()).collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Late duplicates would show up now.
    thread::sleep(Duration::from_millis(500));

    let reference = payloads(&clients[0].stdout.all());
    for (client, nick) in clients.iter().zip(NICKS) {
        let seen = payloads(&client.stdout.all());
        assert_eq!(seen, reference, "{nick} differs from {}", NICKS[0]);
        let mut once = HashSet::new();
        assert!(
            seen.iter().all(|p| once.insert(p)),
            "{nick} shows duplicates: {seen:?}"
        );
        for sender in NICKS {
            let from: Vec<&String> = seen
                .iter()
                .filter(|p| p.starts_with(&format!("m:{sender}:")))
                .collect();
            assert_eq!(from.len(), PER_CLIENT, "{nick} saw {sender}'s {from:?}");
            assert!(
                from.windows(2).all(|w| w[0] < w[1]),
                "{nick} saw {sender}'s out of order: {from:?}"
            );
        }
    }
    // The classic client kept working: it got room messages, as clean
    // lines, and its own reached the room.
    let room: HashSet<&String> = reference.iter().collect();
    let classic_chats = payloads(&classic_lines);
    assert!(
        !classic_chats.is_empty(),
        "classic client got {classic_lines:?}"
    );
    for p in &classic_chats {
        assert!(
            room.contains(p),
            "classic client got {p:?}, not a room message"
        );
    }
    assert!(classic_lines
        .iter()
        .all(|l| !l.chars().any(char::is_control)));
    assert!(
        reference.iter().any(|p| p.starts_with("m:cla:")),
        "no classic message reached the room"
    );
    let _ = classic.send(b"Q cla");

    for client in &mut clients {
        client.close();
    }
    for client in &mut clients {
        assert!(client.wait_exit().success());
    }
    eprintln!(
        "all delivered {:?} after the last line typed; proxy: {:?}",
        started.elapsed(),
        proxy.stats()
    );
}
