//! A minimal structured member (cookie join, the session-key prefixes of
//! PROTOCOL.md section 8), for the attacks that need the structured verbs
//! (`RESEND`, a repeated cookie `HELLO`); the real client is used
//! wherever it can be.
//!
//! The session keys: `HELLO ... key=<16 hex>`; a relay that knows them
//! answers with `@<our key> ` in front of every datagram and names its own
//! key as `WELCOME`'s last field, which then goes in front of everything we
//! send. A relay from before session keys takes `key=...` for padding and
//! sends no prefix; this member then sends none either (and puts `key=`
//! and its padding in one field, the one padding field such a relay
//! allows).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use crate::member::Member;
use crate::Error;

/// A joined structured member.
#[derive(Debug)]
pub struct Structured {
    /// Its socket and relay.
    pub member: Member,
    /// Our session key (16 hex digits).
    pub key: String,
    /// The relay's key from `WELCOME`, if it sent one.
    pub relay_key: Option<String>,
    /// The cookie that let us in (a repeated `HELLO` may reuse it).
    pub cookie: String,
}

/// 16 lowercase hex digits of randomness (std's per-process hash keys and
/// the clock; good enough for a test key).
fn random_key() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

impl Structured {
    /// Joins as `nick` from `ip` (two round trips; three tries each).
    pub fn join(ip: Ipv4Addr, relay: SocketAddr, nick: &str) -> Result<Structured, Error> {
        let mut member = Member::bind(ip, relay)?;
        member.nick = nick.to_owned();
        let key = random_key();
        let mut joining = Structured {
            member,
            key,
            relay_key: None,
            cookie: String::new(),
        };
        // With session keys: `key=` then the padding. A relay from before
        // them allows one padding field only, so `key=...===` is it.
        let first = format!(
            "HELLO udpchat/1 {nick} - key={} {}",
            joining.key,
            "=".repeat(40)
        );
        let legacy = format!(
            "HELLO udpchat/1 {nick} - key={}{}",
            joining.key,
            "=".repeat(40)
        );
        let cookie = [first, legacy]
            .iter()
            .find_map(|hello| joining.ask(hello, |l| l.strip_prefix("COOKIE ").map(str::to_owned)))
            .ok_or_else(|| Error::NoAnswer(format!("HELLO {nick} (no COOKIE)")))?;
        joining.cookie = cookie;
        let hello = joining.hello();
        let welcome = joining
            .ask(&hello, |l| l.starts_with("WELCOME ").then(|| l.to_owned()))
            .ok_or_else(|| Error::NoAnswer(format!("HELLO {nick} (no WELCOME)")))?;
        let fields: Vec<&str> = welcome.split(' ').collect();
        if fields.len() >= 10 {
            joining.relay_key = Some(fields[9].to_owned());
        }
        Ok(joining)
    }

    /// The cookie `HELLO` (to send again: a repeated join).
    pub fn hello(&self) -> String {
        format!(
            "HELLO udpchat/1 {} {} key={}",
            self.member.nick, self.cookie, self.key
        )
    }

    /// Sends `line` (a `HELLO` bare, anything else with the relay's key).
    pub fn send(&self, line: &str) {
        match &self.relay_key {
            Some(k) if !line.starts_with("HELLO ") => self.member.send(&format!("@{k} {line}")),
            _ => self.member.send(line),
        }
    }

    /// The next datagram from the relay before `deadline`, without our
    /// key's prefix.
    pub fn recv_until(&self, deadline: Instant) -> Option<String> {
        let line = self.member.recv_until(deadline)?;
        let prefix = format!("@{} ", self.key);
        Some(match line.strip_prefix(&prefix) {
            Some(rest) => rest.to_owned(),
            None => line,
        })
    }

    /// Sends `line` (up to twice, a second apart) until `pick` finds an
    /// answer.
    fn ask(&self, line: &str, pick: impl Fn(&str) -> Option<String>) -> Option<String> {
        for _ in 0..2 {
            self.send(line);
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Some(got) = self.recv_until(deadline) {
                if let Some(found) = pick(&got) {
                    return Some(found);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_16_lowercase_hex_digits_and_differ() {
        let (a, b) = (random_key(), random_key());
        assert_eq!(a.len(), 16);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(a, b);
    }
}
