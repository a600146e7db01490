//! The real client through a lossy network (the seeded loss proxy) to the
//! real relay: gap repair, tail-loss detection and resending of own messages
//! must give every client every message exactly once, in order.

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
    // Loss and reordering both ways; duplicates only towards the clients:
    // `M` carries no id, so a chat the network duplicates on its way to the
    // relay is relayed twice and no client can tell it from a repeat.
    let config = ProxyConfig {
        to_relay: Impairment {
            drop: 0.2,
            duplicate: 0.0,
            reorder: 0.05,
        },
        to_client: Impairment {
            drop: 0.2,
            duplicate: 0.05,
            reorder: 0.05,
        },
        ..ProxyConfig::symmetric(0x5eed, Impairment::NONE)
    };
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
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = clients.iter().all(|c| payloads(c).len() >= total);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every message arrived: {:?}\nlast client output: {:#?}",
            clients
                .iter()
                .map(|c| payloads(c).len())
                .collect::<Vec<_>>(),
            clients.last().map(|c| c.stdout.all())
        );
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
