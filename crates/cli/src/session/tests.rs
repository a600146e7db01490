//! Tests of the session as a whole (joining, rejoining, what the relay
//! sends), and the helpers the tests next to each part share.

use std::time::{Duration, Instant};

use udpchat_proto::{
    ErrorCode, LeaveReason, Nick, Origin, RelayMsg, RoomEvent, Text, Token, VERSION,
};

use super::*;
use crate::catalog::{Lang, Msg};
use crate::command::Input;
use crate::render::Line;

/// The session key of the client under test.
pub(super) const KEY: SessionKey = SessionKey::from_u64(0x0123_4567_89ab_cdef);
/// The relay key our test `WELCOME`s give.
pub(super) const RELAY_KEY: SessionKey = SessionKey::from_u64(0xfedc_ba98_7654_3210);

/// `bytes` as the relay sends them to our client: behind our key.
pub(super) fn keyed(bytes: impl AsRef<[u8]>) -> Vec<u8> {
    KEY.prefixed(bytes.as_ref())
}

pub(super) fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}

pub(super) fn sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            // Without the relay key's prefix (after a keyed WELCOME).
            Action::Send(b) => {
                let text = String::from_utf8(b.clone()).unwrap();
                let bare = text.strip_prefix(&format!("@{RELAY_KEY} "));
                Some(bare.unwrap_or(&text).to_owned())
            }
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

/// The lines shown, rendered in English without time or colour.
pub(super) fn shown_en(actions: &[Action]) -> Vec<String> {
    shown(actions)
        .iter()
        .map(|l| crate::render::render(l, &crate::render::Style::default()))
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
        key: None,
    })
}

/// A `WELCOME` with a history range, a token and our relay key.
pub(super) fn keyed_welcome(nick: &str, last_seq: u64) -> Vec<u8> {
    relay(&RelayMsg::Welcome {
        version: Token::new(VERSION).unwrap(),
        nick: Nick::new(nick).unwrap(),
        last_seq,
        ping_interval: 15,
        idle_timeout: 60,
        history_from: Some(last_seq + 1),
        resume: Some(Token::new("t0k3n").unwrap()),
        key: Some(RELAY_KEY),
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
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    s.handle_datagram(now, &keyed(b"COOKIE 0123456789abcdef"));
    let a = s.handle_datagram(now, &keyed(welcome("alice", 5)));
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
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    let first = sent(&s.handle_timeout(now));
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with("HELLO udpchat/1 alice - "));
    assert!(first[0].len() >= udpchat_proto::MIN_HELLO_LEN);
    let second = sent(&s.handle_datagram(now, b"COOKIE 0123456789abcdef"));
    assert_eq!(
        second,
        [format!("HELLO udpchat/1 alice 0123456789abcdef key={KEY}")]
    );
    assert!(!s.is_joined());
    s.handle_datagram(now, &keyed(welcome("alice", 0)));
    assert!(s.is_joined());
}

#[test]
fn hello_is_retransmitted_with_backoff_then_gives_up() {
    let start = Instant::now();
    let mut s = Session::new(nick("alice"), start, 1, KEY);
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
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    let a = s.handle_datagram(
        now,
        &keyed(b"ERROR nick-taken nickname is taken; choose another"),
    );
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
fn reserved_nick_on_join_is_reported_with_the_relay_reason() {
    let now = Instant::now();
    let mut s = Session::new(nick("teacher"), now, 1, KEY);
    s.handle_timeout(now);
    let reason = "the nickname teacher is reserved for the teacher and the relay; choose another";
    let a = s.handle_datagram(
        now,
        &keyed(format!("ERROR nick-reserved {reason}").as_bytes()),
    );
    assert_eq!(
        a,
        [Action::Refused {
            code: ErrorCode::NickReserved,
            reason: reason.into()
        }]
    );
}

#[test]
fn rename_to_a_reserved_or_look_alike_nick_shows_the_reason() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_input(now, Input::Rename(nick("teacher")));
    let a = s.handle_datagram(
        now,
        &keyed(b"ERROR nick-reserved the nickname teacher is reserved for the teacher and the relay; choose another"),
    );
    assert_eq!(
        shown_en(&a),
        [
            "! cannot change nickname: the nickname teacher is reserved for the teacher and the \
          relay; choose another"
        ],
        "{a:?}"
    );
    assert!(s.is_joined());
}

#[test]
fn not_joined_error_rejoins_and_resends_the_refused_message() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_input(now, Input::Say(Text::new("lost one").unwrap()));
    let a = s.handle_datagram(now, &keyed(b"ERROR not-joined you have not joined"));
    assert!(!s.is_joined());
    assert!(shown(&a).contains(&Line::Notice(Msg::ConnectionLost)));
    s.handle_timeout(now);
    let a = s.handle_datagram(now, &keyed(welcome("alice", 0)));
    assert_eq!(says(&a), ["SAY 1 lost one"]);
}

#[test]
fn not_joined_arriving_while_already_rejoining_keeps_going() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "x")));
    s.handle_input(now, Input::Say(Text::new("in flight").unwrap()));
    // The restarted relay's BYE starts the rejoin first...
    s.handle_datagram(now, &keyed(b"BYE shutdown restarting"));
    assert!(!s.is_joined());
    // ...then its refusal of our message arrives.
    let a = s.handle_datagram(now, &keyed(b"ERROR not-joined you have not joined"));
    assert!(!a.iter().any(|a| matches!(a, Action::End { .. })), "{a:?}");
    s.handle_timeout(now);
    let a = s.handle_datagram(now, &keyed(welcome("alice", 0)));
    assert_eq!(says(&a), ["SAY 1 in flight"], "{a:?}");
}

#[test]
fn full_room_ends_the_first_join_but_not_a_rejoin() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    let a = s.handle_datagram(now, &keyed(b"ERROR room-full the room is full"));
    assert!(a.contains(&Action::End { code: 1 }));

    let mut s = joined(now);
    s.handle_datagram(now, &keyed(b"BYE shutdown bye"));
    let a = s.handle_datagram(now, &keyed(b"ERROR room-full the room is full"));
    assert!(!a.iter().any(|a| matches!(a, Action::End { .. })));
    assert!(!sent(&s.handle_timeout(now + Duration::from_secs(5))).is_empty());
}

#[test]
fn taken_nick_on_rejoin_picks_an_alternative() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_datagram(now, &keyed(b"BYE shutdown restarting"));
    s.handle_timeout(now);
    let a = s.handle_datagram(now, &keyed(b"ERROR nick-taken taken"));
    assert_eq!(s.nick().as_str(), "alice_2");
    assert!(sent(&a)[0].starts_with("HELLO udpchat/1 alice_2 "));
}

#[test]
fn kicked_ends_the_session() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_datagram(now, &keyed(b"BYE kicked be nice"));
    assert!(a.contains(&Action::End { code: 1 }));
}

#[test]
fn hand_is_sent_and_its_place_and_the_call_are_shown() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_input(now, Input::Hand(Some(Text::new("why UDP?").unwrap())));
    assert_eq!(sent(&a), ["HAND why UDP?"]);
    let a = s.handle_input(now, Input::Hand(None));
    assert_eq!(sent(&a), ["HAND"]);
    let a = s.handle_datagram(now, &keyed(b"HAND up 3"));
    assert_eq!(shown_en(&a), ["* your hand is up; 3rd in line"]);
    let a = s.handle_datagram(now, &keyed(b"HAND called"));
    assert_eq!(shown_en(&a), ["* the teacher calls on you"]);
    // Not joined: nothing is sent.
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    let a = s.handle_input(now, Input::Hand(None));
    assert!(sent(&a).is_empty());
}

#[test]
fn rename_of_ourselves_updates_our_nick() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_input(now, Input::Rename(nick("alicia")));
    assert_eq!(sent(&a), ["NICK alicia"]);
    s.handle_datagram(now, &keyed(b"EVENT 6 live RENAME alice alicia"));
    assert_eq!(s.nick().as_str(), "alicia");
    let a = s.handle_input(now, Input::Say(Text::new("x").unwrap()));
    assert_eq!(sent(&a), ["SAY 1 x"]);
    let a = s.handle_datagram(now, &keyed(b"EVENT 7 live CHAT alicia x"));
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
    let a = s.handle_datagram(later, &keyed(welcome("alice", 9)));
    assert_eq!(says(&a), ["SAY 1 hi"]);
    assert!(sent(&a).contains(&"PMSG 2 bob psst".to_owned()), "{a:?}");
    // New messages take new ids.
    s.handle_datagram(later, &keyed(chat_event(10, Origin::Live, "alice", "hi")));
    let a = s.handle_input(later, Input::Say(Text::new("again").unwrap()));
    assert_eq!(says(&a), ["SAY 3 again"]);
}

#[test]
fn control_characters_from_a_bad_relay_are_escaped_not_dropped() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_datagram(now, &keyed(b"EVENT 6 live CHAT eve hi\x1b[2J\xe2\x80\xae"));
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
    let a = s.handle_datagram(now, &keyed(b"\x1b]0;pwned\x07\xff"));
    match &shown(&a)[..] {
        [Line::Error(msg)] => {
            let text = msg.text(Lang::En);
            assert!(text.starts_with("ignored a malformed datagram"));
            assert!(!text.chars().any(crate::text::must_escape), "{text:?}");
        }
        other => panic!("{other:?}"),
    }
    // Without our key it is not even shown.
    assert!(s.handle_datagram(now, b"\x1b]0;pwned\x07\xff").is_empty());
}

#[test]
fn history_on_join_is_marked() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_datagram(
        now,
        &keyed(chat_event(3, Origin::History, "alice", "before")),
    );
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
        &keyed(relay(&RelayMsg::Event {
            seq: 6,
            origin: Origin::Live,
            ago: None,
            event: RoomEvent::Leave {
                nick: nick("bob"),
                reason: LeaveReason::Quit,
            },
        })),
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
        let mut s = Session::new(nick("a"), start, 1, KEY);
        for (i, d) in datagrams.iter().enumerate() {
            let now = start + Duration::from_millis(300 * i as u64);
            let mut actions = s.handle_datagram(now, &keyed(d));
            actions.extend(s.handle_timeout(now));
            actions.extend(s.handle_input(now, Input::Say(Text::new("x").unwrap())));
            for a in actions {
                if let Action::Show(Line::Error(t)) = a {
                    let t = t.text(Lang::En);
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

// ----- session keys -----

/// A session joined through a keyed `WELCOME` (join point 5).
fn keyed_joined(now: Instant) -> Session {
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    s.handle_datagram(now, b"COOKIE 0123456789abcdef");
    s.handle_datagram(now, &keyed(keyed_welcome("alice", 5)));
    assert!(s.is_joined());
    s
}

/// The raw datagrams sent, prefixes and all.
fn raw_sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(b) => Some(String::from_utf8(b.clone()).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_join_needs_a_welcome_behind_our_key_and_then_everything_carries_the_relays() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    let hello = raw_sent(&s.handle_timeout(now));
    assert!(
        hello[0].starts_with(&format!("HELLO udpchat/1 alice - key={KEY} ")),
        "{hello:?}"
    );
    s.handle_datagram(now, b"COOKIE 0123456789abcdef");
    // A WELCOME without our key (a spoofer's) is ignored.
    assert!(s
        .handle_datagram(now, &keyed_welcome("alice", 5))
        .is_empty());
    assert!(!s.is_joined());
    s.handle_datagram(now, &keyed(keyed_welcome("alice", 5)));
    assert!(s.is_joined());
    let a = s.handle_input(now, Input::Say(Text::new("hi").unwrap()));
    assert_eq!(raw_sent(&a), [format!("@{RELAY_KEY} SAY 1 hi")]);
    let a = s.handle_input(now, Input::Who);
    assert_eq!(raw_sent(&a), [format!("@{RELAY_KEY} WHO")]);
}

#[test]
fn forged_relay_datagrams_without_our_key_are_ignored() {
    let now = Instant::now();
    let mut s = keyed_joined(now);
    let other = SessionKey::from_u64(7);
    for forged in [
        "EVENT 18446744073709551614 live CHAT bob x",
        "EVENT 6 live HOST the test is cancelled",
        "EVENT 6 live CHAT bob forged",
        "PRIVATE 1 teacher come to my desk",
        "BYE kicked be nice",
        "BYE shutdown bye",
        "PONG 99",
        "WELCOME udpchat/1 mallory 0 15 60",
        "ERROR rate-limited slow down",
    ] {
        for bytes in [
            forged.as_bytes().to_vec(),
            other.prefixed(forged.as_bytes()),
        ] {
            let a = s.handle_datagram(now, &bytes);
            assert!(a.is_empty(), "{forged:?} did {a:?}");
        }
    }
    assert!(s.is_joined());
    // The real relay's event 6 is shown.
    let a = s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "real")));
    assert_eq!(
        shown(&a),
        [Line::Chat {
            nick: "bob".into(),
            text: "real".into(),
            own: false,
            history: false
        }]
    );
}

#[test]
fn an_unprefixed_not_joined_only_makes_us_rejoin() {
    let now = Instant::now();
    let mut s = keyed_joined(now);
    let a = s.handle_datagram(now, b"ERROR not-joined you have not joined");
    assert!(shown(&a).contains(&Line::Notice(Msg::ConnectionLost)));
    assert!(!s.is_joined());
    // A cookie HELLO (unprefixed, like every HELLO): the relay answers it
    // only if the cookie is good, i.e. only to us.
    let hello = raw_sent(&s.handle_timeout(now));
    assert!(
        hello[0].starts_with("HELLO udpchat/1 alice 0123456789abcdef "),
        "{hello:?}"
    );
}

#[test]
fn a_forged_not_joined_costs_a_rejoin_but_nothing_is_shown_twice() {
    let now = Instant::now();
    let mut s = keyed_joined(now);
    let a = s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "six")));
    assert_eq!(shown(&a).len(), 1);
    s.handle_datagram(now, b"ERROR not-joined you have not joined");
    s.handle_timeout(now);
    // The relay had not forgotten us: the same membership comes back.
    let a = s.handle_datagram(now, &keyed(keyed_welcome("alice", 5)));
    assert!(s.is_joined());
    assert!(
        !shown(&a).iter().any(|l| matches!(l, Line::Chat { .. })),
        "{a:?}"
    );
    let a = s.handle_datagram(now, &keyed(chat_event(6, Origin::History, "bob", "six")));
    assert!(shown(&a).is_empty(), "shown twice: {a:?}");
    let a = s.handle_datagram(now, &keyed(chat_event(7, Origin::Live, "bob", "seven")));
    assert_eq!(shown(&a).len(), 1, "{a:?}");
}

#[test]
fn a_pong_undoes_a_sequence_number_the_relay_never_confirmed() {
    let now = Instant::now();
    let mut s = keyed_joined(now);
    // Even behind our key (defence in depth): a number far ahead.
    s.handle_datagram(
        now,
        &keyed(chat_event(u64::MAX - 1, Origin::Live, "bob", "forged")),
    );
    // The relay's newest is 6: events above it are dropped, 6 is asked for.
    let a = s.handle_datagram(now, &keyed(b"PONG 6"));
    assert!(
        shown(&a).iter().all(|l| !matches!(l, Line::Chat { .. })),
        "{a:?}"
    );
    let a = s.handle_timeout(now + Duration::from_millis(100));
    assert!(sent(&a).contains(&"RESEND 6 6".to_owned()), "{a:?}");
    let a = s.handle_datagram(now, &keyed(chat_event(6, Origin::Resend, "bob", "six")));
    let a: Vec<Line> = shown(&a);
    assert_eq!(a.len(), 1, "{a:?}");
    let a = s.handle_datagram(now, &keyed(chat_event(7, Origin::Live, "bob", "seven")));
    assert_eq!(shown(&a).len(), 1, "{a:?}");
}

#[test]
fn the_join_code_goes_in_both_hellos() {
    let now = Instant::now();
    let code = udpchat_proto::JoinCode::new("maple7").unwrap();
    let mut s = Session::new(nick("alice"), now, 1, KEY).with_code(code);
    assert!(sent(&s.handle_timeout(now))[0].contains(" code=maple7 "));
    let second = sent(&s.handle_datagram(now, b"COOKIE 0123456789abcdef"));
    assert_eq!(
        second,
        [format!(
            "HELLO udpchat/1 alice 0123456789abcdef key={KEY} code=maple7"
        )]
    );
}

#[test]
fn a_ban_or_a_wrong_code_ends_a_join_and_a_rejoin_with_the_reason() {
    let now = Instant::now();
    for refusal in [
        &b"ERROR banned the host has banned this computer from the room: spam; the ban ends in 9 minutes"[..],
        &b"ERROR bad-code wrong join code; ask the host for the code of this lesson"[..],
    ] {
        // The first join.
        let mut s = Session::new(nick("alice"), now, 1, KEY);
        s.handle_timeout(now);
        let a = s.handle_datagram(now, &keyed(refusal));
        assert!(a.contains(&Action::End { code: 1 }), "{a:?}");
        assert_eq!(s.poll_timeout(), None);
        // A rejoin (the relay forgot us, then refuses us).
        let mut s = joined(now);
        s.handle_datagram(now, &keyed(b"ERROR not-joined you have not joined"));
        s.handle_timeout(now);
        let a = s.handle_datagram(now, &keyed(refusal));
        assert!(a.contains(&Action::End { code: 1 }), "{a:?}");
        let reason = String::from_utf8_lossy(&refusal[6..]).into_owned();
        let why = reason.split_once(' ').unwrap().1;
        assert!(
            shown(&a).iter().any(|l| matches!(l, Line::Error(t) if t.text(Lang::En).contains(why))),
            "{a:?}"
        );
    }
}

#[test]
fn a_muted_or_slowed_message_is_given_up_not_sent_again() {
    let now = Instant::now();
    let mut s = joined(now);
    assert_eq!(
        says(&s.handle_input(now, Input::Say(Text::new("hi").unwrap()))),
        ["SAY 1 hi"]
    );
    let a = s.handle_datagram(
        now,
        &keyed(b"ERROR muted the host has muted you for 5 minutes more; nobody sees your messages"),
    );
    assert_eq!(
        shown_en(&a),
        ["! not sent: the host has muted you for 5 minutes more; nobody sees your messages"]
    );
    assert!(s.is_settled());
    let later = s.handle_timeout(now + Duration::from_secs(3));
    assert!(says(&later).is_empty(), "{later:?}");
}

fn event(seq: u64, origin: Origin, event: RoomEvent) -> Vec<u8> {
    keyed(relay(&RelayMsg::Event {
        seq,
        origin,
        ago: (origin != Origin::Live).then_some(1),
        event,
    }))
}

#[test]
fn an_announcement_is_shown_and_confirmed_once_with_seen() {
    let now = Instant::now();
    let mut s = joined(now);
    let announce = |text: &str| RoomEvent::Announce(Text::new(text).unwrap());
    let a = s.handle_datagram(now, &event(6, Origin::Live, announce("test on Friday")));
    assert_eq!(
        shown(&a),
        [Line::Announce {
            text: "test on Friday".into(),
            history: false
        }]
    );
    assert_eq!(sent(&a), ["SEEN 6"]);
    // The same event again (a resend): shown once, confirmed once.
    let a = s.handle_datagram(now, &event(6, Origin::Resend, announce("test on Friday")));
    assert!(shown(&a).is_empty() && sent(&a).is_empty(), "{a:?}");
    // One that arrives after a gap is confirmed when it is shown.
    let a = s.handle_datagram(now, &event(8, Origin::Live, announce("later")));
    assert!(!sent(&a).contains(&"SEEN 8".to_owned()), "{a:?}");
    let a = s.handle_datagram(now, &keyed(chat_event(7, Origin::Resend, "bob", "hi")));
    assert_eq!(
        sent(&a)
            .iter()
            .filter(|m| m.starts_with("SEEN"))
            .collect::<Vec<_>>(),
        ["SEEN 8"]
    );
}

#[test]
fn an_announcement_in_the_history_is_confirmed_too() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    s.handle_datagram(now, &keyed(b"COOKIE 0123456789abcdef"));
    let welcome = relay(&RelayMsg::Welcome {
        version: Token::new(VERSION).unwrap(),
        nick: nick("alice"),
        last_seq: 3,
        ping_interval: 15,
        idle_timeout: 60,
        history_from: Some(3),
        resume: None,
        key: None,
    });
    s.handle_datagram(now, &keyed(welcome));
    let a = s.handle_datagram(
        now,
        &event(
            3,
            Origin::History,
            RoomEvent::Announce(Text::new("quiz").unwrap()),
        ),
    );
    assert_eq!(sent(&a), ["SEEN 3"]);
    assert!(matches!(
        &shown(&a)[..],
        [Line::Said { line, .. }] if matches!(**line, Line::Announce { history: true, .. })
    ));
}

#[test]
fn actions_moderated_mode_and_voice_are_lines_of_their_own() {
    let now = Instant::now();
    let mut s = joined(now);
    let a = s.handle_datagram(
        now,
        &event(
            6,
            Origin::Live,
            RoomEvent::Action {
                nick: nick("bob"),
                text: Text::new("waves").unwrap(),
            },
        ),
    );
    assert_eq!(
        shown(&a),
        [Line::Action {
            nick: "bob".into(),
            text: "waves".into(),
            history: false
        }]
    );
    let a = s.handle_datagram(now, &event(7, Origin::Live, RoomEvent::Moderated(true)));
    assert_eq!(
        shown(&a),
        [Line::Notice(Msg::Moderated {
            on: true,
            history: false
        })]
    );
    let a = s.handle_datagram(now, &keyed(b"VOICE on"));
    assert_eq!(shown(&a), [Line::Notice(Msg::CanSpeak)]);
    let a = s.handle_datagram(now, &keyed(b"VOICE off"));
    assert_eq!(shown(&a), [Line::Notice(Msg::CannotSpeak)]);
}

#[test]
fn our_own_action_is_confirmed_by_its_echo() {
    let now = Instant::now();
    let mut s = joined(now);
    let input = crate::command::parse_input("/me waves").unwrap();
    let a = s.handle_input(now, input);
    let say = says(&a);
    assert_eq!(say.len(), 1);
    assert!(say[0].ends_with(" /me waves"), "{say:?}");
    s.handle_datagram(
        now,
        &event(
            6,
            Origin::Live,
            RoomEvent::Action {
                nick: nick("alice"),
                text: Text::new("waves").unwrap(),
            },
        ),
    );
    // Confirmed: nothing is sent again, however long we wait.
    let later = now + Duration::from_secs(5);
    let a = s.handle_timeout(later);
    assert!(says(&a).is_empty(), "{a:?}");
}

#[test]
fn a_moderated_refusal_gives_up_the_message_and_says_why() {
    let now = Instant::now();
    let mut s = joined(now);
    s.handle_input(now, Input::Say(Text::new("hello").unwrap()));
    let a = s.handle_datagram(
        now,
        &keyed(
            "ERROR moderated the host has turned on moderated mode; raise your hand (/hand) to ask to speak",
        ),
    );
    let shown: Vec<String> = shown(&a)
        .iter()
        .map(|line| match line {
            Line::Error(msg) => msg.text(Lang::En),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shown,
        ["not sent: the host has turned on moderated mode; raise your hand (/hand) to ask to speak"]
    );
    let a = s.handle_timeout(now + Duration::from_secs(5));
    assert!(says(&a).is_empty(), "{a:?}");
}
