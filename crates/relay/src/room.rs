//! The relay core: one chat room, sans I/O.
//!
//! Contract: no sockets, no clock reads, no threads. Time comes in as `now`;
//! datagrams come in as bytes and go out as [`Transmit`]s in [`Outputs`].
//! The shell (server.rs) owns the socket and the clock and calls
//! [`Room::handle_datagram`], [`Room::handle_timeout`] when
//! [`Room::poll_timeout`] passes, and [`Room::handle_unreachable`].

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use udpchat_proto::{ErrorCode, Lang, LeaveReason, LineEnding, Nick, ParseError, RoomEvent, Text};

/// How the relay is configured (the shell fills it from the command line).
#[derive(Debug, Clone)]
pub struct Config {
    /// Most members at once.
    pub max_clients: usize,
    /// Silence after which a structured member is evicted.
    pub idle_timeout: Duration,
    /// Silence after which a classic member is evicted.
    pub classic_idle_timeout: Duration,
    /// Ping interval announced to structured members in `WELCOME`.
    pub ping_interval: Duration,
    /// Whether classic `N` joins are accepted (false with `--no-classic`).
    pub classic: bool,
    /// Language of classic lines and error reasons.
    pub lang: Lang,
    /// Per-address token bucket: burst size.
    pub rate_burst: u32,
    /// Per-address token bucket: tokens added per second.
    pub rate_per_sec: u32,
    /// Global budget for replies to non-members, per second.
    pub stranger_replies_per_sec: u32,
    /// Room events kept for `RESEND`.
    pub history: usize,
    /// CHAT/HOST events replayed to a new structured member (0 = off).
    pub history_on_join: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_clients: 1024,
            idle_timeout: Duration::from_secs(60),
            classic_idle_timeout: Duration::from_secs(2 * 60 * 60),
            ping_interval: Duration::from_secs(15),
            classic: true,
            lang: Lang::En,
            rate_burst: 20,
            rate_per_sec: 5,
            stranger_replies_per_sec: 100,
            history: 1024,
            history_on_join: 20,
        }
    }
}

/// The dialect a member joined with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Joined with `N`; gets human-readable lines, with `\n` if it sent one.
    Classic(LineEnding),
    /// Joined with `HELLO`; gets `RelayMsg` encodings.
    Structured,
}

/// One datagram to send. `bytes` is shared by every recipient of the same
/// rendering: an event is encoded once per dialect/line-ending, never once
/// per recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The datagram.
    pub bytes: Rc<[u8]>,
}

/// What the shell logs and writes to the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Every numbered room event.
    Room {
        /// Its sequence number.
        seq: u64,
        /// What happened.
        event: RoomEvent,
    },
    /// A private message (transcript only with a flag).
    Private {
        /// Sender.
        from: Nick,
        /// Recipient.
        to: Nick,
        /// Message.
        text: Text,
    },
    /// A member joined (info).
    Joined {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
        /// How it joined.
        dialect: Dialect,
    },
    /// A member left (info).
    Left {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
        /// Why.
        reason: LeaveReason,
    },
    /// A request was refused with an error reply (warn; the shell rate-limits the log).
    Refused {
        /// Who asked.
        addr: SocketAddr,
        /// The error code sent (or that would have been sent).
        code: ErrorCode,
        /// Details for the log.
        detail: String,
    },
    /// Input dropped without a reply (debug).
    Dropped {
        /// Who sent it.
        addr: SocketAddr,
        /// Why it was dropped.
        why: &'static str,
    },
}

/// What one call into the room produced. The shell clears and reuses it.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Datagrams to send, in order.
    pub transmits: Vec<Transmit>,
    /// Things to log.
    pub events: Vec<Event>,
}

impl Outputs {
    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.transmits.clear();
        self.events.clear();
    }
}

/// Counters for the operator and the benchmark.
#[derive(Default, Clone, Debug)]
pub struct Stats {
    /// Datagrams handed to [`Room::handle_datagram`].
    pub datagrams_in: u64,
    /// Transmits produced.
    pub datagrams_out: u64,
    /// Requests refused with an error reply.
    pub refused: u64,
    /// Datagrams dropped by the per-address rate limit.
    pub rate_limited: u64,
    /// Replies to non-members dropped by the global budget.
    pub stranger_replies_dropped: u64,
    /// Successful joins.
    pub joins: u64,
    /// Members that left (any reason).
    pub leaves: u64,
}

/// One chat room: the members, the history, the timers.
pub struct Room {
    config: Config,
    stats: Stats,
    #[allow(dead_code)]
    key: [u8; 16],
    #[allow(dead_code)]
    start: Instant,
}

impl Room {
    /// `key` keys the cookie hash (SipHash-1-3); the shell passes random bytes.
    pub fn new(config: Config, key: [u8; 16], now: Instant) -> Room {
        Room {
            config,
            stats: Stats::default(),
            key,
            start: now,
        }
    }

    /// Applies one datagram from `from`.
    pub fn handle_datagram(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        _bytes: &[u8],
        _out: &mut Outputs,
    ) {
        self.stats.datagrams_in += 1;
    }

    /// The OS reported `addr` unreachable (ICMP port unreachable).
    pub fn handle_unreachable(&mut self, _now: Instant, _addr: SocketAddr, _out: &mut Outputs) {}

    /// Timers: idle eviction, private-message retransmission. Call when
    /// [`Room::poll_timeout`] passes.
    pub fn handle_timeout(&mut self, _now: Instant, _out: &mut Outputs) {}

    /// When [`Room::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Operator console: a HOST room event. Err if the text breaks the text rules.
    pub fn host_message(
        &mut self,
        _now: Instant,
        text: &str,
        _out: &mut Outputs,
    ) -> Result<u64, ParseError> {
        Text::new(text)?;
        Ok(0)
    }

    /// Operator console /kick: BYE kicked to it, LEAVE kicked to the rest.
    pub fn kick(
        &mut self,
        _now: Instant,
        _nick: &str,
        _reason: &str,
        _out: &mut Outputs,
    ) -> Result<(), ErrorCode> {
        Err(ErrorCode::NoSuchNick)
    }

    /// BYE shutdown to every member (members are then removed).
    pub fn shutdown(&mut self, _now: Instant, _reason: &str, _out: &mut Outputs) {}

    /// Every member, sorted by nick key.
    pub fn members(&self) -> Vec<(Nick, SocketAddr, Dialect)> {
        Vec::new()
    }

    /// How many members there are.
    pub fn member_count(&self) -> usize {
        0
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
