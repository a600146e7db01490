//! The course client under the issue-12 limits (per-IP limits, replies
//! charged by their bytes, three times the bytes for unvalidated
//! addresses): `N name` is answered with exactly `OK`, `M name text` comes
//! back as the chat line, and a client that then only listens keeps
//! receiving the room for the two hours of the classic idle timeout.

use std::time::Duration;

use udpchat_netsim::{ClientKind, LinkConfig, Sim};
use udpchat_room::Config;

#[test]
fn a_course_client_joins_chats_and_listens_for_two_hours_under_the_default_limits() {
    let mut sim = Sim::new(1, Config::default());
    let clean = LinkConfig::CLEAN;
    let course = sim.add_client(ClientKind::Classic, "alice", clean, clean);
    let talker = sim.add_client(ClientKind::Classic, "bob", clean, clean);
    let structured = sim.add_client(ClientKind::Structured, "carol", clean, clean);
    assert!(sim.run_until(Duration::from_secs(10), |s| s
        .clients()
        .all(|(_, c)| c.is_joined())));
    let lines = |sim: &Sim| sim.client(course).classic().expect("classic").lines();
    assert_eq!(lines(&sim).first().map(String::as_str), Some("OK"));

    sim.type_lines(course, ["hello from the course client"], Duration::ZERO);
    sim.run_for(Duration::from_secs(1));
    assert!(
        lines(&sim).contains(&"alice: hello from the course client".to_owned()),
        "{:?}",
        lines(&sim)
    );

    // Now alice only listens: bob says something every five minutes, carol
    // every ten, for 1 h 55 min of virtual time.
    for minute in (5..=115).step_by(5) {
        sim.type_lines(talker, [format!("minute {minute}")], Duration::ZERO);
        if minute % 10 == 0 {
            sim.type_lines(structured, [format!("carol at {minute}")], Duration::ZERO);
        }
        sim.run_for(Duration::from_secs(300));
    }
    let got = lines(&sim);
    for minute in (5..=115).step_by(5) {
        assert!(
            got.contains(&format!("bob: minute {minute}")),
            "alice missed minute {minute}"
        );
        if minute % 10 == 0 {
            assert!(got.contains(&format!("carol: carol at {minute}")));
        }
    }
    assert!(!got.iter().any(|l| l.starts_with("ERROR")), "{got:?}");
    assert_eq!(sim.room().stats().replies_over_budget, 0);
    assert_eq!(sim.room().member_count(), 3);
}
