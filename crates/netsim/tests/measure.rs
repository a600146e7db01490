//! What loss repair buys and costs on the wire, measured on the
//! simulator: three clients each send 40 messages through independent
//! loss both ways; counted from the first message on (joins on a clean
//! network excluded; pings, resends and the tail included).

use std::collections::HashSet;
use std::time::Duration;

use udpchat_netsim::{ClientKind, LinkConfig, Sim, Wire};
use udpchat_room::Config;

const NICKS: [&str; 3] = ["ann", "ben", "cat"];
const PER_CLIENT: usize = 40;
/// Each message reaches all three clients (its sender's echo included).
const WANTED: usize = PER_CLIENT * NICKS.len() * NICKS.len();

struct Measurement {
    /// Distinct chat messages shown, summed over the clients.
    delivered: usize,
    wire: Wire,
}

impl Measurement {
    fn datagrams_per_message(&self) -> f64 {
        self.wire.datagrams_sent() as f64 / self.delivered.max(1) as f64
    }

    fn bytes_per_message(&self) -> f64 {
        self.wire.bytes_sent() as f64 / self.delivered.max(1) as f64
    }
}

fn measure(kind: ClientKind, loss: f64, seed: u64) -> Measurement {
    // The naive client sends no session key (it is the baseline: no
    // repair, no keys), so this relay accepts keyless joins.
    let config = Config {
        allow_keyless: kind == ClientKind::Naive,
        ..Config::default()
    };
    let mut sim = Sim::new(seed, config);
    let clients: Vec<_> = NICKS
        .iter()
        .map(|n| sim.add_client(kind, n, LinkConfig::CLEAN, LinkConfig::CLEAN))
        .collect();
    assert!(sim.run_until(Duration::from_secs(10), |s| clients
        .iter()
        .all(|&c| s.client(c).is_joined())));
    let impaired = LinkConfig::lossy(loss);
    for &c in &clients {
        sim.set_links(c, impaired, impaired);
    }
    sim.reset_wire();
    // The real client paces itself (burst 30, then 15 a second); the naive
    // one sends 4 a second (the real client's pace before issue 11).
    let interval = if kind == ClientKind::Naive {
        Duration::from_millis(250)
    } else {
        Duration::ZERO
    };
    for (&c, nick) in clients.iter().zip(NICKS) {
        let lines = (0..PER_CLIENT).map(|i| format!("m:{nick}:{i:03}"));
        sim.type_lines(c, lines, interval);
    }
    let delivered = |s: &Sim| -> usize {
        clients
            .iter()
            .map(|&c| {
                s.client(c)
                    .chats()
                    .into_iter()
                    .collect::<HashSet<_>>()
                    .len()
            })
            .sum()
    };
    // Until everything arrived, or nothing new for a minute (a lost last
    // message may only show at the next keepalive, 15 s).
    let mut last = (0, Duration::ZERO);
    sim.run_until(Duration::from_secs(600), |s| {
        let n = delivered(s);
        if n != last.0 {
            last = (n, s.elapsed());
        }
        n >= WANTED || s.elapsed() - last.1 > Duration::from_secs(60)
    });
    // Whatever is still in flight (tail checks, pings) belongs to the cost.
    sim.run_for(Duration::from_secs(2));
    Measurement {
        delivered: delivered(&sim),
        wire: sim.wire(),
    }
}

#[test]
fn at_20_percent_loss_repair_delivers_everything_and_no_repair_does_not() {
    let repair = measure(ClientKind::Structured, 0.2, 0x3ea5);
    assert_eq!(repair.delivered, WANTED);
    let without = measure(ClientKind::StructuredWithoutRepair, 0.2, 0x3ea5);
    assert!(without.delivered < WANTED * 9 / 10, "{}", without.delivered);
    let naive = measure(ClientKind::Naive, 0.2, 0x3ea5);
    assert!(naive.delivered < WANTED * 9 / 10, "{}", naive.delivered);
    // Repair costs datagrams, but not several times the bare exchange.
    assert!(repair.datagrams_per_message() < 3.0 * naive.datagrams_per_message());
}

#[test]
fn on_a_clean_network_repair_costs_little() {
    let repair = measure(ClientKind::Structured, 0.0, 1);
    let naive = measure(ClientKind::Naive, 0.0, 1);
    assert_eq!(repair.delivered, WANTED);
    assert_eq!(naive.delivered, WANTED);
    assert!(
        repair.datagrams_per_message() < 1.5 * naive.datagrams_per_message(),
        "{} vs {}",
        repair.datagrams_per_message(),
        naive.datagrams_per_message()
    );
}

/// Prints the table; run with
/// `cargo test -p udpchat-netsim --test measure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check (about a second)"]
fn wire_cost_per_delivered_message() {
    eprintln!(
        "\n3 clients x {PER_CLIENT} messages, independent loss both ways; wire = every datagram \
         put on the wire, both directions, from the first message on; delivered = distinct \
         chat messages shown, summed over the clients (at most {WANTED})."
    );
    eprintln!(
        "loss  client      delivered  ratio   datagrams/msg  bytes/msg  (to room / to clients)"
    );
    for loss in [0.0, 0.05, 0.2] {
        for (kind, name) in [
            (ClientKind::Structured, "repair"),
            (ClientKind::StructuredWithoutRepair, "no-repair"),
            (ClientKind::Naive, "naive"),
        ] {
            let m = measure(kind, loss, 0x3ea5);
            eprintln!(
                "{:>3.0}%  {name:<10}  {:>9}  {:>5.1}%  {:>13.2}  {:>9.1}  ({} / {})",
                loss * 100.0,
                m.delivered,
                100.0 * m.delivered as f64 / WANTED as f64,
                m.datagrams_per_message(),
                m.bytes_per_message(),
                m.wire.to_room.datagrams_sent,
                m.wire.to_clients.datagrams_sent,
            );
        }
    }
}
