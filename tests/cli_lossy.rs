//! The real client through a lossy network (the seeded loss proxy) to the
//! real relay: gap repair, tail-loss detection and resending of own messages
//! (`SAY`, deduplicated by the relay) must give every client every message
//! exactly once, in order.

mod cli_support;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use cli_support::{Client, Relay};
use udpchat_lossproxy::{Impairment, LossProxy, ProxyConfig};

const PER_CLIENT: usize = 25;
const NICKS: [&str; 3] = ["ann", "ben", "cat"];

/// The chat messages a client displayed (the `m:...` payloads), in order;
/// own and others' alike, history excluded.
fn payloads(client: &Client) -> Vec<String> {
    client
        .stdout
        .all()
        .iter()
        .filter(|l| !l.starts_with("[history]"))
        .filter_map(|l| l.split_once(": m:").map(|(_, p)| format!("m:{p}")))
        .collect()
}

#[test]
fn three_clients_through_20_percent_loss_each_see_every_message_once_in_order() {
    let relay = Relay::start("127.0.0.1:0", &[]);
    // Loss, duplicates and reordering both ways: the relay relays each
    // `SAY` id once, so a chat the network repeats on its way to the relay
    // (or one the client sends again after losing its echo) is not
    // relayed twice.
    let config = ProxyConfig::symmetric(
        0x5eed,
        Impairment {
            drop: 0.2,
            duplicate: 0.05,
            reorder: 0.05,
        },
    );
    let proxy = LossProxy::start(relay.addr, config).expect("start loss proxy");
    let addr = proxy.addr().to_string();

    let mut clients: Vec<Client> = NICKS.iter().map(|n| Client::joined(&addr, n)).collect();
    // Everyone is in before anyone speaks.
    for (i, client) in clients.iter().enumerate() {
        for nick in &NICKS[i..] {
            client.stdout.wait_contains(&format!("* {nick} joined"));
        }
    }
    for i in 0..PER_CLIENT {
        for (client, nick) in clients.iter_mut().zip(NICKS) {
            client.say(&format!("m:{nick}:{i:02}"));
        }
    }

    let total = PER_CLIENT * NICKS.len();
    let started = Instant::now();
    // Generous: on a busy machine every timer of the clients runs late.
    let deadline = started + Duration::from_secs(240);
    let mut next_report = started;
    loop {
        let counts: Vec<usize> = clients.iter().map(|c| payloads(c).len()).collect();
        if Instant::now() >= next_report {
            eprintln!("after {:?}: {counts:?} of {total}", started.elapsed());
            next_report += Duration::from_secs(5);
        }
        let done = counts.iter().all(|&n| n >= total);
        if done {
            break;
        }
        if Instant::now() >= deadline {
            for (client, nick) in clients.iter().zip(NICKS) {
                let seen = payloads(client);
                let missing: Vec<String> = NICKS
                    .iter()
                    .flat_map(|n| (0..PER_CLIENT).map(move |i| format!("m:{n}:{i:02}")))
                    .filter(|m| !seen.contains(m))
                    .collect();
                if !missing.is_empty() {
                    eprintln!(
                        "{nick} misses {missing:?}; output {:#?}; stderr {:#?}",
                        client.stdout.all(),
                        client.stderr.all()
                    );
                }
            }
            panic!(
                "not every message arrived: {:?}",
                clients
                    .iter()
                    .map(|c| payloads(c).len())
                    .collect::<Vec<_>>()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    // Late duplicates would show up now.
    thread::sleep(Duration::from_secs(2));

    let reference = payloads(&clients[0]);
    for (client, nick) in clients.iter().zip(NICKS) {
        let seen = payloads(client);
        assert_eq!(seen.len(), total, "{nick} saw {seen:#?}");
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for p in &seen {
            *counts.entry(p.as_str()).or_default() += 1;
        }
        assert!(
            counts.values().all(|&c| c == 1),
            "{nick}: duplicates {counts:?}"
        );
        // Each sender's messages in the order sent.
        for sender in NICKS {
            let from: Vec<&String> = seen
                .iter()
                .filter(|p| p.starts_with(&format!("m:{sender}:")))
                .collect();
            let want: Vec<String> = (0..PER_CLIENT)
                .map(|i| format!("m:{sender}:{i:02}"))
                .collect();
            assert_eq!(
                from,
                want.iter().collect::<Vec<_>>(),
                "{nick} saw {sender}'s"
            );
        }
        // Everyone sees the relay's one order.
        assert_eq!(seen, reference, "{nick} differs from {}", NICKS[0]);
    }

    for client in &mut clients {
        client.close();
    }
    for client in &mut clients {
        assert!(client.wait_exit().success());
    }
    let stats = proxy.stats();
    eprintln!("proxy: {stats:?}");
}

/// One measured run: `clients` clients each send `per_client` messages
/// through the proxy; returns (deliveries, datagrams, bytes) counted on the
/// wire in both directions after everyone joined.
fn measure(drop: f64, repair: bool, per_client: usize) -> (usize, u64, u64) {
    let relay = Relay::start("127.0.0.1:0", &[]);
    let impairment = Impairment::loss(drop);
    let proxy = LossProxy::start(relay.addr, ProxyConfig::symmetric(7, Impairment::NONE))
        .expect("start loss proxy");
    let addr = proxy.addr().to_string();
    let extra: &[&str] = if repair { &[] } else { &["--no-repair"] };
    let mut clients: Vec<Client> = NICKS
        .iter()
        .map(|n| Client::joined_with(&addr, n, extra))
        .collect();
    for (i, client) in clients.iter().enumerate() {
        for nick in &NICKS[i..] {
            client.stdout.wait_contains(&format!("* {nick} joined"));
        }
    }
    // Measure the chat only: joins happened on a clean network.
    proxy.set_impairment(impairment, impairment);
    proxy.reset_stats();
    for i in 0..per_client {
        for (client, nick) in clients.iter_mut().zip(NICKS) {
            client.say(&format!("m:{nick}:{i:02}"));
        }
    }
    // Until everything arrived, or nothing new for a while.
    let total = per_client * NICKS.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (0, Instant::now());
    loop {
        let seen: usize = clients.iter().map(|c| payloads(c).len()).sum();
        if seen != last.0 {
            last = (seen, Instant::now());
        }
        if seen >= total * NICKS.len()
            || last.1.elapsed() > Duration::from_secs(5)
            || Instant::now() > deadline
        {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let stats = proxy.stats();
    for (client, nick) in clients.iter().zip(NICKS) {
        let seen = payloads(client);
        let missing: Vec<String> = NICKS
            .iter()
            .flat_map(|n| (0..per_client).map(move |i| format!("m:{n}:{i:02}")))
            .filter(|m| !seen.contains(m))
            .collect();
        if !missing.is_empty() && repair {
            println!(
                "{nick} misses {missing:?}; notices: {:?}",
                client
                    .stdout
                    .all()
                    .iter()
                    .filter(|l| l.contains("* ") && !l.contains("joined"))
                    .collect::<Vec<_>>()
            );
        }
    }
    let deliveries = clients
        .iter()
        .map(|c| {
            let mut p = payloads(c);
            p.sort();
            p.dedup();
            p.len()
        })
        .sum();
    for client in &mut clients {
        client.close();
    }
    (
        deliveries,
        stats.to_relay.datagrams_in + stats.to_client.datagrams_in,
        stats.to_relay.bytes_in + stats.to_client.bytes_in,
    )
}

/// Prints what repair costs on the wire; run by hand:
/// `cargo test --test cli_lossy -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check; run by hand"]
fn measure_wire_cost_per_delivered_message() {
    let per_client = 20;
    let wanted = per_client * NICKS.len() * NICKS.len();
    println!("loss  repair  delivered/wanted  datagrams/delivery  bytes/delivery");
    for drop in [0.0, 0.05, 0.2] {
        for repair in [true, false] {
            let (delivered, datagrams, bytes) = measure(drop, repair, per_client);
            let d = delivered.max(1) as f64;
            println!(
                "{:>3.0}%  {:<6}  {delivered:>4}/{wanted:<11}  {:>18.2}  {:>14.1}",
                drop * 100.0,
                if repair { "yes" } else { "no" },
                datagrams as f64 / d,
                bytes as f64 / d,
            );
        }
    }
}
