//! A client that dies without leaving (`kill -9`, a closed terminal) and is
//! started again gets its nickname back at once, the room sees
//! "reconnected" (not a leave and a join), and it is shown what was said
//! while it was gone, and nothing it had already shown.

use std::time::{Duration, Instant};

use crate::support::process::{fresh_state_dir, kill_9};
use crate::support::{Client, Relay};

#[test]
fn killed_client_is_back_under_its_nick_within_2_s_with_what_it_missed() {
    let relay = Relay::start(&[]);
    let addr = relay.addr.to_string();
    let state = fresh_state_dir("resume");
    let mut bob = Client::joined(&addr, "bob");
    let mut alice =
        Client::start_in(&addr, Some("alice"), &[], &state.0).until_shown("* alice joined");

    bob.say("before the crash");
    alice.stdout.wait_contains(" bob: before the crash");
    // The client saves what it has shown at most every 200 ms.
    std::thread::sleep(Duration::from_millis(500));
    kill_9(alice.pid());
    let _ = alice.wait_exit();

    bob.say("while you were away");
    bob.stdout.wait_contains(" bob (you): while you were away");

    let started = Instant::now();
    let again = Client::start_in(&addr, Some("alice"), &[], &state.0);
    let again = again.until_shown("alice reconnected");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} to be alice again"
    );
    again.stdout.wait_contains("while you were away");
    bob.stdout.wait_contains("alice reconnected");

    let shown = again.stdout.all();
    assert!(
        !shown.iter().any(|l| l.contains("before the crash")),
        "shown again what it had shown: {shown:#?}"
    );
    let seen_by_bob = bob.stdout.all();
    assert!(
        !seen_by_bob.iter().any(|l| l.contains("alice left")),
        "{seen_by_bob:#?}"
    );
    assert_eq!(
        seen_by_bob
            .iter()
            .filter(|l| l.contains("* alice joined"))
            .count(),
        1,
        "{seen_by_bob:#?}"
    );
    bob.close();
    let _ = bob.wait_exit();
}
