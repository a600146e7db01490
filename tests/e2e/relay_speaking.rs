//! Moderated mode, voices, actions and announcements against the real
//! relay (issues 13 and 14): commands through the piped console, members
//! over UDP on loopback. The rules themselves are tested in crates/room
//! (voice.rs, speech.rs, announce.rs).

use udpchat_proto::{RelayMsg, RoomEvent};

use crate::support::{Member, Relay};

const REFUSED: &str = "the host has turned on moderated mode; \
                       raise your hand (/hand) to ask to speak";

#[test]
fn moderated_mode_lets_only_voiced_members_speak_and_hands_still_go_up() {
    let mut relay = Relay::start_with_console(&[]);
    let alice = Member::new(relay.addr);
    alice.join_structured("alice");
    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    alice.recv_msg_until(
        "JOIN bob",
        |m| matches!(m, RelayMsg::Event { event: RoomEvent::Join(n), .. } if n.as_str() == "bob"),
    );

    relay.console("/moderated on");
    relay.expect_stdout("moderated mode on", |l| l.starts_with("moderated mode on"));
    bob.expect("* the host turned moderated mode on: only members with a voice can speak");
    alice.recv_until("MODERATED on", |t| t.ends_with(" live MODERATED on"));

    // Unvoiced chat and actions, from both dialects: refused to the sender.
    bob.send("M bob hello?");
    bob.expect(&format!("ERROR moderated: {REFUSED}"));
    alice.send("SAY 1 /me waves");
    alice.expect(&format!("ERROR moderated {REFUSED}"));
    // A hand and a private message still go.
    bob.send("H may I speak?");
    bob.expect("* your hand is up; 1st in line");
    bob.send("MSG alice psst");
    bob.expect("[private to alice] psst");
    alice.recv_until("PRIVATE from bob", |t| t.contains(" bob psst"));

    relay.console("/voice bob");
    relay.expect_stdout("the voice confirmed", |l| l.starts_with("bob has a voice"));
    bob.expect("* you can speak now");
    bob.send("M bob /me stands up");
    bob.expect("* bob stands up");
    alice.recv_until("ACTION bob", |t| t.ends_with(" live ACTION bob stands up"));

    relay.console("/devoice bob");
    bob.expect("* you can no longer speak");
    bob.send("M bob again");
    bob.expect(&format!("ERROR moderated: {REFUSED}"));

    relay.console("/moderated off");
    bob.expect("* the host turned moderated mode off: everyone can speak");
    bob.send("M bob free at last");
    bob.expect("bob: free at last");
}

#[test]
fn an_announcement_is_counted_and_summed_up_on_the_console() {
    let mut relay = Relay::start_with_console(&[]);
    let alice = Member::new(relay.addr);
    alice.join_structured("alice");
    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    alice.recv_until("JOIN bob", |t| t.ends_with(" live JOIN bob"));

    relay.console("/announce test on Friday");
    bob.expect("[announcement] test on Friday");
    let event = alice.recv_msg_until("ANNOUNCE", |m| {
        matches!(
            m,
            RelayMsg::Event {
                event: RoomEvent::Announce(_),
                ..
            }
        )
    });
    let RelayMsg::Event { seq, .. } = event else {
        unreachable!("matched above")
    };
    // A forged SEEN (from another address, never a member) and a classic
    // member's count nothing; alice's confirms, once, and that completes it.
    let stranger = Member::new(relay.addr);
    stranger.send(format!("SEEN {seq}"));
    bob.send(format!("SEEN {seq}"));
    alice.send(format!("SEEN {seq}"));
    alice.send(format!("SEEN {seq}"));
    let want = format!("announcement #{seq} seen by 1 of 2; 1 classic member cannot confirm");
    // By itself: at once when alice confirmed (or, on a machine so busy
    // that her SEEN took 10 s, then, with what had come by then).
    let auto = relay.expect_stdout("the summary", |l| {
        l.starts_with(&format!("announcement #{seq} seen by "))
    });
    assert!(
        auto.ends_with(" of 2; 1 classic member cannot confirm"),
        "{auto}"
    );
    // And again on request, with alice's one confirmation counted once.
    relay.console("/announce");
    let again = relay.expect_stdout("the summary on request", |l| {
        l.starts_with(&format!("announcement #{seq} "))
    });
    assert_eq!(again, want);
}

#[test]
fn the_real_client_confirms_an_announcement_and_sends_me_as_an_action() {
    let mut relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    let mut carol = crate::support::Client::joined(&addr, "carol");
    bob.expect("* carol joined");

    carol.say("/me waves");
    bob.expect("* carol waves");
    carol.stdout.wait_contains("* carol waves");

    relay.console("/announce quiz at 10");
    bob.expect("[announcement] quiz at 10");
    carol.stdout.wait_contains("[announcement] quiz at 10");
    relay.expect_stdout("the summary", |l| {
        l.ends_with(" seen by 1 of 2; 1 classic member cannot confirm")
    });
    carol.close();
    assert!(carol.wait_exit().success());
}

#[test]
fn a_relay_started_with_moderated_refuses_unvoiced_chat_from_the_start() {
    let mut relay = Relay::start_with_console(&["--moderated", "--lang", "zh"]);
    let bob = Member::new(relay.addr);
    bob.join_classic("bob");
    bob.expect("* bob 加入了聊天室");
    bob.send("M bob 你好");
    bob.expect("错误 moderated: 主持人开启了发言管理模式；请举手（/hand）申请发言");
    relay.console("/voice bob");
    bob.expect("* 你现在可以发言了");
    bob.send("M bob 你好");
    bob.expect("bob: 你好");
}
