//! Session keys of the structured dialect: the `@<key> ` prefix that
//! authenticates every datagram between a joined client and the relay
//! (PROTOCOL.md section 8, *Session keys*).
//!
//! Each side picks a random 64-bit key: the client sends its key in `HELLO
//! ... key=<key>`, the relay sends its own for the membership as the last
//! field of `WELCOME`. From then on every datagram to the client starts with
//! `@<client key> ` and every datagram to the relay with `@<relay key> `. A
//! blind spoofer, who can forge a member's source address but not read its
//! traffic, cannot know either key.

use std::fmt;

use crate::ParseError;

/// The length of the prefix `@<16 hex digits> `.
pub const KEY_PREFIX_LEN: usize = 18;

/// A session key: 64 bits, written as exactly 16 lowercase hexadecimal
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey(u64);

impl SessionKey {
    /// The key with these 64 bits (from a random source).
    pub const fn from_u64(bits: u64) -> SessionKey {
        SessionKey(bits)
    }

    /// The key as 64 bits.
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// Parses exactly 16 lowercase hexadecimal digits.
    pub fn parse(s: &str) -> Result<SessionKey, ParseError> {
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if s.len() != 16 || !s.bytes().all(lower_hex) {
            return Err(ParseError::BadKey);
        }
        u64::from_str_radix(s, 16)
            .map(SessionKey)
            .map_err(|_| ParseError::BadKey)
    }

    /// The prefix `@<key> ` (18 bytes).
    pub fn prefix(self) -> [u8; KEY_PREFIX_LEN] {
        let mut out = [0u8; KEY_PREFIX_LEN];
        // No allocation: the relay makes one per keyed datagram it sends.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out[0] = b'@';
        for (i, digit) in out[1..17].iter_mut().enumerate() {
            *digit = HEX[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        out[17] = b' ';
        out
    }

    /// `body` with this key's prefix in front.
    pub fn prefixed(self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_PREFIX_LEN + body.len());
        out.extend_from_slice(&self.prefix());
        out.extend_from_slice(body);
        out
    }

    /// Compares two keys without an early exit on the first differing bit.
    pub fn matches(self, other: SessionKey) -> bool {
        std::hint::black_box(self.0 ^ other.0) == 0
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({:016x})", self.0)
    }
}

/// Splits a datagram into its `@<key> ` prefix, if it has a well-formed
/// one, and the message after it. A datagram without a well-formed prefix
/// comes back whole, with `None`.
pub fn split_key_prefix(bytes: &[u8]) -> (Option<SessionKey>, &[u8]) {
    if bytes.len() < KEY_PREFIX_LEN || bytes[0] != b'@' || bytes[KEY_PREFIX_LEN - 1] != b' ' {
        return (None, bytes);
    }
    let parsed = std::str::from_utf8(&bytes[1..KEY_PREFIX_LEN - 1])
        .ok()
        .and_then(|s| SessionKey::parse(s).ok());
    match parsed {
        Some(key) => (Some(key), &bytes[KEY_PREFIX_LEN..]),
        None => (None, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_sixteen_lowercase_hex_digits() {
        let key = SessionKey::parse("0123456789abcdef").unwrap();
        assert_eq!(key.to_u64(), 0x0123_4567_89ab_cdef);
        assert_eq!(key.to_string(), "0123456789abcdef");
        assert_eq!(SessionKey::from_u64(1).to_string(), "0000000000000001");
        for bad in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789ABCDEF",
            "0123456789abcdeg",
            "+123456789abcdef",
        ] {
            assert_eq!(SessionKey::parse(bad), Err(ParseError::BadKey), "{bad:?}");
        }
    }

    #[test]
    fn prefix_round_trips() {
        let key = SessionKey::parse("fedcba9876543210").unwrap();
        assert_eq!(&key.prefix(), b"@fedcba9876543210 ");
        let bytes = key.prefixed(b"SAY 7 hello");
        assert_eq!(bytes, b"@fedcba9876543210 SAY 7 hello");
        assert_eq!(split_key_prefix(&bytes), (Some(key), &b"SAY 7 hello"[..]));
        assert!(key.matches(SessionKey::from_u64(0xfedc_ba98_7654_3210)));
        assert!(!key.matches(SessionKey::from_u64(0xfedc_ba98_7654_3211)));
    }

    #[test]
    fn datagrams_without_a_well_formed_prefix_come_back_whole() {
        for bytes in [
            &b"SAY 7 hello"[..],
            b"@fedcba9876543210",
            b"@fedcba9876543210SAY",
            b"@FEDCBA9876543210 SAY 7 hi",
            b"@fedcba987654321 SAY 7 hi",
            b"",
            b"@",
        ] {
            assert_eq!(split_key_prefix(bytes), (None, bytes));
        }
        // An empty message after the prefix is still split off.
        let (key, rest) = split_key_prefix(b"@0000000000000000 ");
        assert_eq!(key, Some(SessionKey::from_u64(0)));
        assert!(rest.is_empty());
    }
}
