//! Joining with a stated history range, and resuming a membership with the
//! relay's token: what the session sends and shows.

use std::time::{Duration, Instant};

use udpchat_proto::{Origin, RoomEvent, Token};

use super::tests::{chat_event, keyed, nick, relay, sent, shown, KEY};
use super::*;
use crate::render::Line;

const TOKEN: &str = "0000000000000001aaaaaaaaaaaaaaaa";
const NEW_TOKEN: &str = "0000000000000002bbbbbbbbbbbbbbbb";

fn ranged_welcome(last_seq: u64, history_from: u64, token: &str) -> Vec<u8> {
    relay(&RelayMsg::Welcome {
        version: Token::new(VERSION).unwrap(),
        nick: nick("alice"),
        last_seq,
        ping_interval: 15,
        idle_timeout: 60,
        history_from: Some(history_from),
        resume: Some(Token::new(token).unwrap()),
        key: Some(super::tests::RELAY_KEY),
    })
}

fn chat_texts(lines: &[Line]) -> Vec<(String, bool)> {
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Chat { text, history, .. } => Some((text.clone(), *history)),
            _ => None,
        })
        .collect()
}

#[test]
fn lost_history_and_events_around_the_join_are_asked_for_and_shown_in_order() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    s.handle_datagram(now, &keyed(b"COOKIE 0123456789abcdef"));
    // Events 10 and 11 (history) and 13 (our JOIN) are lost.
    s.handle_datagram(now, &keyed(ranged_welcome(12, 10, TOKEN)));
    let a = s.handle_datagram(
        now,
        &keyed(chat_event(12, Origin::History, "bob", "twelve")),
    );
    assert!(
        chat_texts(&shown(&a)).is_empty(),
        "held until 10 and 11 come"
    );
    let a = s.handle_datagram(now, &keyed(chat_event(14, Origin::Live, "bob", "fourteen")));
    assert!(chat_texts(&shown(&a)).is_empty());
    let later = now + Duration::from_millis(100);
    let asked = sent(&s.handle_timeout(later));
    // Close gaps are asked for in one RESEND (12 comes again, harmlessly).
    let covered = |seq: u64| {
        asked.iter().any(|a| {
            let mut parts = a.split(' ');
            parts.next() == Some("RESEND")
                && matches!(
                    (parts.next().and_then(|f| f.parse::<u64>().ok()),
                     parts.next().and_then(|t| t.parse::<u64>().ok())),
                    (Some(from), Some(to)) if from <= seq && seq <= to
                )
        })
    };
    assert!(covered(10) && covered(11) && covered(13), "{asked:?}");
    let mut lines = Vec::new();
    for (seq, text) in [(10, "ten"), (11, "eleven")] {
        lines.extend(shown(&s.handle_datagram(
            later,
            &keyed(chat_event(seq, Origin::Resend, "bob", text)),
        )));
    }
    lines.extend(shown(&s.handle_datagram(
        later,
        &keyed(relay(&RelayMsg::Event {
            seq: 13,
            origin: Origin::Resend,
            ago: None,
            event: RoomEvent::Join(nick("alice")),
        })),
    )));
    assert_eq!(
        chat_texts(&lines),
        [
            ("ten".to_owned(), true),
            ("eleven".to_owned(), true),
            ("twelve".to_owned(), true),
            ("fourteen".to_owned(), false),
        ]
    );
}

#[test]
fn a_saved_token_goes_in_the_cookie_hello_with_the_last_event_shown() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1, KEY).with_resume(ResumeState {
        token: Token::new(TOKEN).unwrap(),
        since: Some(7),
    });
    let first = sent(&s.handle_timeout(now));
    assert!(!first[0].contains("resume="), "the first HELLO stays small");
    let second = sent(&s.handle_datagram(now, &keyed(b"COOKIE 0123456789abcdef")));
    assert_eq!(
        second,
        [format!(
            "HELLO udpchat/1 alice 0123456789abcdef since=7 resume={TOKEN} key={KEY}"
        )]
    );
    s.handle_datagram(now, &keyed(ranged_welcome(9, 8, NEW_TOKEN)));
    // The new token replaces the old one; `since` follows what is shown.
    assert_eq!(
        s.resume_state(),
        Some(ResumeState {
            token: Token::new(NEW_TOKEN).unwrap(),
            since: Some(7)
        })
    );
    s.handle_datagram(now, &keyed(chat_event(8, Origin::History, "bob", "eight")));
    s.handle_datagram(now, &keyed(chat_event(9, Origin::History, "bob", "nine")));
    assert_eq!(s.resume_state().unwrap().since, Some(9));
}

#[test]
fn a_rejoin_resumes_with_the_token_and_what_was_shown() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    s.handle_datagram(now, &keyed(b"COOKIE 0123456789abcdef"));
    s.handle_datagram(now, &keyed(ranged_welcome(5, 6, TOKEN)));
    s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "six")));
    s.handle_datagram(now, &keyed(b"ERROR not-joined you have not joined"));
    assert!(!s.is_joined());
    s.handle_timeout(now);
    let hello = sent(&s.handle_datagram(now, &keyed(b"COOKIE 1123456789abcdef")));
    assert_eq!(
        hello,
        [format!(
            "HELLO udpchat/1 alice 1123456789abcdef since=6 resume={TOKEN} key={KEY}"
        )]
    );
}

#[test]
fn a_repeated_welcome_keeps_the_join_point_so_nothing_said_meanwhile_is_lost() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    s.handle_datagram(now, &keyed(b"COOKIE 0123456789abcdef"));
    // The first WELCOME and event 4 were lost; the repeat states join point 3.
    s.handle_datagram(now, &keyed(ranged_welcome(3, 4, TOKEN)));
    let a = s.handle_datagram(now, &keyed(chat_event(5, Origin::Live, "bob", "five")));
    assert!(chat_texts(&shown(&a)).is_empty(), "held for event 4");
    let asked = sent(&s.handle_timeout(now + Duration::from_millis(100)));
    assert!(asked.contains(&"RESEND 4 4".to_owned()), "{asked:?}");
    let a = s.handle_datagram(now, &keyed(chat_event(4, Origin::Resend, "bob", "four")));
    assert_eq!(
        chat_texts(&shown(&a)),
        [("four".to_owned(), false), ("five".to_owned(), false)]
    );
}

#[test]
fn a_history_line_carries_how_long_ago_it_was_said() {
    let now = Instant::now() + Duration::from_secs(3600);
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    s.handle_datagram(now, &keyed(b"COOKIE 0123456789abcdef"));
    s.handle_datagram(now, &keyed(ranged_welcome(2, 1, TOKEN)));
    let a = s.handle_datagram(now, &keyed(b"EVENT 1 history ago=300 CHAT bob old"));
    let b = s.handle_datagram(now, &keyed(b"EVENT 2 history CHAT bob undated"));
    let old = Line::Chat {
        nick: "bob".into(),
        text: "old".into(),
        own: false,
        history: true,
    };
    assert_eq!(
        shown(&a),
        [Line::Said {
            ago: Duration::from_secs(300),
            line: Box::new(old)
        }]
    );
    // A relay that states no time: the plain history line.
    assert!(matches!(shown(&b)[..], [Line::Chat { history: true, .. }]));
}

#[test]
fn after_quitting_the_saved_state_still_says_what_was_shown() {
    let now = Instant::now();
    let mut s = Session::new(nick("alice"), now, 1, KEY);
    s.handle_timeout(now);
    s.handle_datagram(now, &keyed(b"COOKIE 0123456789abcdef"));
    s.handle_datagram(now, &keyed(ranged_welcome(5, 6, TOKEN)));
    s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "six")));
    s.quit(now);
    assert_eq!(
        s.resume_state(),
        Some(ResumeState {
            token: Token::new(TOKEN).unwrap(),
            since: Some(6)
        })
    );
}
