//! The stateless join cookie: proves that a `HELLO` comes from the address
//! it claims, without keeping state for half-open joins.

use std::net::{IpAddr, SocketAddr};

use siphasher::sip::SipHasher13;
use udpchat_proto::Cookie;

/// Length of one cookie time slot. A cookie is valid in the slot it was
/// made in and the next one, so for 30 to 60 s.
pub(crate) const SLOT_MS: u64 = 30_000;

/// Makes and checks cookies: SipHash-1-3 keyed by the relay's random key
/// over (address family, address bytes, port, time slot).
pub(crate) struct CookieJar {
    hasher: SipHasher13,
}

impl CookieJar {
    pub(crate) fn new(key: [u8; 16]) -> CookieJar {
        CookieJar {
            hasher: SipHasher13::new_with_key(&key),
        }
    }

    fn make(&self, addr: SocketAddr, slot: u64) -> Cookie {
        let mut buf = [0u8; 27];
        match addr.ip() {
            IpAddr::V4(ip) => {
                buf[0] = 4;
                buf[1..5].copy_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                buf[0] = 6;
                buf[1..17].copy_from_slice(&ip.octets());
            }
        }
        buf[17..19].copy_from_slice(&addr.port().to_be_bytes());
        buf[19..27].copy_from_slice(&slot.to_le_bytes());
        Cookie(self.hasher.hash(&buf))
    }

    /// The cookie to hand out to `addr` now.
    pub(crate) fn current(&self, addr: SocketAddr, now_ms: u64) -> Cookie {
        self.make(addr, now_ms / SLOT_MS)
    }

    /// Whether `cookie` was made for `addr` in this slot or the previous one.
    pub(crate) fn is_valid(&self, addr: SocketAddr, cookie: Cookie, now_ms: u64) -> bool {
        let slot = now_ms / SLOT_MS;
        cookie == self.make(addr, slot) || (slot > 0 && cookie == self.make(addr, slot - 1))
    }
}

#[cfg(test)]
mod tests {
    use udpchat_proto::Cookie;

    use crate::testing::{padded_hello, Harness};
    use crate::Event;

    use super::*;

    /// Addresses here are only hashed into cookies, never sent to.
    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    // The addresses below are only hashed into cookies; nothing is sent.

    #[test]
    fn cookie_is_valid_in_its_slot_and_the_next_only() {
        let jar = CookieJar::new([7; 16]);
        let a = addr("10.0.0.1:4000");
        let c = jar.current(a, 1_000);
        assert!(jar.is_valid(a, c, 1_000));
        assert!(jar.is_valid(a, c, SLOT_MS + 29_000));
        assert!(!jar.is_valid(a, c, 2 * SLOT_MS));
    }

    #[test]
    fn cookie_is_bound_to_address_and_port() {
        let jar = CookieJar::new([7; 16]);
        let c = jar.current(addr("10.0.0.1:4000"), 0);
        assert!(!jar.is_valid(addr("10.0.0.1:4001"), c, 0));
        assert!(!jar.is_valid(addr("10.0.0.2:4000"), c, 0));
        assert!(!jar.is_valid(addr("[::ffff:10.0.0.1]:4000"), c, 0));
    }

    #[test]
    fn cookie_depends_on_key() {
        let a = addr("10.0.0.1:4000");
        let c = CookieJar::new([1; 16]).current(a, 0);
        assert!(!CookieJar::new([2; 16]).is_valid(a, c, 0));
    }

    // ----- through the room -----

    #[test]
    fn cookieless_hello_gets_a_cookie_and_no_state() {
        let mut h = Harness::new();
        let sent = h.send(1, &padded_hello("alice"));
        assert_eq!(sent, [(1, format!("COOKIE {}", h.cookie(1)))]);
        assert_eq!(h.room.member_count(), 0);
        assert!(h.room.limits.strangers() <= 1);
    }

    #[test]
    fn cookie_answer_is_never_larger_than_the_hello() {
        let mut h = Harness::new();
        let hello = padded_hello("a");
        let sent = h.send(1, &hello);
        assert!(sent[0].1.len() <= hello.len());
    }

    #[test]
    fn short_cookieless_hello_is_dropped_silently() {
        let mut h = Harness::new();
        assert!(h.send(1, "HELLO udpchat/1 alice -").is_empty());
        assert!(h.send(1, "HELLO udpchat/1").is_empty());
        assert!(h
            .out
            .events
            .iter()
            .any(|e| matches!(e, Event::Dropped { .. })));
    }

    #[test]
    fn hello_with_wrong_cookie_gets_a_fresh_cookie() {
        let mut h = Harness::new();
        let wrong = Cookie(h.cookie(1).0 ^ 1);
        let sent = h.send(1, &format!("HELLO udpchat/1 alice {wrong}"));
        assert_eq!(sent, [(1, format!("COOKIE {}", h.cookie(1)))]);
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn cookie_of_another_address_is_refused() {
        let mut h = Harness::new();
        let theirs = h.cookie(2);
        let sent = h.send(1, &format!("HELLO udpchat/1 alice {theirs}"));
        assert!(sent[0].1.starts_with("COOKIE "));
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn cookie_from_previous_slot_is_accepted() {
        let mut h = Harness::new();
        let cookie = h.cookie(1);
        h.advance_ms(59_000);
        let sent = h.send(1, &format!("HELLO udpchat/1 alice {cookie}"));
        assert!(sent[0].1.starts_with("WELCOME "), "{sent:?}");
    }

    #[test]
    fn cookie_two_slots_old_is_stale() {
        let mut h = Harness::new();
        let cookie = h.cookie(1);
        h.advance_ms(60_000);
        let sent = h.send(1, &format!("HELLO udpchat/1 alice {cookie}"));
        assert!(sent[0].1.starts_with("COOKIE "), "{sent:?}");
    }
}
