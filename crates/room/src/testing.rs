//! Test support shared by every module's unit tests: a room on a fake
//! clock, made-up addresses, and helpers to read what it sent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, Cookie, Nick, Token, VERSION};

use crate::{Config, Outputs, Room};

pub(crate) const KEY: [u8; 16] = [42; 16];

/// Made-up address number `n` (never sent to).
pub(crate) fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 40_000 + u16::from(n)))
}

/// Made-up address number `i` of many (one IP address each, in 10.1/16).
pub(crate) fn many(i: u32) -> SocketAddr {
    let [_, _, hi, lo] = i.to_be_bytes();
    SocketAddr::from(([10, 1, hi, lo], 50_000))
}

/// Made-up port `port` of the made-up IP address 10.9.9.9.
pub(crate) fn port_of_one_host(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 9, 9, 9], port))
}

/// A room on a fake clock, collecting what it sends.
pub(crate) struct Harness {
    pub(crate) room: Room,
    pub(crate) base: Instant,
    pub(crate) elapsed: Duration,
    pub(crate) out: Outputs,
}

impl Harness {
    pub(crate) fn new() -> Harness {
        Harness::with(Config::default())
    }

    /// A room with `config`, except that structured members may join
    /// without session keys ([`Config::allow_keyless`]): most rule tests
    /// speak without them. `session_tests.rs` covers the keys, and
    /// [`Harness::strict`] keeps `config` as it is.
    pub(crate) fn with(config: Config) -> Harness {
        Harness::strict(Config {
            allow_keyless: true,
            ..config
        })
    }

    /// A room with exactly `config`.
    pub(crate) fn strict(config: Config) -> Harness {
        let base = Instant::now();
        Harness {
            room: Room::new(config, KEY, base),
            base,
            elapsed: Duration::ZERO,
            out: Outputs::default(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    pub(crate) fn advance_ms(&mut self, ms: u64) {
        self.elapsed += Duration::from_millis(ms);
    }

    /// Sends `bytes` from `addr(n)`; returns (recipient index, text) pairs.
    pub(crate) fn send(&mut self, n: u8, bytes: &str) -> Vec<(u8, String)> {
        self.send_bytes(n, bytes.as_bytes())
    }

    pub(crate) fn send_bytes(&mut self, n: u8, bytes: &[u8]) -> Vec<(u8, String)> {
        self.out.clear();
        let now = self.now();
        self.room
            .handle_datagram(now, addr(n), bytes, &mut self.out);
        self.sent()
    }

    /// Sends `bytes` from any address; returns what went to that address
    /// (texts).
    pub(crate) fn send_from(&mut self, from: SocketAddr, bytes: &str) -> Vec<String> {
        self.out.clear();
        let now = self.now();
        self.room
            .handle_datagram(now, from, bytes.as_bytes(), &mut self.out);
        self.out
            .transmits
            .iter()
            .filter(|t| t.to == from)
            .map(|t| String::from_utf8(t.datagram()).unwrap())
            .collect()
    }

    pub(crate) fn timeout(&mut self) -> Vec<(u8, String)> {
        self.out.clear();
        let now = self.now();
        self.room.handle_timeout(now, &mut self.out);
        self.sent()
    }

    pub(crate) fn sent(&self) -> Vec<(u8, String)> {
        self.out
            .transmits
            .iter()
            .map(|t| {
                let n = match t.to {
                    SocketAddr::V4(a) => a.ip().octets()[3],
                    SocketAddr::V6(_) => 0,
                };
                (n, String::from_utf8(t.datagram()).unwrap())
            })
            .collect()
    }

    pub(crate) fn cookie(&self, n: u8) -> Cookie {
        self.room.cookie_for(addr(n), self.now())
    }

    pub(crate) fn join_classic(&mut self, n: u8, nick: &str) {
        let sent = self.send(n, &format!("N {nick}"));
        assert!(sent.contains(&(n, "OK".into())), "{sent:?}");
    }

    pub(crate) fn join_structured(&mut self, n: u8, nick: &str) -> Vec<(u8, String)> {
        let cookie = self.cookie(n);
        let sent = self.send(n, &format!("HELLO udpchat/1 {nick} {cookie}"));
        assert!(sent[0].1.starts_with("WELCOME "), "{sent:?}");
        sent
    }
}

/// The texts sent to `addr(n)`, in order, a `WELCOME`'s resume token
/// written `<token>`.
pub(crate) fn to(sent: &[(u8, String)], n: u8) -> Vec<String> {
    sent.iter()
        .filter(|(m, _)| *m == n)
        .map(|(_, s)| untoken(s))
        .collect()
}

/// `s` with a `WELCOME`'s resume token written `<token>`.
pub(crate) fn untoken(s: &str) -> String {
    match s.rsplit_once(' ') {
        Some((head, token)) if s.starts_with("WELCOME ") && token.len() == 32 => {
            format!("{head} <token>")
        }
        _ => s.to_owned(),
    }
}

/// The resume token of the last `WELCOME` in `sent`.
pub(crate) fn token_in(sent: &[(u8, String)]) -> String {
    let welcome = sent
        .iter()
        .rev()
        .find(|(_, s)| s.starts_with("WELCOME "))
        .expect("a WELCOME");
    welcome.1.rsplit_once(' ').unwrap().1.to_owned()
}

/// A cookie-less `HELLO` padded to `MIN_HELLO_LEN`.
pub(crate) fn padded_hello(nick: &str) -> String {
    String::from_utf8(
        ClientMsg::Hello {
            version: Token::new(VERSION).unwrap(),
            nick: Nick::new(nick).unwrap(),
            cookie: None,
            since: None,
            resume: None,
            key: None,
            code: None,
        }
        .encode(),
    )
    .unwrap()
}
