//! Moderation against the real relay (issue 13): a join code from both
//! dialects and the real client's `--code`, and a ban from the console
//! that keeps a real client out, across a restart with `--ban-file`. The
//! rules themselves are tested in crates/room (moderation.rs).

use crate::support::process::TempFile;
use crate::support::{Client, Member, Relay};

/// Everything a client printed, both streams.
fn output(client: &Client) -> String {
    format!("{}\n{}", client.stdout.text(), client.stderr.text())
}

#[test]
fn a_join_code_lets_in_a_classic_name_code_join_and_the_client_with_code() {
    let relay = Relay::start(&["--join-code", "maple7"]);
    let addr = relay.addr.to_string();

    // A course client: the student typed "alice maple7" as the name.
    let alice = Member::new(relay.addr);
    alice.send("N alice maple7");
    alice.expect("OK");

    // A wrong code is refused with words.
    let mallory = Member::new(relay.addr);
    mallory.send("N mallory oak3");
    let refusal = mallory.recv_text();
    assert!(
        refusal.starts_with("ERROR bad-code: wrong join code"),
        "{refusal}"
    );

    // The real client with --code joins and chats with the course client.
    let mut carol = Client::joined_with(&addr, "carol", &["--code", "MAPLE7"]);
    alice.expect("* carol joined");
    carol.say("hello alice");
    alice.expect("carol: hello alice");
    // The course client repeats "alice maple7" as its name in M.
    alice.send("M alice maple7 hi carol");
    carol.stdout.wait_contains(" alice: hi carol");

    // Without the code the real client is refused and says why.
    let mut dave = Client::start_with(&addr, Some("dave"), &[]);
    assert!(!dave.wait_exit().success());
    assert!(output(&dave).contains("join code"), "{}", output(&dave));
    carol.close();
    assert!(carol.wait_exit().success());
}

#[test]
fn a_console_ban_keeps_the_real_client_out_also_after_a_restart_with_the_ban_file() {
    let bans = TempFile::new("bans");
    let mut relay = Relay::start_with_console(&["--ban-file", bans.as_str()]);
    let addr = relay.addr.to_string();
    let mut eve = Client::joined(&addr, "eve");
    relay.console("/ban eve 10m spamming the room");
    relay.expect_stdout("the ban confirmed", |l| {
        l.starts_with("banned 127.0.0.1 for 10 minutes; removed eve")
    });
    // Removed, and it does not come back by itself.
    assert!(!eve.wait_exit().success());
    assert!(
        output(&eve).contains("spamming the room"),
        "{}",
        output(&eve)
    );
    let saved = std::fs::read_to_string(&bans.0).expect("the ban file is written");
    assert!(
        saved
            .lines()
            .any(|l| l.starts_with("127.0.0.1 ") && l.ends_with(" eve spamming the room")),
        "{saved}"
    );
    drop(relay);

    // A new relay run reads the file: a new client from the address is
    // refused with the reason and the time left.
    let relay = Relay::start(&["--ban-file", bans.as_str()]);
    assert!(
        relay
            .stderr
            .wait_contains("ban(s) in force")
            .contains("1 ban"),
        "{}",
        relay.stderr()
    );
    let mut again = Client::start_with(&relay.addr.to_string(), Some("eve2"), &[]);
    assert!(!again.wait_exit().success());
    let said = output(&again);
    assert!(said.contains("spamming the room"), "{said}");
    assert!(said.contains("the ban ends in"), "{said}");
}
