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
    use super::*;

    /// Addresses here are only hashed into cookies, never sent to.
    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

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
}
