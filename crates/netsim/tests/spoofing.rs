//! A blind spoofer on the simulator (issue 12, items 4 and 7): datagrams
//! forged with the relay's source address to a client, and with a member's
//! source address to the relay. With session keys none of them does
//! anything: every real message is shown, nothing forged is, and the
//! member the spoofer impersonates keeps its nickname, its dialect and its
//! rate bucket.

use std::time::Duration;

use udpchat_cli::render::Line;
use udpchat_netsim::{Chat, ClientKind, LinkConfig, Sim};
use udpchat_room::{Config, Dialect};

#[test]
fn forged_datagrams_in_both_directions_change_nothing() {
    for seed in 0..4u64 {
        let mut sim = Sim::new(seed, Config::default());
        let clean = LinkConfig::CLEAN;
        let alice = sim.add_client(ClientKind::Structured, "alice", clean, clean);
        let bob = sim.add_client(ClientKind::Structured, "bob", clean, clean);
        assert!(sim.run_until(Duration::from_secs(10), |s| {
            s.client(alice).is_joined() && s.client(bob).is_joined()
        }));
        let lines: Vec<String> = (1..=30).map(|i| format!("real {i}")).collect();
        sim.type_lines(bob, lines.clone(), Duration::from_millis(500));
        // To alice, "from the relay": the datagram that deafened the old
        // client, a fake teacher, a fake private message, a fake kick.
        for forged in [
            &b"EVENT 18446744073709551614 live CHAT bob x"[..],
            b"EVENT 5 live HOST the test is cancelled",
            b"PRIVATE 1 teacher come to my desk",
            b"PONG 99999",
            b"BYE kicked be nice",
        ] {
            sim.forge_to_client(alice, forged);
        }
        // To the relay, "from bob": leave, downgrade, rename, speak, and a
        // flood of pings (about 870 a second, as in the report) meant to
        // drain his bucket and get his address blocked.
        for forged in [
            &b"Q bob"[..],
            b"N bob",
            b"NICK mallory",
            b"SAY 1 forged",
            b"M bob forged",
        ] {
            sim.forge_to_room(bob, forged);
        }
        for _ in 0..20 {
            for _ in 0..87 {
                sim.forge_to_room(bob, b"PING");
            }
            sim.run_for(Duration::from_millis(100));
        }
        let want: Vec<Chat> = lines.iter().map(|t| Chat::new("bob", t)).collect();
        let done = sim.run_until(Duration::from_secs(60), |s| s.client(alice).chats() == want);
        assert!(
            done,
            "seed {seed}: alice shows {:?}",
            sim.client(alice).chats()
        );
        let client = sim.client(alice).structured().expect("structured");
        assert_eq!(client.ended(), None, "seed {seed}: alice's client ended");
        for shown in client.shown() {
            let forged = match &shown.line {
                Line::Host { .. } | Line::PrivateFrom { .. } => true,
                Line::Chat { text, .. } => text == "x" || text == "forged",
                _ => false,
            };
            assert!(!forged, "seed {seed}: alice was shown {:?}", shown.line);
        }
        let members = sim.room().members();
        let bob_member = members.iter().find(|(n, ..)| n.as_str() == "bob");
        assert!(
            matches!(bob_member, Some((_, _, Dialect::Structured))),
            "seed {seed}: {members:?}"
        );
        assert!(sim.room().stats().unauthenticated >= 1_740, "seed {seed}");
        assert_eq!(sim.room().stats().rate_limited, 0, "seed {seed}");
        assert!(
            !sim.room_events()
                .iter()
                .any(|(_, e)| matches!(e, udpchat_room::Event::Block { .. })),
            "seed {seed}: someone was blocked"
        );
    }
}
