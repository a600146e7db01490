//! Joining: a classic member (`N`, exactly `OK`) and a structured one
//! (the cookie round trip with session keys), each waiting out a relay's
//! per-IP join and `COOKIE` limits.

use std::thread;
use std::time::{Duration, Instant};

use udpchat_proto::{
    classic, ClientMsg, Cookie, ErrorCode, LineEnding, RelayMsg, SessionKey, Token, VERSION,
};

use crate::check::NotPassed;
use crate::ctx::{seen, Ctx};
use crate::lines;
use crate::member::{Keys, Member, Welcome};
use crate::probe::show_bytes;

/// How long the kit keeps retrying a join the relay refused with
/// `rate-limited` (a relay with our default per-IP join limit: 8, then 1 a
/// second, PROTOCOL.md section 9).
const JOIN_RETRY_FOR: Duration = Duration::from_secs(12);

impl Ctx {
    /// Joins a fresh classic member (`N <nick>`, bare) and expects exactly
    /// `OK`.
    pub fn join(&mut self, role: &str) -> Result<Member, NotPassed> {
        let nick = self.fresh_nick(role);
        self.join_as(&nick, LineEnding::Bare, b"")
    }

    /// Joins `nick` from a fresh socket with `ending` (the bytes `suffix`:
    /// empty, `\n` or `\r\n`) and expects exactly `OK` (with `\n` for a
    /// line ending). Retries while the relay answers `rate-limited`.
    pub fn join_as(
        &mut self,
        nick: &str,
        ending: LineEnding,
        suffix: &[u8],
    ) -> Result<Member, NotPassed> {
        let probe = self.probe(nick)?;
        probe.set_ending(ending);
        let mut datagram = ClientMsg::Join(lines::nick(nick), None).encode();
        datagram.extend_from_slice(suffix);
        let ok = [classic::OK.to_owned()];
        let expected = format!(
            "the answer to {} is exactly {}",
            show_bytes(&datagram, 80),
            show_bytes(
                if ending == LineEnding::Bare {
                    b"OK"
                } else {
                    b"OK\n"
                },
                10
            )
        );
        let give_up = Instant::now() + JOIN_RETRY_FOR;
        loop {
            probe.send(&datagram);
            let Some(reply) = probe.recv(self.timeout) else {
                return Err(NotPassed::fail(
                    expected,
                    format!("no answer within {:?}", self.timeout),
                ));
            };
            if lines::is_line(&reply, &ok, ending) {
                let member = Member::new(probe, nick, None);
                self.keep(&member);
                return Ok(member);
            }
            if lines::is_error(&reply, ErrorCode::RateLimited) && Instant::now() < give_up {
                log::info!("the relay limits joins per IP address; waiting a second");
                thread::sleep(Duration::from_millis(1100));
                continue;
            }
            if lines::is_error(&reply, ErrorCode::IpFull)
                || lines::is_error(&reply, ErrorCode::RoomFull)
            {
                return Err(NotPassed::Skip(format!(
                    "the relay refused another member ({}); this check needs a few members \
                     from one computer (our relay: --max-per-ip 0)",
                    show_bytes(&reply, 60)
                )));
            }
            return Err(NotPassed::fail(
                expected,
                format!("the answer was {}", show_bytes(&reply, 120)),
            ));
        }
    }

    /// Joins a fresh structured member with a session key: the padded
    /// cookie-less `HELLO`, the `COOKIE`, the cookie `HELLO`, and a
    /// `WELCOME` behind our key (section 8). Retries while the relay
    /// answers `rate-limited`.
    pub fn join_structured(&mut self, role: &str) -> Result<(Member, Welcome), NotPassed> {
        let nick = self.fresh_nick(role);
        let probe = self.probe(&nick)?;
        let mine = SessionKey::from_u64(random_u64(&nick));
        let hello = |cookie| hello(&nick, cookie, Some(mine));
        // A relay answers at most a few COOKIEs a second per IP address
        // (ours: 4, then 1 a second) and drops the rest silently: ask again
        // a second later, until JOIN_RETRY_FOR has passed.
        let give_up = Instant::now() + JOIN_RETRY_FOR;
        let cookie = loop {
            let asked = Instant::now();
            probe.send(&hello(None));
            let (found, before) = probe.recv_until(self.timeout, |b| {
                matches!(RelayMsg::parse(b), Ok(RelayMsg::Cookie(_)))
            });
            if let Some(Ok(RelayMsg::Cookie(cookie))) = found.map(|b| RelayMsg::parse(&b)) {
                break cookie;
            }
            if Instant::now() >= give_up {
                return Err(NotPassed::fail(
                    format!(
                        "HELLO udpchat/1 {nick} - key=... (padded to 64 bytes) is answered COOKIE"
                    ),
                    format!("no COOKIE within {:?}{}", JOIN_RETRY_FOR, seen(&before)),
                ));
            }
            thread::sleep(Duration::from_millis(1100).saturating_sub(asked.elapsed()));
        };
        loop {
            probe.send(&hello(Some(cookie)));
            let expected = format!(
                "HELLO udpchat/1 {nick} {cookie} key={mine} is answered @{mine} WELCOME udpchat/1 {nick} ..."
            );
            let (found, before) = probe.recv_until(self.timeout, |b| {
                lines::structured(b, Some(mine)).is_some() || lines::error_code(b).is_some()
            });
            let Some(reply) = found else {
                return Err(NotPassed::fail(
                    expected,
                    format!(
                        "no answer behind our key within {:?}{}",
                        self.timeout,
                        seen(&before)
                    ),
                ));
            };
            match lines::structured(&reply, Some(mine)) {
                Some(RelayMsg::Welcome {
                    nick: welcomed,
                    last_seq,
                    history_from,
                    key,
                    ..
                }) if welcomed.as_str() == nick => {
                    let member = Member::new(probe, &nick, Some(Keys { mine, relay: key }));
                    self.keep(&member);
                    return Ok((
                        member,
                        Welcome {
                            last_seq,
                            history_from,
                        },
                    ));
                }
                _ if lines::is_error(&reply, ErrorCode::RateLimited)
                    && Instant::now() < give_up =>
                {
                    thread::sleep(Duration::from_millis(1100));
                }
                _ if lines::is_error(&reply, ErrorCode::IpFull)
                    || lines::is_error(&reply, ErrorCode::RoomFull) =>
                {
                    return Err(NotPassed::Skip(format!(
                        "the relay refused another member ({}); this check needs a few members \
                         from one computer (our relay: --max-per-ip 0)",
                        show_bytes(&reply, 60)
                    )));
                }
                _ => {
                    return Err(NotPassed::fail(
                        expected,
                        format!("the answer was {}", show_bytes(&reply, 120)),
                    ))
                }
            }
        }
    }
}

/// `HELLO udpchat/1 <nick> <cookie>|- [key=<key>]`, built by proto, which
/// pads a cookie-less one to 64 bytes as PROTOCOL.md section 8 asks.
pub fn hello(nick: &str, cookie: Option<Cookie>, key: Option<SessionKey>) -> Vec<u8> {
    ClientMsg::Hello {
        version: Token::new(VERSION).expect("valid"),
        nick: lines::nick(nick),
        cookie,
        since: None,
        resume: None,
        key,
        code: None,
    }
    .encode()
}

/// 64 bits that differ from call to call and run to run (not secret: a
/// session key for a test member).
fn random_u64(salt: &str) -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    RandomState::new().hash_one((Instant::now(), salt))
}
