//! The whole-room oracle: one traffic generator and one set of invariant
//! checks, shared by the cargo-fuzz target `fuzz/fuzz_targets/room.rs`, the
//! stable test that replays `fuzz/corpus/room/` (corpus_tests.rs)
//! and the room's own proptest (at the bottom of this file, which generates
//! `Vec<Step>` and runs them through [`Harness::step`]). Compiled with the
//! `fuzzing` feature, and for this crate's tests.
//!
//! An input is decoded with `arbitrary` into a sequence of [`Step`]s:
//! datagrams from one of [`SOURCES`] addresses (mostly built from templates
//! of valid commands with fuzzed fields, sometimes raw bytes), time passing,
//! timers, unreachable reports, and operator actions. After every step
//! [`Harness::step`] checks the room's invariants and panics, with a message
//! naming the invariant, if one breaks:
//!
//! - no address acts under another member's nickname, nobody but the sender
//!   joins, leaves or renames because of a datagram;
//! - the member table is one-to-one and within `max_clients`; the history
//!   within its capacity;
//! - every outgoing datagram is valid UTF-8, at most `MAX_DATAGRAM` bytes and
//!   free of control characters (one trailing `\n` allowed); structured
//!   members get datagrams that parse as `RelayMsg`, without a newline;
//!   classic members get lines ending as they asked (a `HELLO` is answered
//!   in the structured dialect whoever sends it);
//! - nothing is sent to an address that is neither the sender nor a member;
//!   a `COOKIE` answer is never larger than its request;
//! - a datagram relays at most one chat plus the `SAY`s it releases from
//!   its sender's hold (at most `SAY_HOLD_MAX + 1` wait); a member's `SAY`
//!   is relayed exactly once per id (held, then relayed: what a step relays
//!   plus what stays held equals what was held plus the new id), and a
//!   `PMSG` delivered at most once per id, within the room's window of
//!   [`ID_WINDOW`] recent ids (checked against a model of that window);
//! - room events are numbered 1, 2, 3, ... without gaps; resends and history
//!   replays only carry events the bounded history can still hold; the
//!   datagrams one step produces are bounded;
//! - session keys: sources with an even index join with `key=` (their
//!   fixed [`source_key`]); a datagram from such a keyed member goes behind
//!   its relay key (read from the room, as a client reads it from
//!   `WELCOME`) unless the step's source byte is 128 or more, or it is a
//!   `HELLO` or raw bytes. Every datagram to a keyed member but `COOKIE`
//!   carries its client key, no datagram carries another key, and a
//!   datagram from a keyed member's address without its relay key (but a
//!   `HELLO`) sends nothing, announces nothing, and leaves the member and
//!   its rate bucket as they were.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use udpchat_proto::{
    check_relay_datagram, split_key_prefix, ClientMsg, ErrorCode, LeaveReason, LineEnding, Nick,
    Origin, RelayMsg, RoomEvent, SessionKey, ID_WINDOW, MAX_RESEND,
};

use crate::{Config, Dialect, Event, Outputs, Room};

/// Steps decoded from one input at most (keeps each run short).
pub const MAX_STEPS: usize = 256;

/// The room configuration the harness uses: small limits so the fuzzer
/// reaches them.
pub fn config() -> Config {
    Config {
        max_clients: 4,
        idle_timeout: Duration::from_secs(60),
        classic_idle_timeout: Duration::from_secs(600),
        ping_interval: Duration::from_secs(15),
        classic: true,
        lang: udpchat_proto::Lang::En,
        rate_burst: 20,
        rate_per_sec: 5,
        // The three SOURCES on 127.0.0.1 may all be members; a fourth
        // membership there (a take-over from another IP) is refused.
        max_per_ip: 3,
        stranger_replies_per_sec: 100,
        history: 16,
        history_on_join: 4,
        // Below max_clients, so both sides of the limit are reached.
        announce_limit: 3,
        // Reachable: SOURCES share IP addresses.
        classic_reclaim_after: Duration::from_secs(30),
        unreachable_grace: Duration::from_secs(10),
        // Keyless members too, so the oracle covers both kinds of
        // structured member (the corpus has keyless joins); the refusal
        // of a keyless join is a unit test (session_tests.rs).
        allow_keyless: true,
        // The built-in names, and one the pool's `ｄａｖｅ` looks like, so
        // the fuzzer reaches `nick-reserved`.
        reserved: {
            let mut reserved = Config::default().reserved;
            reserved.push(Nick::new("dave").expect("valid"));
            reserved
        },
        // Moderation is reached through operator steps only.
        locked: false,
        join_code: None,
        slow_mode: Duration::ZERO,
        moderated: false,
        // A roster name, and a grace the fuzzer's clock passes.
        roster: vec![Nick::new("alice").expect("valid")],
        late_after: Duration::from_secs(60),
    }
}

/// The source addresses datagrams come from (never used for real I/O).
pub const SOURCES: [SocketAddr; 6] = [
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 1001),
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 1002),
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 1003),
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 1001),
    SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::LOCALHOST), 1001),
    SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::LOCALHOST), 1002),
];

/// The session key `HELLO`s from `SOURCES[i]` carry: sources with an even
/// index join keyed, the others without a key.
pub fn source_key(addr: SocketAddr) -> Option<SessionKey> {
    let i = SOURCES.iter().position(|s| *s == addr)?;
    (i % 2 == 0).then(|| SessionKey::from_u64(0x5eed_0000_0000_0000 | i as u64))
}

const NICKS: [&str; 11] = [
    "alice",
    "Alice",
    "bob",
    "小明",
    "ALICE",
    "carol",
    "d",
    "ｄａｖｅ",
    // Look-alikes: of alice (Cyrillic а), and a pair alike only in capitals.
    "\u{430}lice",
    "KIM",
    "\u{41a}IM",
];
const TEXTS: [&str; 8] = [
    "hi",
    "/me waves",
    "/me left",
    "  spaced  out ",
    "你好 👋",
    "a",
    "M bob forged",
    "x y z",
];

/// A nickname field: usually one of a small pool (so members collide),
/// sometimes anything.
#[derive(Debug, Arbitrary)]
pub enum NickField {
    /// One of the pool.
    Pool(u8),
    /// Any string.
    Raw(String),
    /// `n` copies of a character (long nicknames, multibyte ones).
    Repeat(char, u8),
}

impl NickField {
    fn render(&self) -> String {
        match self {
            NickField::Pool(i) => NICKS[*i as usize % NICKS.len()].to_owned(),
            NickField::Raw(s) => s.clone(),
            NickField::Repeat(c, n) => std::iter::repeat_n(*c, *n as usize % 80).collect(),
        }
    }
}

/// A message text field.
#[derive(Debug, Arbitrary)]
pub enum TextField {
    /// One of the pool.
    Pool(u8),
    /// Any string.
    Raw(String),
    /// `n` copies of a character (near and over the 800-byte limit).
    Repeat(char, u16),
}

impl TextField {
    fn render(&self) -> String {
        match self {
            TextField::Pool(i) => TEXTS[*i as usize % TEXTS.len()].to_owned(),
            TextField::Raw(s) => s.clone(),
            TextField::Repeat(c, n) => std::iter::repeat_n(*c, *n as usize % 1100).collect(),
        }
    }
}

/// How a datagram ends.
#[derive(Debug, Arbitrary)]
pub enum Ending {
    /// Nothing.
    Bare,
    /// `\n`.
    Newline,
    /// `\r\n`.
    CrLf,
}

impl Ending {
    fn as_str(&self) -> &'static str {
        match self {
            Ending::Bare => "",
            Ending::Newline => "\n",
            Ending::CrLf => "\r\n",
        }
    }
}

/// A sequence-number field: small numbers mostly, with the edges.
#[derive(Debug, Arbitrary)]
pub enum Number {
    /// 0..=255.
    Small(u8),
    /// Anything.
    Any(u64),
    /// `u64::MAX`.
    Max,
}

impl Number {
    fn value(&self) -> u64 {
        match self {
            Number::Small(n) => u64::from(*n),
            Number::Any(n) => *n,
            Number::Max => u64::MAX,
        }
    }
}

/// The cookie a `HELLO` carries.
#[derive(Debug, Arbitrary)]
pub enum CookieField {
    /// `-` plus padding of the given length (short ones must be ignored).
    None(u8),
    /// The last cookie the relay sent this address (or `-` if none yet).
    Learned,
    /// The last cookie the relay sent another address.
    Stolen(u8),
    /// Any 64-bit value.
    Any(u64),
}

/// A datagram body, mostly shaped like a command.
#[derive(Debug, Arbitrary)]
pub enum Payload {
    /// `N <nick>`
    Join(NickField, Ending),
    /// `M <nick> <text>`
    Chat(NickField, TextField, Ending),
    /// `Q <nick>`
    Quit(NickField, Ending),
    /// `WHO`
    Who(Ending),
    /// `MSG <to> <text>`
    Msg(NickField, TextField, Ending),
    /// `PING [<token>]`
    Ping(Option<String>),
    /// `NICK <new>`
    Rename(NickField),
    /// `HELLO <version> <nick> <cookie>`; the bool picks a wrong version.
    Hello(NickField, CookieField, bool),
    /// `PMSG <id> <to> <text>`
    Pmsg(Number, NickField, TextField),
    /// `ACK <pid>`
    Ack(Number),
    /// `RESEND <from> <to>`
    Resend(Number, Number),
    /// Anything at all.
    Raw(Vec<u8>),
    /// A verb and raw bytes after it.
    VerbThenRaw(u8, Vec<u8>),
    /// `SAY <id> <text>`
    Say(Number, TextField, Ending),
    /// `HAND [<question>]`, or `H [<question>]` with the bool.
    Hand(bool, Option<TextField>, Ending),
    /// `SEEN <seq>`
    Seen(Number),
}

/// One thing that happens to the room.
#[derive(Debug, Arbitrary)]
pub enum Step {
    /// A datagram from `SOURCES[from % 6]`; from a keyed member, behind
    /// its relay key unless `from` is 128 or more (forged).
    Datagram(u8, Payload),
    /// Time passes (milliseconds), then the timers run if due.
    Advance(u16),
    /// A long time passes (seconds), then the timers run if due.
    Jump(u16),
    /// Time jumps to the room's next timer and the timers run.
    NextTimer,
    /// The OS reports `SOURCES[i % 6]` unreachable.
    Unreachable(u8),
    /// Operator console line.
    Host(TextField),
    /// Operator `/kick`.
    Kick(NickField, String),
    /// Operator `/quit` (the room stays usable: members are removed).
    Shutdown,
    /// Operator `/ban` of `SOURCES[i % 6]`'s IP address (or of the
    /// nickname it holds, if the bool says so), for some seconds (0: until
    /// lifted).
    Ban(u8, bool, u16),
    /// Operator `/unban` of `SOURCES[i % 6]`'s IP address.
    Unban(u8),
    /// Operator `/mute` (0 seconds: until unmuted) or, with the bool,
    /// `/unmute`.
    Mute(NickField, u16, bool),
    /// Operator `/lock` (true) or `/unlock`.
    Lock(bool),
    /// Operator `/code`: one of a few codes, or none.
    Code(Option<u8>),
    /// Operator `/slow` (seconds, 0: off).
    Slow(u8),
    /// Operator `/next`: the first raised hand is called on.
    Next,
    /// Operator `/moderated on` (true) or `off`.
    Moderated(bool),
    /// Operator `/voice` (true) or `/devoice`.
    Voice(NickField, bool),
    /// Operator `/announce TEXT`.
    Announce(TextField),
}

/// The join codes the fuzzer's `/code` sets (its datagrams may carry them).
const CODES: [&str; 2] = ["a1", "B2"];

/// Runs one fuzz input. Panics if an invariant breaks.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut harness = Harness::new();
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        let Ok(step) = Step::arbitrary(&mut u) else {
            break;
        };
        harness.step(&step);
    }
}

/// A room plus what the checks need to remember between steps.
pub struct Harness {
    room: Room,
    now: Instant,
    out: Outputs,
    /// The last sequence number the room announced.
    last_seq: u64,
    /// The last cookie sent to each source.
    cookies: HashMap<SocketAddr, String>,
    /// Model of each member's window of recent `SAY`/`PMSG` ids.
    recent_ids: HashMap<SocketAddr, VecDeque<u64>>,
    /// The keys of the configuration's reserved names: no member's key.
    reserved: std::collections::HashSet<String>,
    /// Sources at a banned address, and the lock, before the step.
    banned_before: Vec<SocketAddr>,
    locked_before: bool,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

type Members = HashMap<SocketAddr, (Nick, Dialect)>;

impl Harness {
    /// A room with [`config`] and a fixed key.
    pub fn new() -> Harness {
        Harness::with_config(config())
    }

    /// A room with another configuration (the proptest uses tighter rate
    /// limits) and a fixed key.
    pub fn with_config(config: Config) -> Harness {
        let now = Instant::now();
        let reserved = config.reserved.iter().map(Nick::key).collect();
        Harness {
            reserved,
            room: Room::new(config, *b"fuzzing-room-key", now),
            now,
            out: Outputs::default(),
            last_seq: 0,
            cookies: HashMap::new(),
            recent_ids: HashMap::new(),
            banned_before: Vec::new(),
            locked_before: false,
        }
    }

    /// The room under test.
    pub fn room(&self) -> &Room {
        &self.room
    }

    fn members(&self) -> Members {
        let list = self.room.members();
        let mut map = HashMap::new();
        let mut keys = std::collections::HashSet::new();
        let mut looks = std::collections::HashSet::new();
        for (nick, addr, dialect) in list {
            assert!(
                keys.insert(nick.key()),
                "two members share the nickname {nick} (or look alike)"
            );
            assert!(
                looks.insert(nick.look_key()),
                "two members' nicknames look alike in the same case ({nick})"
            );
            assert!(
                !self.reserved.contains(&nick.key()),
                "a member holds the reserved name {nick}"
            );
            assert!(
                map.insert(addr, (nick, dialect)).is_none(),
                "address {addr} is listed twice"
            );
        }
        assert_eq!(
            map.len(),
            self.room.member_count(),
            "member_count() disagrees with members()"
        );
        assert!(
            map.len() <= self.room.config().max_clients,
            "{} members with max_clients {}",
            map.len(),
            self.room.config().max_clients
        );
        assert!(
            self.room.roster.is_one_to_one(),
            "the address and nickname tables disagree"
        );
        // Every raised hand is a member's, under its nickname, once.
        let hands = self.room.hands();
        let mut raised = std::collections::HashSet::new();
        for hand in &hands {
            assert!(raised.insert(hand.addr), "{} has two hands up", hand.addr);
            assert_eq!(
                map.get(&hand.addr).map(|(nick, _)| nick),
                Some(&hand.nick),
                "a hand is up for a non-member or under an old name"
            );
        }
        // Attendance: every member is here, and only members are.
        let here: std::collections::HashSet<String> = self
            .room
            .attendance(self.now)
            .into_iter()
            .filter(|r| r.here)
            .map(|r| r.nick.key())
            .collect();
        let members: std::collections::HashSet<String> =
            map.values().map(|(nick, _)| nick.key()).collect();
        assert_eq!(here, members, "attendance disagrees with the roster");
        assert!(
            self.room.history.len() <= self.room.config().history,
            "{} events held with history {}",
            self.room.history.len(),
            self.room.config().history
        );
        map
    }

    /// Moderation: nobody joins from a banned address (and a ban leaves
    /// no member at its address), the lock lets no membership begin,
    /// nothing a muted member says reaches the room.
    fn check_moderation(&self, step: &Step, before: &Members, after: &Members) {
        let (banned_before, locked_before) = (&self.banned_before, self.locked_before);
        let now_ms = self.room.ms_at(self.now);
        for addr in after.keys() {
            let banned = self.room.moderation.check_banned(*addr, now_ms).is_err();
            if matches!(step, Step::Ban(..)) {
                assert!(!banned, "{addr} is a member at a banned address");
            }
            if !before.contains_key(addr) {
                assert!(
                    !banned_before.contains(addr),
                    "{addr} joined from a banned address"
                );
            }
        }
        if locked_before && matches!(step, Step::Datagram(..)) {
            assert!(
                after.len() <= before.len(),
                "a membership began in a locked room"
            );
        }
        for event in &self.out.events {
            if let Event::Room {
                event: RoomEvent::Chat { nick, .. } | RoomEvent::Action { nick, .. },
                ..
            } = event
            {
                assert!(
                    self.room.moderation.check_muted(nick, now_ms).is_ok(),
                    "muted {nick} reached the room"
                );
                assert!(
                    self.room.voices.check(nick).is_ok(),
                    "{nick} without a voice reached a moderated room"
                );
            }
        }
    }

    /// Applies one step and checks every invariant.
    pub fn step(&mut self, step: &Step) {
        let before = self.members();
        self.banned_before = {
            let now_ms = self.room.ms_at(self.now);
            SOURCES
                .iter()
                .filter(|addr| self.room.moderation.check_banned(**addr, now_ms).is_err())
                .copied()
                .collect()
        };
        self.locked_before = self.room.is_locked();
        let muted_before: Vec<SocketAddr> = before
            .keys()
            .filter(|addr| self.room.roster.is_muted(addr))
            .copied()
            .collect();
        let held_before = self.held_says();
        let rate_limited_before = self.room.stats().rate_limited;
        self.out.clear();
        let mut sender = None;
        let mut request = Vec::new();
        // A datagram from a keyed member's address without its relay key
        // (not a HELLO): the member and its bucket, to compare.
        let mut unauthenticated = None;
        match step {
            Step::Datagram(source, payload) => {
                let from = SOURCES[*source as usize % SOURCES.len()];
                request = self.render(from, payload);
                let relay_key = self
                    .room
                    .roster
                    .get(&from)
                    .and_then(|m| m.keys)
                    .map(|k| k.relay);
                let bare = matches!(
                    payload,
                    Payload::Hello(..) | Payload::Raw(_) | Payload::VerbThenRaw(..)
                );
                match relay_key {
                    Some(key) if *source < 128 && !bare => request = key.prefixed(&request),
                    Some(key)
                        if split_key_prefix(&request).0 != Some(key)
                            && !request.starts_with(b"HELLO") =>
                    {
                        let member = self.room.roster.get(&from).expect("keyed member");
                        unauthenticated = Some((from, member.bucket, member.dialect));
                    }
                    _ => {}
                }
                sender = Some(from);
                self.room
                    .handle_datagram(self.now, from, &request, &mut self.out);
            }
            Step::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.run_timers_if_due();
            }
            Step::Jump(secs) => {
                self.now += Duration::from_secs(u64::from(*secs));
                self.run_timers_if_due();
            }
            Step::NextTimer => {
                if let Some(at) = self.room.poll_timeout() {
                    // A timer in the past must not move the clock back.
                    if at > self.now {
                        // Bound the jump: a far-away timer is reached by Jump.
                        self.now = at.min(self.now + Duration::from_secs(3 * 3600));
                    }
                }
                self.room.handle_timeout(self.now, &mut self.out);
            }
            Step::Unreachable(i) => {
                let addr = SOURCES[*i as usize % SOURCES.len()];
                self.room.handle_unreachable(self.now, addr, &mut self.out);
            }
            Step::Host(text) => {
                let text = text.render();
                let result = self.room.host_message(self.now, &text, &mut self.out);
                assert_eq!(
                    result.is_ok(),
                    udpchat_proto::Text::new(&text).is_ok(),
                    "host_message accepted/refused {text:?} unlike Text::new"
                );
            }
            Step::Kick(nick, reason) => {
                let nick = nick.render();
                let result = self.room.kick(self.now, &nick, reason, &mut self.out);
                let present = before
                    .values()
                    .any(|(n, _)| Nick::new(&nick).is_ok_and(|k| k.key() == n.key()));
                assert_eq!(result.is_ok(), present, "kick {nick:?}: {result:?}");
            }
            Step::Shutdown => {
                self.room.shutdown(self.now, "fuzz", &mut self.out);
            }
            Step::Ban(i, by_nick, secs) => {
                let addr = SOURCES[*i as usize % SOURCES.len()];
                let target = match (by_nick, before.get(&addr)) {
                    (true, Some((nick, _))) => nick.to_string(),
                    _ => addr.ip().to_string(),
                };
                let duration = (*secs > 0).then(|| Duration::from_secs(u64::from(*secs)));
                let result = self
                    .room
                    .ban(self.now, &target, duration, "fuzz", &mut self.out);
                let (ip, _) = result.expect("a ban of an address or a member's nickname");
                assert_eq!(ip, crate::limits::ip_key(addr));
            }
            Step::Unban(i) => {
                let addr = SOURCES[*i as usize % SOURCES.len()];
                let _ = self
                    .room
                    .unban(self.now, &addr.ip().to_string(), &mut self.out);
            }
            Step::Mute(nick, secs, unmute) => {
                let nick = nick.render();
                if *unmute {
                    let _ = self.room.unmute(self.now, &nick, &mut self.out);
                } else {
                    let duration = (*secs > 0).then(|| Duration::from_secs(u64::from(*secs)));
                    let result = self.room.mute(self.now, &nick, duration, &mut self.out);
                    let present = before
                        .values()
                        .any(|(n, _)| Nick::new(&nick).is_ok_and(|k| k.key() == n.key()));
                    assert_eq!(result.is_ok(), present, "mute {nick:?}: {result:?}");
                }
            }
            Step::Lock(true) => self.room.lock(&mut self.out),
            Step::Lock(false) => self.room.unlock(&mut self.out),
            Step::Code(code) => {
                let code = code.map(|i| {
                    udpchat_proto::JoinCode::new(CODES[i as usize % CODES.len()])
                        .expect("valid code")
                });
                self.room.set_code(code, &mut self.out);
            }
            Step::Slow(secs) => {
                self.room
                    .slow(Duration::from_secs(u64::from(*secs)), &mut self.out);
            }
            Step::Moderated(on) => {
                let was = self.room.is_moderated();
                let changed = self.room.set_moderated(self.now, *on, &mut self.out);
                assert_eq!(changed, was != *on, "/moderated changed {was} to {on}?");
                assert_eq!(self.room.is_moderated(), *on);
            }
            Step::Voice(nick, give) => {
                let nick = nick.render();
                if *give {
                    let result = self.room.voice(self.now, &nick, &mut self.out);
                    let present = before
                        .values()
                        .any(|(n, _)| Nick::new(&nick).is_ok_and(|k| k.key() == n.key()));
                    assert_eq!(result.is_ok(), present, "voice {nick:?}: {result:?}");
                } else {
                    let _ = self.room.devoice(self.now, &nick, &mut self.out);
                }
                assert!(self.out.transmits.len() <= 1, "a voice notice went to many");
            }
            Step::Announce(text) => {
                let text = text.render();
                let result = self.room.announce(self.now, &text, &mut self.out);
                assert_eq!(
                    result.is_ok(),
                    udpchat_proto::Text::new(&text).is_ok(),
                    "announce accepted/refused {text:?} unlike Text::new"
                );
                assert!(self.room.announcements_kept() <= crate::ANNOUNCEMENTS_KEPT);
            }
            Step::Next => {
                let first = self.room.hands().first().cloned();
                let called = self.room.next_hand(self.now, &mut self.out);
                assert_eq!(called, first, "/next did not call the first in line");
                if let Some(hand) = called {
                    assert!(
                        self.out.transmits.iter().all(|t| t.to == hand.addr),
                        "/next sent to someone else than {}",
                        hand.addr
                    );
                }
            }
        }
        let after = self.members();
        // Nothing goes to a member muted by a port unreachable that stays
        // muted (it did not speak).
        for t in &self.out.transmits {
            assert!(
                !(muted_before.contains(&t.to) && self.room.roster.is_muted(&t.to)),
                "datagram to muted {}: {:?}",
                t.to,
                String::from_utf8_lossy(&t.datagram())
            );
        }
        if let Some((from, bucket, dialect)) = unauthenticated {
            let request = String::from_utf8_lossy(&request);
            assert!(
                self.out.transmits.is_empty(),
                "unauthenticated {request:?} from {from} was answered"
            );
            assert!(
                !self.out.events.iter().any(|e| matches!(
                    e,
                    Event::Room { .. } | Event::Unannounced { .. } | Event::Block { .. }
                )),
                "unauthenticated {request:?} from {from} did something: {:?}",
                self.out.events
            );
            assert_eq!(
                before.get(&from),
                after.get(&from),
                "{request:?} changed {from}"
            );
            let member = self.room.roster.get(&from).expect("still a member");
            assert_eq!(member.dialect, dialect);
            assert_eq!(member.bucket, bucket, "{request:?} charged {from}'s bucket");
        }
        let seq_before = self.last_seq;
        self.check_events(step, sender, &before, &after);
        self.check_transmits(sender, &request, seq_before, &before, &after);
        let rate_limited = self.room.stats().rate_limited > rate_limited_before;
        if unauthenticated.is_none() {
            let request = split_key_prefix(&request).1;
            self.check_ids(sender, request, rate_limited, &before, &after, held_before);
        }
    }

    /// How many `SAY`s each member has waiting for an earlier id.
    fn held_says(&self) -> HashMap<SocketAddr, usize> {
        self.room
            .roster
            .iter()
            .map(|(addr, m)| (*addr, m.recent_ids.held_len()))
            .collect()
    }

    /// `SAY` and `PMSG` against the model of the room's id window: an id in
    /// the window is not relayed or delivered again; a new `SAY` id from a
    /// member is relayed exactly once.
    fn check_ids(
        &mut self,
        sender: Option<SocketAddr>,
        request: &[u8],
        rate_limited: bool,
        before: &Members,
        after: &Members,
        held_before: HashMap<SocketAddr, usize>,
    ) {
        // A takeover (RECONNECT) keeps the member's ids at its new address.
        for (addr, (nick, _)) in after {
            if before.contains_key(addr) {
                continue;
            }
            let old = before
                .iter()
                .find(|(old, (n, _))| *old != addr && n.key() == nick.key())
                .map(|(old, _)| *old);
            if let Some(window) = old.and_then(|old| self.recent_ids.remove(&old)) {
                self.recent_ids.insert(*addr, window);
            }
        }
        // The room forgets a member's ids when it leaves.
        self.recent_ids.retain(|addr, _| after.contains_key(addr));
        let Some(from) = sender else {
            return;
        };
        if rate_limited || !before.contains_key(&from) || !after.contains_key(&from) {
            return;
        }
        let chats = self
            .out
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Room {
                        event: RoomEvent::Chat { .. } | RoomEvent::Action { .. },
                        ..
                    }
                )
            })
            .count();
        let privates = self
            .out
            .events
            .iter()
            .filter(|e| matches!(e, Event::Private { .. }))
            .count();
        let (id, kind, count) = match ClientMsg::parse(request) {
            Ok(ClientMsg::Say { id, .. }) => (id, "SAY", chats),
            Ok(ClientMsg::PrivateReliable { id, .. }) => (id, "PMSG", privates),
            _ => return,
        };
        let held_before = held_before.get(&from).copied().unwrap_or(0);
        let held_after = self.held_says().get(&from).copied().unwrap_or(0);
        assert!(
            held_after <= crate::roster::SAY_HOLD_MAX + 1,
            "{held_after} SAYs held for {from}"
        );
        let window = self.recent_ids.entry(from).or_default();
        let repeated = window.contains(&id);
        // Refused by the host's moderation (or an action that reads as a
        // relay notice): the id is used up and nothing of a muted or
        // unvoiced member's (held ones included) reaches the room.
        let moderated = self.out.events.iter().any(|e| {
            matches!(
                e,
                Event::Refused {
                    addr,
                    code: ErrorCode::Muted
                        | ErrorCode::SlowMode
                        | ErrorCode::Moderated
                        | ErrorCode::LooksLikeNotice,
                    ..
                } if *addr == from
            )
        });
        // (check_moderation asserts that nothing of a muted member's
        // reaches the room; a slowed one's held SAYs may go.)
        if kind == "SAY" {
            // Conservation: each SAY id goes into the hold or out to the
            // room once; a repeat adds nothing.
            let new = usize::from(!repeated);
            if !moderated {
                assert_eq!(
                    chats + held_after,
                    held_before + new,
                    "SAY {id} from {from}: {chats} relayed, {held_before} held before, {held_after} after"
                );
            }
        } else {
            assert_eq!(
                chats + held_after,
                held_before,
                "PMSG {id} from {from}: {chats} SAYs relayed, {held_before} held before, {held_after} after"
            );
        }
        if repeated {
            if kind == "PMSG" {
                assert_eq!(count, 0, "{kind} {id} from {from} went out again");
            }
            return;
        }
        if kind == "PMSG" && count == 0 {
            return; // refused (no such nick): not remembered
        }
        if window.len() == ID_WINDOW {
            window.pop_front();
        }
        window.push_back(id);
    }

    fn run_timers_if_due(&mut self) {
        if self.room.poll_timeout().is_some_and(|at| at <= self.now) {
            self.room.handle_timeout(self.now, &mut self.out);
        }
    }

    fn render(&self, from: SocketAddr, payload: &Payload) -> Vec<u8> {
        let s = match payload {
            // With a join code set, joins carry it (wrong codes come from
            // raw nicknames with a space, and the unit tests).
            Payload::Join(nick, end) => match self.room.code() {
                Some(code) => format!("N {} {code}{}", nick.render(), end.as_str()),
                None => format!("N {}{}", nick.render(), end.as_str()),
            },
            Payload::Chat(nick, text, end) => {
                format!("M {} {}{}", nick.render(), text.render(), end.as_str())
            }
            Payload::Quit(nick, end) => format!("Q {}{}", nick.render(), end.as_str()),
            Payload::Who(end) => format!("WHO{}", end.as_str()),
            Payload::Msg(nick, text, end) => {
                format!("MSG {} {}{}", nick.render(), text.render(), end.as_str())
            }
            Payload::Ping(None) => "PING".to_owned(),
            Payload::Ping(Some(token)) => format!("PING {token}"),
            Payload::Rename(nick) => format!("NICK {}", nick.render()),
            Payload::Hello(nick, cookie, bad_version) => {
                let version = if *bad_version {
                    "udpchat/9"
                } else {
                    "udpchat/1"
                };
                let head = format!("HELLO {version} {}", nick.render());
                let mut key = source_key(from).map_or(String::new(), |k| format!(" key={k}"));
                if let Some(code) = self.room.code() {
                    key.push_str(&format!(" code={code}"));
                }
                let learned = |addr: &SocketAddr| self.cookies.get(addr).cloned();
                let cookie = match cookie {
                    CookieField::None(pad) => {
                        return format!("{head} -{key} {}", "=".repeat(*pad as usize)).into_bytes()
                    }
                    CookieField::Learned => learned(&from),
                    CookieField::Stolen(i) => learned(&SOURCES[*i as usize % SOURCES.len()]),
                    CookieField::Any(c) => Some(format!("{c:016x}")),
                };
                match cookie {
                    Some(c) => format!("{head} {c}{key}"),
                    None => format!("{head} -{key} {}", "=".repeat(64)),
                }
            }
            Payload::Pmsg(id, nick, text) => {
                format!("PMSG {} {} {}", id.value(), nick.render(), text.render())
            }
            Payload::Say(id, text, end) => {
                format!("SAY {} {}{}", id.value(), text.render(), end.as_str())
            }
            Payload::Ack(pid) => format!("ACK {}", pid.value()),
            Payload::Seen(seq) => format!("SEEN {}", seq.value()),
            Payload::Resend(from, to) => format!("RESEND {} {}", from.value(), to.value()),
            Payload::Hand(classic, question, end) => {
                let verb = if *classic { "H" } else { "HAND" };
                match question {
                    Some(q) => format!("{verb} {}{}", q.render(), end.as_str()),
                    None => format!("{verb}{}", end.as_str()),
                }
            }
            Payload::Raw(bytes) => return bytes.clone(),
            Payload::VerbThenRaw(verb, rest) => {
                const VERBS: [&str; 12] = [
                    "N ", "M ", "Q ", "WHO ", "MSG ", "PING ", "NICK ", "HELLO ", "PMSG ", "ACK ",
                    "RESEND ", "SAY ",
                ];
                let mut bytes = VERBS[*verb as usize % VERBS.len()].as_bytes().to_vec();
                bytes.extend_from_slice(rest);
                return bytes;
            }
        };
        s.into_bytes()
    }

    fn check_events(
        &mut self,
        step: &Step,
        sender: Option<SocketAddr>,
        before: &Members,
        after: &Members,
    ) {
        let nick_of = |m: &Members, addr: &SocketAddr| m.get(addr).map(|(n, _)| n.key());
        let chats = self
            .out
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Room {
                        event: RoomEvent::Chat { .. } | RoomEvent::Action { .. },
                        ..
                    }
                )
            })
            .count();
        let most = 2 + crate::roster::SAY_HOLD_MAX;
        assert!(chats <= most, "{step:?} relayed {chats} chats");
        let mut left_by_timeout = Vec::new();
        let mut reconnected = Vec::new();
        for event in &self.out.events {
            let event = match event {
                Event::Room { seq, event } => {
                    assert_eq!(
                        *seq,
                        self.last_seq + 1,
                        "room event {event:?} numbered {seq} after {}",
                        self.last_seq
                    );
                    self.last_seq = *seq;
                    event
                }
                // Above the announce limit: checked like a room event,
                // but it has no number and must be a JOIN or LEAVE.
                Event::Unannounced { event } => {
                    assert!(
                        matches!(
                            event,
                            RoomEvent::Join(_) | RoomEvent::Leave { .. } | RoomEvent::Reconnect(_)
                        ),
                        "unannounced {event:?}"
                    );
                    event
                }
                _ => continue,
            };
            match (step, event) {
                (
                    Step::Datagram(..),
                    RoomEvent::Chat { nick, .. } | RoomEvent::Action { nick, .. },
                ) => {
                    let from = sender.expect("datagram step has a sender");
                    assert_eq!(
                        nick_of(before, &from),
                        Some(nick.key()),
                        "{from} chatted as {nick}"
                    );
                }
                (Step::Datagram(..), RoomEvent::Join(nick)) => {
                    let from = sender.expect("datagram step has a sender");
                    assert_eq!(
                        nick_of(after, &from),
                        Some(nick.key()),
                        "JOIN {nick} but {from} does not hold it"
                    );
                    assert!(
                        !before.contains_key(&from),
                        "second JOIN for {from} ({nick})"
                    );
                }
                // A takeover: the sender now holds a nickname another
                // address held, which lost it.
                (Step::Datagram(..), RoomEvent::Reconnect(nick)) => {
                    let from = sender.expect("datagram step has a sender");
                    assert_eq!(
                        nick_of(after, &from),
                        Some(nick.key()),
                        "RECONNECT {nick} but {from} does not hold it"
                    );
                    assert!(
                        !before.contains_key(&from),
                        "{from} was a member and reconnected as {nick}"
                    );
                    let old = before.iter().find(|(_, (n, _))| n.key() == nick.key());
                    let (old, _) = old.unwrap_or_else(|| panic!("nobody held {nick} before"));
                    assert_eq!(old.ip(), from.ip(), "classic takeover from another IP");
                    reconnected.push(nick.key());
                }
                (Step::Datagram(..), RoomEvent::Leave { nick, reason }) => {
                    let from = sender.expect("datagram step has a sender");
                    match reason {
                        LeaveReason::Quit => assert_eq!(
                            nick_of(before, &from),
                            Some(nick.key()),
                            "{from} made {nick} quit"
                        ),
                        // Idle eviction (and the end of an unreachable
                        // member's grace) may run lazily on any input.
                        LeaveReason::Timeout | LeaveReason::Unreachable => {
                            left_by_timeout.push(nick.key())
                        }
                        _ => panic!("a datagram caused LEAVE {nick} {reason:?}"),
                    }
                }
                (Step::Datagram(..), RoomEvent::Rename { old, new }) => {
                    let from = sender.expect("datagram step has a sender");
                    assert_eq!(
                        nick_of(before, &from),
                        Some(old.key()),
                        "{from} renamed {old}"
                    );
                    assert_eq!(
                        nick_of(after, &from),
                        Some(new.key()),
                        "{from} renamed to {new} but does not hold it"
                    );
                }
                (Step::Host(text), RoomEvent::Host(t)) => {
                    assert_eq!(t.as_str(), text.render(), "HOST text changed");
                }
                (Step::Moderated(on), RoomEvent::Moderated(now_on)) => {
                    assert_eq!(on, now_on, "/moderated announced the other mode");
                }
                (Step::Announce(text), RoomEvent::Announce(t)) => {
                    assert_eq!(t.as_str(), text.render(), "ANNOUNCE text changed");
                }
                (Step::Ban(..), RoomEvent::Leave { reason, .. }) => {
                    assert_eq!(*reason, LeaveReason::Kicked, "a ban caused {reason:?}");
                }
                (Step::Kick(nick, _), RoomEvent::Leave { nick: gone, reason }) => {
                    assert_eq!(*reason, LeaveReason::Kicked, "kick caused {reason:?}");
                    assert_eq!(
                        Nick::new(&nick.render()).map(|n| n.key()).ok(),
                        Some(gone.key()),
                        "kicking {:?} removed {gone}",
                        nick.render()
                    );
                }
                (Step::Unreachable(i), RoomEvent::Leave { nick, reason }) => {
                    assert_eq!(*reason, LeaveReason::Unreachable);
                    let addr = SOURCES[*i as usize % SOURCES.len()];
                    assert_eq!(nick_of(before, &addr), Some(nick.key()));
                }
                (
                    Step::Advance(_) | Step::Jump(_) | Step::NextTimer,
                    RoomEvent::Leave {
                        nick,
                        reason: LeaveReason::Timeout | LeaveReason::Unreachable,
                    },
                ) => left_by_timeout.push(nick.key()),
                (Step::Shutdown, RoomEvent::Leave { .. }) => {}
                // A held SAY that waited long enough (its sender a member
                // before the step).
                (
                    Step::Advance(_) | Step::Jump(_) | Step::NextTimer,
                    RoomEvent::Chat { nick, .. } | RoomEvent::Action { nick, .. },
                ) => {
                    assert!(
                        before.values().any(|(n, _)| n.key() == nick.key()),
                        "a timer relayed a chat of {nick}, no member"
                    );
                }
                (step, event) => panic!("step {step:?} caused room event {event:?}"),
            }
        }
        // Membership changes only for the sender, or by the operator, the
        // OS or the timers.
        for (addr, (nick, _)) in before {
            if after.get(addr).map(|(n, _)| n) == Some(nick) || Some(*addr) == sender {
                continue;
            }
            let explained = match step {
                Step::Kick(..) | Step::Ban(..) | Step::Unreachable(_) | Step::Shutdown => true,
                _ => left_by_timeout.contains(&nick.key()) || reconnected.contains(&nick.key()),
            };
            assert!(explained, "{addr} lost {nick} during {step:?}");
        }
        for (addr, (nick, _)) in after {
            if !before.contains_key(addr) {
                assert_eq!(Some(*addr), sender, "{addr} became {nick} without sending");
            }
        }
        if matches!(step, Step::Shutdown) {
            assert!(after.is_empty(), "members remain after shutdown");
        }
        self.check_moderation(step, before, after);
    }

    fn check_transmits(
        &mut self,
        sender: Option<SocketAddr>,
        request: &[u8],
        seq_before: u64,
        before: &Members,
        after: &Members,
    ) {
        let config = self.room.config();
        // A step produces at most: a RESEND answer (64 events + GONE) or a
        // join (WELCOME + history + JOIN to everyone), events to every
        // member, or retransmits and evictions for every member.
        let bound = 80 + config.history_on_join + 8 * config.max_clients * 16;
        assert!(
            self.out.transmits.len() <= bound,
            "{} datagrams from one step",
            self.out.transmits.len()
        );
        let history = config.history as u64;
        let mut resends = 0;
        let hello = request.starts_with(b"HELLO");
        let mut replays = 0;
        for t in &self.out.transmits {
            let datagram = t.datagram();
            let (prefix, bytes) = split_key_prefix(&datagram);
            if let Some(key) = prefix {
                assert_eq!(
                    Some(key),
                    source_key(t.to),
                    "{} got a datagram behind another key: {:?}",
                    t.to,
                    String::from_utf8_lossy(&t.datagram())
                );
            }
            let keyed = |m: &Members| {
                m.contains_key(&t.to)
                    && self
                        .room
                        .roster
                        .get(&t.to)
                        .is_some_and(|member| member.keys.is_some())
            };
            if keyed(before) && keyed(after) && !bytes.starts_with(b"COOKIE ") {
                assert!(
                    prefix.is_some(),
                    "keyed member {} got a datagram without its key: {:?}",
                    t.to,
                    String::from_utf8_lossy(bytes)
                );
            }
            assert!(
                before.contains_key(&t.to) || after.contains_key(&t.to) || Some(t.to) == sender,
                "datagram to bystander {}: {:?}",
                t.to,
                String::from_utf8_lossy(bytes)
            );
            // Size, UTF-8, not empty, no control character: the wire rules
            // every client relies on (a newline ending is checked below).
            let ending = if bytes.ends_with(b"\n") {
                LineEnding::Newline
            } else {
                LineEnding::Bare
            };
            if let Err(fault) = check_relay_datagram(bytes, ending) {
                panic!("{fault} to {}: {:?}", t.to, String::from_utf8_lossy(bytes));
            }
            let text = std::str::from_utf8(bytes).expect("checked above");
            let body = text.strip_suffix('\n').unwrap_or(text);
            let structured =
                |m: &Members| m.get(&t.to).is_some_and(|(_, d)| *d == Dialect::Structured);
            let parsed = RelayMsg::parse(bytes);
            if structured(before) && structured(after) {
                assert!(
                    parsed.is_ok(),
                    "structured member {} got unparsable {text:?}: {parsed:?}",
                    t.to
                );
            }
            // A member whose dialect the step did not change gets its own
            // line ending; only the answer to a HELLO is always structured.
            let dialect = after.get(&t.to).map(|(_, d)| *d);
            let unchanged = dialect.is_some() && dialect == before.get(&t.to).map(|(_, d)| *d);
            let answers_hello = hello && Some(t.to) == sender;
            match dialect {
                Some(Dialect::Classic(LineEnding::Newline)) if unchanged && !answers_hello => {
                    assert_ne!(body, text, "newline member {} got a bare line", t.to);
                }
                Some(Dialect::Classic(LineEnding::Bare) | Dialect::Structured) if unchanged => {
                    assert_eq!(body, text, "member {} got an unasked newline", t.to);
                }
                _ => {}
            }
            match parsed {
                Ok(RelayMsg::Cookie(c)) => {
                    assert!(
                        bytes.len() <= request.len(),
                        "COOKIE of {} bytes answers a {}-byte request",
                        bytes.len(),
                        request.len()
                    );
                    self.cookies.insert(t.to, c.to_string());
                }
                Ok(RelayMsg::Event { seq, origin, .. }) if origin != Origin::Live => {
                    // A join replays history before its own JOIN event is
                    // numbered, so history is checked against the last seq
                    // before this step; resends create no events.
                    let last = match origin {
                        Origin::History => seq_before,
                        _ => self.last_seq,
                    };
                    assert!(
                        seq <= last && last - seq < history,
                        "{origin:?} of event {seq} with last seq {last} and history {history}"
                    );
                    match origin {
                        Origin::Resend => resends += 1,
                        _ => replays += 1,
                    }
                }
                _ => {}
            }
        }
        assert!(resends <= MAX_RESEND, "{resends} resends from one step");
        assert!(
            replays <= config.history_on_join * config.max_clients,
            "{replays} history replays from one step"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forged datagram (source byte 128 and up: no relay key; 132 is
    /// source 0) from a keyed member changes nothing, which the oracle
    /// checks itself.
    #[test]
    fn forged_datagrams_from_a_keyed_member_change_nothing() {
        let mut h = Harness::new();
        h.step(&Step::Datagram(
            0,
            Payload::Hello(NickField::Pool(2), CookieField::None(64), false),
        ));
        h.step(&Step::Datagram(
            0,
            Payload::Hello(NickField::Pool(2), CookieField::Learned, false),
        ));
        assert!(h.room.roster.get(&SOURCES[0]).unwrap().keys.is_some());
        for _ in 0..50 {
            h.step(&Step::Datagram(
                132,
                Payload::Say(Number::Small(1), TextField::Pool(0), Ending::Bare),
            ));
            h.step(&Step::Datagram(
                132,
                Payload::Join(NickField::Pool(2), Ending::Bare),
            ));
            h.step(&Step::Datagram(
                132,
                Payload::Quit(NickField::Pool(2), Ending::Bare),
            ));
            h.step(&Step::Datagram(132, Payload::Ping(None)));
        }
        assert_eq!(h.room.stats().unauthenticated, 200);
        // The member itself still speaks.
        h.step(&Step::Datagram(
            0,
            Payload::Say(Number::Small(1), TextField::Pool(0), Ending::Bare),
        ));
        assert_eq!(h.last_seq, 2, "JOIN bob, then its CHAT");
    }

    /// A classic reclaim moves the member's SAY ids with it: a repeat of
    /// its last SAY from the new port is not relayed again (proptest found
    /// the model keyed by address only).
    #[test]
    fn a_takeover_keeps_the_members_say_ids_in_the_model() {
        let mut h = Harness::new();
        for step in [
            Step::Datagram(0, Payload::Join(NickField::Pool(0), Ending::Bare)),
            Step::Datagram(0, Payload::Join(NickField::Pool(0), Ending::Bare)),
            Step::Datagram(
                0,
                Payload::Say(Number::Max, TextField::Pool(0), Ending::Bare),
            ),
            Step::Advance(30_208),
            Step::Datagram(1, Payload::Join(NickField::Pool(0), Ending::Bare)),
            Step::Datagram(
                1,
                Payload::Say(Number::Max, TextField::Pool(0), Ending::Bare),
            ),
        ] {
            h.step(&step);
        }
        assert_eq!(h.room().member_count(), 1);
    }

    /// Moderation steps: a ban empties its address and keeps it out, the
    /// lock and the code hold, a muted member's chat reaches nobody.
    #[test]
    fn scripted_moderation_keeps_its_invariants() {
        let mut h = Harness::new();
        for step in [
            Step::Datagram(0, Payload::Join(NickField::Pool(0), Ending::Bare)),
            Step::Datagram(3, Payload::Join(NickField::Pool(1), Ending::Bare)),
            Step::Mute(NickField::Pool(1), 0, false),
            Step::Datagram(
                3,
                Payload::Say(Number::Small(1), TextField::Pool(0), Ending::Bare),
            ),
            Step::Slow(5),
            Step::Datagram(
                0,
                Payload::Chat(NickField::Pool(0), TextField::Pool(0), Ending::Bare),
            ),
            Step::Datagram(
                0,
                Payload::Chat(NickField::Pool(0), TextField::Pool(1), Ending::Bare),
            ),
            Step::Code(Some(0)),
            Step::Datagram(4, Payload::Join(NickField::Pool(2), Ending::Bare)),
            Step::Lock(true),
            Step::Datagram(5, Payload::Join(NickField::Pool(3), Ending::Bare)),
            Step::Lock(false),
            Step::Ban(0, true, 60),
            Step::Datagram(1, Payload::Join(NickField::Pool(4), Ending::Bare)),
            Step::Jump(61),
            Step::Datagram(1, Payload::Join(NickField::Pool(4), Ending::Bare)),
            Step::Unban(0),
        ] {
            h.step(&step);
        }
    }

    /// The templates produce commands the room accepts, so the fuzzer
    /// reaches joined members, chat, renames and structured joins.
    #[test]
    fn scripted_session_reaches_the_interesting_states() {
        let mut h = Harness::new();
        let steps = [
            Step::Datagram(0, Payload::Join(NickField::Pool(0), Ending::Newline)),
            Step::Datagram(1, Payload::Join(NickField::Pool(1), Ending::Bare)),
            Step::Datagram(1, Payload::Join(NickField::Pool(2), Ending::Bare)),
            Step::Datagram(
                0,
                Payload::Chat(NickField::Pool(0), TextField::Pool(1), Ending::Bare),
            ),
            // Forged: address 1 (bob) claims alice.
            Step::Datagram(
                1,
                Payload::Chat(NickField::Pool(4), TextField::Pool(0), Ending::Bare),
            ),
            Step::Datagram(
                2,
                Payload::Hello(NickField::Pool(5), CookieField::None(64), false),
            ),
            Step::Datagram(
                2,
                Payload::Hello(NickField::Pool(5), CookieField::Learned, false),
            ),
            Step::Datagram(2, Payload::Resend(Number::Small(1), Number::Max)),
            Step::Datagram(
                3,
                Payload::Hello(NickField::Pool(6), CookieField::Stolen(2), false),
            ),
            Step::Datagram(1, Payload::Rename(NickField::Pool(3))),
            Step::Datagram(
                2,
                Payload::Say(Number::Small(7), TextField::Pool(0), Ending::Bare),
            ),
            // The network repeats it: not relayed again.
            Step::Datagram(
                2,
                Payload::Say(Number::Small(7), TextField::Pool(0), Ending::CrLf),
            ),
            Step::Host(TextField::Pool(2)),
            Step::Kick(NickField::Pool(3), "bye".into()),
            Step::Jump(3600),
        ];
        let mut counts = Vec::new();
        for step in &steps {
            h.step(step);
            counts.push((h.room().member_count(), h.last_seq));
        }
        assert_eq!(counts[0], (1, 1), "alice joined");
        assert_eq!(counts[2], (2, 2), "bob joined (Alice was taken)");
        assert_eq!(counts[3], (2, 3), "alice chatted");
        assert_eq!(counts[4], (2, 3), "the forgery relayed nothing");
        assert_eq!(counts[6], (3, 4), "carol joined with the cookie");
        assert_eq!(counts[8], (3, 4), "a stolen cookie does not join");
        assert_eq!(counts[9], (3, 5), "bob renamed");
        assert_eq!(counts[10], (3, 6), "carol said something");
        assert_eq!(counts[11], (3, 6), "the repeat relayed nothing");
        assert_eq!(counts[13], (2, 8), "host message, then the kick");
        assert_eq!(counts[14], (0, 10), "idle members evicted");
    }

    // The three cases the room's former proptest (with its own generator)
    // once shrank to, as scripted steps for this oracle.

    /// A structured member asking to join again under another nickname gets
    /// its `ERROR already-joined` in the structured dialect.
    #[test]
    fn structured_member_joining_classic_under_another_nick_gets_a_structured_error() {
        let mut h = Harness::new();
        h.step(&Step::Datagram(
            0,
            Payload::Hello(NickField::Pool(2), CookieField::None(64), false),
        ));
        h.step(&Step::Datagram(
            0,
            Payload::Hello(NickField::Pool(2), CookieField::Learned, false),
        ));
        h.step(&Step::Datagram(
            0,
            Payload::Join(NickField::Pool(0), Ending::Bare),
        ));
        let reply = RelayMsg::parse(split_key_prefix(&h.out.transmits[0].datagram()).1);
        assert!(
            matches!(
                reply,
                Ok(RelayMsg::Error {
                    code: udpchat_proto::ErrorCode::AlreadyJoined,
                    ..
                })
            ),
            "{reply:?}"
        );
    }

    /// A cookie-less `HELLO` from a newline classic member gets a `COOKIE`
    /// (structured, no newline) and leaves it a classic member.
    #[test]
    fn padded_hello_from_a_newline_member_gets_a_bare_cookie() {
        let mut h = Harness::new();
        h.step(&Step::Datagram(
            4,
            Payload::Join(NickField::Pool(0), Ending::Newline),
        ));
        h.step(&Step::Datagram(
            4,
            Payload::Hello(NickField::Pool(0), CookieField::None(64), false),
        ));
        assert_eq!(h.out.transmits.len(), 1);
        assert!(h.out.transmits[0].datagram().starts_with(b"COOKIE "));
        assert_eq!(
            h.room().members()[0].2,
            Dialect::Classic(LineEnding::Newline)
        );
    }

    /// A structured recipient that re-joins as a newline classic member is
    /// not sent its pending `PRIVATE` again (it could not read it).
    #[test]
    fn private_pending_for_a_member_that_turns_classic_is_not_retransmitted() {
        let mut h = Harness::new();
        h.step(&Step::Datagram(
            3,
            Payload::Hello(NickField::Pool(3), CookieField::None(64), false),
        ));
        h.step(&Step::Datagram(
            3,
            Payload::Hello(NickField::Pool(3), CookieField::Learned, false),
        ));
        h.step(&Step::Datagram(
            2,
            Payload::Join(NickField::Pool(0), Ending::Bare),
        ));
        h.step(&Step::Datagram(
            2,
            Payload::Pmsg(Number::Small(0), NickField::Pool(3), TextField::Pool(0)),
        ));
        assert!(h
            .out
            .transmits
            .iter()
            .any(|t| t.datagram().starts_with(b"PRIVATE ")));
        h.step(&Step::Datagram(
            3,
            Payload::Join(NickField::Pool(3), Ending::Newline),
        ));
        h.step(&Step::Advance(1000));
        assert!(h.out.transmits.is_empty(), "{:?}", h.out.transmits);
    }

    #[test]
    fn empty_and_garbage_inputs_run() {
        run(&[]);
        run(&[0xff; 64]);
        run(&(0..=255).collect::<Vec<u8>>());
    }

    mod props {
        use arbitrary::{Arbitrary, Unstructured};
        use proptest::prelude::*;

        use super::*;

        /// Tighter limits than the fuzz target's [`config`], so the rate
        /// limit, the stranger budget and idle eviction come within 100
        /// steps.
        fn tight() -> Config {
            Config {
                max_clients: 4,
                idle_timeout: Duration::from_secs(20),
                classic_idle_timeout: Duration::from_secs(60),
                ping_interval: Duration::from_secs(5),
                rate_burst: 8,
                rate_per_sec: 2,
                stranger_replies_per_sec: 10,
                history: 10,
                history_on_join: 3,
                ..Config::default()
            }
        }

        /// One step, decoded by the fuzz target's own decoder from bytes
        /// proptest picks (and shrinks); mostly datagrams. Half the bytes
        /// come from a few values spread over the range, so that choices
        /// and numbers repeat (the same nickname, the same `SAY` id twice)
        /// as they do in a fuzzer's corpus, while every variant stays
        /// reachable.
        fn step() -> impl Strategy<Value = Option<Step>> {
            let byte = prop_oneof![
                prop::sample::select(vec![0u8, 1, 2, 0x55, 0xaa, 0xff]),
                any::<u8>(),
            ];
            let bytes = proptest::collection::vec(byte, 1..40);
            prop_oneof![
                12 => (any::<u8>(), bytes.clone()).prop_map(|(from, bytes)| {
                    let payload = Payload::arbitrary(&mut Unstructured::new(&bytes)).ok()?;
                    Some(Step::Datagram(from, payload))
                }),
                5 => bytes.prop_map(|bytes| Step::arbitrary(&mut Unstructured::new(&bytes)).ok()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn random_traffic_keeps_the_room_consistent(
                steps in proptest::collection::vec(step(), 1..100)
            ) {
                let mut h = Harness::with_config(tight());
                for step in steps.iter().flatten() {
                    h.step(step);
                }
            }
        }
    }
}
