//! End to end: classic (N/M/Q) clients against the real relay binary.

use crate::support::{Member, Relay};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

#[test]
fn classic_join_gets_exactly_ok_and_chat_reaches_everyone() {
    let relay = Relay::start(&[]);
    let alice = Member::new(relay.addr);
    // join_classic reads with a 1024-byte buffer and demands exactly "OK".
    alice.join_classic("alice");
    assert_eq!(alice.recv_text(), "* alice joined");

    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    assert_eq!(bob.recv_text(), "* bob joined");
    assert_eq!(alice.recv_text(), "* bob joined");

    alice.send("M alice hello  there 你好");
    // The sender gets its own line back: on UDP the echo is the receipt.
    assert_eq!(alice.recv_text(), "alice: hello  there 你好");
    assert_eq!(bob.recv_text(), "alice: hello  there 你好");

    bob.send("Q bob");
    assert_eq!(alice.recv_text(), "* bob left");
}

#[test]
fn newline_client_gets_newline_terminated_lines() {
    let relay = Relay::start(&[]);
    let nc = Member::new(relay.addr);
    nc.send("N carol\n");
    assert_eq!(nc.recv_text(), "OK\n");
    assert_eq!(nc.recv_text(), "* carol joined\n");
    nc.send("M carol hi\r\n");
    assert_eq!(nc.recv_text(), "carol: hi\n");

    // A bare member in the same room still gets bare lines.
    let bare = Member::new(relay.addr);
    bare.join_classic("dave");
    assert_eq!(bare.recv_text(), "* dave joined");
    assert_eq!(nc.recv_text(), "* dave joined\n");
}

#[test]
fn lost_ok_retry_gets_ok_again_without_a_second_join() {
    let relay = Relay::start(&[]);
    let watcher = Member::new(relay.addr);
    watcher.join_classic("watcher");
    watcher.expect("* watcher joined");

    let alice = Member::new(relay.addr);
    alice.send("N alice");
    assert_eq!(alice.recv_text(), "OK");
    // The client did not see the OK (lost) and asks again.
    alice.send("N alice");
    alice.recv_until("a second OK", |t| t == "OK");
    watcher.expect("* alice joined");
    watcher.expect_silence(QUIET);
    // And alice is still a working member.
    alice.send("M alice still here");
    watcher.expect("alice: still here");
}

#[test]
fn impersonation_is_refused_and_nothing_is_relayed() {
    let relay = Relay::start(&[]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");

    // Mallory, not a member, tries to speak and quit as alice.
    let mallory = Member::new(relay.addr);
    mallory.send("M alice I am alice");
    let reply = mallory.recv_text();
    assert!(reply.starts_with("ERROR not-joined"), "got {reply:?}");
    mallory.send("Q alice");
    let reply = mallory.recv_text();
    assert!(reply.starts_with("ERROR not-joined"), "got {reply:?}");

    // Mallory joins under its own name and tries again.
    mallory.join_classic("mallory");
    alice.expect("* mallory joined");
    mallory.expect("* mallory joined");
    mallory.send("M ALICE I am alice");
    let reply = mallory.recv_text();
    assert!(reply.starts_with("ERROR not-yours"), "got {reply:?}");
    mallory.send("Q alice");
    let reply = mallory.recv_text();
    assert!(reply.starts_with("ERROR not-yours"), "got {reply:?}");
    alice.expect_silence(QUIET);

    // Alice is still there and can talk.
    alice.send("M alice it is really me");
    alice.expect("alice: it is really me");
    mallory.expect("alice: it is really me");
}

#[test]
fn taken_nick_is_refused_case_insensitively() {
    let relay = Relay::start(&[]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    let other = Member::new(relay.addr);
    other.send("N ALICE");
    let reply = other.recv_text();
    assert!(reply.starts_with("ERROR nick-taken"), "got {reply:?}");
}

#[test]
fn chinese_notices_with_lang_zh() {
    let relay = Relay::start(&["--lang", "zh"]);
    let a = Member::new(relay.addr);
    a.join_classic("小明");
    assert_eq!(a.recv_text(), "* 小明 加入了聊天室");
    let b = Member::new(relay.addr);
    b.send("N 小明");
    let reply = b.recv_text();
    assert!(reply.starts_with("错误 nick-taken: "), "got {reply:?}");
}

#[test]
fn no_classic_refuses_classic_joins() {
    let relay = Relay::start(&["--no-classic"]);
    let a = Member::new(relay.addr);
    a.send("N alice");
    let reply = a.recv_text();
    assert!(reply.starts_with("ERROR classic-disabled"), "got {reply:?}");
}

#[test]
fn a_restarted_course_client_reclaims_its_silent_nickname_from_a_new_port() {
    let relay = Relay::start(&["--classic-reclaim-after", "1s"]);
    let watcher = Member::new(relay.addr);
    watcher.join_classic("watcher");
    assert_eq!(watcher.recv_text(), "* watcher joined");
    let old = Member::new(relay.addr);
    old.join_classic("alice");
    assert_eq!(old.recv_text(), "* alice joined");
    assert_eq!(watcher.recv_text(), "* alice joined");
    // The course client is closed without Q and started again (a new port
    // of the same address): at first the old one may still be in use...
    let new = Member::new(relay.addr);
    new.send("N alice");
    assert!(
        new.recv_text().starts_with("ERROR nick-taken"),
        "too soon to reclaim"
    );
    // ...once it has been silent for --classic-reclaim-after, it is hers.
    std::thread::sleep(Duration::from_millis(1_100));
    new.send("N alice");
    assert_eq!(new.recv_text(), "OK");
    assert_eq!(new.recv_text(), "* alice reconnected");
    assert_eq!(watcher.recv_text(), "* alice reconnected");
    new.send("M alice back");
    assert_eq!(watcher.recv_text(), "alice: back");
    old.expect_silence(QUIET);
}
