//! The real `udpchat` against the real `udpchat-relay` on loopback, in
//! piped mode: what a script (or a test) sees.

use crate::support::{Client, Relay, WAIT};
use std::io::Write;
use std::process::{Command, Stdio};

fn relay() -> Relay {
    Relay::start_with_console(&[])
}

#[test]
fn two_piped_clients_exchange_messages_with_cjk_and_spaces_intact() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    let mut bob = Client::joined(&addr, "小明");

    let text = "  你好，世界  two  spaces ";
    alice.say(text);
    bob.stdout.wait_for("alice's message, exactly", |l| {
        l.ends_with(&format!(" alice: {text}"))
    });
    alice.stdout.wait_for("own message marked", |l| {
        l.ends_with(&format!(" alice (you): {text}"))
    });

    bob.say("回复 reply 👋");
    alice.stdout.wait_contains(" 小明: 回复 reply 👋");

    alice.close();
    bob.close();
    assert!(alice.wait_exit().success());
    assert!(bob.wait_exit().success());
}

#[test]
fn one_shot_pipe_sends_its_line_and_exits_zero() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let bob = Client::joined(&addr, "bob");

    // printf 'hello\n' | udpchat --nick bot
    let state = crate::support::process::fresh_state_dir("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_udpchat"))
        .args(["--relay", &addr, "--nick", "bot"])
        .env_remove("UDPCHAT_RELAY")
        .env("UDPCHAT_STATE_DIR", &state.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bot (you): hello"), "{stdout}");
    bob.stdout.wait_contains(" bot: hello");
    bob.stdout.wait_contains("* bot left");
}

#[test]
fn relay_address_comes_from_the_environment() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let bob = Client::joined(&addr, "bob");
    let state = crate::support::process::fresh_state_dir("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_udpchat"))
        .args(["--nick", "envy"])
        .env("UDPCHAT_RELAY", &addr)
        .env("UDPCHAT_STATE_DIR", &state.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from env\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    bob.stdout.wait_contains(" envy: from env");
}

#[test]
fn a_taken_nickname_is_refused_with_the_relays_reason() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let _alice = Client::joined(&addr, "alice");
    // Nicknames are unique case-insensitively.
    let mut other = Client::start(&addr, Some("ALICE"));
    let status = other.wait_exit();
    assert_eq!(status.code(), Some(2));
    let err = other.stderr.wait_contains("refused the nickname ALICE");
    assert!(err.contains("taken"), "{err}");
}

#[test]
fn private_message_reaches_only_its_target() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    let bob = Client::joined(&addr, "bob");
    let carol = Client::joined(&addr, "carol");

    alice.say("/msg bob the secret sauce");
    bob.stdout
        .wait_contains("[private from alice] the secret sauce");
    alice
        .stdout
        .wait_contains("[private to bob] the secret sauce");

    // Carol sees what alice says next, and never the private message.
    alice.say("public marker");
    carol.stdout.wait_contains(" alice: public marker");
    assert!(
        !carol
            .stdout
            .all()
            .iter()
            .any(|l| l.contains("secret sauce")),
        "{:#?}",
        carol.stdout.all()
    );

    alice.say("/msg nobody hello?");
    alice
        .stdout
        .wait_contains("private message to nobody not sent");
}

#[test]
fn who_lists_the_members() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    let _bob = Client::joined(&addr, "bob");
    alice.say("/who");
    let line = alice.stdout.wait_contains("online (2)");
    assert!(line.contains("alice") && line.contains("bob"), "{line}");
}

#[test]
fn client_rejoins_after_the_relay_is_killed_and_restarted() {
    let mut old = relay();
    let addr = old.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    alice.say("before restart");
    alice.stdout.wait_contains("alice (you): before restart");

    old.kill();
    let new = Relay::start_with_console(&["--bind", &addr]);
    assert_eq!(new.addr, old.addr);
    let bob = Client::joined(&addr, "bob");

    // The new relay does not know alice: her next message makes her notice,
    // rejoin under the same nickname and send it again.
    alice.say("after restart");
    alice.stdout.wait_contains("connection lost, rejoining…");
    alice.stdout.wait_contains("rejoined as alice");
    bob.stdout.wait_contains(" alice: after restart");

    alice.say("still working");
    bob.stdout.wait_contains(" alice: still working");
    let _ = WAIT;
}

#[test]
fn late_joiner_sees_recent_history_marked_as_history() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    alice.say("said before bob came");
    alice
        .stdout
        .wait_contains("alice (you): said before bob came");
    let bob = Client::joined(&addr, "bob");
    let line = bob.stdout.wait_contains("said before bob came");
    // `[history HH:MM]`: when it was said (the relay's `ago=`), local time.
    let (stamp, rest) = line.split_once("] ").expect("a stamp");
    assert_eq!(rest, "alice: said before bob came", "{line}");
    let hhmm = stamp.strip_prefix("[history ").expect("history stamp");
    assert!(hhmm.len() == 5 && hhmm.as_bytes()[2] == b':', "{line}");
}

#[test]
fn host_messages_renames_and_kicks_are_shown() {
    let mut relay = relay();
    let addr = relay.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    let mut bob = Client::joined(&addr, "bob");

    relay.console("welcome to class");
    alice.stdout.wait_contains("[host] welcome to class");

    bob.say("/nick robert");
    alice.stdout.wait_contains("* bob is now known as robert");
    bob.say("new name");
    alice.stdout.wait_contains(" robert: new name");

    relay.console("/kick robert be nice");
    let status = bob.wait_exit();
    assert_eq!(status.code(), Some(1));
    bob.stdout
        .wait_contains("you were removed by the host: be nice");
    alice
        .stdout
        .wait_contains("* robert was removed by the host");
    alice.close();
    assert!(alice.wait_exit().success());
}

#[cfg(unix)]
#[test]
fn idle_client_rejoins_by_itself_after_a_graceful_relay_restart() {
    let mut old = relay();
    let addr = old.addr.to_string();
    let alice = Client::joined(&addr, "alice");

    old.terminate();
    alice.stdout.wait_contains("the relay is shutting down");
    alice.stdout.wait_contains("connection lost, rejoining…");
    let _new = Relay::start_with_console(&["--bind", &addr]);
    // Alice types nothing: her retries find the new relay.
    alice.stdout.wait_contains("rejoined as alice");
    let bob = Client::joined(&addr, "bob");
    let mut alice = alice;
    alice.say("back again");
    bob.stdout.wait_contains(" alice: back again");
}

#[test]
fn ipv6_relay_address_works() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED ipv6_relay_address_works: no IPv6 loopback on this machine");
        return;
    }
    let relay = Relay::start_with_console(&["--bind", "[::1]:0"]);
    let addr = relay.addr.to_string();
    assert!(addr.starts_with("[::1]:"), "{addr}");
    let mut alice = Client::joined(&addr, "alice");
    let bob = Client::joined(&addr, "bob");
    alice.say("over v6");
    bob.stdout.wait_contains(" alice: over v6");
}

#[test]
fn host_names_resolve() {
    let relay = relay();
    let port = relay.addr.port();
    let mut alice = Client::joined(&format!("localhost:{port}"), "alice");
    alice.say("via a name");
    alice.stdout.wait_contains("alice (you): via a name");
}

#[test]
fn a_line_too_long_for_one_message_arrives_whole_in_several() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    let bob = Client::joined(&addr, "bob");
    let long: String = (0..400).map(|i| format!("w{i} ")).collect::<String>() + "末尾";
    assert!(long.len() > 1600);
    alice.say(&long);
    bob.stdout.wait_contains("末尾");
    let pieces: Vec<String> = bob
        .stdout
        .all()
        .iter()
        .filter_map(|l| l.split_once(" alice: ").map(|(_, t)| t.to_owned()))
        .collect();
    assert!(pieces.len() >= 3, "{pieces:#?}");
    assert_eq!(pieces.concat(), long);
}

#[cfg(unix)]
#[test]
fn interrupted_piped_client_still_says_goodbye() {
    let relay = relay();
    let addr = relay.addr.to_string();
    let mut alice = Client::joined(&addr, "alice");
    let bob = Client::joined(&addr, "bob");
    let status = Command::new("kill")
        .args(["-INT", &alice.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!alice.wait_exit().success());
    // A quit, not a timeout a minute later: the nickname is free at once.
    bob.stdout.wait_contains("* alice left");
    assert!(!bob.stdout.all().iter().any(|l| l.contains("alice left (")));
    let _again = Client::joined(&addr, "alice");
}
