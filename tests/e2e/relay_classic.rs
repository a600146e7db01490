//! End to end: classic (N/M/Q) clients against the real relay binary.

use crate::support::{loopback_ip, Member, Relay};
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

#[test]
fn a_fifth_course_client_on_one_computer_is_refused_with_ip_full_and_others_still_chat() {
    // Default configuration: --max-per-ip 4. Four course clients on one
    // computer (127.0.0.1), the fifth refused; a client on another
    // computer (127.2.x.y) joins and chats; everyone hears it.
    let relay = Relay::start(&[]);
    let same: Vec<Member> = (0..5).map(|_| Member::new(relay.addr)).collect();
    for (i, m) in same.iter().take(4).enumerate() {
        m.join_classic(&format!("s{i}"));
    }
    same[4].send("N s4");
    assert_eq!(
        same[4].recv_until("the ip-full refusal", |t| t.starts_with("ERROR")),
        "ERROR ip-full: this computer already has 4 members in the room; \
         the relay allows 4 per address (--max-per-ip)"
    );
    let other = Member::on_ip(relay.addr, loopback_ip(7));
    other.join_classic("elsewhere");
    other.send("M elsewhere hello from another computer");
    for m in same.iter().take(4) {
        m.recv_until("the chat line", |t| {
            t == "elsewhere: hello from another computer"
        });
    }
    other.recv_until("its echo", |t| {
        t == "elsewhere: hello from another computer"
    });
    same[4].expect_silence(QUIET);
}

#[test]
fn reserved_names_look_alikes_and_blank_names_are_refused_by_the_real_relay() {
    let relay = Relay::start(&["--reserve", "Ms.Li"]);
    let alice = Member::new(relay.addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let mallory = Member::new(relay.addr);
    for (asked, want) in [
        (
            "MS.LI",
            "ERROR nick-reserved: the nickname MS.LI is reserved for the teacher and the relay; \
             choose another",
        ),
        (
            "t\u{435}acher",
            "ERROR nick-reserved: the nickname t\u{435}acher looks like teacher, which is \
             reserved for the teacher and the relay; choose another",
        ),
        (
            "ａｌｉｃｅ",
            "ERROR nick-taken: the nickname ａｌｉｃｅ looks like alice, who is online; choose \
             another",
        ),
        (
            "\u{3164}",
            "ERROR nick-invalid: a nickname cannot contain invisible or blank characters (such \
             as a Hangul filler or a zero-width space); use letters, digits, _ - . only",
        ),
    ] {
        mallory.send(format!("N {asked}"));
        assert_eq!(mallory.recv_text(), want);
    }
    alice.expect_silence(QUIET);
    mallory.join_classic("mallory");
    alice.expect("* mallory joined");
}
