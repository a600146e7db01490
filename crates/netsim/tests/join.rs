//! Loss around a join, on the simulator: the `WELCOME`, the history and the
//! first live events of a joining client are lost; because every `WELCOME`
//! states the member's own join point and history range, the client repairs
//! them like any other gap and ends with everything.

use std::time::Duration;

use udpchat_netsim::{Chat, ClientKind, LinkConfig, Sim};
use udpchat_room::Config;

#[test]
fn a_joiner_whose_welcome_history_and_first_events_are_lost_ends_with_everything() {
    for seed in 0..8u64 {
        let mut sim = Sim::new(seed, Config::default());
        let clean = LinkConfig::CLEAN;
        let bob = sim.add_client(ClientKind::Structured, "bob", clean, clean);
        assert!(sim.run_until(Duration::from_secs(10), |s| s.client(bob).is_joined()));
        sim.type_lines(bob, ["before 1", "before 2"], Duration::ZERO);
        sim.run_for(Duration::from_secs(1));

        let alice = sim.add_client(ClientKind::Structured, "alice", clean, clean);
        let alice_addr = sim.addr(alice);
        // Let the COOKIE through; from then on, nothing reaches alice.
        // (run_until checks every 100 ms: too coarse here.)
        let mut waited = 0;
        while !sim
            .trace()
            .iter()
            .any(|t| t.to == alice_addr && t.bytes.starts_with(b"COOKIE"))
        {
            sim.run_for(Duration::from_millis(1));
            waited += 1;
            assert!(waited < 10_000, "seed {seed}: no COOKIE");
        }
        sim.set_links(alice, clean, LinkConfig::lossy(1.0));
        sim.type_lines(
            bob,
            ["during 1", "during 2", "during 3"],
            Duration::from_millis(100),
        );
        sim.run_for(Duration::from_millis(1500));
        let member = sim
            .room()
            .members()
            .iter()
            .any(|(n, ..)| n.as_str() == "alice");
        assert!(member, "seed {seed}: the relay welcomed alice");
        assert!(
            !sim.client(alice).is_joined(),
            "seed {seed}: every WELCOME was lost"
        );
        sim.set_links(alice, clean, clean);
        sim.type_lines(bob, ["after 1"], Duration::ZERO);

        let want: Vec<Chat> = [
            "before 1", "before 2", "during 1", "during 2", "during 3", "after 1",
        ]
        .iter()
        .map(|t| Chat::new("bob", t))
        .collect();
        let done = sim.run_until(Duration::from_secs(30), |s| {
            want.iter().all(|c| s.client(alice).chats().contains(c))
        });
        assert!(
            done,
            "seed {seed}: alice showed {:?}",
            sim.client(alice).chats()
        );
        // In order, each once.
        assert_eq!(sim.client(alice).chats(), want, "seed {seed}");
    }
}
