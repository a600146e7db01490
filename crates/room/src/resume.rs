//! Resume tokens: a structured member's proof that it may take over its
//! own membership from a new address (a restarted client).
//!
//! A token is 32 hex digits: the membership's join id (16) and a SipHash-1-3
//! MAC (16) keyed by the relay's secret random key (the cookie's key, in
//! another domain: the hashed bytes start with `R`, a cookie's with 4 or 6)
//! over the join id and the nickname's key. So a token
//! - cannot be made without the key (64-bit MAC; guessing runs into the
//!   per-address rate limit);
//! - names one nickname (renaming or another nickname does not match);
//! - names one membership: the member stores its join id, and a new join
//!   (after a leave or eviction) gets a new one, so an old token never takes
//!   over someone else's later membership of the same nickname;
//! - dies with the relay run (a restarted relay has a new key), which also
//!   tells the relay whether a client's `since=` belongs to this run.

use siphasher::sip::SipHasher13;
use udpchat_proto::{Nick, SessionKey, Token};

pub(crate) struct ResumeKeys {
    hasher: SipHasher13,
    next_id: u64,
}

impl ResumeKeys {
    pub(crate) fn new(key: [u8; 16]) -> ResumeKeys {
        ResumeKeys {
            hasher: SipHasher13::new_with_key(&key),
            next_id: 1,
        }
    }

    /// A fresh join id for a new (or taken-over) membership.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn mac(&self, join_id: u64, nick: &Nick) -> u64 {
        let key = nick.key();
        let mut buf = Vec::with_capacity(9 + key.len());
        buf.push(b'R');
        buf.extend_from_slice(&join_id.to_le_bytes());
        buf.extend_from_slice(key.as_bytes());
        self.hasher.hash(&buf)
    }

    /// The relay's session key for membership `join_id`: a keyed hash
    /// (domain `K`) of the join id, so it is unpredictable without the
    /// relay's secret key, the same for every repeated `WELCOME` of one
    /// membership, and new with each join or takeover (a new join id). The
    /// randomness is the secret key the shell seeded the room with: tests
    /// with a fixed key are deterministic.
    pub(crate) fn relay_key(&self, join_id: u64) -> SessionKey {
        let mut buf = [0u8; 9];
        buf[0] = b'K';
        buf[1..].copy_from_slice(&join_id.to_le_bytes());
        SessionKey::from_u64(self.hasher.hash(&buf))
    }

    /// The token of membership `join_id` under `nick`.
    #[cfg(test)]
    pub(crate) fn token(&self, join_id: u64, nick: &Nick) -> Token {
        ResumeKeys::token_of(join_id, self.mac(join_id, nick))
    }

    /// The token with this join id and MAC.
    pub(crate) fn token_of(join_id: u64, mac: u64) -> Token {
        Token::new(&format!("{join_id:016x}{mac:016x}")).expect("32 hex digits are a token")
    }

    fn parse(token: &Token) -> Option<(u64, u64)> {
        let s = token.as_str();
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let join_id = u64::from_str_radix(&s[..16], 16).ok()?;
        let mac = u64::from_str_radix(&s[16..], 16).ok()?;
        Some((join_id, mac))
    }

    /// Whether `token` is the one with this join id and MAC (a member's own,
    /// kept with it).
    pub(crate) fn matches(token: &Token, join_id: u64, mac: u64) -> bool {
        let Some((id, got)) = ResumeKeys::parse(token) else {
            return false;
        };
        // Compare without an early exit on the first differing byte.
        let diff = (got ^ mac) | (id ^ join_id);
        std::hint::black_box(diff) == 0 && join_id != 0
    }

    /// The join id `token` names, if it is a token this relay run made for
    /// `nick` (used when nobody holds `nick`: only to trust `since`).
    pub(crate) fn check(&self, token: &Token, nick: &Nick) -> Option<u64> {
        let (join_id, _) = ResumeKeys::parse(token)?;
        ResumeKeys::matches(token, join_id, self.mac(join_id, nick)).then_some(join_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    #[test]
    fn a_token_names_one_join_and_one_nickname_of_one_key() {
        let mut keys = ResumeKeys::new([7; 16]);
        let id = keys.next_id();
        let token = keys.token(id, &nick("alice"));
        assert_eq!(token.as_str().len(), 32);
        assert_eq!(keys.check(&token, &nick("alice")), Some(id));
        // Case-insensitive, like nicknames.
        assert_eq!(keys.check(&token, &nick("Alice")), Some(id));
        assert_eq!(keys.check(&token, &nick("bob")), None);
        assert_eq!(ResumeKeys::new([8; 16]).check(&token, &nick("alice")), None);
        // Flipping any digit of the MAC or the id breaks it.
        let s = token.as_str();
        for i in 0..32 {
            let mut t = s.to_owned().into_bytes();
            t[i] = if t[i] == b'0' { b'1' } else { b'0' };
            let t = Token::new(std::str::from_utf8(&t).unwrap()).unwrap();
            assert_eq!(keys.check(&t, &nick("alice")), None, "digit {i}");
        }
        assert_eq!(
            keys.check(&Token::new("xyz").unwrap(), &nick("alice")),
            None
        );
    }

    // ----- through the room -----

    use std::net::SocketAddr;

    use crate::testing::{addr, to, token_in, Harness};
    use crate::{Config, Dialect};

    fn members(h: &Harness) -> Vec<(String, SocketAddr)> {
        h.room
            .members()
            .into_iter()
            .map(|(n, a, _)| (n.to_string(), a))
            .collect()
    }

    fn resume_hello(h: &Harness, n: u8, nick: &str, since: Option<u64>, token: &str) -> String {
        let cookie = h.cookie(n);
        match since {
            Some(s) => format!("HELLO udpchat/1 {nick} {cookie} since={s} resume={token}"),
            None => format!("HELLO udpchat/1 {nick} {cookie} resume={token}"),
        }
    }

    #[test]
    fn hello_with_the_token_takes_over_from_a_new_address() {
        let mut h = Harness::new();
        let token = token_in(&h.join_structured(1, "alice"));
        h.join_classic(3, "bob");
        let seq = h.room.last_seq();
        let sent = h.send(2, &resume_hello(&h, 2, "alice", Some(seq), &token));
        assert_eq!(
            to(&sent, 2),
            [
                format!("WELCOME udpchat/1 alice {seq} 15 60 {} <token>", seq + 1),
                format!("EVENT {} live RECONNECT alice", seq + 1),
            ]
        );
        assert_eq!(to(&sent, 3), ["* alice reconnected"]);
        assert!(to(&sent, 1).is_empty(), "the old address hears nothing");
        assert_eq!(
            members(&h),
            [("alice".into(), addr(2)), ("bob".into(), addr(3))]
        );
        assert_eq!(h.room.stats().reconnects, 1);
        assert_eq!(h.room.stats().leaves, 0);
        // The old address is a stranger now; the new token differs.
        assert!(h.send(1, "SAY 9 still me?")[0]
            .1
            .starts_with("ERROR not-joined"));
        assert_ne!(token_in(&sent), token);
        // The old token was used up: it does not take the nickname back.
        let sent = h.send(4, &resume_hello(&h, 4, "alice", None, &token));
        assert!(sent[0].1.starts_with("ERROR nick-taken"), "{sent:?}");
    }

    #[test]
    fn a_wrong_token_or_another_nicks_token_is_refused() {
        let mut h = Harness::new();
        let alice = token_in(&h.join_structured(1, "alice"));
        let bob = token_in(&h.join_structured(3, "bob"));
        let mut forged = alice.clone().into_bytes();
        forged[31] = if forged[31] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        for token in [
            forged.as_str(),
            bob.as_str(),
            "00000000000000010000000000000000",
        ] {
            let sent = h.send(2, &resume_hello(&h, 2, "alice", None, token));
            assert_eq!(sent.len(), 1);
            assert!(
                sent[0].1.starts_with("ERROR nick-taken"),
                "{token}: {sent:?}"
            );
        }
        assert_eq!(
            members(&h),
            [("alice".into(), addr(1)), ("bob".into(), addr(3))]
        );
    }

    #[test]
    fn a_token_of_an_ended_membership_cannot_take_a_later_one() {
        let mut h = Harness::new();
        let token = token_in(&h.join_structured(1, "alice"));
        h.send(1, "Q alice");
        h.join_structured(3, "alice");
        let sent = h.send(2, &resume_hello(&h, 2, "alice", None, &token));
        assert!(sent[0].1.starts_with("ERROR nick-taken"), "{sent:?}");
    }

    #[test]
    fn a_returning_client_gets_only_the_history_it_missed() {
        let mut h = Harness::new();
        let token = token_in(&h.join_structured(1, "alice"));
        h.join_classic(3, "bob");
        for i in 1..=5 {
            h.send(3, &format!("M bob line {i}"));
        }
        // Alice saw up to event 4 (bob's second line), then her client was
        // killed; bob said three more lines. The nickname is free again
        // (she timed out): the token still proves `since` is this run's.
        h.send(1, "Q alice");
        let seq = h.room.last_seq();
        let sent = h.send(2, &resume_hello(&h, 2, "alice", Some(4), &token));
        let history: Vec<String> = to(&sent, 2)
            .into_iter()
            .filter(|s| s.contains(" history "))
            .collect();
        assert_eq!(
            history,
            [
                "EVENT 5 history ago=0 CHAT bob line 3",
                "EVENT 6 history ago=0 CHAT bob line 4",
                "EVENT 7 history ago=0 CHAT bob line 5",
                "EVENT 8 history ago=0 LEAVE alice quit",
            ]
        );
        assert_eq!(
            to(&sent, 2)[0],
            format!("WELCOME udpchat/1 alice {seq} 15 60 5 <token>")
        );
        // Without a valid token, `since` may be another run's: ignored.
        let sent = h.send(
            4,
            &format!("HELLO udpchat/1 carol {} since={seq}", h.cookie(4)),
        );
        assert_eq!(
            to(&sent, 4)[0],
            format!("WELCOME udpchat/1 carol {} 15 60 1 <token>", seq + 1)
        );
    }

    fn from(h: &mut Harness, addr: SocketAddr, bytes: &str) -> Vec<String> {
        h.out.clear();
        let now = h.now();
        h.room
            .handle_datagram(now, addr, bytes.as_bytes(), &mut h.out);
        h.out
            .transmits
            .iter()
            .filter(|t| t.to == addr)
            .map(|t| String::from_utf8(t.datagram()).unwrap())
            .collect()
    }

    #[test]
    fn classic_nick_comes_back_to_a_new_port_of_the_same_ip_after_silence() {
        let mut h = Harness::new();
        let old: SocketAddr = "10.0.0.1:40001".parse().unwrap();
        let new: SocketAddr = "10.0.0.1:50000".parse().unwrap();
        let other_ip: SocketAddr = "10.0.0.9:40001".parse().unwrap();
        assert_eq!(from(&mut h, old, "N alice"), ["OK", "* alice joined"]);
        h.advance_ms(29_000);
        // Too soon: the old address may still be in use.
        assert!(from(&mut h, new, "N alice")[0].starts_with("ERROR nick-taken"));
        h.advance_ms(1_000);
        // Another IP address never reclaims.
        assert!(from(&mut h, other_ip, "N alice")[0].starts_with("ERROR nick-taken"));
        assert_eq!(from(&mut h, new, "N alice"), ["OK", "* alice reconnected"]);
        let members = h.room.members();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].1, new);
        // The old address is a stranger now.
        assert!(from(&mut h, old, "M alice hi")[0].starts_with("ERROR not-joined"));
    }

    #[test]
    fn classic_reclaim_needs_a_silent_classic_holder_and_can_be_off() {
        let mut h = Harness::with(Config {
            classic_reclaim_after: std::time::Duration::ZERO,
            ..Config::default()
        });
        let old: SocketAddr = "10.0.0.1:40001".parse().unwrap();
        let new: SocketAddr = "10.0.0.1:50000".parse().unwrap();
        from(&mut h, old, "N alice");
        h.advance_ms(3_600_000);
        assert!(from(&mut h, new, "N alice")[0].starts_with("ERROR nick-taken"));

        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.advance_ms(50_000);
        let same_ip: SocketAddr = SocketAddr::new(addr(1).ip(), 50_000);
        assert!(from(&mut h, same_ip, "N alice")[0].starts_with("ERROR nick-taken"));
        assert_eq!(h.room.members()[0].2, Dialect::Structured);
    }

    #[test]
    fn an_unreachable_structured_member_waits_for_its_resume_then_leaves() {
        let mut h = Harness::new();
        let token = token_in(&h.join_structured(1, "alice"));
        h.join_structured(3, "bob");
        h.out.clear();
        let now = h.now();
        h.room.handle_unreachable(now, addr(1), &mut h.out);
        assert!(h.sent().is_empty(), "no LEAVE during the grace period");
        h.advance_ms(5_000);
        assert!(h.timeout().is_empty());
        let sent = h.send(2, &resume_hello(&h, 2, "alice", None, &token));
        assert_eq!(
            to(&sent, 3),
            [format!("EVENT {} live RECONNECT alice", h.room.last_seq())]
        );
        // Bob's client dies too, and nobody resumes it.
        h.out.clear();
        let now = h.now();
        h.room.handle_unreachable(now, addr(3), &mut h.out);
        h.advance_ms(9_999);
        assert!(h.timeout().is_empty());
        h.advance_ms(1);
        let sent = h.timeout();
        assert_eq!(
            to(&sent, 2),
            [format!(
                "EVENT {} live LEAVE bob unreachable",
                h.room.last_seq()
            )]
        );
        assert!(to(&sent, 3).is_empty(), "no BYE to a closed port");
    }

    #[test]
    fn a_member_heard_from_again_is_not_unreachable() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        let now = h.now();
        h.room.handle_unreachable(now, addr(1), &mut h.out);
        h.send(1, "PING");
        h.advance_ms(20_000);
        h.timeout();
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn unacknowledged_privates_follow_the_member_to_its_new_address() {
        let mut h = Harness::new();
        let token = token_in(&h.join_structured(1, "alice"));
        h.join_structured(3, "bob");
        h.send(3, "PMSG 1 alice psst");
        // Alice's client died before it could ACK.
        let sent = h.send(2, &resume_hello(&h, 2, "alice", None, &token));
        let private: Vec<String> = to(&sent, 2)
            .into_iter()
            .filter(|s| s.starts_with("PRIVATE "))
            .collect();
        assert_eq!(private, ["PRIVATE 1 bob psst"]);
        h.advance_ms(1_000);
        assert_eq!(to(&h.timeout(), 2), ["PRIVATE 1 bob psst"]);
        h.send(2, "ACK 1");
        h.advance_ms(10_000);
        assert!(h.timeout().is_empty());
    }

    #[test]
    fn the_token_still_works_after_a_rename_and_only_for_that_member() {
        let mut h = Harness::new();
        let token = token_in(&h.join_structured(1, "alice"));
        h.join_structured(3, "bob");
        h.send(1, "NICK alice.w");
        let sent = h.send(4, &resume_hello(&h, 4, "bob", None, &token));
        assert!(sent[0].1.starts_with("ERROR nick-taken"), "{sent:?}");
        let sent = h.send(2, &resume_hello(&h, 2, "alice.w", None, &token));
        assert!(
            sent[0].1.starts_with("WELCOME udpchat/1 alice.w "),
            "{sent:?}"
        );
        assert_eq!(
            members(&h),
            [("alice.w".into(), addr(2)), ("bob".into(), addr(3))]
        );
    }
}
