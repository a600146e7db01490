//! The loss tests, on the simulator: the real room and the real client
//! session through seeded lossy links, on a virtual clock. Each run takes
//! milliseconds of real time and is the same on every machine.

use std::collections::HashSet;
use std::time::Duration;

use udpchat_netsim::{Chat, ClientId, ClientKind, LinkConfig, Loss, Sim};
use udpchat_room::Config;

const NICKS: [&str; 3] = ["ann", "ben", "cat"];

/// Before issue 11 the clients completed at 20% loss only slowly (real runs
/// saw 24-106 s after the last line typed); this generous limit stays so
/// that a client that never completes is caught, not a slow one (the
/// timing targets are in delivery.rs).
const VIRTUAL_LIMIT: Duration = Duration::from_secs(600);

/// The room as the end-to-end tests start it: `--history-on-join 1000`, so
/// a client whose `WELCOME` is lost gets what was said meanwhile.
fn room_config() -> Config {
    Config {
        history_on_join: 1000,
        ..Config::default()
    }
}

/// The links of the real tests: loss both ways, some duplicates and
/// reordering (holds up to 400 ms).
fn lossy(loss: f64) -> LinkConfig {
    LinkConfig::lossy(loss).with_dup_reorder(loss / 4.0, loss / 4.0)
}

fn payloads(nick: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("m:{nick}:{i:03}")).collect()
}

/// What one run showed.
struct Outcome {
    sim: Sim,
    clients: Vec<ClientId>,
    /// Virtual time from the last line typed to the moment each client had
    /// every message (None if it never did).
    completion: Vec<Option<Duration>>,
    complete: bool,
    /// When the lines were typed (virtual time since the start).
    typed: Duration,
}

/// Three structured clients join, then each types `per_client` lines at
/// once (a pipe), and they stay until everyone shows every message.
fn three_clients(seed: u64, per_client: usize, up: LinkConfig, down: LinkConfig) -> Outcome {
    let mut sim = Sim::new(seed, room_config());
    let clients: Vec<ClientId> = NICKS
        .iter()
        .map(|n| sim.add_client(ClientKind::Structured, n, up, down))
        .collect();
    let joined = sim.run_until(Duration::from_secs(60), |s| {
        clients.iter().all(|&c| s.client(c).is_joined())
    });
    assert!(joined, "seed {seed:#x}: not everyone joined");
    for (&c, nick) in clients.iter().zip(NICKS) {
        sim.type_lines(c, payloads(nick, per_client), Duration::ZERO);
    }
    let typed = sim.elapsed();
    let want: HashSet<Chat> = NICKS
        .iter()
        .flat_map(|n| {
            payloads(n, per_client)
                .into_iter()
                .map(|p| Chat::new(n, &p))
        })
        .collect();
    let has_all = |chats: Vec<Chat>| want.is_subset(&chats.into_iter().collect());
    let complete = sim.run_until(VIRTUAL_LIMIT, |s| {
        clients.iter().all(|&c| has_all(s.client(c).chats()))
    });
    // Late duplicates and stray repairs would show up now.
    sim.run_for(Duration::from_secs(5));
    let completion = clients
        .iter()
        .map(|&c| {
            let timed = sim
                .client(c)
                .structured()
                .expect("structured")
                .chats_with_times();
            let mut seen = HashSet::new();
            let mut last = None;
            for (at, chat) in timed {
                if want.contains(&chat) && seen.insert(chat) {
                    last = Some(at);
                }
            }
            (seen.len() == want.len()).then(|| sim.since_start(last.expect("some")) - typed)
        })
        .collect();
    Outcome {
        sim,
        clients,
        completion,
        complete,
        typed,
    }
}

/// Every client shows every room message exactly once, in the room's
/// order, and reports no loss; every message typed reached the room.
fn assert_exactly_once_in_room_order(outcome: &Outcome, per_client: usize, what: &str) {
    let sim = &outcome.sim;
    let reference = sim.room_chats();
    assert!(
        outcome.complete,
        "{what}: not complete after {VIRTUAL_LIMIT:?}: {:?} of {} (room has {})",
        outcome
            .clients
            .iter()
            .map(|&c| sim.client(c).chats().len())
            .collect::<Vec<_>>(),
        NICKS.len() * per_client,
        reference.len()
    );
    for nick in NICKS {
        let in_room: Vec<String> = reference
            .iter()
            .filter(|c| c.nick == nick)
            .map(|c| c.text.clone())
            .collect();
        assert_eq!(
            in_room,
            payloads(nick, per_client),
            "{what}: {nick}'s in the room"
        );
    }
    for (&c, nick) in outcome.clients.iter().zip(NICKS) {
        let client = sim.client(c).structured().expect("structured");
        assert_eq!(
            client.chats(),
            reference,
            "{what}: {nick} differs from the room's order"
        );
        let losses: Vec<_> = client
            .shown()
            .iter()
            .filter(|s| format!("{:?}", s.line).contains("lost"))
            .collect();
        assert!(losses.is_empty(), "{what}: {nick} reports {losses:?}");
        assert!(client.session().is_settled(), "{what}: {nick} unsettled");
    }
}

#[test]
fn three_structured_clients_get_all_300_messages_once_in_order_through_20_percent_loss() {
    for seed in [0x1055_2020, 1, 2] {
        let outcome = three_clients(seed, 100, lossy(0.2), lossy(0.2));
        let wire = outcome.sim.wire();
        assert!(wire.to_room.dropped > 0 && wire.to_clients.dropped > 0);
        assert!(wire.to_room.duplicated > 0 && wire.to_clients.reordered > 0);
        assert_exactly_once_in_room_order(&outcome, 100, &format!("20%, seed {seed:#x}"));
    }
}

#[test]
fn three_structured_clients_get_every_message_through_5_percent_loss() {
    for seed in [5, 6] {
        let outcome = three_clients(seed, 100, lossy(0.05), lossy(0.05));
        assert_exactly_once_in_room_order(&outcome, 100, &format!("5%, seed {seed}"));
    }
}

/// Gilbert-Elliott bursts: mostly clean, then runs of heavy loss (mean
/// burst 5 datagrams, about 12% lost overall).
#[test]
fn three_structured_clients_get_every_message_through_burst_loss() {
    let burst = LinkConfig {
        loss: Loss::Burst {
            enter_bad: 0.04,
            leave_bad: 0.2,
            loss_good: 0.01,
            loss_bad: 0.7,
        },
        ..LinkConfig::CLEAN
    }
    .with_dup_reorder(0.02, 0.02);
    for seed in [11, 12] {
        let outcome = three_clients(seed, 100, burst, burst);
        assert_exactly_once_in_room_order(&outcome, 100, &format!("burst, seed {seed}"));
    }
}

#[test]
fn without_loss_everything_arrives_at_once_and_nothing_is_repaired() {
    let outcome = three_clients(3, 50, LinkConfig::CLEAN, LinkConfig::CLEAN);
    assert_exactly_once_in_room_order(&outcome, 50, "clean");
    let resends = outcome
        .sim
        .trace()
        .iter()
        .filter(|r| r.bytes.starts_with(b"RESEND"))
        .count();
    assert_eq!(resends, 0);
    // 150 messages at the client's pace (30 at once, then 15 a second).
    let slowest = outcome.completion.iter().flatten().max().copied();
    assert!(slowest < Some(Duration::from_secs(15)), "{slowest:?}");
}

/// A classic client through the same lossy links (loss and reordering;
/// no duplicates towards the room, since classic `M` carries no id) keeps
/// working: it gets clean lines of real room messages, only missing what
/// was dropped, and its own messages reach the room.
#[test]
fn a_classic_client_through_20_percent_loss_keeps_working() {
    let mut sim = Sim::new(0x1055_2020, room_config());
    let structured: Vec<ClientId> = NICKS
        .iter()
        .map(|n| sim.add_client(ClientKind::Structured, n, lossy(0.2), lossy(0.2)))
        .collect();
    let up = LinkConfig::lossy(0.2).with_dup_reorder(0.0, 0.05);
    let classic = sim.add_client(ClientKind::Classic, "cla", up, lossy(0.2));
    assert!(sim.run_until(Duration::from_secs(60), |s| s
        .clients()
        .all(|(_, c)| c.is_joined())));
    for (&c, nick) in structured.iter().zip(NICKS) {
        sim.type_lines(c, payloads(nick, 30), Duration::ZERO);
    }
    sim.type_lines(classic, payloads("cla", 10), Duration::from_millis(400));
    let complete = sim.run_until(VIRTUAL_LIMIT, |s| {
        structured
            .iter()
            .all(|&c| s.client(c).chats().len() >= 90 && s.client(c).chats() == s.room_chats())
    });
    assert!(complete, "structured clients incomplete");
    let reference = sim.room_chats();
    let from_classic = reference.iter().filter(|c| c.nick == "cla").count();
    assert!(
        from_classic > 0,
        "none of the classic client's messages got through"
    );
    assert!(from_classic <= 10, "a classic message was relayed twice");
    let room: HashSet<String> = reference
        .iter()
        .map(|c| format!("{}: {}", c.nick, c.text))
        .collect();
    let lines = sim.client(classic).classic().expect("classic").lines();
    let mut chat_lines = 0;
    for line in &lines {
        assert!(
            line.chars().all(|ch| !ch.is_control()),
            "control characters in {line:?}"
        );
        if line.contains(": m:") {
            assert!(room.contains(line), "not a room message: {line:?}");
            chat_lines += 1;
        }
    }
    assert!(
        chat_lines * 2 > reference.len(),
        "classic client got only {chat_lines} of {}",
        reference.len()
    );
}

/// Piped mode's ending: input ends right after the lines; each client
/// leaves by itself once its messages are echoed, having sent them all.
///
/// At 5% loss. At 20%, piped mode today gives up after 5 s without its own
/// progress and leaves with messages unconfirmed for 10 or 11 of 40 seeds
/// (ticking the session every 50 ms or waking at its deadlines alike): the
/// stall cut-off the next issue replaces. This test once ran at 20% with a
/// seed that happened to pass.
#[test]
fn piped_clients_leave_by_themselves_once_their_messages_are_echoed() {
    let mut sim = Sim::new(21, room_config());
    let clients: Vec<ClientId> = NICKS
        .iter()
        .map(|n| sim.add_client(ClientKind::Structured, n, lossy(0.05), lossy(0.05)))
        .collect();
    assert!(sim.run_until(Duration::from_secs(60), |s| s
        .clients()
        .all(|(_, c)| c.is_joined())));
    for (&c, nick) in clients.iter().zip(NICKS) {
        sim.type_lines(c, payloads(nick, 20), Duration::from_millis(100));
        sim.end_input(c);
    }
    let all_left = sim.run_until(VIRTUAL_LIMIT, |s| {
        clients.iter().all(|&c| {
            s.client(c)
                .structured()
                .and_then(|c| c.stopped_at())
                .is_some()
        })
    });
    assert!(all_left);
    for &c in &clients {
        let client = sim.client(c).structured().expect("structured");
        assert_eq!(client.left_unsettled(), 0);
        assert_eq!(client.ended(), None);
    }
    let reference = sim.room_chats();
    for nick in NICKS {
        let mine: Vec<String> = reference
            .iter()
            .filter(|c| c.nick == nick)
            .map(|c| c.text.clone())
            .collect();
        assert_eq!(mine, payloads(nick, 20));
    }
    // Their Q (or, if it was lost, the unreachable port) emptied the room.
    sim.run_for(Duration::from_secs(120));
    assert_eq!(sim.room().member_count(), 0);
}

#[test]
fn same_seed_same_trace_and_another_seed_another() {
    let run = |seed| three_clients(seed, 20, lossy(0.2), lossy(0.2)).sim;
    let (a, b, c) = (run(42), run(42), run(43));
    assert!(a.trace().len() > 100);
    assert_eq!(a.trace(), b.trace());
    assert_eq!(a.trace_digest(), b.trace_digest());
    assert_eq!(a.wire(), b.wire());
    assert_eq!(a.room_chats(), b.room_chats());
    assert_ne!(a.trace(), c.trace());
    assert_ne!(a.trace_digest(), c.trace_digest());
}

/// The virtual completion times at 20% loss over many seeds (the data
/// behind [`VIRTUAL_LIMIT`]); run with `--ignored --nocapture`.
#[test]
#[ignore = "prints a distribution; about a second"]
fn completion_times_at_20_percent_loss_across_seeds() {
    let mut all = Vec::new();
    let mut tails = Vec::new();
    for seed in 0..20u64 {
        let outcome = three_clients(seed, 100, lossy(0.2), lossy(0.2));
        let times: Vec<String> = outcome
            .completion
            .iter()
            .map(|t| t.map_or("never".to_owned(), |t| format!("{:5.1}", t.as_secs_f64())))
            .collect();
        // How long after the room numbered its last message each client
        // had everything: the repair tail.
        let last_in_room = outcome
            .sim
            .numbered()
            .last()
            .map_or(Duration::ZERO, |n| n.at);
        let tail: Vec<f64> = outcome
            .completion
            .iter()
            .flatten()
            .map(|t| {
                (outcome.typed + *t)
                    .saturating_sub(last_in_room)
                    .as_secs_f64()
            })
            .collect();
        eprintln!(
            "seed {seed:>2}: {} s; room's last message {:5.1} s after typing; tails {:?} s; trace {:016x}",
            times.join(" "),
            last_in_room.saturating_sub(outcome.typed).as_secs_f64(),
            tail.iter().map(|t| (t * 10.0).round() / 10.0).collect::<Vec<_>>(),
            outcome.sim.trace_digest()
        );
        all.extend(
            outcome
                .completion
                .iter()
                .map(|t| t.map(|t| t.as_secs_f64())),
        );
        tails.extend(tail);
    }
    tails.sort_by(f64::total_cmp);
    eprintln!(
        "tails: median {:.1} s, max {:.1} s",
        tails[tails.len() / 2],
        tails[tails.len() - 1]
    );
    let mut done: Vec<f64> = all.iter().flatten().copied().collect();
    done.sort_by(f64::total_cmp);
    let at = |q: f64| done[((done.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "{} of {} clients complete; seconds after the last line typed: min {:.1}, median {:.1}, p90 {:.1}, max {:.1}",
        done.len(),
        all.len(),
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}
