//! What a check works with: fresh sockets ([`Ctx::probe`]), unique
//! nicknames, classic members ([`Ctx::join`]), waits with deadlines, and a
//! barrier that makes "nothing arrived" a fact instead of a guess.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use udpchat_proto::{
    classic, ClientMsg, ErrorCode, LineEnding, RelayMsg, SessionKey, Token, MIN_HELLO_LEN, VERSION,
};

use crate::check::NotPassed;
use crate::lines;
use crate::probe::{show_bytes, Pacer, Probe, Received, Transcript};

/// How long the kit keeps retrying a join the relay refused with
/// `rate-limited` (a relay with our default per-IP join limit: 8, then 1 a
/// second, PROTOCOL.md section 9).
const JOIN_RETRY_FOR: Duration = Duration::from_secs(12);

/// A structured member's session keys (PROTOCOL.md section 8, *Keyed
/// datagrams*).
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    /// Ours: the relay prefixes what it sends us with it.
    pub mine: SessionKey,
    /// The relay's, from `WELCOME`: we prefix what we send with it.
    pub relay: Option<SessionKey>,
}

/// What a structured member's `WELCOME` said.
#[derive(Debug, Clone, Copy)]
pub struct Welcome {
    /// The join point.
    pub last_seq: u64,
    /// The first history event (none before `last_seq + 1` if absent).
    pub history_from: Option<u64>,
}

/// A member the kit joined (classic, or structured with session keys):
/// its socket and its nickname.
#[derive(Clone)]
pub struct Member {
    /// Its socket.
    pub probe: Rc<Probe>,
    nick: Rc<RefCell<String>>,
    keys: Rc<Cell<Option<Keys>>>,
}

impl Member {
    /// Its session keys, if it joined in the structured dialect.
    pub fn keys(&self) -> Option<Keys> {
        self.keys.get()
    }

    /// Sends `bytes`, behind the relay's key if the member has one.
    pub fn send(&self, bytes: &[u8]) {
        match self.keys().and_then(|k| k.relay) {
            Some(key) => self.probe.send(&key.prefixed(bytes)),
            None => self.probe.send(bytes),
        }
    }

    /// Sends `msg` (encoded by proto), behind the relay's key if any.
    pub fn send_msg(&self, msg: &ClientMsg) {
        self.send(&msg.encode());
    }

    /// A datagram for this member as a structured message: behind its own
    /// key if it has one (`None` if the prefix is missing or wrong).
    pub fn read(&self, bytes: &[u8]) -> Option<RelayMsg> {
        lines::structured(bytes, self.keys().map(|k| k.mine))
    }

    /// Its nickname now.
    pub fn nick(&self) -> String {
        self.nick.borrow().clone()
    }

    /// Records a new nickname (after `NICK`).
    pub fn renamed(&self, new: &str) {
        *self.nick.borrow_mut() = new.to_owned();
        self.probe.set_who(new);
    }

    /// Sends `M <nick> <text>`, built by proto (`text` must be valid).
    pub fn say(&self, text: &str) {
        let msg = ClientMsg::Chat {
            nick: lines::nick(&self.nick()),
            text: lines::text(text),
        };
        self.send(&msg.encode());
    }

    /// Sends `M <nick> ` followed by `raw` as is (texts proto would refuse
    /// to build: too long, control characters).
    pub fn say_raw(&self, raw: &[u8]) {
        let mut bytes = format!("M {} ", self.nick()).into_bytes();
        bytes.extend_from_slice(raw);
        self.send(&bytes);
    }
}

/// What every check of one run shares: the pacing of all sends, and the
/// tag and counter that make every nickname of the run unique.
#[derive(Debug)]
pub struct RunState {
    pacer: Rc<Pacer>,
    tag: String,
    counter: Cell<u32>,
}

impl RunState {
    /// The state of a new run. `tag` makes this run's nicknames differ
    /// from an earlier run's (whose members a relay may still hold).
    pub fn new(tag: &str) -> Rc<RunState> {
        Rc::new(RunState {
            pacer: Rc::new(Pacer::new()),
            tag: tag.to_owned(),
            counter: Cell::new(0),
        })
    }

    /// Datagrams sent so far in the run.
    pub fn sent(&self) -> u64 {
        self.pacer.sent()
    }

    fn next(&self) -> u32 {
        self.counter.set(self.counter.get() + 1);
        self.counter.get()
    }
}

/// The state one check runs with. Made fresh for every check by the runner.
pub struct Ctx {
    /// The relay under test.
    pub target: SocketAddr,
    /// How long to wait for each expected reply.
    pub timeout: Duration,
    run: Rc<RunState>,
    transcript: Rc<Transcript>,
    received: Rc<RefCell<Vec<Received>>>,
    members: Vec<Member>,
}

impl Ctx {
    /// A context for one check of the run `run`.
    pub fn new(target: SocketAddr, timeout: Duration, run: &Rc<RunState>) -> Ctx {
        Ctx {
            target,
            timeout,
            run: Rc::clone(run),
            transcript: Rc::new(Transcript::default()),
            received: Rc::new(RefCell::new(Vec::new())),
            members: Vec::new(),
        }
    }

    /// A nickname no other check of this run uses: `role`, the run's tag
    /// and a number (e.g. `ann7k2q3`).
    pub fn fresh_nick(&mut self, role: &str) -> String {
        format!("{role}{}{}", self.run.tag, self.run.next())
    }

    /// A short string unique within the run (for marker texts, tokens).
    pub fn unique(&mut self) -> String {
        format!("{}{}", self.run.tag, self.run.next())
    }

    /// A fresh socket on an ephemeral port, playing `who`.
    pub fn probe(&self, who: &str) -> Result<Rc<Probe>, NotPassed> {
        Probe::new(
            self.target,
            who,
            Rc::clone(&self.run.pacer),
            Rc::clone(&self.transcript),
            Rc::clone(&self.received),
        )
        .map(Rc::new)
        .map_err(|e| NotPassed::Skip(format!("the kit cannot open a UDP socket: {e}")))
    }

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
                let member = Member {
                    probe,
                    nick: Rc::new(RefCell::new(nick.to_owned())),
                    keys: Rc::new(Cell::new(None)),
                };
                self.members.push(member.clone());
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
        let hello = |cookie| {
            let mut bytes = ClientMsg::Hello {
                version: Token::new(VERSION).expect("valid"),
                nick: lines::nick(&nick),
                cookie,
                since: None,
                resume: None,
                key: Some(mine),
                code: None,
            }
            .encode();
            if cookie.is_none() && bytes.len() < MIN_HELLO_LEN {
                bytes.push(b' ');
                bytes.resize(MIN_HELLO_LEN, b'=');
            }
            bytes
        };
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
                    let member = Member {
                        probe,
                        nick: Rc::new(RefCell::new(nick.clone())),
                        keys: Rc::new(Cell::new(Some(Keys { mine, relay: key }))),
                    };
                    self.members.push(member.clone());
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

    /// Waits for a structured message to `member` (behind its key)
    /// satisfying `want`; `what` says what was expected.
    pub fn expect_msg(
        &self,
        member: &Member,
        what: &str,
        want: impl Fn(&RelayMsg) -> bool,
    ) -> Result<RelayMsg, NotPassed> {
        let (found, before) = member
            .probe
            .recv_until(self.timeout, |b| member.read(b).is_some_and(|m| want(&m)));
        found.and_then(|b| member.read(&b)).ok_or_else(|| {
            NotPassed::fail(
                format!("{} receives {what}", member.nick()),
                format!(
                    "it did not arrive within {:?}{}",
                    self.timeout,
                    seen(&before)
                ),
            )
        })
    }

    /// Forgets `member` for the clean-up (it has left already).
    pub fn forget(&mut self, member: &Member) {
        self.members
            .retain(|m| !Rc::ptr_eq(&m.probe, &member.probe));
    }

    /// Waits for a datagram on `probe` satisfying `want`, skipping others.
    /// `what` says what was expected, for the failure.
    pub fn expect(
        &self,
        probe: &Probe,
        what: &str,
        want: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>, NotPassed> {
        let (found, before) = probe.recv_until(self.timeout, want);
        found.ok_or_else(|| {
            NotPassed::fail(
                format!("{} receives {what}", probe.who()),
                format!(
                    "it did not arrive within {:?}{}",
                    self.timeout,
                    seen(&before)
                ),
            )
        })
    }

    /// Waits for the next chat line from `speaker` on `observer` and
    /// requires it to be exactly `speaker: text` (with the observer's line
    /// ending). Fails at once on a different line from that speaker, so a
    /// relay that changes the text is reported with what it sent.
    pub fn expect_chat(
        &self,
        observer: &Member,
        speaker: &str,
        text: &str,
        ending: LineEnding,
    ) -> Result<(), NotPassed> {
        let prefix = format!("{speaker}: ");
        let want = lines::chat(speaker, text);
        let expected = format!(
            "{} receives {}",
            observer.nick(),
            show_bytes(want[0].as_bytes(), 100)
        );
        let (found, before) = observer
            .probe
            .recv_until(self.timeout, |b| b.starts_with(prefix.as_bytes()));
        match found {
            Some(line) if lines::is_line(&line, &want, ending) => Ok(()),
            Some(line) => Err(NotPassed::fail(
                expected,
                format!("it received {} instead", show_bytes(&line, 120)),
            )),
            None => Err(NotPassed::fail(
                expected,
                format!(
                    "no line from {speaker} arrived within {:?}{}",
                    self.timeout,
                    seen(&before)
                ),
            )),
        }
    }

    /// The barrier: `speaker` says a fresh marker text and every observer
    /// waits for it. The relay handles datagrams in order, so whatever an
    /// earlier datagram made it send has arrived by then: returns, per
    /// observer, the datagrams that came before the marker. Fails if the
    /// marker does not come (the relay stopped relaying).
    pub fn barrier(
        &mut self,
        speaker: &Member,
        observers: &[&Member],
    ) -> Result<Vec<Vec<Vec<u8>>>, NotPassed> {
        let marker = format!("marker {}", self.unique());
        speaker.say(&marker);
        let want = lines::chat(&speaker.nick(), &marker);
        let mut out = Vec::new();
        for observer in observers {
            let is_marker = |b: &[u8]| {
                lines::is_line_any_ending(b, &want)
                    || matches!(observer.read(b), Some(RelayMsg::Event {
                        event: udpchat_proto::RoomEvent::Chat { nick, text }, ..
                    }) if nick.as_str() == speaker.nick() && text.as_str() == marker)
            };
            let (found, before) = observer.probe.recv_until(self.timeout, is_marker);
            if found.is_none() {
                return Err(NotPassed::fail(
                    format!(
                        "the relay still relays an ordinary message: {} receives {}",
                        observer.nick(),
                        show_bytes(want[0].as_bytes(), 60)
                    ),
                    format!(
                        "it did not arrive within {:?}{}",
                        self.timeout,
                        seen(&before)
                    ),
                ));
            }
            out.push(before);
        }
        Ok(out)
    }

    /// Sends `Q` for every member the check left joined, so the next check
    /// starts with a room free of them (a relay limits members per IP
    /// address). Called by the runner.
    pub fn clean_up(&mut self) {
        for member in std::mem::take(&mut self.members) {
            let quit = ClientMsg::Quit(lines::nick(&member.nick()), None).encode();
            member.send(&quit);
        }
    }

    /// The transcript of the check so far (taken).
    pub fn take_transcript(&self) -> Vec<crate::probe::TranscriptLine> {
        self.transcript.take()
    }

    /// Every datagram received during the check (taken).
    pub fn take_received(&self) -> Vec<Received> {
        std::mem::take(&mut self.received.borrow_mut())
    }
}

/// 64 bits that differ from call to call and run to run (not secret: a
/// session key for a test member).
fn random_u64(salt: &str) -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    RandomState::new().hash_one((Instant::now(), salt))
}

/// `; before it: "..." "..."`, or nothing.
pub fn seen(before: &[Vec<u8>]) -> String {
    if before.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = before.iter().take(4).map(|b| show_bytes(b, 60)).collect();
    let more = if before.len() > 4 {
        format!(" and {} more", before.len() - 4)
    } else {
        String::new()
    };
    format!("; it received {}{more}", shown.join(", "))
}
