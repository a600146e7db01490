//! Session keys through the room: a keyed structured member is reached
//! only behind its `@<client key> ` prefix, and nothing from its address
//! without `@<relay key> ` acts on it, charges it, or counts as a flood.

use udpchat_proto::{split_key_prefix, RelayMsg, SessionKey};

use crate::testing::{addr, to, Harness};
use crate::{Config, Dialect, Event};

const ALICE: &str = "0123456789abcdef";
const BOB: &str = "fedcba9876543210";

fn key(s: &str) -> SessionKey {
    SessionKey::parse(s).unwrap()
}

/// Joins `nick` from `addr(n)` with client key `client`; returns the relay
/// key of its `WELCOME`.
fn join_keyed(h: &mut Harness, n: u8, nick: &str, client: &str) -> SessionKey {
    join_keyed_with_token(h, n, nick, client).0
}

/// As [`join_keyed`], with the `WELCOME`'s resume token.
fn join_keyed_with_token(h: &mut Harness, n: u8, nick: &str, client: &str) -> (SessionKey, String) {
    let cookie = h.cookie(n);
    let sent = h.send(n, &format!("HELLO udpchat/1 {nick} {cookie} key={client}"));
    let (prefix, body) = split_key_prefix(sent[0].1.as_bytes());
    assert_eq!(prefix, Some(key(client)), "{sent:?}");
    match RelayMsg::parse(body) {
        Ok(RelayMsg::Welcome {
            key: Some(relay),
            resume: Some(token),
            ..
        }) => (relay, token.to_string()),
        other => panic!("no keyed WELCOME: {other:?}"),
    }
}

/// `text` prefixed with `key`.
fn keyed(key: SessionKey, text: &str) -> String {
    format!("@{key} {text}")
}

#[test]
fn a_keyed_member_gets_everything_behind_its_prefix() {
    let mut h = Harness::new();
    h.join_classic(1, "carol");
    let cookie = h.cookie(2);
    let sent = h.send(2, &format!("HELLO udpchat/1 alice {cookie} key={ALICE}"));
    for (n, text) in &sent {
        if *n == 2 {
            assert!(text.starts_with(&format!("@{ALICE} ")), "{text}");
        }
    }
    assert_eq!(to(&sent, 1), ["* alice joined"]);
    let relay = match RelayMsg::parse(split_key_prefix(sent[0].1.as_bytes()).1) {
        Ok(RelayMsg::Welcome { key, .. }) => key.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        to(&h.send(1, "M carol hi"), 2),
        [format!("@{ALICE} EVENT 3 live CHAT carol hi")]
    );
    // It speaks with the relay's key.
    let sent = h.send(2, &keyed(relay, "SAY 1 hello"));
    assert_eq!(to(&sent, 1), ["alice: hello"]);
    assert_eq!(
        to(&sent, 2),
        [format!("@{ALICE} EVENT 4 live CHAT alice hello")]
    );
    assert_eq!(
        to(&h.send(2, &keyed(relay, "PING t")), 2),
        [format!("@{ALICE} PONG 4 t")]
    );
}

#[test]
fn forged_commands_from_a_keyed_members_address_do_nothing() {
    let mut h = Harness::new();
    let relay = join_keyed(&mut h, 1, "alice", ALICE);
    join_keyed(&mut h, 2, "bob", BOB);
    let bucket = h.room.roster.get(&addr(1)).unwrap().bucket;
    let keys = h.room.roster.get(&addr(1)).unwrap().keys;
    let wrong = key("0000000000000000");
    for forged in [
        "M alice forged",
        "SAY 99 forged",
        "Q alice",
        "NICK mallory",
        "N alice",
        "N alice\n",
        "PING",
        "WHO",
        "MSG bob forged",
        "PMSG 5 bob forged",
        "ACK 1",
        "RESEND 1 3",
        "junk",
    ] {
        for bytes in [forged.to_owned(), keyed(wrong, forged)] {
            h.advance_ms(1);
            let sent = h.send(1, &bytes);
            assert!(sent.is_empty(), "{bytes:?} drew {sent:?}");
        }
    }
    let member = h.room.roster.get(&addr(1)).unwrap();
    assert_eq!(member.nick.as_str(), "alice");
    assert_eq!(member.dialect, Dialect::Structured);
    assert_eq!(member.keys, keys);
    assert_eq!(member.bucket, bucket, "the member's bucket was charged");
    assert_eq!(h.room.stats().unauthenticated, 26);
    // The real client is unaffected.
    let sent = h.send(1, &keyed(relay, "SAY 1 still me"));
    assert_eq!(
        to(&sent, 2),
        [format!("@{BOB} EVENT 3 live CHAT alice still me")]
    );
}

#[test]
fn a_flood_of_forged_pings_neither_drains_nor_blocks_the_member() {
    let mut h = Harness::new();
    let relay = join_keyed(&mut h, 1, "alice", ALICE);
    let bucket = h.room.roster.get(&addr(1)).unwrap().bucket;
    let mut blocked = false;
    for _ in 0..5_000 {
        h.send(1, "PING");
        blocked |= h
            .out
            .events
            .iter()
            .any(|e| matches!(e, Event::Block { .. }));
    }
    assert!(!blocked, "the member's own address was blocked");
    assert_eq!(h.room.roster.get(&addr(1)).unwrap().bucket, bucket);
    assert_eq!(h.room.stats().rate_limited, 0);
    let sent = h.send(1, &keyed(relay, "SAY 1 hi"));
    assert_eq!(
        to(&sent, 1),
        [format!("@{ALICE} EVENT 2 live CHAT alice hi")]
    );
}

#[test]
fn forged_datagrams_do_not_keep_a_silent_member_alive() {
    let mut h = Harness::new();
    join_keyed(&mut h, 1, "alice", ALICE);
    for _ in 0..7 {
        h.advance_ms(10_000);
        h.send(1, "PING");
        h.timeout();
    }
    assert!(h.room.roster.get(&addr(1)).is_none(), "still a member");
}

#[test]
fn a_cookieless_hello_from_a_keyed_members_address_only_draws_a_cookie() {
    let mut h = Harness::new();
    join_keyed(&mut h, 1, "alice", ALICE);
    let sent = h.send(1, &crate::testing::padded_hello("mallory"));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1.starts_with("COOKIE "), "{sent:?}");
    assert_eq!(h.room.roster.get(&addr(1)).unwrap().nick.as_str(), "alice");
}

#[test]
fn a_repeated_hello_keeps_the_relay_key_and_a_takeover_makes_a_new_one() {
    let mut h = Harness::new();
    let first = join_keyed(&mut h, 1, "alice", ALICE);
    // Its WELCOME was lost; the client asks again (no prefix on HELLO).
    let (again, token) = join_keyed_with_token(&mut h, 1, "alice", ALICE);
    assert_eq!(again, first);
    let cookie = h.cookie(3);
    let sent = h.send(
        3,
        &format!("HELLO udpchat/1 alice {cookie} resume={token} key={BOB}"),
    );
    let (prefix, body) = split_key_prefix(sent[0].1.as_bytes());
    assert_eq!(prefix, Some(key(BOB)));
    let second = match RelayMsg::parse(body) {
        Ok(RelayMsg::Welcome { key: Some(k), .. }) => k,
        other => panic!("{other:?}"),
    };
    assert_ne!(second, first);
    // The old key no longer speaks for alice, at either address.
    assert!(h.send(3, &keyed(first, "SAY 1 old")).is_empty());
    let sent = h.send(3, &keyed(second, "SAY 1 new"));
    assert_eq!(
        to(&sent, 3),
        [format!("@{BOB} EVENT 3 live CHAT alice new")]
    );
}

#[test]
fn refusals_of_a_validated_hello_carry_its_key() {
    let mut h = Harness::new();
    join_keyed(&mut h, 1, "alice", ALICE);
    let cookie = h.cookie(2);
    let sent = h.send(2, &format!("HELLO udpchat/1 alice {cookie} key={BOB}"));
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].1.starts_with(&format!("@{BOB} ERROR nick-taken ")),
        "{sent:?}"
    );
    // A COOKIE is never prefixed.
    let sent = h.send(
        2,
        &format!("HELLO udpchat/1 bob 0000000000000000 key={BOB}"),
    );
    assert!(sent[0].1.starts_with("COOKIE "), "{sent:?}");
}

#[test]
fn a_prefixed_datagram_from_a_stranger_gets_a_plain_not_joined() {
    let mut h = Harness::new();
    let sent = h.send(1, &keyed(key(BOB), "SAY 1 hi"));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1.starts_with("ERROR not-joined "), "{sent:?}");
}

#[test]
fn private_messages_and_their_retransmissions_carry_the_key() {
    let mut h = Harness::new();
    let relay = join_keyed(&mut h, 1, "alice", ALICE);
    join_keyed(&mut h, 2, "bob", BOB);
    let sent = h.send(1, &keyed(relay, "PMSG 1 bob psst"));
    assert_eq!(to(&sent, 2), [format!("@{BOB} PRIVATE 1 alice psst")]);
    assert_eq!(to(&sent, 1), [format!("@{ALICE} SENT 1 bob psst")]);
    h.advance_ms(1_000);
    assert_eq!(
        to(&h.timeout(), 2),
        [format!("@{BOB} PRIVATE 1 alice psst")]
    );
}

#[test]
fn a_keyless_hello_is_refused_by_default() {
    let mut h = Harness::strict(Config::default());
    let cookie = h.cookie(1);
    let sent = h.send(1, &format!("HELLO udpchat/1 alice {cookie}"));
    assert_eq!(
        to(&sent, 1),
        ["ERROR key-required this relay needs a session key (HELLO ... key=<16 hex digits>); update your client"]
    );
    assert!(h.room.roster.get(&addr(1)).is_none());
    // With a key, the same join works.
    let sent = h.send(
        1,
        &format!("HELLO udpchat/1 alice {cookie} key=0123456789abcdef"),
    );
    assert!(
        sent[0].1.starts_with("@0123456789abcdef WELCOME "),
        "{sent:?}"
    );
}

#[test]
fn a_keyless_hello_joins_address_authenticated_with_allow_keyless() {
    let mut h = Harness::new();
    let sent = h.join_structured(1, "alice");
    assert!(sent[0].1.starts_with("WELCOME "), "{sent:?}");
    assert_eq!(h.room.roster.get(&addr(1)).unwrap().keys, None);
    assert_eq!(to(&h.send(1, "PING"), 1), ["PONG 1"]);
}
