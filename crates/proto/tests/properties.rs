//! Property tests of the wire format: round trips in both directions, parsers
//! that never panic, size limits, and clean classic lines.

use proptest::prelude::*;
use proptest::sample::select;

use udpchat_proto::{
    classic, fuzzing, ByeCode, ClientMsg, Cookie, ErrorCode, HandNotice, JoinCode, Lang,
    LeaveReason, Nick, Origin, RelayMsg, RoomEvent, SessionKey, Text, Token, MAX_DATAGRAM,
    MAX_NICK_BYTES, MAX_NICK_CHARS, MAX_TEXT_BYTES, VERSION,
};

// ---------------------------------------------------------------------------
// Field strategies

/// A character allowed in nicknames, from several scripts and byte widths.
fn nick_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => select(('a'..='z').chain('A'..='Z').chain('0'..='9').collect::<Vec<_>>()),
        1 => select(vec!['_', '-', '.']),
        2 => prop::char::range('\u{4e00}', '\u{9fa5}'), // CJK, 3 bytes
        1 => prop::char::range('\u{0430}', '\u{044f}'), // Cyrillic, 2 bytes
        1 => select(vec!['𝒜', '𝔅', '𠀀', 'é', 'ß', 'İ', 'ǅ', '٣', '½', 'Ⅻ']),
        // Anything that is a nickname on its own, unchanged by NFC (not a
        // Hangul filler or another invisible letter, not a character NFC
        // spells longer); a filter would reject too often, so map instead.
        1 => any::<char>().prop_map(|c| {
            let alone = c.to_string();
            let valid = Nick::new(&alone).is_ok_and(|n| n.as_str() == alone);
            if valid { c } else { 'Z' }
        }),
    ]
}

/// Cuts `chars` to the longest prefix within `max_bytes` of UTF-8.
fn fit(chars: Vec<char>, max_bytes: usize) -> String {
    let mut s = String::new();
    for c in chars {
        if s.len() + c.len_utf8() > max_bytes {
            break;
        }
        s.push(c);
    }
    s
}

/// Any valid nickname, with the boundary lengths (24 characters, 64 bytes)
/// drawn often.
fn nick() -> impl Strategy<Value = Nick> {
    prop_oneof![
        6 => prop::collection::vec(nick_char(), 1..=MAX_NICK_CHARS)
            .prop_map(|chars| fit(chars, MAX_NICK_BYTES)),
        1 => Just("a".repeat(MAX_NICK_CHARS)),
        1 => Just("𝒜".repeat(MAX_NICK_BYTES / 4)),       // 16 chars, 64 bytes
        1 => Just(format!("{}x", "汉".repeat(21))),       // 22 chars, 64 bytes
        1 => Just(format!("{}ab", "é".repeat(22))),      // 24 chars, 46 bytes
        1 => Just("x".to_owned()),
    ]
    .prop_map(|s| Nick::new(&s).expect("strategy makes valid nicknames"))
}

/// A character allowed in text: spaces, ASCII, CJK, emoji and anything else
/// that passes the text rules.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => Just(' '),
        6 => prop::char::range('!', '~'),
        3 => prop::char::range('\u{4e00}', '\u{9fa5}'),
        2 => prop::char::range('\u{1f300}', '\u{1f64f}'), // emoji, 4 bytes
        1 => select(vec!['\u{a0}', '\u{200d}', '\u{fe0f}', '\u{200c}', '\u{10ffff}', '\u{e000}']),
        2 => any::<char>().prop_map(|c| {
            if udpchat_proto::check_text_char(c).is_ok() { c } else { '?' }
        }),
    ]
}

/// Any valid text, with the 800-byte boundary drawn often.
fn text() -> impl Strategy<Value = Text> {
    prop_oneof![
        6 => prop::collection::vec(text_char(), 1..64).prop_map(|c| fit(c, MAX_TEXT_BYTES)),
        2 => prop::collection::vec(text_char(), 200..900).prop_map(|c| fit(c, MAX_TEXT_BYTES)),
        1 => Just("x".repeat(MAX_TEXT_BYTES)),
        1 => Just("👋".repeat(MAX_TEXT_BYTES / 4)),
        1 => Just(format!("{}  ", "你".repeat((MAX_TEXT_BYTES - 2) / 3))),
        1 => Just(" ".to_owned()),
        1 => Just("  leading, trailing  and   inner spaces  ".to_owned()),
    ]
    .prop_filter("not empty", |s| !s.is_empty())
    // Random text could (rarely) pad or look like a relay line.
    .prop_filter("content rules", |s| {
        udpchat_proto::check_text_content(s).is_ok()
    })
    .prop_map(|s| Text::new(&s).expect("strategy makes valid text"))
}

fn token() -> impl Strategy<Value = Token> {
    prop_oneof![
        "[!-~]{1,32}",
        Just("x".repeat(Token::MAX_LEN)),
        Just(VERSION.to_owned()),
    ]
    .prop_map(|s| Token::new(&s).expect("strategy makes valid tokens"))
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), 0..1000u64, any::<u64>()]
}

fn small() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(1), Just(u32::MAX), 0..100u32, any::<u32>()]
}

fn cookie() -> impl Strategy<Value = Cookie> {
    prop_oneof![Just(0), Just(u64::MAX), any::<u64>()].prop_map(Cookie)
}

fn origin() -> impl Strategy<Value = Origin> {
    select(vec![Origin::Live, Origin::Resend, Origin::History])
}

fn leave_reason() -> impl Strategy<Value = LeaveReason> {
    select(vec![
        LeaveReason::Quit,
        LeaveReason::Timeout,
        LeaveReason::Unreachable,
        LeaveReason::Kicked,
    ])
}

fn bye_code() -> impl Strategy<Value = ByeCode> {
    select(vec![ByeCode::Shutdown, ByeCode::Kicked, ByeCode::Timeout])
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    select(ErrorCode::ALL.to_vec())
}

// ---------------------------------------------------------------------------
// Message strategies

fn session_key() -> impl Strategy<Value = SessionKey> {
    any::<u64>().prop_map(SessionKey::from_u64)
}

fn join_code() -> impl Strategy<Value = JoinCode> {
    "[A-Za-z0-9]{1,16}".prop_map(|s| JoinCode::new(&s).unwrap())
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        (nick(), prop::option::of(join_code()))
            .prop_map(|(nick, code)| ClientMsg::Join(nick, code)),
        (nick(), text()).prop_map(|(nick, text)| ClientMsg::Chat { nick, text }),
        (nick(), prop::option::of(join_code()))
            .prop_map(|(nick, code)| ClientMsg::Quit(nick, code)),
        Just(ClientMsg::Who),
        (nick(), text()).prop_map(|(to, text)| ClientMsg::Private { to, text }),
        prop::option::of(token()).prop_map(ClientMsg::Ping),
        nick().prop_map(ClientMsg::Rename),
        (
            token(),
            nick(),
            prop::option::of(cookie()),
            prop::option::of(number()),
            prop::option::of(token()),
            prop::option::of(session_key()),
            prop::option::of(join_code())
        )
            .prop_map(|(version, nick, cookie, since, resume, key, code)| {
                ClientMsg::Hello {
                    version,
                    nick,
                    cookie,
                    since,
                    resume,
                    key,
                    code,
                }
            }),
        (number(), nick(), text()).prop_map(|(id, to, text)| ClientMsg::PrivateReliable {
            id,
            to,
            text
        }),
        (number(), text()).prop_map(|(id, text)| ClientMsg::Say { id, text }),
        number().prop_map(ClientMsg::Ack),
        number().prop_map(ClientMsg::Seen),
        (number(), number()).prop_map(|(from, to)| ClientMsg::Resend { from, to }),
        prop::option::of(text()).prop_map(ClientMsg::Hand),
        prop::option::of(text()).prop_map(ClientMsg::ClassicHand),
    ]
}

fn room_event() -> impl Strategy<Value = RoomEvent> {
    prop_oneof![
        (nick(), text()).prop_map(|(nick, text)| RoomEvent::Chat { nick, text }),
        nick().prop_map(RoomEvent::Join),
        nick().prop_map(RoomEvent::Reconnect),
        (nick(), leave_reason()).prop_map(|(nick, reason)| RoomEvent::Leave { nick, reason }),
        (nick(), nick()).prop_map(|(old, new)| RoomEvent::Rename { old, new }),
        text().prop_map(RoomEvent::Host),
        (nick(), text()).prop_map(|(nick, text)| RoomEvent::Action { nick, text }),
        any::<bool>().prop_map(RoomEvent::Moderated),
        text().prop_map(RoomEvent::Announce),
    ]
}

/// Every RelayMsg variant; `Who` pages hold at most `max_who` nicknames.
fn relay_msg(max_who: usize) -> BoxedStrategy<RelayMsg> {
    // Boxed: the unboxed strategy type is deep enough to overflow a test
    // thread's stack in a debug build.
    prop_oneof![
        cookie().prop_map(RelayMsg::Cookie),
        (
            token(),
            nick(),
            number(),
            small(),
            small(),
            prop::option::of((
                number(),
                prop::option::of((token(), prop::option::of(session_key())))
            ))
        )
            .prop_map(
                |(version, nick, last_seq, ping_interval, idle_timeout, tail)| RelayMsg::Welcome {
                    version,
                    nick,
                    last_seq,
                    ping_interval,
                    idle_timeout,
                    history_from: tail.as_ref().map(|t| t.0),
                    resume: tail
                        .as_ref()
                        .and_then(|t| t.1.as_ref().map(|r| r.0.clone())),
                    key: tail.and_then(|t| t.1.and_then(|r| r.1)),
                }
            ),
        (number(), origin(), prop::option::of(small()), room_event()).prop_map(
            |(seq, origin, ago, event)| RelayMsg::Event {
                seq,
                origin,
                ago,
                event
            }
        ),
        (number(), nick(), text()).prop_map(|(pid, from, text)| RelayMsg::Private {
            pid,
            from,
            text
        }),
        (prop::option::of(number()), nick(), text()).prop_map(|(id, to, text)| RelayMsg::Sent {
            id,
            to,
            text
        }),
        (
            small(),
            small(),
            small(),
            prop::collection::vec(nick(), 0..=max_who)
        )
            .prop_map(|(page, pages, count, nicks)| RelayMsg::Who {
                page,
                pages,
                count,
                nicks
            }),
        (number(), prop::option::of(token()))
            .prop_map(|(last_seq, token)| RelayMsg::Pong { last_seq, token }),
        (number(), number()).prop_map(|(from, to)| RelayMsg::Gone { from, to }),
        (error_code(), text()).prop_map(|(code, reason)| RelayMsg::Error { code, reason }),
        (bye_code(), text()).prop_map(|(code, reason)| RelayMsg::Bye { code, reason }),
        any::<u32>().prop_map(|position| RelayMsg::Hand(HandNotice::Up { position })),
        Just(RelayMsg::Hand(HandNotice::Called)),
        any::<bool>().prop_map(RelayMsg::Voice),
    ]
    .boxed()
}

/// Datagram-like strings: a real verb or keyword, then fields that are
/// sometimes valid and sometimes junk, so the parsers are driven deep.
fn verb_and_junk() -> impl Strategy<Value = Vec<u8>> {
    let verb = select(vec![
        "N",
        "M",
        "Q",
        "WHO",
        "MSG",
        "PING",
        "NICK",
        "HELLO",
        "PMSG",
        "SAY",
        "ACK",
        "RESEND",
        "H",
        "HAND",
        "SEEN",
        "VOICE",
        "ACTION",
        "MODERATED",
        "ANNOUNCE",
        "on",
        "off",
        "COOKIE",
        "WELCOME",
        "EVENT",
        "PRIVATE",
        "SENT",
        "PONG",
        "GONE",
        "ERROR",
        "BYE",
        "n",
        "",
    ]);
    let field = prop_oneof![
        select(vec![
            "",
            " ",
            "-",
            "0",
            "00",
            "1",
            "18446744073709551615",
            "18446744073709551616",
            "4294967296",
            "udpchat/1",
            "live",
            "resend",
            "history",
            "CHAT",
            "JOIN",
            "LEAVE",
            "RENAME",
            "HOST",
            "quit",
            "timeout",
            "unreachable",
            "kicked",
            "shutdown",
            "nick-taken",
            "bad-syntax",
            "0123456789abcdef",
            "0123456789ABCDEF",
            "\n",
            "\r\n",
            "\r",
            "\u{1b}",
            "\u{202e}",
            "小明",
            "👋",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        nick().prop_map(|n| n.as_str().as_bytes().to_vec()),
        text().prop_map(|t| t.as_str().as_bytes().to_vec()),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    (
        verb,
        prop::collection::vec((field, select(vec![" ", " ", "  ", ""])), 0..8),
    )
        .prop_map(|(verb, fields)| {
            let mut out = verb.as_bytes().to_vec();
            for (field, sep) in fields {
                out.extend_from_slice(sep.as_bytes());
                out.extend_from_slice(&field);
            }
            out
        })
}

fn assert_clean_line(line: &str) {
    assert!(line.len() < MAX_DATAGRAM, "{} bytes: {line:?}", line.len());
    assert!(
        line.chars()
            .all(|c| udpchat_proto::check_text_char(c).is_ok()),
        "control character in {line:?}"
    );
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_msg_round_trips(msg in client_msg()) {
        let bytes = msg.encode();
        prop_assert!(bytes.len() <= MAX_DATAGRAM);
        prop_assert_eq!(ClientMsg::parse(&bytes), Ok(msg.clone()));
        // With the line endings nc and telnet-style clients add, too.
        for ending in [&b"\n"[..], b"\r\n"] {
            let mut with = bytes.clone();
            with.extend_from_slice(ending);
            prop_assert_eq!(ClientMsg::parse(&with), Ok(msg.clone()));
        }
    }

    #[test]
    fn relay_msg_round_trips(msg in relay_msg(12)) {
        let bytes = msg.encode();
        prop_assert_eq!(RelayMsg::parse(&bytes), Ok(msg.clone()));
        let mut into = b"prefix".to_vec();
        msg.encode_into(&mut into);
        prop_assert_eq!(&into[6..], &bytes[..]);
    }

    #[test]
    fn relay_msg_fits_a_datagram_and_renders_a_clean_line(msg in relay_msg(0)) {
        // Who pages with nicknames are covered by who_pages_fit below.
        prop_assert!(msg.encode().len() <= MAX_DATAGRAM, "{} bytes", msg.encode().len());
        for lang in [Lang::En, Lang::Zh] {
            if let Some(line) = classic::render(&msg, lang) {
                assert_clean_line(&line);
            }
        }
    }

    #[test]
    fn client_parse_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1100)) {
        fuzzing::check_client(&bytes);
    }

    #[test]
    fn relay_parse_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1100)) {
        fuzzing::check_relay(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Parses verbs followed by junk both ways; whatever parses must re-encode
    /// to a datagram that parses to the same value (fuzzing::check_*).
    #[test]
    fn parsers_survive_verbs_and_junk(bytes in verb_and_junk()) {
        fuzzing::check_client(&bytes);
        fuzzing::check_relay(&bytes);
    }
}

proptest! {
    // Each case builds up to 120 nicknames; fewer cases keep the run short.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn who_pages_fit_and_list_everyone_once(nicks in prop::collection::vec(nick(), 0..120)) {
        let pages = RelayMsg::who_pages(&nicks);
        let mut listed = Vec::new();
        let total = pages.len();
        for (i, page) in pages.iter().enumerate() {
            prop_assert!(page.encode().len() <= MAX_DATAGRAM);
            prop_assert_eq!(RelayMsg::parse(&page.encode()), Ok(page.clone()));
            for lang in [Lang::En, Lang::Zh] {
                assert_clean_line(&classic::render(page, lang).expect("WHO has a line"));
            }
            match page {
                RelayMsg::Who { page, pages, count, nicks: on_page } => {
                    prop_assert_eq!(*page as usize, i + 1);
                    prop_assert_eq!(*pages as usize, total);
                    prop_assert_eq!(*count as usize, nicks.len());
                    listed.extend(on_page.iter().cloned());
                }
                other => prop_assert!(false, "who_pages made {:?}", other),
            }
        }
        prop_assert_eq!(listed, nicks);
    }
}
