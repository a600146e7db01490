//! The kit as the relay of one check: its socket, the client it started,
//! the join it answers (classic `OK`, or `COOKIE` and `WELCOME` with
//! session keys), and a serving loop that answers what a relay would
//! (`PING`, `RESEND`, chat echoes) while a check waits for something.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use udpchat_proto::{
    split_key_prefix, strip_line_ending, ClientMsg, Cookie, ErrorCode, LineEnding, Nick, Origin,
    RelayMsg, RoomEvent, SessionKey, Text, Token, MIN_HELLO_LEN, VERSION,
};

use super::child::ChildClient;
use crate::check::NotPassed;
use crate::probe::{show_bytes, Direction, TranscriptLine};

/// The cookie the kit hands out (it keeps no secret: it is the only relay).
const COOKIE: u64 = 0x5f3a_9c1e_0b7d_2468;
/// The kit's session key for the member, as a relay's `WELCOME` gives it.
const RELAY_KEY: u64 = 0xc0ff_ee0d_dba1_1f00;
/// The relay key after a restart: a new membership has a new key.
const RELAY_KEY_AFTER_RESTART: u64 = 0x9d8c_7b6a_5f4e_3d2c;

/// Which dialect the client joined with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `N nick`: `OK`, lines.
    Classic {
        /// The line ending its `N` had (the kit's lines get it too).
        ending: LineEnding,
    },
    /// `HELLO`: `COOKIE`, `WELCOME`, numbered events.
    Structured {
        /// The client's key (`None`: it sent no `key=`).
        client: Option<SessionKey>,
        /// The kit's key for it.
        relay: SessionKey,
    },
}

/// A client that joined.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The nickname it joined with.
    pub nick: String,
    /// Its address: every datagram of the session must come from it.
    pub from: SocketAddr,
    /// How it joined.
    pub dialect: Dialect,
}

/// Why a join did not complete, by the step that went wrong.
#[derive(Debug)]
pub enum JoinFault {
    /// The first datagram was missing, or not `N nick` / a padded `HELLO`.
    First(NotPassed),
    /// The cookie round trip went wrong.
    Cookie(NotPassed),
}

impl JoinFault {
    /// For checks that need a joined client: whichever step failed.
    pub fn into_not_passed(self) -> NotPassed {
        match self {
            JoinFault::First(n) | JoinFault::Cookie(n) => n,
        }
    }
}

/// One datagram from the client.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// As received.
    pub bytes: Vec<u8>,
    /// Where from.
    pub from: SocketAddr,
    /// The key prefix it carried, if any.
    pub key: Option<SessionKey>,
    /// What it says (after the prefix), if it parses.
    pub msg: Option<ClientMsg>,
}

/// The kit as the relay of one check.
pub struct Kit {
    /// The client under test (declared first: dropped, so killed, before
    /// the socket closes).
    pub child: ChildClient,
    socket: UdpSocket,
    /// The kit's address, as the client was given it.
    pub addr: SocketAddr,
    /// How long to wait for what the client owes.
    pub timeout: Duration,
    /// Every datagram both ways.
    pub transcript: Vec<TranscriptLine>,
    /// Every datagram the client sent during the check.
    pub received: Vec<Vec<u8>>,
    /// The client, once it joined.
    pub joined: Option<Joined>,
    /// Room events the kit numbered (structured), for `RESEND`.
    events: Vec<(u64, RoomEvent)>,
    /// The newest event number.
    last: u64,
    /// Whether the serving loop echoes chat (off to drop a `SAY`'s echo).
    pub echo: bool,
    /// `SAY` ids echoed already, with the event each became.
    said: Vec<(u64, u64)>,
}

impl Kit {
    /// Binds a socket on 127.0.0.1 and starts `command` for it.
    pub fn start(
        command: &[String],
        timeout: Duration,
        name: Option<&str>,
    ) -> Result<Kit, NotPassed> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| NotPassed::Skip(format!("the kit cannot open a UDP socket: {e}")))?;
        let addr = socket
            .local_addr()
            .map_err(|e| NotPassed::Skip(format!("the kit's socket has no address: {e}")))?;
        let child = ChildClient::start(command, addr).map_err(|e| {
            NotPassed::fail(
                "the client's command starts",
                format!("it could not be started: {e}"),
            )
        })?;
        let mut kit = Kit {
            socket,
            addr,
            child,
            timeout,
            transcript: Vec::new(),
            received: Vec::new(),
            joined: None,
            events: Vec::new(),
            last: 0,
            echo: true,
            said: Vec::new(),
        };
        if let Some(name) = name {
            kit.type_line(name.as_bytes());
        }
        Ok(kit)
    }

    /// Types a line into the client's stdin.
    pub fn type_line(&mut self, line: &[u8]) {
        self.child.type_line(line);
    }

    /// What the client printed so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.child.stdout()
    }

    /// The next datagram from the client before `deadline`, recorded.
    fn recv(&mut self, deadline: Instant) -> Option<Incoming> {
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            let _ = self.socket.set_read_timeout(Some(wait));
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let bytes = buf[..n].to_vec();
                    self.transcript.push(TranscriptLine {
                        direction: Direction::Sent,
                        who: "client".to_owned(),
                        bytes: bytes.clone(),
                    });
                    self.received.push(bytes.clone());
                    let (key, body) = split_key_prefix(&bytes);
                    let msg = ClientMsg::parse(body).ok();
                    return Some(Incoming {
                        bytes,
                        from,
                        key,
                        msg,
                    });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // An ICMP error from an earlier send: keep listening.
                Err(e) => log::debug!("kit socket: {e}"),
            }
        }
    }

    /// Sends `bytes` to `to` as is, recorded.
    pub fn send_raw(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.transcript.push(TranscriptLine {
            direction: Direction::Received,
            who: "client".to_owned(),
            bytes: bytes.to_vec(),
        });
        if let Err(e) = self.socket.send_to(bytes, to) {
            log::debug!("kit send: {e}");
        }
    }

    /// Sends a structured message to the joined client (behind its key),
    /// or a classic line (with its line ending).
    pub fn send_msg(&mut self, msg: &RelayMsg) {
        let Some(joined) = self.joined.clone() else {
            return;
        };
        let bytes = match joined.dialect {
            Dialect::Structured { client, .. } => match client {
                Some(key) => key.prefixed(&msg.encode()),
                None => msg.encode(),
            },
            Dialect::Classic { ending } => {
                let Some(line) = udpchat_proto::classic::render(msg, udpchat_proto::Lang::En)
                else {
                    return;
                };
                let mut bytes = line.into_bytes();
                if ending != LineEnding::Bare {
                    bytes.push(b'\n');
                }
                bytes
            }
        };
        self.send_raw(joined.from, &bytes);
    }

    /// The body `body` (written out by hand: proto refuses to build what a
    /// misbehaving relay sends) to the joined client, behind its key.
    pub fn send_body(&mut self, body: &[u8]) {
        let Some(joined) = self.joined.clone() else {
            return;
        };
        let bytes = match joined.dialect {
            Dialect::Structured {
                client: Some(key), ..
            } => key.prefixed(body),
            _ => body.to_vec(),
        };
        self.send_raw(joined.from, &bytes);
    }

    /// Numbers a room event and sends it live (a classic client gets its line).
    pub fn event(&mut self, event: RoomEvent) -> u64 {
        let seq = self.next_seq();
        self.events.push((seq, event.clone()));
        self.send_msg(&RelayMsg::Event {
            seq,
            origin: Origin::Live,
            ago: None,
            event,
        });
        seq
    }

    /// Numbers a room event without sending it (it is "lost").
    pub fn lose_event(&mut self, event: RoomEvent) -> u64 {
        let seq = self.next_seq();
        self.events.push((seq, event));
        seq
    }

    /// Takes a number for an event the kit sends by hand (a `RESEND` of
    /// it is answered with `GONE`).
    pub fn take_seq(&mut self) -> u64 {
        self.next_seq()
    }

    fn next_seq(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// The newest event number.
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// The client's join, answered as a relay would: `N` gets exactly `OK`
    /// (with the `N`'s line ending); a padded cookie-less `HELLO` gets a
    /// `COOKIE`, the `HELLO` echoing it a `WELCOME` behind the client's key
    /// with the kit's key, then the `JOIN` event.
    pub fn join(&mut self) -> Result<Joined, JoinFault> {
        let first_wait = self.timeout * 2;
        let deadline = Instant::now() + first_wait;
        let mut first = None;
        while first.is_none() && Instant::now() < deadline {
            first = self.recv(deadline.min(Instant::now() + Duration::from_millis(100)));
            // A client that exited sends nothing more: no need to wait.
            if first.is_none() && self.child.exited().is_some() {
                first = self.recv(Instant::now() + Duration::from_millis(50));
                break;
            }
        }
        let Some(first) = first else {
            return Err(JoinFault::First(NotPassed::fail(
                "the client sends N <nick> or HELLO to the relay address it was given ({addr} in its arguments, or UDPCHAT_RELAY)",
                format!(
                    "nothing arrived within {first_wait:?}{}",
                    self.child.exit_note()
                ),
            )));
        };
        self.answer_join(first, RELAY_KEY)
    }

    fn answer_join(&mut self, first: Incoming, relay_key: u64) -> Result<Joined, JoinFault> {
        match &first.msg {
            Some(ClientMsg::Join(nick, _)) => {
                let (_, ending) = strip_line_ending(&first.bytes);
                let mut ok = b"OK".to_vec();
                if ending != LineEnding::Bare {
                    ok.push(b'\n');
                }
                self.send_raw(first.from, &ok);
                let joined = Joined {
                    nick: nick.as_str().to_owned(),
                    from: first.from,
                    dialect: Dialect::Classic { ending },
                };
                self.joined = Some(joined.clone());
                self.event(RoomEvent::Join(nick.clone()));
                Ok(joined)
            }
            Some(ClientMsg::Hello { cookie: None, .. }) => {
                if first.bytes.len() < MIN_HELLO_LEN {
                    return Err(JoinFault::First(NotPassed::fail(
                        format!("a HELLO without a cookie is padded to at least {MIN_HELLO_LEN} bytes (section 8, Joining); a relay drops a shorter one"),
                        format!("it was {} bytes: {}", first.bytes.len(), show_bytes(&first.bytes, 100)),
                    )));
                }
                self.cookie_round_trip(first.from, relay_key)
            }
            _ => Err(JoinFault::First(NotPassed::fail(
                "the client's first datagram is N <nick> (classic) or a cookie-less HELLO (structured)",
                format!("it sent {}", show_bytes(&first.bytes, 100)),
            ))),
        }
    }

    fn cookie_round_trip(&mut self, from: SocketAddr, relay_key: u64) -> Result<Joined, JoinFault> {
        let cookie = RelayMsg::Cookie(Cookie(COOKIE)).encode();
        self.send_raw(from, &cookie);
        let deadline = Instant::now() + self.timeout.max(Duration::from_secs(3));
        loop {
            let Some(next) = self.recv(deadline) else {
                return Err(JoinFault::Cookie(NotPassed::fail(
                    "after COOKIE, the client sends HELLO with that cookie and key=<its key> (section 8, Joining)",
                    "no HELLO with a cookie arrived",
                )));
            };
            match next.msg {
                Some(ClientMsg::Hello { cookie: None, .. }) => {
                    // A retransmission from before our COOKIE arrived.
                    self.send_raw(next.from, &cookie);
                }
                Some(ClientMsg::Hello {
                    cookie: Some(c),
                    key,
                    nick: hello_nick,
                    ..
                }) => {
                    let expected = "the HELLO echoes the COOKIE as received, carries key=<16 hex digits>, and comes from the address of the first HELLO (section 8, Joining; Keyed datagrams)";
                    if c != Cookie(COOKIE) {
                        return Err(JoinFault::Cookie(NotPassed::fail(
                            expected,
                            format!("the cookie was {c} instead of {}", Cookie(COOKIE)),
                        )));
                    }
                    if next.from != from {
                        return Err(JoinFault::Cookie(NotPassed::fail(
                            expected,
                            format!("it came from {} instead of {from}", next.from),
                        )));
                    }
                    let Some(client_key) = key else {
                        return Err(JoinFault::Cookie(NotPassed::fail(
                            expected,
                            "it had no key= (a relay answers key-required)",
                        )));
                    };
                    let relay = SessionKey::from_u64(relay_key);
                    let joined = Joined {
                        nick: hello_nick.as_str().to_owned(),
                        from,
                        dialect: Dialect::Structured {
                            client: Some(client_key),
                            relay,
                        },
                    };
                    self.joined = Some(joined.clone());
                    let last = self.last_seq();
                    self.send_msg(&RelayMsg::Welcome {
                        version: Token::new(VERSION).expect("valid"),
                        nick: hello_nick.clone(),
                        last_seq: last,
                        ping_interval: 15,
                        idle_timeout: 60,
                        history_from: Some(last + 1),
                        resume: Some(
                            Token::new("00000000000000015c0a1e7d9b3f4a21").expect("valid"),
                        ),
                        key: Some(relay),
                    });
                    self.event(RoomEvent::Join(hello_nick));
                    return Ok(joined);
                }
                _ => return Err(JoinFault::Cookie(NotPassed::fail(
                    "after COOKIE, the client sends HELLO with that cookie (section 8, Joining)",
                    format!("it sent {}", show_bytes(&next.bytes, 100)),
                ))),
            }
        }
    }

    /// Joins, for checks that need a joined client.
    pub fn joined(&mut self) -> Result<Joined, NotPassed> {
        self.join().map_err(JoinFault::into_not_passed)
    }

    /// Whether the client joined in the structured dialect.
    pub fn structured(&self) -> bool {
        matches!(
            self.joined.as_ref().map(|j| j.dialect),
            Some(Dialect::Structured { .. })
        )
    }

    /// Waits until `deadline` for a datagram from the client satisfying
    /// `want`, answering the rest as a relay would.
    pub fn wait_for(
        &mut self,
        deadline: Instant,
        mut want: impl FnMut(&Incoming) -> bool,
    ) -> Option<Incoming> {
        while let Some(incoming) = self.recv(deadline) {
            if want(&incoming) {
                return Some(incoming);
            }
            self.serve(&incoming);
        }
        None
    }

    /// Answers `incoming` as a relay would: `PING`, `RESEND`, chat echoes.
    pub fn serve(&mut self, incoming: &Incoming) {
        let Some(joined) = self.joined.clone() else {
            return;
        };
        let Some(msg) = incoming.msg.clone() else {
            return;
        };
        let structured = self.structured();
        match msg {
            ClientMsg::Ping(token) => self.send_msg(&RelayMsg::Pong {
                last_seq: self.last_seq(),
                token,
            }),
            ClientMsg::Resend { from, to } if structured => {
                let to = to.min(self.last_seq());
                for seq in from.max(1)..=to {
                    match self.events.iter().find(|(s, _)| *s == seq).cloned() {
                        Some((seq, event)) => self.send_msg(&RelayMsg::Event {
                            seq,
                            origin: Origin::Resend,
                            ago: Some(0),
                            event,
                        }),
                        None => self.send_msg(&RelayMsg::Gone { from: seq, to: seq }),
                    }
                }
                if from > self.last_seq() {
                    self.send_msg(&RelayMsg::Pong {
                        last_seq: self.last_seq(),
                        token: None,
                    });
                }
            }
            ClientMsg::Say { id, text } if self.echo => {
                match self.said.iter().find(|(i, _)| *i == id).copied() {
                    Some((_, seq)) => {
                        if let Some((_, event)) =
                            self.events.iter().find(|(s, _)| *s == seq).cloned()
                        {
                            self.send_msg(&RelayMsg::Event {
                                seq,
                                origin: Origin::Resend,
                                ago: Some(0),
                                event,
                            });
                        }
                    }
                    None => {
                        let seq = self.event(RoomEvent::Chat {
                            nick: nick(&joined.nick),
                            text,
                        });
                        self.said.push((id, seq));
                    }
                }
            }
            ClientMsg::Chat { text, .. } if self.echo => {
                self.event(RoomEvent::Chat {
                    nick: nick(&joined.nick),
                    text,
                });
            }
            _ => {}
        }
    }

    /// Serves the client until `deadline` (nothing awaited).
    pub fn serve_until(&mut self, deadline: Instant) {
        let _ = self.wait_for(deadline, |_| false);
    }

    /// A relay restart: the socket is closed and bound again on the same
    /// port, with no members. The next keyed datagram from the client gets
    /// an unprefixed `ERROR not-joined`, as from a relay that forgot it.
    pub fn restart(&mut self) -> Result<(), NotPassed> {
        let port_socket = UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| NotPassed::Skip(format!("the kit cannot open a UDP socket: {e}")))?;
        self.socket = port_socket;
        self.socket = UdpSocket::bind(self.addr).map_err(|e| {
            NotPassed::Skip(format!(
                "the kit cannot bind {} again after closing it: {e}",
                self.addr
            ))
        })?;
        self.joined = None;
        self.events.clear();
        self.last = 0;
        self.said.clear();
        Ok(())
    }

    /// After [`Kit::restart`]: answers the client's datagrams with
    /// `ERROR not-joined` until it starts a join, then answers that join.
    pub fn rejoin(&mut self, deadline: Instant) -> Result<Joined, NotPassed> {
        let not_joined = RelayMsg::Error {
            code: ErrorCode::NotJoined,
            reason: text(ErrorCode::NotJoined.reason(udpchat_proto::Lang::En)),
        }
        .encode();
        loop {
            let Some(incoming) = self.recv(deadline) else {
                return Err(NotPassed::fail(
                    "a client that gets ERROR not-joined from a restarted relay joins again (section 8, Sequence numbers; section 10, Session keys)",
                    "no HELLO or N arrived after ERROR not-joined",
                ));
            };
            match incoming.msg {
                Some(ClientMsg::Join(..)) | Some(ClientMsg::Hello { cookie: None, .. }) => {
                    return self
                        .answer_join(incoming, RELAY_KEY_AFTER_RESTART)
                        .map_err(JoinFault::into_not_passed);
                }
                Some(ClientMsg::Hello { .. }) => {
                    // A cookie from the old run: a fresh COOKIE, as a
                    // relay answers a stale one.
                    return self
                        .cookie_round_trip(incoming.from, RELAY_KEY_AFTER_RESTART)
                        .map_err(JoinFault::into_not_passed);
                }
                _ => self.send_raw(incoming.from, &not_joined),
            }
        }
    }
}

/// The nickname `s` (the kit's own, or one the client joined with).
pub fn nick(s: &str) -> Nick {
    crate::lines::nick(s)
}

/// The text `s` (the kit's own).
pub fn text(s: &str) -> Text {
    crate::lines::text(s)
}
