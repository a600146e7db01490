//! Tests of the session as a whole (joining, rejoining, what the relay
//! sends), and the helpers the tests next to each part share.

use std::time::{Duration, Instant};

use udpchat_proto::{
    ErrorCode, LeaveReason, Nick, Origin, RelayMsg, RoomEvent, Text, Token, VERSION,
};

use super::*;
use crate::command::Input;
use crate::render::Line;

pub(super) fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}

pub(super) fn sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(b) => Some(String::from_utf8(b.clone()).unwrap()),
            _ => None,
        })
        .collect()
}

pub(super) fn shown(actions: &[Action]) -> Vec<Line> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Show(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn relay(msg: &RelayMsg) -> Vec<u8> {
    msg.encode()
}

pub(super) fn welcome(nick: &str, last_seq: u64) -> Vec<u8> {
    relay(&RelayMsg::Welcome {
        version: Token::new(VERSION).unwrap(),
        nick: Nick::new(nick).unwrap(),
        last_seq,
        ping_interval: 15,
        idle_timeout: 60,
        history_from: None,
        resume: None,
    })
}

pub(super) fn chat_event(seq: u64, origin: Origin, who: &str, text: &str) -> Vec<u8> {
    relay(&RelayMsg::Event {
        seq,
        origin,
        ago: None,
        event: RoomEvent::Chat {
            nick: nick(who),
            text: Text::new(text).unwrap(),
        },
    })
}

/// A session that has completed the handshake at `now`.
pub(super) fn joined(now: Instant) -> Session {
    let mut s = Session::new(nick("alice"), now, 1);
    s.handle_timeout(now);
    s.handle_datagram(now, b"COOKIE 0123456789abcdef");
    let a = s.handle_datagram(now, &welcome("alice", 5));
    assert!(a.contains(&Action::Joined {
        nick: nick("alice"),
        rejoin: false
    }));
    s
}

pub(super) fn says(actions: &[Action]) -> Vec<String> {
    sent(actions)
        .into_iter()
        .filter(|m| m.starts_with("SAY "))
        .collect()
}

#[test]
fn handshake_sends_padded_hello_then_cookie_hello() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1);
    let first = sent(&s.handle_timeout(now));
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with("HELLO udpchat/1 alice - "));
    assert!(first[0].len() >= udpchat_proto::MIN_HELLO_LEN);
    let second = sent(&s.handle_datagram(now, b"COOKIE 0123456789abcdef"));
    assert_eq!(second, ["HELLO udpchat/1 alice 0123456789abcdef"]);
    assert!(!s.is_joined());
    s.handle_datagram(now, &welcome("alice", 0));
    assert!(s.is_joined());
}

#[test]
fn hello_is_retransmitted_with_backoff_then_gives_up() {
    let start = Instant::now();
    let mut s = Session::new(nick("alice"), start, 1);
    let mut hellos = Vec::new();
    let mut gave_up = None;
    for ms in (0..6000).step_by(50) {
        let now = start + Duration::from_millis(ms);
        let actions = s.handle_timeout(now);
        if !sent(&actions).is_empty() {
            hellos.push(ms);
        }
        if actions.contains(&Action::NoRelay) {
            gave_up = Some(ms);
            break;
        }
    }
    assert_eq!(&hellos[..4], [0, 250, 750, 1750]);
    assert!(hellos.windows(2).all(|w| w[1] - w[0] <= 1000));
    assert_eq!(gave_up, Some(5000));
}

#[test]
fn taken_nick_on_first_join_is_reported_with_the_relay_reason() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1);
    s.handle_timeout(now);
    let a = s.handle_datagram(now, b"ERROR nick-taken nickname is taken; choose another");
    assert_eq!(
        a,
        [Action::Refused {
            code: ErrorCode::NickTaken,
            reason: "nickname is taken; choose another".into()
        }]
    );
    s.retry_with(nick("alice2"), now);
    assert!(sent(&s.handle_timeout(now))[0].starts_with("HELLO udpchat/1 alice2 -"));
}

#[test]
fn not_joined_error_rejoins_and_resends_the_refused_message() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_input(now, Input::Say(Text::new("lost one").unwrap()));
    let a = s.handle_datagram(now, b"ERROR not-joined you have not joined");
    assert!(!s.is_joined());
    assert!(shown(&a).contains(&Line::Notice("connection lost, rejoining…".into())));
    s.handle_timeout(now);
    let a = s.handle_datagram(now, &welcome("alice", 0));
    assert_eq!(says(&a), ["SAY 1 lost one"]);
}

#[test]
fn not_joined_arriving_while_already_rejoining_keeps_going() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_datagram(now, &chat_event(6, Origin::Live, "bob", "x"));
    s.handle_input(now, Input::Say(Text::new("in flight").unwrap()));
    // The restarted relay's BYE starts the rejoin first...
    s.handle_datagram(now, b"BYE shutdown restarting");
    assert!(!s.is_joined());
    // ...then its refusal of our message arrives.
    let a = s.handle_datagram(now, b"ERROR not-joined you have not joined");
    assert!(!a.iter().any(|a| matches!(a, Action::End { .. })), "{a:?}");
    s.handle_timeout(now);
    let a = s.handle_datagram(now, &welcome("alice", 0));
    assert_eq!(says(&a), ["SAY 1 in flight"], "{a:?}");
}

#[test]
fn full_room_ends_the_first_join_but_not_a_rejoin() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1);
    s.handle_timeout(now);
    let a = s.handle_datagram(now, b"ERROR room-full the room is full");
    assert!(a.contains(&Action::End { code: 1 }));

    let mut s = joined(now);
    s.handle_datagram(now, b"BYE shutdown bye");
    let a = s.handle_datagram(now, b"ERROR room-full the room is full");
    assert!(!a.iter().any(|a| matches!(a, Action::End { .. })));
    assert!(!sent(&s.handle_timeout(now + Duration::from_secs(5))).is_empty());
}

#[test]
fn taken_nick_on_rejoin_picks_an_alternative() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_datagram(now, b"BYE shutdown restarting");
    s.handle_timeout(now);
    let a = s.handle_datagram(now, b"ERROR nick-taken taken");
    assert_eq!(s.nick().as_str(), "alice_2");
    assert!(sent(&a)[0].starts_with("HELLO udpchat/1 alice_2 "));
}

#[test]
fn kicked_ends_the_session() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_datagram(now, b"BYE kicked be nice");
    assert!(a.contains(&Action::End { code: 1 }));
}

#[test]
fn rename_of_ourselves_updates_our_nick() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_input(now, Input::Rename(nick("alicia")));
    assert_eq!(sent(&a), ["NICK alicia"]);
    s.handle_datagram(now, b"EVENT 6 live RENAME alice alicia");
    assert_eq!(s.nick().as_str(), "alicia");
    let a = s.handle_input(now, Input::Say(Text::new("x").unwrap()));
    assert_eq!(sent(&a), ["SAY 1 x"]);
    let a = s.handle_datagram(now, b"EVENT 7 live CHAT alicia x");
    assert!(s.is_settled());
    assert!(matches!(&shown(&a)[..], [Line::Chat { own: true, .. }]));
}

#[test]
fn message_in_flight_keeps_its_id_across_a_rejoin() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_input(now, Input::Say(Text::new("hi").unwrap()));
    s.handle_input(
        now,
        Input::Msg {
            to: nick("bob"),
            text: Text::new("psst").unwrap(),
        },
    );
    // Silence: we rejoin, though the relay may still hold us (and our
    // SAY): the same id lets it drop a repeat.
    let later = now + Duration::from_secs(47);
    s.handle_timeout(later);
    s.handle_timeout(later);
    let a = s.handle_datagram(later, &welcome("alice", 9));
    assert_eq!(says(&a), ["SAY 1 hi"]);
    assert!(sent(&a).contains(&"PMSG 2 bob psst".to_owned()), "{a:?}");
    // New messages take new ids.
    s.handle_datagram(later, &chat_event(10, Origin::Live, "alice", "hi"));
    let a = s.handle_input(later, Input::Say(Text::new("again").unwrap()));
    assert_eq!(says(&a), ["SAY 3 again"]);
}

#[test]
fn control_characters_from_a_bad_relay_are_escaped_not_dropped() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_datagram(now, b"EVENT 6 live CHAT eve hi\x1b[2J\xe2\x80\xae");
    assert_eq!(
        shown(&a),
        [Line::Chat {
            nick: "eve".into(),
            text: "hi\\u{1b}[2J\\u{202e}".into(),
            own: false,
            history: false
        }]
    );
}

#[test]
fn garbage_from_the_relay_becomes_a_sanitized_notice() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_datagram(now, b"\x1b]0;pwned\x07\xff");
    match &shown(&a)[..] {
        [Line::Error(text)] => {
            assert!(text.starts_with("ignored a malformed datagram"));
            assert!(!text.chars().any(crate::text::must_escape), "{text:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn history_on_join_is_marked() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_datagram(now, &chat_event(3, Origin::History, "alice", "before"));
    assert_eq!(
        shown(&a),
        [Line::Chat {
            nick: "alice".into(),
            text: "before".into(),
            own: false,
            history: true
        }]
    );
    let a = s.handle_datagram(
        now,
        &relay(&RelayMsg::Event {
            seq: 6,
            origin: Origin::Live,
            ago: None,
            event: RoomEvent::Leave {
                nick: nick("bob"),
                reason: LeaveReason::Quit,
            },
        }),
    );
    assert_eq!(shown(&a).len(), 1);
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    /// Any datagrams, well-formed or not, in any state: no panic, and
    /// nothing unsanitized is ever shown as an error notice.
    #[test]
    fn any_datagrams_never_panic(
        datagrams in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..80),
                "(EVENT [0-9]{1,3} (live|resend|history) CHAT [a-c] x|PONG [0-9]{1,3}( [0-9]{1,2})?|GONE [0-9]{1,3} [0-9]{1,3}|WELCOME udpchat/1 a [0-9]{1,3} [0-9]{1,2} [0-9]{1,3}|COOKIE 00000000000000[0-9]{2}|ERROR (not-joined|nick-taken|rate-limited|no-such-nick) r|BYE (shutdown|timeout|kicked) r|PRIVATE [0-9] b hi|SENT [0-9] b hi)"
                    .prop_map(String::into_bytes),
            ],
            0..40,
        ),
    ) {
        let start = Instant::now();
        let mut s = Session::new(nick("a"), start, 1);
        for (i, d) in datagrams.iter().enumerate() {
            let now = start + Duration::from_millis(300 * i as u64);
            let mut actions = s.handle_datagram(now, d);
            actions.extend(s.handle_timeout(now));
            actions.extend(s.handle_input(now, Input::Say(Text::new("x").unwrap())));
            for a in actions {
                if let Action::Show(Line::Error(t)) = a {
                    proptest::prop_assert!(!t.chars().any(crate::text::must_escape), "{:?}", t);
                }
            }
        }
    }
}

#[test]
fn alternative_nicks_count_up_and_fit() {
    assert_eq!(alternative_nick(&nick("alice")).as_str(), "alice_2");
    assert_eq!(alternative_nick(&nick("alice_2")).as_str(), "alice_3");
    let long = nick(&"x".repeat(24));
    let alt = alternative_nick(&long);
    assert_eq!(alt.as_str(), format!("{}_2", "x".repeat(22)));
}
