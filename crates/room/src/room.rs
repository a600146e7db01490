//! The relay core: one chat room, sans I/O.
//!
//! Contract: no sockets, no clock reads, no threads. Time comes in as `now`;
//! datagrams come in as bytes and go out as [`Transmit`]s in [`Outputs`].
//! The shell (server.rs) owns the socket and the clock and calls
//! [`Room::handle_datagram`], [`Room::handle_timeout`] when
//! [`Room::poll_timeout`] passes, and [`Room::handle_unreachable`].
//!
//! Decisions worth knowing:
//! - Every room event is rendered once per dialect and line ending; all
//!   recipients of one rendering share one `Rc<[u8]>`.
//! - Replies to non-members spend a global budget. Their dialect is a guess
//!   from the datagram: `HELLO`, `PMSG`, `SAY`, `ACK`, `RESEND` and other bare
//!   datagrams get the structured form (so an evicted structured client can
//!   parse its `ERROR not-joined`); newline-terminated datagrams and `N`
//!   get classic lines. A member is always answered in its own dialect,
//!   except that a `HELLO` is always answered in the structured one.
//! - An unacknowledged `PRIVATE` is sent again 1, 2, 4 and 8 s after the
//!   first send, then given up; at most 32 wait per member.
//! - A member that re-joins with the same nickname in the other dialect (or
//!   with another line ending) switches to it; no second JOIN.
//! - `JOIN` and `LEAVE` are room events only while the room holds at most
//!   [`Config::announce_limit`] members (the joiner or leaver counted):
//!   announcing every join to every member costs C²/2 datagrams for C
//!   joins, 50 million for a room of 10,000. Above the limit they are only
//!   reported as [`Event::Unannounced`] (log and transcript, no sequence
//!   number); `WHO` still lists the members.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use udpchat_proto::{
    classic, strip_line_ending, ByeCode, ClientMsg, Cookie, ErrorCode, Lang, LeaveReason,
    LineEnding, Nick, Origin, ParseError, RelayMsg, RoomEvent, Text, Token, MIN_HELLO_LEN, VERSION,
};

use crate::bucket::{Bucket, Rate, Take};
use crate::cookie::CookieJar;
use crate::history::History;

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
    /// JOIN and LEAVE are announced to the room only while it holds at most
    /// this many members, the joiner or leaver counted (0 = never).
    pub announce_limit: usize,
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
            announce_limit: 200,
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
    /// A `JOIN` or `LEAVE` that was not announced because the room holds
    /// more than [`Config::announce_limit`] members: no sequence number, not
    /// in history, for the log and the transcript only.
    Unannounced {
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
    /// A datagram dropped silently by the per-address rate limit: its
    /// sender is past its limit and was told so once already. Policy is the
    /// shell's: it counts these to block a flooder in the kernel.
    Flooding {
        /// Who sent it.
        addr: SocketAddr,
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

/// Unacknowledged `PRIVATE` messages kept per structured member; when full,
/// the oldest is given up.
const MAX_PENDING_PRIVATE: usize = 32;

/// `PMSG` and `SAY` ids remembered per member for deduplication (one ring
/// for both: a client keeps its ids unique across the two).
const RECENT_IDS: usize = 64;

/// When an unacknowledged `PRIVATE` is sent again, counted from the first
/// send. After the last one the relay gives up.
const RETRANSMIT_AFTER_MS: [u64; 4] = [1_000, 2_000, 4_000, 8_000];

/// The most room events one `RESEND` gets.
const MAX_RESEND: u64 = 64;

/// The most rate-limit buckets kept for addresses that are not members.
/// Beyond it, new strangers go untracked (their replies are still bounded
/// by the global budget, and they cannot cause fan-out).
const MAX_STRANGERS: usize = 4096;

/// How often stranger buckets that have refilled are forgotten.
const PRUNE_EVERY_MS: u64 = 10_000;

/// One member. Kept small: the queues for private messages are allocated
/// only when used, and boxed so an unused one costs 8 bytes, not 32.
#[allow(clippy::box_collection)]
struct Member {
    nick: Nick,
    dialect: Dialect,
    /// Changes when the member (re)joins or switches dialect, making older
    /// idle timers stale.
    generation: u64,
    last_heard_ms: u64,
    bucket: Bucket,
    /// Unacknowledged `PRIVATE` messages (structured members only).
    pending: Option<Box<VecDeque<Pending>>>,
    /// The last [`RECENT_IDS`] `PMSG` and `SAY` ids this member sent. Gone
    /// with the member: a client that joins again starts a fresh ring.
    recent_ids: Option<Box<VecDeque<u64>>>,
}

struct Pending {
    pid: u64,
    first_sent_ms: u64,
    retransmits: u8,
    bytes: Rc<[u8]>,
}

/// When to check a member for idleness. Lazy: a datagram only updates
/// `last_heard_ms`, and a timer that fires early is pushed back.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct IdleTimer {
    due_ms: u64,
    addr: SocketAddr,
    generation: u64,
}

/// When to send a `PRIVATE` again. Private ids are unique per run, so a
/// timer for an acknowledged or dropped message simply finds nothing.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RetransmitTimer {
    due_ms: u64,
    addr: SocketAddr,
    pid: u64,
}

/// Who a reply goes to: a member (known dialect, no budget) or a stranger
/// (dialect guessed from its datagram; the global budget applies).
#[derive(Debug, Clone, Copy)]
enum Recipient {
    Member(Dialect),
    Stranger(Dialect),
}

/// One chat room: the members, the history, the timers.
pub struct Room {
    config: Config,
    stats: Stats,
    cookies: CookieJar,
    /// Every time is kept as milliseconds since this instant.
    start: Instant,
    members: HashMap<SocketAddr, Member>,
    /// Nick key to address; ordered so WHO and `members()` come sorted.
    by_nick: BTreeMap<String, SocketAddr>,
    history: History,
    last_seq: u64,
    next_pid: u64,
    next_generation: u64,
    member_rate: Rate,
    strangers: HashMap<SocketAddr, Bucket>,
    stranger_rate: Rate,
    stranger_budget: Bucket,
    idle_timers: BinaryHeap<Reverse<IdleTimer>>,
    retransmits: BinaryHeap<Reverse<RetransmitTimer>>,
    next_prune_ms: u64,
    /// Reused encoding buffer.
    scratch: Vec<u8>,
}

impl Room {
    /// `key` keys the cookie hash (SipHash-1-3); the shell passes random bytes.
    pub fn new(config: Config, key: [u8; 16], now: Instant) -> Room {
        let member_rate = Rate::new(config.rate_burst, config.rate_per_sec);
        let stranger_rate = Rate::new(
            config.stranger_replies_per_sec,
            config.stranger_replies_per_sec,
        );
        Room {
            history: History::new(config.history),
            config,
            stats: Stats::default(),
            cookies: CookieJar::new(key),
            start: now,
            members: HashMap::new(),
            by_nick: BTreeMap::new(),
            last_seq: 0,
            next_pid: 1,
            next_generation: 1,
            member_rate,
            strangers: HashMap::new(),
            stranger_rate,
            stranger_budget: Bucket::full(stranger_rate, 0),
            idle_timers: BinaryHeap::new(),
            retransmits: BinaryHeap::new(),
            next_prune_ms: PRUNE_EVERY_MS,
            scratch: Vec::with_capacity(1024),
        }
    }

    /// Applies one datagram from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        out: &mut Outputs,
    ) {
        self.stats.datagrams_in += 1;
        let now_ms = self.ms(now);
        let guess = stranger_dialect(bytes);
        // The rate limit comes before any parsing or fan-out work.
        match self.take_token(from, now_ms) {
            Take::Allowed => {}
            Take::FirstExcess => {
                self.stats.rate_limited += 1;
                let to = self.recipient(from, guess);
                self.refuse(
                    now_ms,
                    from,
                    to,
                    ErrorCode::RateLimited,
                    None,
                    "over the rate limit".into(),
                    out,
                );
                return;
            }
            Take::Excess => {
                self.stats.rate_limited += 1;
                out.events.push(Event::Flooding { addr: from });
                return;
            }
        }
        let msg = match ClientMsg::parse(bytes) {
            Ok(msg) => msg,
            Err(err) => {
                if looks_like_relay_output(bytes) {
                    // Another relay (or a client echoing us) is talking to
                    // us. Answering with an error would start a loop of
                    // errors answering errors, so stay silent.
                    out.events.push(Event::Dropped {
                        addr: from,
                        why: "looks like relay output, not a command",
                    });
                    return;
                }
                if !self.members.contains_key(&from)
                    && bytes.starts_with(b"HELLO")
                    && bytes.len() < MIN_HELLO_LEN
                {
                    // A structured join attempt: never answer it with more
                    // bytes than it carried.
                    out.events.push(Event::Dropped {
                        addr: from,
                        why: "short malformed HELLO from a non-member",
                    });
                    return;
                }
                let to = self.recipient(from, guess);
                self.refuse(now_ms, from, to, err.code(), None, err.to_string(), out);
                return;
            }
        };
        // Only a well-formed command keeps a member alive: junk (or a stale
        // peer's stray datagrams) must not hold its seat forever.
        if let Some(member) = self.members.get_mut(&from) {
            member.last_heard_ms = now_ms;
        }
        match msg {
            ClientMsg::Join(nick) => {
                let (_, line_ending) = strip_line_ending(bytes);
                self.handle_join(now_ms, from, nick, Dialect::Classic(line_ending), out);
            }
            ClientMsg::Hello {
                version,
                nick,
                cookie,
            } => self.handle_hello(now_ms, from, bytes.len(), version, nick, cookie, out),
            ClientMsg::Chat { nick, text } => {
                self.handle_chat(now_ms, from, nick, text, guess, out)
            }
            ClientMsg::Quit(nick) => self.handle_quit(now_ms, from, nick, guess, out),
            ClientMsg::Who => self.handle_who(now_ms, from, guess, out),
            ClientMsg::Private { to, text } => {
                self.handle_private(now_ms, from, None, to, text, guess, out)
            }
            ClientMsg::PrivateReliable { id, to, text } => {
                self.handle_private(now_ms, from, Some(id), to, text, guess, out)
            }
            ClientMsg::Say { id, text } => self.handle_say(now_ms, from, id, text, guess, out),
            ClientMsg::Ping(token) => self.handle_ping(now_ms, from, token, guess, out),
            ClientMsg::Rename(nick) => self.handle_rename(now_ms, from, nick, guess, out),
            ClientMsg::Ack(pid) => self.handle_ack(from, pid, out),
            ClientMsg::Resend { from: first, to } => {
                self.handle_resend(now_ms, from, first, to, guess, out)
            }
        }
    }

    /// The OS reported `addr` unreachable (ICMP port unreachable).
    pub fn handle_unreachable(&mut self, _now: Instant, addr: SocketAddr, out: &mut Outputs) {
        self.leave(addr, LeaveReason::Unreachable, out);
    }

    /// Timers: idle eviction, private-message retransmission. Call when
    /// [`Room::poll_timeout`] passes.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outputs) {
        let now_ms = self.ms(now);
        while let Some(Reverse(timer)) = self.idle_timers.peek() {
            if timer.due_ms > now_ms {
                break;
            }
            let Some(Reverse(timer)) = self.idle_timers.pop() else {
                break;
            };
            let Some(member) = self.members.get(&timer.addr) else {
                continue;
            };
            if member.generation != timer.generation {
                continue;
            }
            let due_ms = member.last_heard_ms + self.idle_timeout_ms(member.dialect);
            if due_ms > now_ms {
                self.idle_timers
                    .push(Reverse(IdleTimer { due_ms, ..timer }));
            } else {
                self.evict(timer.addr, out);
            }
        }
        while let Some(Reverse(timer)) = self.retransmits.peek() {
            if timer.due_ms > now_ms {
                break;
            }
            let Some(Reverse(timer)) = self.retransmits.pop() else {
                break;
            };
            self.retransmit(timer, out);
        }
        if now_ms >= self.next_prune_ms {
            let rate = self.member_rate;
            self.strangers.retain(|_, b| !b.is_full(rate, now_ms));
            self.next_prune_ms = now_ms + PRUNE_EVERY_MS;
        }
    }

    /// When [`Room::handle_timeout`] should next be called (it may be
    /// called early or late; nothing is lost either way).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.idle_timers.peek().map(|Reverse(t)| t.due_ms);
        let retransmit = self.retransmits.peek().map(|Reverse(t)| t.due_ms);
        let prune = (!self.strangers.is_empty()).then_some(self.next_prune_ms);
        [idle, retransmit, prune]
            .into_iter()
            .flatten()
            .min()
            .map(|ms| self.start + Duration::from_millis(ms))
    }

    /// Operator console: a HOST room event. Err if the text breaks the text rules.
    pub fn host_message(
        &mut self,
        _now: Instant,
        text: &str,
        out: &mut Outputs,
    ) -> Result<u64, ParseError> {
        let text = Text::new(text)?;
        Ok(self.room_event(RoomEvent::Host(text), out))
    }

    /// Operator console /kick: BYE kicked to it, LEAVE kicked to the rest.
    /// An empty or invalid reason is replaced by a default one.
    pub fn kick(
        &mut self,
        _now: Instant,
        nick: &str,
        reason: &str,
        out: &mut Outputs,
    ) -> Result<(), ErrorCode> {
        let addr = *self
            .by_nick
            .get(&nick.to_lowercase())
            .ok_or(ErrorCode::NoSuchNick)?;
        let dialect = self
            .members
            .get(&addr)
            .ok_or(ErrorCode::NoSuchNick)?
            .dialect;
        let default = match self.config.lang {
            Lang::En => "removed by the host",
            Lang::Zh => "被主持人移出",
        };
        let msg = RelayMsg::Bye {
            code: ByeCode::Kicked,
            reason: text_or(reason, default),
        };
        self.send(0, addr, Recipient::Member(dialect), &msg, out);
        self.leave(addr, LeaveReason::Kicked, out);
        Ok(())
    }

    /// BYE shutdown to every member (members are then removed). An empty or
    /// invalid reason is replaced by a default one.
    pub fn shutdown(&mut self, _now: Instant, reason: &str, out: &mut Outputs) {
        let default = match self.config.lang {
            Lang::En => "the relay is shutting down",
            Lang::Zh => "服务器正在关闭",
        };
        let msg = RelayMsg::Bye {
            code: ByeCode::Shutdown,
            reason: text_or(reason, default),
        };
        self.broadcast(&msg, out);
        self.stats.leaves += self.members.len() as u64;
        self.members.clear();
        self.by_nick.clear();
        self.idle_timers.clear();
        self.retransmits.clear();
    }

    /// Every member, sorted by nick key.
    pub fn members(&self) -> Vec<(Nick, SocketAddr, Dialect)> {
        self.by_nick
            .values()
            .filter_map(|addr| {
                let m = self.members.get(addr)?;
                Some((m.nick.clone(), *addr, m.dialect))
            })
            .collect()
    }

    /// How many members there are.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The newest room event's sequence number (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    // ----- commands -----

    fn handle_join(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        nick: Nick,
        dialect: Dialect,
        out: &mut Outputs,
    ) {
        // Errors to a stranger go back in the dialect the join asked for; a
        // member keeps its own, except that a HELLO is always answered in
        // the structured dialect.
        let to = match (self.members.get(&from), dialect) {
            (None, _) => Recipient::Stranger(dialect),
            (Some(_), Dialect::Structured) => Recipient::Member(Dialect::Structured),
            (Some(member), Dialect::Classic(_)) => Recipient::Member(member.dialect),
        };
        if matches!(dialect, Dialect::Classic(_)) && !self.config.classic {
            let detail = "classic join while classic is disabled".into();
            self.refuse(
                now_ms,
                from,
                to,
                ErrorCode::ClassicDisabled,
                None,
                detail,
                out,
            );
            return;
        }
        let due_ms = now_ms + self.idle_timeout_ms(dialect);
        if let Some(member) = self.members.get_mut(&from) {
            if same_nick(&member.nick, &nick) {
                // Idempotent: the reply was probably lost. No second JOIN.
                // A switch of dialect (or line ending) takes effect.
                if member.dialect != dialect {
                    member.dialect = dialect;
                    // Pending PRIVATEs are structured datagrams; a classic
                    // client could neither read nor ACK them.
                    if dialect != Dialect::Structured {
                        member.pending = None;
                    }
                    member.generation = self.next_generation;
                    self.next_generation += 1;
                    self.idle_timers.push(Reverse(IdleTimer {
                        due_ms,
                        addr: from,
                        generation: member.generation,
                    }));
                }
                self.welcome(from, out);
            } else {
                let held = member.nick.to_string();
                let detail = format!("holds {held}, asked for {nick}");
                self.refuse(
                    now_ms,
                    from,
                    to,
                    ErrorCode::AlreadyJoined,
                    Some(&held),
                    detail,
                    out,
                );
            }
            return;
        }
        if self.by_nick.contains_key(&nick.key()) {
            let detail = format!("{nick} is taken");
            let shown = nick.to_string();
            self.refuse(
                now_ms,
                from,
                to,
                ErrorCode::NickTaken,
                Some(&shown),
                detail,
                out,
            );
            return;
        }
        if self.members.len() >= self.config.max_clients {
            let detail = format!("{} members", self.members.len());
            self.refuse(now_ms, from, to, ErrorCode::RoomFull, None, detail, out);
            return;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let bucket = self
            .strangers
            .remove(&from)
            .unwrap_or_else(|| Bucket::full(self.member_rate, now_ms));
        self.by_nick.insert(nick.key(), from);
        self.members.insert(
            from,
            Member {
                nick: nick.clone(),
                dialect,
                generation,
                last_heard_ms: now_ms,
                bucket,
                pending: None,
                recent_ids: None,
            },
        );
        self.idle_timers.push(Reverse(IdleTimer {
            due_ms,
            addr: from,
            generation,
        }));
        self.compact_idle_timers();
        self.stats.joins += 1;
        out.events.push(Event::Joined {
            addr: from,
            nick: nick.clone(),
            dialect,
        });
        self.welcome(from, out);
        let counted = self.members.len();
        self.membership_event(RoomEvent::Join(nick), counted, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_hello(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        len: usize,
        version: Token,
        nick: Nick,
        cookie: Option<Cookie>,
        out: &mut Outputs,
    ) {
        let to = self.recipient(from, Dialect::Structured);
        let to = match to {
            Recipient::Member(_) => Recipient::Member(Dialect::Structured),
            stranger => stranger,
        };
        let valid = cookie.is_some_and(|c| self.cookies.is_valid(from, c, now_ms));
        if !valid {
            if cookie.is_none() && len < MIN_HELLO_LEN {
                // The answer must never be larger than the request.
                out.events.push(Event::Dropped {
                    addr: from,
                    why: "cookie-less HELLO shorter than MIN_HELLO_LEN",
                });
                return;
            }
            let cookie = self.cookies.current(from, now_ms);
            self.send(now_ms, from, to, &RelayMsg::Cookie(cookie), out);
            return;
        }
        if version.as_str() != VERSION {
            let detail = format!("version {version}");
            self.refuse(now_ms, from, to, ErrorCode::BadVersion, None, detail, out);
            return;
        }
        self.handle_join(now_ms, from, nick, Dialect::Structured, out);
    }

    fn handle_chat(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        claimed: Nick,
        text: Text,
        guess: Dialect,
        out: &mut Outputs,
    ) {
        let Some(nick) = self.check_identity(now_ms, from, &claimed, guess, out) else {
            return;
        };
        self.room_event(RoomEvent::Chat { nick, text }, out);
    }

    /// `SAY`: like `M` as the nickname the address holds, relayed once per
    /// id. A repeat is dropped silently: its CHAT event is in history, and a
    /// client that missed the echo learns of it from `PONG` and `RESEND`.
    fn handle_say(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        id: u64,
        text: Text,
        guess: Dialect,
        out: &mut Outputs,
    ) {
        if self.member_dialect(now_ms, from, guess, out).is_none() {
            return;
        }
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        if !remember_id(&mut member.recent_ids, id) {
            out.events.push(Event::Dropped {
                addr: from,
                why: "repeated SAY id (relayed already)",
            });
            return;
        }
        let nick = member.nick.clone();
        self.room_event(RoomEvent::Chat { nick, text }, out);
    }

    fn handle_quit(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        claimed: Nick,
        guess: Dialect,
        out: &mut Outputs,
    ) {
        if self
            .check_identity(now_ms, from, &claimed, guess, out)
            .is_some()
        {
            self.leave(from, LeaveReason::Quit, out);
        }
    }

    fn handle_who(&mut self, now_ms: u64, from: SocketAddr, guess: Dialect, out: &mut Outputs) {
        let Some(dialect) = self.member_dialect(now_ms, from, guess, out) else {
            return;
        };
        let nicks: Vec<Nick> = self
            .by_nick
            .values()
            .filter_map(|addr| self.members.get(addr).map(|m| m.nick.clone()))
            .collect();
        for page in RelayMsg::who_pages(&nicks) {
            self.send(now_ms, from, Recipient::Member(dialect), &page, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_private(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        id: Option<u64>,
        to: Nick,
        text: Text,
        guess: Dialect,
        out: &mut Outputs,
    ) {
        let Some(sender_dialect) = self.member_dialect(now_ms, from, guess, out) else {
            return;
        };
        let sender_to = Recipient::Member(sender_dialect);
        if let (Some(id), Some(sender)) = (id, self.members.get(&from)) {
            if sender
                .recent_ids
                .as_ref()
                .is_some_and(|ids| ids.contains(&id))
            {
                // Delivered already; the sender missed our SENT.
                let msg = RelayMsg::Sent {
                    id: Some(id),
                    to,
                    text,
                };
                self.send(now_ms, from, sender_to, &msg, out);
                return;
            }
        }
        let Some(&to_addr) = self.by_nick.get(&to.key()) else {
            let shown = to.to_string();
            let detail = format!("private message to absent {to}");
            self.refuse(
                now_ms,
                from,
                sender_to,
                ErrorCode::NoSuchNick,
                Some(&shown),
                detail,
                out,
            );
            return;
        };
        let Some(sender) = self.members.get_mut(&from) else {
            return;
        };
        if let Some(id) = id {
            remember_id(&mut sender.recent_ids, id);
        }
        let from_nick = sender.nick.clone();
        let Some(recipient) = self.members.get_mut(&to_addr) else {
            return;
        };
        let to_nick = recipient.nick.clone();
        let pid = self.next_pid;
        self.next_pid += 1;
        let msg = RelayMsg::Private {
            pid,
            from: from_nick.clone(),
            text: text.clone(),
        };
        if let Some(bytes) = render(&msg, recipient.dialect, self.config.lang, &mut self.scratch) {
            if recipient.dialect == Dialect::Structured {
                let pending = recipient.pending.get_or_insert_with(Default::default);
                if pending.len() == MAX_PENDING_PRIVATE {
                    pending.pop_front();
                    out.events.push(Event::Dropped {
                        addr: to_addr,
                        why: "too many unacknowledged private messages; gave up the oldest",
                    });
                }
                pending.push_back(Pending {
                    pid,
                    first_sent_ms: now_ms,
                    retransmits: 0,
                    bytes: Rc::clone(&bytes),
                });
                self.retransmits.push(Reverse(RetransmitTimer {
                    due_ms: now_ms + RETRANSMIT_AFTER_MS[0],
                    addr: to_addr,
                    pid,
                }));
            }
            self.stats.datagrams_out += 1;
            out.transmits.push(Transmit { to: to_addr, bytes });
        }
        let sent = RelayMsg::Sent {
            id,
            to: to_nick.clone(),
            text: text.clone(),
        };
        self.send(now_ms, from, sender_to, &sent, out);
        out.events.push(Event::Private {
            from: from_nick,
            to: to_nick,
            text,
        });
    }

    fn handle_ping(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        token: Option<Token>,
        guess: Dialect,
        out: &mut Outputs,
    ) {
        let to = self.recipient(from, guess);
        let msg = RelayMsg::Pong {
            last_seq: self.last_seq,
            token,
        };
        self.send(now_ms, from, to, &msg, out);
    }

    fn handle_rename(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        new: Nick,
        guess: Dialect,
        out: &mut Outputs,
    ) {
        let Some(dialect) = self.member_dialect(now_ms, from, guess, out) else {
            return;
        };
        let Some(member) = self.members.get(&from) else {
            return;
        };
        if member.nick == new {
            out.events.push(Event::Dropped {
                addr: from,
                why: "rename to the nickname already held",
            });
            return;
        }
        let old_key = member.nick.key();
        let new_key = new.key();
        if new_key != old_key && self.by_nick.contains_key(&new_key) {
            let shown = new.to_string();
            let detail = format!("rename to taken {new}");
            let to = Recipient::Member(dialect);
            self.refuse(
                now_ms,
                from,
                to,
                ErrorCode::NickTaken,
                Some(&shown),
                detail,
                out,
            );
            return;
        }
        self.by_nick.remove(&old_key);
        self.by_nick.insert(new_key, from);
        let Some(member) = self.members.get_mut(&from) else {
            return;
        };
        let old = std::mem::replace(&mut member.nick, new.clone());
        self.room_event(RoomEvent::Rename { old, new }, out);
    }

    fn handle_ack(&mut self, from: SocketAddr, pid: u64, out: &mut Outputs) {
        let Some(member) = self.members.get_mut(&from) else {
            out.events.push(Event::Dropped {
                addr: from,
                why: "ACK from a non-member",
            });
            return;
        };
        if let Some(pending) = member.pending.as_mut() {
            pending.retain(|p| p.pid != pid);
            if pending.is_empty() {
                member.pending = None;
            }
        }
    }

    fn handle_resend(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        first: u64,
        last: u64,
        guess: Dialect,
        out: &mut Outputs,
    ) {
        let Some(dialect) = self.member_dialect(now_ms, from, guess, out) else {
            return;
        };
        if dialect != Dialect::Structured {
            let to = Recipient::Member(dialect);
            let detail = "RESEND from a classic member".into();
            self.refuse(now_ms, from, to, ErrorCode::UnknownVerb, None, detail, out);
            return;
        }
        let first = first.max(1);
        let last = last
            .min(self.last_seq)
            .min(first.saturating_add(MAX_RESEND - 1));
        if first > last {
            return;
        }
        let oldest = self.history.oldest_seq().unwrap_or(self.last_seq + 1);
        if first < oldest {
            let gone = RelayMsg::Gone {
                from: first,
                to: last.min(oldest - 1),
            };
            self.send(now_ms, from, Recipient::Member(dialect), &gone, out);
        }
        for seq in first.max(oldest)..=last {
            let Some(event) = self.history.get(seq) else {
                break;
            };
            let msg = RelayMsg::Event {
                seq,
                origin: Origin::Resend,
                event: event.clone(),
            };
            self.scratch.clear();
            msg.encode_into(&mut self.scratch);
            self.stats.datagrams_out += 1;
            out.transmits.push(Transmit {
                to: from,
                bytes: Rc::from(&self.scratch[..]),
            });
        }
    }

    // ----- membership -----

    /// WELCOME (or the classic `OK`) to a member, and for a structured one
    /// the recent CHAT/HOST history.
    fn welcome(&mut self, addr: SocketAddr, out: &mut Outputs) {
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        let dialect = member.dialect;
        let msg = RelayMsg::Welcome {
            version: Token::new(VERSION).expect("VERSION is a valid token"),
            nick: member.nick.clone(),
            last_seq: self.last_seq,
            ping_interval: secs(self.config.ping_interval),
            idle_timeout: secs(self.config.idle_timeout),
        };
        self.send(0, addr, Recipient::Member(dialect), &msg, out);
        if dialect != Dialect::Structured || self.config.history_on_join == 0 {
            return;
        }
        let mut recent: Vec<(u64, &RoomEvent)> = self
            .history
            .iter()
            .rev()
            .filter(|(_, e)| matches!(e, RoomEvent::Chat { .. } | RoomEvent::Host(_)))
            .take(self.config.history_on_join)
            .collect();
        recent.reverse();
        for (seq, event) in recent {
            let msg = RelayMsg::Event {
                seq,
                origin: Origin::History,
                event: event.clone(),
            };
            self.scratch.clear();
            msg.encode_into(&mut self.scratch);
            self.stats.datagrams_out += 1;
            out.transmits.push(Transmit {
                to: addr,
                bytes: Rc::from(&self.scratch[..]),
            });
        }
    }

    /// Removes the member at `addr` and tells the rest. False if there is none.
    fn leave(&mut self, addr: SocketAddr, reason: LeaveReason, out: &mut Outputs) -> bool {
        let Some(member) = self.members.remove(&addr) else {
            return false;
        };
        self.by_nick.remove(&member.nick.key());
        self.stats.leaves += 1;
        // Keep its rate-limit state, so quitting and rejoining buys nothing.
        if self.strangers.len() < MAX_STRANGERS {
            self.strangers.insert(addr, member.bucket);
        }
        out.events.push(Event::Left {
            addr,
            nick: member.nick.clone(),
            reason,
        });
        let event = RoomEvent::Leave {
            nick: member.nick,
            reason,
        };
        // Counted with the leaver, as a join is counted with the joiner.
        let counted = self.members.len() + 1;
        self.membership_event(event, counted, out);
        true
    }

    fn evict(&mut self, addr: SocketAddr, out: &mut Outputs) {
        let Some(member) = self.members.get(&addr) else {
            return;
        };
        let dialect = member.dialect;
        let seconds = self.idle_timeout_ms(dialect) / 1000;
        let reason = match self.config.lang {
            Lang::En => format!("no message for {seconds} s"),
            Lang::Zh => format!("{seconds} 秒内没有收到消息"),
        };
        let msg = RelayMsg::Bye {
            code: ByeCode::Timeout,
            reason: text_or(&reason, "timeout"),
        };
        self.send(0, addr, Recipient::Member(dialect), &msg, out);
        self.leave(addr, LeaveReason::Timeout, out);
    }

    fn retransmit(&mut self, timer: RetransmitTimer, out: &mut Outputs) {
        let Some(member) = self.members.get_mut(&timer.addr) else {
            return;
        };
        let Some(pending) = member.pending.as_mut() else {
            return;
        };
        let Some(index) = pending.iter().position(|p| p.pid == timer.pid) else {
            return;
        };
        let entry = &mut pending[index];
        self.stats.datagrams_out += 1;
        out.transmits.push(Transmit {
            to: timer.addr,
            bytes: Rc::clone(&entry.bytes),
        });
        entry.retransmits += 1;
        if let Some(after) = RETRANSMIT_AFTER_MS.get(usize::from(entry.retransmits)) {
            self.retransmits.push(Reverse(RetransmitTimer {
                due_ms: entry.first_sent_ms + after,
                ..timer
            }));
        } else {
            pending.remove(index);
            if pending.is_empty() {
                member.pending = None;
            }
            out.events.push(Event::Dropped {
                addr: timer.addr,
                why: "private message never acknowledged; gave up",
            });
        }
    }

    /// Drops stale idle timers once they outnumber the members, so join
    /// churn cannot grow the heap.
    fn compact_idle_timers(&mut self) {
        if self.idle_timers.len() <= 2 * self.members.len() + 64 {
            return;
        }
        let timers: Vec<Reverse<IdleTimer>> = self
            .members
            .iter()
            .map(|(addr, m)| {
                Reverse(IdleTimer {
                    due_ms: m.last_heard_ms + self.idle_timeout_ms(m.dialect),
                    addr: *addr,
                    generation: m.generation,
                })
            })
            .collect();
        self.idle_timers = BinaryHeap::from(timers);
    }

    // ----- helpers -----

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    fn idle_timeout_ms(&self, dialect: Dialect) -> u64 {
        let timeout = match dialect {
            Dialect::Structured => self.config.idle_timeout,
            Dialect::Classic(_) => self.config.classic_idle_timeout,
        };
        u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX / 2)
    }

    /// Takes a rate-limit token for a datagram from `from`.
    fn take_token(&mut self, from: SocketAddr, now_ms: u64) -> Take {
        let rate = self.member_rate;
        if let Some(member) = self.members.get_mut(&from) {
            return member.bucket.take(rate, now_ms);
        }
        if let Some(bucket) = self.strangers.get_mut(&from) {
            return bucket.take(rate, now_ms);
        }
        if self.strangers.len() >= MAX_STRANGERS {
            return Take::Allowed;
        }
        let mut bucket = Bucket::full(rate, now_ms);
        let take = bucket.take(rate, now_ms);
        self.strangers.insert(from, bucket);
        take
    }

    fn recipient(&self, from: SocketAddr, guess: Dialect) -> Recipient {
        match self.members.get(&from) {
            Some(m) => Recipient::Member(m.dialect),
            None => Recipient::Stranger(guess),
        }
    }

    /// The member's dialect, or refuses a non-member with `not-joined`.
    fn member_dialect(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        guess: Dialect,
        out: &mut Outputs,
    ) -> Option<Dialect> {
        if let Some(m) = self.members.get(&from) {
            return Some(m.dialect);
        }
        let to = Recipient::Stranger(guess);
        let detail = "command from a non-member".into();
        self.refuse(now_ms, from, to, ErrorCode::NotJoined, None, detail, out);
        None
    }

    /// The member's own nickname if `from` is a member holding `claimed`;
    /// otherwise refuses (`not-joined` or `not-yours`) and gives `None`.
    fn check_identity(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        claimed: &Nick,
        guess: Dialect,
        out: &mut Outputs,
    ) -> Option<Nick> {
        let dialect = self.member_dialect(now_ms, from, guess, out)?;
        let member = self.members.get(&from)?;
        if same_nick(&member.nick, claimed) {
            return Some(member.nick.clone());
        }
        let detail = format!("{} claimed {claimed}", member.nick);
        let shown = claimed.to_string();
        let to = Recipient::Member(dialect);
        self.refuse(
            now_ms,
            from,
            to,
            ErrorCode::NotYours,
            Some(&shown),
            detail,
            out,
        );
        None
    }

    /// A `JOIN` or `LEAVE` in a room of `counted` members (the joiner or
    /// leaver included): a room event up to [`Config::announce_limit`]
    /// members, above it only reported to the shell.
    fn membership_event(&mut self, event: RoomEvent, counted: usize, out: &mut Outputs) {
        if counted <= self.config.announce_limit {
            self.room_event(event, out);
        } else {
            out.events.push(Event::Unannounced { event });
        }
    }

    /// A numbered room event: live to every member, into history, logged.
    fn room_event(&mut self, event: RoomEvent, out: &mut Outputs) -> u64 {
        self.last_seq += 1;
        let seq = self.last_seq;
        out.events.push(Event::Room {
            seq,
            event: event.clone(),
        });
        let msg = RelayMsg::Event {
            seq,
            origin: Origin::Live,
            event,
        };
        self.broadcast(&msg, out);
        if let RelayMsg::Event { event, .. } = msg {
            self.history.push(seq, event);
        }
        seq
    }

    /// Sends `msg` to every member, rendering it once per dialect and line
    /// ending: recipients share the bytes.
    fn broadcast(&mut self, msg: &RelayMsg, out: &mut Outputs) {
        let mut renderings: [Option<Option<Rc<[u8]>>>; 3] = [None, None, None];
        let lang = self.config.lang;
        let scratch = &mut self.scratch;
        let mut sent = 0;
        for (addr, member) in &self.members {
            let slot = &mut renderings[rendering_index(member.dialect)];
            let bytes = slot.get_or_insert_with(|| render(msg, member.dialect, lang, scratch));
            if let Some(bytes) = bytes {
                out.transmits.push(Transmit {
                    to: *addr,
                    bytes: Rc::clone(bytes),
                });
                sent += 1;
            }
        }
        self.stats.datagrams_out += sent;
    }

    /// Sends one reply. Replies to strangers spend the global budget.
    fn send(
        &mut self,
        now_ms: u64,
        addr: SocketAddr,
        to: Recipient,
        msg: &RelayMsg,
        out: &mut Outputs,
    ) {
        let dialect = match to {
            Recipient::Member(dialect) => dialect,
            Recipient::Stranger(dialect) => {
                if !self.stranger_budget.try_take(self.stranger_rate, now_ms) {
                    self.stats.stranger_replies_dropped += 1;
                    out.events.push(Event::Dropped {
                        addr,
                        why: "reply budget for non-members exhausted",
                    });
                    return;
                }
                dialect
            }
        };
        if let Some(bytes) = render(msg, dialect, self.config.lang, &mut self.scratch) {
            self.stats.datagrams_out += 1;
            out.transmits.push(Transmit { to: addr, bytes });
        }
    }

    /// Answers with `ERROR <code> <reason>`, the reason in the room's
    /// language plus an optional short detail (such as the nickname).
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        now_ms: u64,
        addr: SocketAddr,
        to: Recipient,
        code: ErrorCode,
        shown: Option<&str>,
        detail: String,
        out: &mut Outputs,
    ) {
        if code != ErrorCode::RateLimited {
            self.stats.refused += 1;
        }
        out.events.push(Event::Refused { addr, code, detail });
        let base = code.reason(self.config.lang);
        let reason = match shown {
            Some(shown) => text_or(&format!("{base} ({shown})"), base),
            None => text_or(base, "error"),
        };
        self.send(now_ms, addr, to, &RelayMsg::Error { code, reason }, out);
    }
}

/// Renders `msg` for one dialect. `None` for messages classic has no line
/// for (`COOKIE`, `GONE`).
fn render(msg: &RelayMsg, dialect: Dialect, lang: Lang, scratch: &mut Vec<u8>) -> Option<Rc<[u8]>> {
    scratch.clear();
    match dialect {
        Dialect::Structured => msg.encode_into(scratch),
        Dialect::Classic(line_ending) => {
            scratch.extend_from_slice(classic::render(msg, lang)?.as_bytes());
            if line_ending == LineEnding::Newline {
                scratch.push(b'\n');
            }
        }
    }
    Some(Rc::from(&scratch[..]))
}

fn rendering_index(dialect: Dialect) -> usize {
    match dialect {
        Dialect::Structured => 0,
        Dialect::Classic(LineEnding::Bare) => 1,
        Dialect::Classic(LineEnding::Newline) => 2,
    }
}

/// How to answer a non-member: the structured verbs and bare datagrams get
/// the structured form (which a structured client can parse and a person
/// can still read); newline-terminated datagrams and `N` come from classic
/// clients and get classic lines.
fn stranger_dialect(bytes: &[u8]) -> Dialect {
    let verb = bytes.split(|&b| b == b' ').next().unwrap_or_default();
    let (verb, _) = strip_line_ending(verb);
    if matches!(verb, b"HELLO" | b"PMSG" | b"SAY" | b"ACK" | b"RESEND") {
        return Dialect::Structured;
    }
    match strip_line_ending(bytes).1 {
        LineEnding::Newline => Dialect::Classic(LineEnding::Newline),
        LineEnding::Bare if verb == b"N" => Dialect::Classic(LineEnding::Bare),
        LineEnding::Bare => Dialect::Structured,
    }
}

/// Says whether a datagram that is not a command is something a relay sends:
/// a structured message, or a classic line (`OK`, `* ...`, `[host] ...`,
/// `ERROR ...`, `PONG`, `nick: text`). Such datagrams get no error reply.
fn looks_like_relay_output(bytes: &[u8]) -> bool {
    let (line, _) = strip_line_ending(bytes);
    if RelayMsg::parse(line).is_ok() {
        return true;
    }
    let first = line.split(|&b| b == b' ').next().unwrap_or_default();
    matches!(first, b"OK" | b"*" | b"ERROR" | b"PONG")
        || first.starts_with(b"[")
        || first.starts_with("错误".as_bytes())
        || (first.len() > 1 && first.ends_with(b":"))
}

/// Adds `id` to a member's ring of recent `PMSG`/`SAY` ids, forgetting the
/// oldest beyond [`RECENT_IDS`]. False if it was there already.
#[allow(clippy::box_collection)]
fn remember_id(ids: &mut Option<Box<VecDeque<u64>>>, id: u64) -> bool {
    let ids = ids.get_or_insert_with(Default::default);
    if ids.contains(&id) {
        return false;
    }
    if ids.len() == RECENT_IDS {
        ids.pop_front();
    }
    ids.push_back(id);
    true
}

/// Nicknames are the same member if their keys match (exact match first,
/// which needs no allocation).
fn same_nick(a: &Nick, b: &Nick) -> bool {
    a == b || a.key() == b.key()
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// `s` as message text, or `fallback` if `s` breaks the text rules.
fn text_or(s: &str, fallback: &str) -> Text {
    Text::new(s)
        .or_else(|_| Text::new(fallback))
        .unwrap_or_else(|_| Text::new("-").expect("a literal is valid text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [42; 16];

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 40_000 + u16::from(n)))
    }

    /// A room on a fake clock, collecting what it sends.
    struct Harness {
        room: Room,
        base: Instant,
        elapsed: Duration,
        out: Outputs,
    }

    impl Harness {
        fn new() -> Harness {
            Harness::with(Config::default())
        }

        fn with(config: Config) -> Harness {
            let base = Instant::now();
            Harness {
                room: Room::new(config, KEY, base),
                base,
                elapsed: Duration::ZERO,
                out: Outputs::default(),
            }
        }

        fn now(&self) -> Instant {
            self.base + self.elapsed
        }

        fn advance_ms(&mut self, ms: u64) {
            self.elapsed += Duration::from_millis(ms);
        }

        /// Sends `bytes` from `addr(n)`; returns (recipient index, text) pairs.
        fn send(&mut self, n: u8, bytes: &str) -> Vec<(u8, String)> {
            self.send_bytes(n, bytes.as_bytes())
        }

        fn send_bytes(&mut self, n: u8, bytes: &[u8]) -> Vec<(u8, String)> {
            self.out.clear();
            let now = self.now();
            self.room
                .handle_datagram(now, addr(n), bytes, &mut self.out);
            self.sent()
        }

        fn timeout(&mut self) -> Vec<(u8, String)> {
            self.out.clear();
            let now = self.now();
            self.room.handle_timeout(now, &mut self.out);
            self.sent()
        }

        fn sent(&self) -> Vec<(u8, String)> {
            self.out
                .transmits
                .iter()
                .map(|t| {
                    let n = match t.to {
                        SocketAddr::V4(a) => a.ip().octets()[3],
                        SocketAddr::V6(_) => 0,
                    };
                    (n, String::from_utf8(t.bytes.to_vec()).unwrap())
                })
                .collect()
        }

        fn cookie(&self, n: u8) -> Cookie {
            self.room.cookies.current(addr(n), self.room.ms(self.now()))
        }

        fn join_classic(&mut self, n: u8, nick: &str) {
            let sent = self.send(n, &format!("N {nick}"));
            assert!(sent.contains(&(n, "OK".into())), "{sent:?}");
        }

        fn join_structured(&mut self, n: u8, nick: &str) -> Vec<(u8, String)> {
            let cookie = self.cookie(n);
            let sent = self.send(n, &format!("HELLO udpchat/1 {nick} {cookie}"));
            assert!(sent[0].1.starts_with("WELCOME "), "{sent:?}");
            sent
        }
    }

    fn to(sent: &[(u8, String)], n: u8) -> Vec<&str> {
        sent.iter()
            .filter(|(m, _)| *m == n)
            .map(|(_, s)| s.as_str())
            .collect()
    }

    fn padded_hello(nick: &str) -> String {
        String::from_utf8(
            ClientMsg::Hello {
                version: Token::new(VERSION).unwrap(),
                nick: Nick::new(nick).unwrap(),
                cookie: None,
            }
            .encode(),
        )
        .unwrap()
    }

    // ----- classic joins -----

    #[test]
    fn classic_join_replies_ok_and_announces_join_to_everyone() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "N bob");
        assert_eq!(to(&sent, 2), ["OK", "* bob joined"]);
        assert_eq!(to(&sent, 1), ["* bob joined"]);
        assert_eq!(h.room.member_count(), 2);
    }

    #[test]
    fn newline_classic_member_gets_every_line_with_newline() {
        let mut h = Harness::new();
        let sent = h.send(1, "N alice\r\n");
        assert_eq!(to(&sent, 1), ["OK\n", "* alice joined\n"]);
        let sent = h.send(1, "M alice hi");
        assert_eq!(to(&sent, 1), ["alice: hi\n"]);
    }

    #[test]
    fn bare_classic_member_gets_bare_ok() {
        let mut h = Harness::new();
        let sent = h.send(1, "N alice");
        assert_eq!(to(&sent, 1)[0], "OK");
    }

    #[test]
    fn repeated_classic_join_with_same_nick_gets_ok_without_second_join() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(1, "N alice");
        assert_eq!(sent, [(1, "OK".to_string())]);
        assert_eq!(h.room.last_seq(), 2);
    }

    #[test]
    fn classic_join_with_other_nick_from_same_address_is_already_joined() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(1, "N alicia");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR already-joined: "), "{sent:?}");
        assert_eq!(h.room.members()[0].0.as_str(), "alice");
    }

    #[test]
    fn join_with_nick_held_by_another_address_is_nick_taken_case_insensitively() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "N ALICE");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR nick-taken: "), "{sent:?}");
        assert!(sent[0].1.contains("(ALICE)"), "{sent:?}");
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn join_when_room_is_full_is_refused() {
        let mut h = Harness::with(Config {
            max_clients: 2,
            ..Config::default()
        });
        h.join_classic(1, "a");
        h.join_classic(2, "b");
        let sent = h.send(3, "N c");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR room-full: "));
        assert_eq!(h.room.member_count(), 2);
    }

    #[test]
    fn classic_join_is_refused_when_classic_is_disabled() {
        let mut h = Harness::with(Config {
            classic: false,
            ..Config::default()
        });
        let sent = h.send(1, "N alice\n");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR classic-disabled: "));
        assert!(sent[0].1.ends_with('\n'));
        assert_eq!(h.room.member_count(), 0);
        h.join_structured(2, "bob");
    }

    // ----- structured joins -----

    #[test]
    fn cookieless_hello_gets_a_cookie_and_no_state() {
        let mut h = Harness::new();
        let sent = h.send(1, &padded_hello("alice"));
        assert_eq!(sent, [(1, format!("COOKIE {}", h.cookie(1)))]);
        assert_eq!(h.room.member_count(), 0);
        assert!(h.room.strangers.len() <= 1);
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

    #[test]
    fn hello_with_bad_version_is_refused() {
        let mut h = Harness::new();
        let cookie = h.cookie(1);
        let sent = h.send(1, &format!("HELLO udpchat/2 alice {cookie}"));
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR bad-version "), "{sent:?}");
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn structured_join_gets_welcome_then_history_then_own_join() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.send(1, "M alice one");
        h.room
            .host_message(h.now(), "two", &mut Outputs::default())
            .unwrap();
        let sent = h.join_structured(2, "bob");
        assert_eq!(
            to(&sent, 2),
            [
                "WELCOME udpchat/1 bob 3 15 60",
                "EVENT 2 history CHAT alice one",
                "EVENT 3 history HOST two",
                "EVENT 4 live JOIN bob",
            ]
        );
        assert_eq!(to(&sent, 1), ["* bob joined"]);
    }

    #[test]
    fn history_on_join_is_only_the_most_recent_chat_and_host_events() {
        let mut h = Harness::with(Config {
            history_on_join: 2,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        for text in ["a", "b", "c"] {
            h.send(1, &format!("M alice {text}"));
        }
        h.send(1, "NICK alicia");
        let sent = h.join_structured(2, "bob");
        let history: Vec<&str> = to(&sent, 2)
            .into_iter()
            .filter(|s| s.contains(" history "))
            .collect();
        assert_eq!(
            history,
            [
                "EVENT 3 history CHAT alice b",
                "EVENT 4 history CHAT alice c"
            ]
        );
    }

    #[test]
    fn history_on_join_zero_sends_no_history() {
        let mut h = Harness::with(Config {
            history_on_join: 0,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.send(1, "M alice a");
        let sent = h.join_structured(2, "bob");
        assert_eq!(to(&sent, 2).len(), 2);
    }

    #[test]
    fn repeated_valid_hello_gets_welcome_without_second_join() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        let sent = h.join_structured(1, "alice");
        assert_eq!(to(&sent, 1), ["WELCOME udpchat/1 alice 1 15 60"]);
        assert_eq!(h.room.last_seq(), 1);
    }

    #[test]
    fn hello_from_address_joined_under_other_nick_is_already_joined() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let cookie = h.cookie(1);
        let sent = h.send(1, &format!("HELLO udpchat/1 bob {cookie}"));
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR already-joined "), "{sent:?}");
    }

    // ----- chat and identity -----

    #[test]
    fn chat_goes_to_every_member_including_the_sender() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        h.join_structured(3, "carol");
        let sent = h.send(1, "M alice hi  there");
        assert_eq!(to(&sent, 1), ["alice: hi  there"]);
        assert_eq!(to(&sent, 2), ["alice: hi  there"]);
        assert_eq!(to(&sent, 3), ["EVENT 4 live CHAT alice hi  there"]);
    }

    #[test]
    fn chat_uses_the_held_spelling_of_the_nick() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(1, "M ALICE hi");
        assert_eq!(to(&sent, 1), ["alice: hi"]);
    }

    #[test]
    fn chat_from_non_member_is_not_joined_and_not_relayed() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "M alice hi\n");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 2);
        assert!(sent[0].1.starts_with("ERROR not-joined: "));
    }

    #[test]
    fn chat_with_another_members_nick_is_not_yours_and_not_relayed() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(2, "M alice I am alice");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 2);
        assert!(sent[0].1.starts_with("ERROR not-yours: "), "{sent:?}");
        assert!(!h.out.events.iter().any(|e| matches!(e, Event::Room { .. })));
    }

    #[test]
    fn say_is_relayed_once_to_every_member_as_the_senders_chat() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_classic(2, "bob");
        h.send(2, "N bob\n");
        let sent = h.send(1, "SAY 9  hi  there");
        assert_eq!(to(&sent, 1), ["EVENT 3 live CHAT alice  hi  there"]);
        assert_eq!(to(&sent, 2), ["alice:  hi  there\n"]);
        assert_eq!(sent.len(), 2);
        assert!(h.out.events.contains(&Event::Room {
            seq: 3,
            event: RoomEvent::Chat {
                nick: Nick::new("alice").unwrap(),
                text: Text::new(" hi  there").unwrap()
            }
        }));
    }

    #[test]
    fn repeated_say_id_is_dropped_silently() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        assert_eq!(h.send(1, "SAY 9 once").len(), 2);
        assert_eq!(h.send(1, "SAY 9 once"), []);
        assert!(!h.out.events.iter().any(|e| matches!(e, Event::Room { .. })));
        // The same id from another member is that member's own message,
        // and a new id from the first member goes through.
        assert_eq!(h.send(2, "SAY 9 mine").len(), 2);
        assert_eq!(h.send(1, "SAY 10 next").len(), 2);
        assert_eq!(h.room.last_seq(), 5);
    }

    #[test]
    fn say_dedup_remembers_only_the_last_64_ids() {
        let mut h = Harness::with(Config {
            rate_burst: 1000,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        for id in 0..65 {
            h.send(1, &format!("SAY {id} m{id}"));
        }
        // Id 1 is still in the window, id 0 fell out of it.
        assert_eq!(h.send(1, "SAY 1 m1"), []);
        assert_eq!(h.send(1, "SAY 0 m0").len(), 1);
    }

    #[test]
    fn say_and_pmsg_share_the_id_ring() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "PMSG 4 bob psst");
        assert_eq!(h.send(1, "SAY 4 hi"), []);
    }

    #[test]
    fn say_ids_are_forgotten_when_the_member_leaves() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 before");
        h.send(1, "Q alice");
        h.join_structured(1, "alice");
        let sent = h.send(1, "SAY 1 after");
        assert_eq!(to(&sent, 1), ["EVENT 5 live CHAT alice after"]);
    }

    #[test]
    fn say_ids_survive_a_repeated_hello() {
        // A HELLO the network repeats must not reopen the window for a
        // repeated SAY.
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 once");
        h.join_structured(1, "alice");
        assert_eq!(h.send(1, "SAY 1 once"), []);
    }

    #[test]
    fn say_from_non_member_is_not_joined_and_not_relayed() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "SAY 1 hi");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 2);
        assert!(sent[0].1.starts_with("ERROR not-joined "), "{sent:?}");
        assert!(!h.out.events.iter().any(|e| matches!(e, Event::Room { .. })));
    }

    #[test]
    fn say_is_rate_limited_like_any_datagram() {
        let mut h = Harness::with(Config {
            rate_burst: 4,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 a");
        h.send(1, "SAY 2 b");
        h.send(1, "SAY 3 c");
        let sent = h.send(1, "SAY 4 d");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR rate-limited "), "{sent:?}");
        // Dropped unseen, so its retransmission is relayed once it fits.
        h.advance_ms(1000);
        assert_eq!(to(&h.send(1, "SAY 4 d"), 1), ["EVENT 5 live CHAT alice d"]);
    }

    #[test]
    fn quit_removes_member_and_tells_the_rest() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        let sent = h.send(1, "Q alice");
        assert_eq!(to(&sent, 1), Vec::<&str>::new());
        assert_eq!(to(&sent, 2), ["EVENT 3 live LEAVE alice quit"]);
        assert_eq!(h.room.member_count(), 1);
        h.join_classic(3, "alice");
    }

    #[test]
    fn quit_with_another_members_nick_is_refused() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(2, "Q alice");
        assert!(sent[0].1.starts_with("ERROR not-yours: "));
        assert_eq!(h.room.member_count(), 2);
    }

    #[test]
    fn rename_announces_and_frees_the_old_nick() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        let sent = h.send(1, "NICK alicia");
        assert_eq!(to(&sent, 1), ["* alice is now known as alicia"]);
        assert_eq!(to(&sent, 2), ["EVENT 3 live RENAME alice alicia"]);
        h.join_classic(3, "alice");
        let sent = h.send(1, "M alicia hi");
        assert_eq!(to(&sent, 3), ["alicia: hi"]);
    }

    #[test]
    fn rename_to_a_taken_nick_is_refused() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(1, "NICK Bob");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR nick-taken: "));
    }

    #[test]
    fn rename_changing_only_case_is_allowed() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(1, "NICK Alice");
        assert_eq!(to(&sent, 1), ["* alice is now known as Alice"]);
        assert_eq!(h.room.members()[0].0.as_str(), "Alice");
    }

    #[test]
    fn who_lists_members_sorted_in_each_dialect() {
        let mut h = Harness::new();
        h.join_classic(1, "carol");
        h.join_structured(2, "Alice");
        h.join_classic(3, "bob");
        assert_eq!(
            to(&h.send(1, "WHO"), 1),
            ["* online (3): Alice, bob, carol"]
        );
        assert_eq!(to(&h.send(2, "WHO"), 2), ["WHO 1 1 3 Alice bob carol"]);
    }

    #[test]
    fn evicted_structured_client_gets_a_parseable_not_joined() {
        let mut h = Harness::new();
        let sent = h.send(1, "M alice hi");
        let reply = RelayMsg::parse(sent[0].1.as_bytes()).unwrap();
        assert!(matches!(
            reply,
            RelayMsg::Error {
                code: ErrorCode::NotJoined,
                ..
            }
        ));
    }

    #[test]
    fn who_from_non_member_is_not_joined() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "WHO");
        assert!(sent[0].1.starts_with("ERROR not-joined "), "{sent:?}");
    }

    // ----- private messages -----

    #[test]
    fn msg_delivers_private_and_confirms_to_the_sender() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(1, "MSG BOB psst");
        assert_eq!(to(&sent, 2), ["[private from alice] psst"]);
        assert_eq!(to(&sent, 1), ["[private to bob] psst"]);
        assert!(h.out.events.contains(&Event::Private {
            from: Nick::new("alice").unwrap(),
            to: Nick::new("bob").unwrap(),
            text: Text::new("psst").unwrap(),
        }));
    }

    #[test]
    fn structured_private_and_sent_carry_ids() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        let sent = h.send(1, "PMSG 7 bob psst");
        assert_eq!(to(&sent, 2), ["PRIVATE 1 alice psst"]);
        assert_eq!(to(&sent, 1), ["SENT 7 bob psst"]);
        let sent = h.send(1, "MSG bob again");
        assert_eq!(to(&sent, 1), ["SENT - bob again"]);
    }

    #[test]
    fn private_to_absent_nick_is_no_such_nick() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(1, "MSG zed hi");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR no-such-nick: "));
        assert!(sent[0].1.contains("(zed)"));
    }

    #[test]
    fn duplicate_pmsg_only_resends_sent() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "PMSG 7 bob psst");
        let sent = h.send(1, "PMSG 7 bob psst");
        assert_eq!(sent, [(1, "SENT 7 bob psst".to_string())]);
    }

    #[test]
    fn pmsg_dedup_remembers_only_the_last_64_ids() {
        let mut h = Harness::with(Config {
            rate_burst: 1000,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        for id in 0..65 {
            h.send(1, &format!("PMSG {id} bob m{id}"));
        }
        // Id 0 fell out of the window, id 1 did not.
        assert_eq!(to(&h.send(1, "PMSG 0 bob m0"), 2).len(), 1);
        assert_eq!(to(&h.send(1, "PMSG 2 bob m2"), 2).len(), 0);
    }

    #[test]
    fn unacked_private_is_retransmitted_at_1_2_4_8_s_then_given_up() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "MSG bob psst");
        let mut at = Vec::new();
        for ms in (0..20_000).step_by(250) {
            h.elapsed = Duration::from_millis(ms);
            // Keep both members alive.
            for n in [1, 2] {
                h.send(n, "PING");
            }
            let sent = h.timeout();
            if to(&sent, 2).contains(&"PRIVATE 1 alice psst") {
                at.push(ms);
            }
        }
        assert_eq!(at, [1_000, 2_000, 4_000, 8_000]);
        assert!(h.room.members[&addr(2)].pending.is_none());
    }

    #[test]
    fn acked_private_is_not_retransmitted() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "MSG bob psst");
        h.send(2, "ACK 1");
        h.advance_ms(1_000);
        assert!(h.timeout().is_empty());
        assert!(h.room.members[&addr(2)].pending.is_none());
    }

    #[test]
    fn rejoining_as_classic_drops_pending_structured_privates() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "MSG bob psst");
        h.send(2, "N bob");
        assert_eq!(
            h.room.members[&addr(2)].dialect,
            Dialect::Classic(LineEnding::Bare)
        );
        h.advance_ms(1_000);
        assert!(to(&h.timeout(), 2).is_empty());
    }

    #[test]
    fn classic_recipient_gets_no_retransmission() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_classic(2, "bob");
        h.send(1, "MSG bob psst");
        h.advance_ms(1_000);
        assert!(h.timeout().is_empty());
    }

    #[test]
    fn unacked_private_queue_is_bounded() {
        let mut h = Harness::with(Config {
            rate_burst: 1000,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        for i in 0..(MAX_PENDING_PRIVATE + 5) {
            h.send(1, &format!("MSG bob m{i}"));
        }
        let pending = h.room.members[&addr(2)].pending.as_ref().unwrap();
        assert_eq!(pending.len(), MAX_PENDING_PRIVATE);
        assert_eq!(pending[0].pid, 6);
    }

    // ----- ping, resend, history -----

    #[test]
    fn structured_ping_gets_pong_with_last_seq_and_token() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        assert_eq!(to(&h.send(1, "PING t1"), 1), ["PONG 1 t1"]);
        assert_eq!(to(&h.send(1, "PING"), 1), ["PONG 1"]);
    }

    #[test]
    fn classic_ping_gets_pong_without_seq() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        assert_eq!(to(&h.send(1, "PING x"), 1), ["PONG x"]);
    }

    #[test]
    fn stranger_ping_gets_pong() {
        let mut h = Harness::new();
        assert_eq!(to(&h.send(1, "PING x"), 1), ["PONG 0 x"]);
        assert_eq!(to(&h.send(1, "PING x\n"), 1), ["PONG x\n"]);
    }

    #[test]
    fn resend_sends_held_events_with_resend_origin() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "M alice a");
        h.send(1, "M alice b");
        let sent = h.send(1, "RESEND 2 99");
        assert_eq!(
            to(&sent, 1),
            ["EVENT 2 resend CHAT alice a", "EVENT 3 resend CHAT alice b"]
        );
    }

    #[test]
    fn resend_reports_gone_for_events_no_longer_held() {
        let mut h = Harness::with(Config {
            history: 2,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        for text in ["a", "b", "c"] {
            h.send(1, &format!("M alice {text}"));
        }
        let sent = h.send(1, "RESEND 1 4");
        assert_eq!(
            to(&sent, 1),
            [
                "GONE 1 2",
                "EVENT 3 resend CHAT alice b",
                "EVENT 4 resend CHAT alice c"
            ]
        );
    }

    #[test]
    fn resend_is_capped_at_64_events() {
        let mut h = Harness::with(Config {
            rate_burst: 1000,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        for i in 0..100 {
            h.send(1, &format!("M alice {i}"));
        }
        let sent = h.send(1, "RESEND 1 1000");
        assert_eq!(sent.len(), 64);
        assert_eq!(sent[63].1, "EVENT 64 resend CHAT alice 62");
    }

    #[test]
    fn resend_beyond_last_seq_sends_nothing() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        assert!(h.send(1, "RESEND 5 9").is_empty());
    }

    #[test]
    fn resend_from_classic_member_is_refused() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(1, "RESEND 1 1");
        assert!(sent[0].1.starts_with("ERROR unknown-verb: "), "{sent:?}");
    }

    #[test]
    fn history_is_bounded() {
        let mut h = Harness::with(Config {
            history: 3,
            rate_burst: 100,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        for i in 0..10 {
            h.send(1, &format!("M alice {i}"));
        }
        assert_eq!(h.room.history.len(), 3);
        assert_eq!(h.room.history.oldest_seq(), Some(9));
    }

    // ----- idle and unreachable -----

    #[test]
    fn idle_structured_member_is_evicted_with_bye_and_leave_timeout() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_classic(2, "bob");
        h.advance_ms(59_999);
        assert!(h.timeout().is_empty());
        assert_eq!(
            h.room.poll_timeout(),
            Some(h.base + Duration::from_secs(60))
        );
        h.advance_ms(1);
        let sent = h.timeout();
        assert_eq!(to(&sent, 1), ["BYE timeout no message for 60 s"]);
        assert_eq!(to(&sent, 2), ["* alice left (timed out)"]);
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn classic_member_uses_the_classic_idle_timeout() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.advance_ms(3_600_000);
        assert!(h.timeout().is_empty());
        h.advance_ms(3_600_000);
        let sent = h.timeout();
        assert_eq!(
            to(&sent, 1),
            ["* you were disconnected: no message for 7200 s"]
        );
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn junk_from_a_member_does_not_refresh_its_idle_timer() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.advance_ms(50_000);
        h.send(1, "garbage");
        h.send(1, "* bob joined");
        h.advance_ms(10_000);
        assert!(!h.timeout().is_empty());
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn relay_output_gets_no_error_reply() {
        // Two relays that list each other as members must not answer each
        // other's lines with errors forever.
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        for line in [
            "OK",
            "* alice joined\n",
            "[host] hello",
            "alice: hi there",
            "ERROR unknown-verb: unknown command",
            "错误 unknown-verb: 未知命令",
            "PONG",
            "EVENT 3 live CHAT bob hi",
            "ERROR not-joined you have not joined; send N <nick> first",
        ] {
            assert!(h.send(1, line).is_empty(), "{line:?} was answered");
            assert!(h.send(9, line).is_empty(), "{line:?} was answered");
        }
        // An ordinary unknown command still gets its error.
        assert_eq!(h.send(1, "HELP").len(), 1);
    }

    #[test]
    fn any_command_from_a_member_refreshes_its_idle_timer() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.advance_ms(50_000);
        h.send(1, "PING");
        h.advance_ms(50_000);
        assert!(h.timeout().is_empty());
        assert_eq!(h.room.member_count(), 1);
        h.advance_ms(10_000);
        assert!(!h.timeout().is_empty());
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn unreachable_member_is_removed_with_leave_unreachable() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.out.clear();
        let now = h.now();
        h.room.handle_unreachable(now, addr(1), &mut h.out);
        assert_eq!(to(&h.sent(), 2), ["EVENT 3 live LEAVE alice unreachable"]);
        assert!(to(&h.sent(), 1).is_empty());
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn unreachable_stranger_changes_nothing() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.out.clear();
        let now = h.now();
        h.room.handle_unreachable(now, addr(9), &mut h.out);
        assert!(h.out.transmits.is_empty());
        assert_eq!(h.room.member_count(), 1);
    }

    // ----- rate limits -----

    #[test]
    fn first_excess_datagram_gets_one_rate_limited_error_then_silence() {
        let mut h = Harness::with(Config {
            rate_burst: 3,
            rate_per_sec: 1,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.send(1, "M alice 1");
        h.send(1, "M alice 2");
        let sent = h.send(1, "M alice 3");
        assert!(sent[0].1.starts_with("ERROR rate-limited: "), "{sent:?}");
        assert!(h.send(1, "M alice 4").is_empty());
        assert_eq!(h.room.stats().rate_limited, 2);
        // A refilled token lets one datagram through.
        h.advance_ms(1_000);
        assert_eq!(to(&h.send(1, "M alice 5"), 1), ["alice: 5"]);
    }

    #[test]
    fn rate_limit_is_checked_before_parsing() {
        let mut h = Harness::with(Config {
            rate_burst: 2,
            ..Config::default()
        });
        h.send_bytes(1, b"\xff");
        h.send_bytes(1, b"\xff");
        let sent = h.send(1, "N alice");
        assert!(sent[0].1.starts_with("ERROR rate-limited: "), "{sent:?}");
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn replies_to_strangers_share_a_global_budget() {
        let mut h = Harness::with(Config {
            stranger_replies_per_sec: 3,
            ..Config::default()
        });
        let replies: usize = (1..=5).map(|n| h.send(n, "PING").len()).sum();
        assert_eq!(replies, 3);
        assert_eq!(h.room.stats().stranger_replies_dropped, 2);
        // Members are not limited by it.
        h.join_classic(10, "alice");
        h.advance_ms(1_000);
        assert_eq!(h.send(1, "PING").len(), 1);
    }

    #[test]
    fn quitting_and_rejoining_keeps_the_rate_limit_state() {
        let mut h = Harness::with(Config {
            rate_burst: 3,
            rate_per_sec: 1,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.send(1, "Q alice");
        h.join_classic(1, "alice");
        assert!(h.send(1, "M alice x")[0]
            .1
            .starts_with("ERROR rate-limited"));
    }

    // ----- operator -----

    #[test]
    fn host_message_goes_to_everyone_as_host_event() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.out.clear();
        let now = h.now();
        let seq = h
            .room
            .host_message(now, "class starts", &mut h.out)
            .unwrap();
        assert_eq!(seq, 3);
        assert_eq!(to(&h.sent(), 1), ["[host] class starts"]);
        assert_eq!(to(&h.sent(), 2), ["EVENT 3 live HOST class starts"]);
    }

    #[test]
    fn host_message_with_control_char_is_refused() {
        let mut h = Harness::new();
        let now = h.now();
        assert!(h.room.host_message(now, "a\u{1b}b", &mut h.out).is_err());
        assert!(h.room.host_message(now, "", &mut h.out).is_err());
        assert_eq!(h.room.last_seq(), 0);
    }

    #[test]
    fn kick_sends_bye_to_the_member_and_leave_kicked_to_the_rest() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_classic(2, "bob");
        h.out.clear();
        let now = h.now();
        h.room.kick(now, "ALICE", "be nice", &mut h.out).unwrap();
        assert_eq!(to(&h.sent(), 1), ["BYE kicked be nice"]);
        assert_eq!(to(&h.sent(), 2), ["* alice was removed by the host"]);
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn kick_of_absent_nick_is_no_such_nick() {
        let mut h = Harness::new();
        let now = h.now();
        assert_eq!(
            h.room.kick(now, "zed", "", &mut h.out),
            Err(ErrorCode::NoSuchNick)
        );
    }

    #[test]
    fn shutdown_sends_bye_to_everyone_and_empties_the_room() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(2, "N bob\n");
        h.out.clear();
        let now = h.now();
        h.room.shutdown(now, "", &mut h.out);
        assert_eq!(
            to(&h.sent(), 1),
            ["BYE shutdown the relay is shutting down"]
        );
        assert_eq!(
            to(&h.sent(), 2),
            ["* the relay is shutting down: the relay is shutting down\n"]
        );
        assert_eq!(h.room.member_count(), 0);
        assert_eq!(h.room.poll_timeout(), None);
    }

    // ----- language, errors, events, sharing -----

    #[test]
    fn chinese_room_renders_chinese_lines_and_reasons() {
        let mut h = Harness::with(Config {
            lang: Lang::Zh,
            ..Config::default()
        });
        let sent = h.send(1, "N 小明");
        assert_eq!(to(&sent, 1), ["OK", "* 小明 加入了聊天室"]);
        let sent = h.send(2, "N 小明");
        assert_eq!(
            to(&sent, 2),
            ["错误 nick-taken: 昵称已被占用，请换一个 (小明)"]
        );
        let sent = h.send(3, "M 小明 你好\n");
        assert!(to(&sent, 3)[0].starts_with("错误 not-joined: 你尚未加入"));
    }

    #[test]
    fn malformed_datagram_from_member_gets_its_error() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        let sent = h.send_bytes(1, b"M alice \xff");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR bad-utf8 "));
        let sent = h.send(1, "M alice a\x1b[2Jb");
        assert!(sent[0].1.starts_with("ERROR control-char "));
        assert!(h.out.events.iter().any(|e| matches!(
            e,
            Event::Refused {
                code: ErrorCode::ControlChar,
                ..
            }
        )));
    }

    #[test]
    fn ack_from_stranger_is_dropped_silently() {
        let mut h = Harness::new();
        assert!(h.send(1, "ACK 3").is_empty());
    }

    #[test]
    fn join_and_leave_are_reported_as_events() {
        let mut h = Harness::new();
        h.send(1, "N alice\n");
        assert!(h.out.events.contains(&Event::Joined {
            addr: addr(1),
            nick: Nick::new("alice").unwrap(),
            dialect: Dialect::Classic(LineEnding::Newline),
        }));
        assert!(h.out.events.contains(&Event::Room {
            seq: 1,
            event: RoomEvent::Join(Nick::new("alice").unwrap()),
        }));
        h.send(1, "Q alice");
        assert!(h.out.events.contains(&Event::Left {
            addr: addr(1),
            nick: Nick::new("alice").unwrap(),
            reason: LeaveReason::Quit,
        }));
        let stats = h.room.stats();
        assert_eq!((stats.joins, stats.leaves, stats.datagrams_in), (1, 1, 2));
    }

    fn announcing_up_to(limit: usize) -> Harness {
        Harness::with(Config {
            announce_limit: limit,
            ..Config::default()
        })
    }

    fn room_events(out: &Outputs) -> Vec<&RoomEvent> {
        out.events
            .iter()
            .filter_map(|e| match e {
                Event::Room { event, .. } => Some(event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn joins_are_announced_up_to_the_announce_limit_counting_the_joiner() {
        let mut h = announcing_up_to(3);
        h.join_classic(1, "a");
        h.join_classic(2, "b");
        let mut sent = h.send(3, "N c");
        sent.sort();
        let joined = "* c joined".to_owned();
        assert_eq!(
            sent,
            [
                (1, joined.clone()),
                (2, joined.clone()),
                (3, joined),
                (3, "OK".to_owned())
            ]
        );
        assert_eq!(h.room.last_seq(), 3);

        // The fourth member makes four: only its own OK, no JOIN, no seq.
        let sent = h.send(4, "N d");
        assert_eq!(sent, [(4, "OK".to_owned())]);
        assert_eq!(h.room.last_seq(), 3);
        assert!(room_events(&h.out).is_empty());
        assert!(h.out.events.contains(&Event::Unannounced {
            event: RoomEvent::Join(Nick::new("d").unwrap()),
        }));
        assert_eq!(h.room.member_count(), 4);
        assert_eq!(to(&h.send(1, "WHO"), 1), ["* online (4): a, b, c, d"]);
    }

    #[test]
    fn leaves_are_announced_only_up_to_the_limit_counting_the_leaver() {
        let mut h = announcing_up_to(3);
        for (n, nick) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
            h.join_classic(n, nick);
        }
        let seq = h.room.last_seq();
        // Four members counting the leaver: not announced.
        assert!(h.send(4, "Q d").is_empty());
        assert_eq!(h.room.last_seq(), seq);
        assert!(h.out.events.contains(&Event::Unannounced {
            event: RoomEvent::Leave {
                nick: Nick::new("d").unwrap(),
                reason: LeaveReason::Quit,
            },
        }));
        // Three counting the leaver: announced to the other two.
        let mut sent = h.send(3, "Q c");
        sent.sort();
        assert_eq!(
            sent,
            [(1, "* c left".to_owned()), (2, "* c left".to_owned())]
        );
        assert_eq!(h.room.last_seq(), seq + 1);
    }

    #[test]
    fn structured_joiner_above_the_limit_gets_welcome_and_history_but_no_join() {
        let mut h = announcing_up_to(1);
        h.join_classic(1, "a");
        h.send(1, "M a hi");
        assert_eq!(h.room.last_seq(), 2);
        let sent = h.join_structured(2, "b");
        assert_eq!(
            sent,
            [
                (2, "WELCOME udpchat/1 b 2 15 60".to_owned()),
                (2, "EVENT 2 history CHAT a hi".to_owned()),
            ]
        );
        assert_eq!(h.room.last_seq(), 2);
        // Chat still reaches everyone, with the next number.
        let sent = h.send(2, "M b hello");
        assert!(sent.contains(&(1, "b: hello".into())), "{sent:?}");
        assert!(
            sent.contains(&(2, "EVENT 3 live CHAT b hello".into())),
            "{sent:?}"
        );
    }

    #[test]
    fn kicked_and_evicted_members_above_the_limit_still_get_their_bye() {
        let mut h = announcing_up_to(1);
        h.join_classic(1, "a");
        h.join_structured(2, "b");
        h.out.clear();
        let now = h.now();
        h.room.kick(now, "b", "bye", &mut h.out).unwrap();
        assert_eq!(h.sent(), [(2, "BYE kicked bye".to_owned())]);
        assert!(room_events(&h.out).is_empty());
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn announce_limit_zero_never_announces_membership() {
        let mut h = announcing_up_to(0);
        assert_eq!(h.send(1, "N a"), [(1, "OK".to_owned())]);
        assert_eq!(h.send(1, "Q a"), []);
        assert_eq!(h.room.last_seq(), 0);
    }

    #[test]
    fn members_are_listed_sorted_by_nick_key() {
        let mut h = Harness::new();
        h.join_classic(1, "bob");
        h.join_structured(2, "Alice");
        let members = h.room.members();
        let names: Vec<&str> = members.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["Alice", "bob"]);
        assert_eq!(members[0].2, Dialect::Structured);
    }

    #[test]
    fn fanned_out_event_shares_one_allocation_per_rendering() {
        let mut h = Harness::new();
        for n in 1..=5 {
            h.join_classic(n, &format!("bare{n}"));
            h.send(10 + n, &format!("N nl{n}\n"));
            h.join_structured(20 + n, &format!("s{n}"));
        }
        h.send(1, "M bare1 hello");
        let transmits = &h.out.transmits;
        assert_eq!(transmits.len(), 15);
        let mut distinct: Vec<&Rc<[u8]>> = Vec::new();
        for t in transmits {
            if !distinct.iter().any(|d| Rc::ptr_eq(d, &t.bytes)) {
                distinct.push(&t.bytes);
            }
        }
        assert_eq!(distinct.len(), 3);
        for d in distinct {
            assert_eq!(Rc::strong_count(d), 5);
        }
    }

    #[test]
    fn member_state_stays_small() {
        // Per member: this struct, its map entries (address + nick key) and
        // one idle timer. The RSS target is about 1 KB per member in all.
        let member = std::mem::size_of::<Member>();
        let timer = std::mem::size_of::<Reverse<IdleTimer>>();
        assert!(member <= 128, "Member is {member} bytes");
        assert!(timer <= 64, "IdleTimer is {timer} bytes");
    }

    #[test]
    fn stranger_rate_state_is_forgotten_once_refilled() {
        let mut h = Harness::new();
        h.send(1, "PING");
        assert_eq!(h.room.strangers.len(), 1);
        let due = h.room.poll_timeout().unwrap();
        h.elapsed = due - h.base;
        h.timeout();
        assert!(h.room.strangers.is_empty());
        assert_eq!(h.room.poll_timeout(), None);
    }

    #[test]
    fn stranger_rate_state_is_kept_while_not_refilled() {
        let mut h = Harness::with(Config {
            rate_burst: 100,
            rate_per_sec: 1,
            ..Config::default()
        });
        for _ in 0..50 {
            h.send(1, "PING");
        }
        h.advance_ms(PRUNE_EVERY_MS);
        h.timeout();
        assert_eq!(h.room.strangers.len(), 1);
    }

    #[test]
    fn poll_timeout_is_none_for_an_empty_room() {
        let h = Harness::new();
        assert_eq!(h.room.poll_timeout(), None);
    }

    // ----- property tests -----

    mod props {
        use super::*;
        use proptest::prelude::*;
        use udpchat_proto::{check_text_char, MAX_DATAGRAM};

        /// Nicknames the generated traffic uses: case variants of each
        /// other, CJK, the longest legal one, and an illegal one.
        fn nick(i: usize) -> String {
            match i {
                0 => "alice".into(),
                1 => "Alice".into(),
                2 => "bob".into(),
                3 => "BOB".into(),
                4 => "carol".into(),
                5 => "小明".into(),
                6 => "\u{1d49c}".repeat(16),
                _ => "not valid".into(),
            }
        }
        const NICKS: usize = 8;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => Just("hi".to_string()),
                3 => "\\PC{1,40}",
                1 => Just("汉".repeat(266)),
                1 => Just("x".repeat(800)),
                1 => Just("x".repeat(801)),
                1 => "[a \\x1b\\u{202e}]{0,4}",
            ]
        }

        #[derive(Debug, Clone)]
        enum Cmd {
            Join(usize),
            Chat(usize, String),
            Quit(usize),
            /// Chat under the nickname the sender holds (if any).
            OwnChat(String),
            Say(u64, String),
            HelloWithoutCookie {
                nick: usize,
                padded: bool,
            },
            HelloWithCookie {
                nick: usize,
                valid: bool,
                version_ok: bool,
            },
            Private(usize, String),
            PrivateReliable(u64, usize, String),
            Ack(u64),
            Resend(u64, u64),
            Who,
            Rename(usize),
            Ping(Option<String>),
            Garbage(Vec<u8>),
        }

        fn cmd() -> impl Strategy<Value = Cmd> {
            prop_oneof![
                3 => (0..NICKS).prop_map(Cmd::Join),
                5 => (0..NICKS, text()).prop_map(|(n, t)| Cmd::Chat(n, t)),
                1 => (0..NICKS).prop_map(Cmd::Quit),
                6 => text().prop_map(Cmd::OwnChat),
                4 => (0..80u64, text()).prop_map(|(i, t)| Cmd::Say(i, t)),
                1 => (0..NICKS, any::<bool>())
                    .prop_map(|(nick, padded)| Cmd::HelloWithoutCookie { nick, padded }),
                3 => (0..NICKS, prop::bool::weighted(0.8), prop::bool::weighted(0.9))
                    .prop_map(|(nick, valid, version_ok)| Cmd::HelloWithCookie { nick, valid, version_ok }),
                2 => (0..NICKS, text()).prop_map(|(n, t)| Cmd::Private(n, t)),
                2 => (0..80u64, 0..NICKS, text()).prop_map(|(i, n, t)| Cmd::PrivateReliable(i, n, t)),
                1 => (0..20u64).prop_map(Cmd::Ack),
                1 => (0..40u64, 0..200u64).prop_map(|(a, b)| Cmd::Resend(a, b)),
                1 => Just(Cmd::Who),
                1 => (0..NICKS).prop_map(Cmd::Rename),
                1 => proptest::option::of("[a-z0-9]{1,8}").prop_map(Cmd::Ping),
                1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Cmd::Garbage),
            ]
        }

        #[derive(Debug, Clone)]
        enum Action {
            Datagram { from: u8, cmd: Cmd, newline: bool },
            Advance(u64),
            Timeout,
            Unreachable(u8),
        }

        fn action() -> impl Strategy<Value = Action> {
            prop_oneof![
                12 => (1..=6u8, cmd(), prop::bool::weighted(0.3))
                    .prop_map(|(from, cmd, newline)| Action::Datagram { from, cmd, newline }),
                2 => prop_oneof![0..2_000u64, 0..25_000u64].prop_map(Action::Advance),
                2 => Just(Action::Timeout),
                1 => (1..=6u8).prop_map(Action::Unreachable),
            ]
        }

        fn encode(h: &Harness, from: u8, cmd: &Cmd, newline: bool) -> Vec<u8> {
            let mut s = match cmd {
                Cmd::Join(n) => format!("N {}", nick(*n)),
                Cmd::Chat(n, t) => format!("M {} {t}", nick(*n)),
                Cmd::Quit(n) => format!("Q {}", nick(*n)),
                Cmd::OwnChat(t) => match h.room.members.get(&addr(from)) {
                    Some(m) => format!("M {} {t}", m.nick),
                    None => format!("M alice {t}"),
                },
                Cmd::HelloWithoutCookie { nick: n, padded } => {
                    let s = format!("HELLO udpchat/1 {} -", nick(*n));
                    if *padded {
                        format!("{s} {}", "=".repeat(MIN_HELLO_LEN))
                    } else {
                        s
                    }
                }
                Cmd::HelloWithCookie {
                    nick: n,
                    valid,
                    version_ok,
                } => {
                    let cookie = h.cookie(from);
                    let cookie = if *valid {
                        cookie
                    } else {
                        Cookie(cookie.0 ^ 0x5a)
                    };
                    let version = if *version_ok { VERSION } else { "udpchat/9" };
                    format!("HELLO {version} {} {cookie}", nick(*n))
                }
                Cmd::Say(i, t) => format!("SAY {i} {t}"),
                Cmd::Private(n, t) => format!("MSG {} {t}", nick(*n)),
                Cmd::PrivateReliable(i, n, t) => format!("PMSG {i} {} {t}", nick(*n)),
                Cmd::Ack(p) => format!("ACK {p}"),
                Cmd::Resend(a, b) => format!("RESEND {a} {b}"),
                Cmd::Who => "WHO".into(),
                Cmd::Rename(n) => format!("NICK {}", nick(*n)),
                Cmd::Ping(None) => "PING".into(),
                Cmd::Ping(Some(t)) => format!("PING {t}"),
                Cmd::Garbage(bytes) => return bytes.clone(),
            };
            if newline {
                s.push('\n');
            }
            s.into_bytes()
        }

        /// Checks what must hold after every step. `from` is the sender
        /// when the step was a datagram; `before` the dialects before it.
        fn check_invariants(
            room: &Room,
            before: &HashMap<SocketAddr, Dialect>,
            from: Option<SocketAddr>,
            hello: bool,
            out: &Outputs,
        ) {
            assert!(room.member_count() <= room.config.max_clients);
            // The address <-> nick table is one-to-one.
            assert_eq!(room.members.len(), room.by_nick.len());
            for (key, addr) in &room.by_nick {
                assert_eq!(&room.members[addr].nick.key(), key);
            }
            assert!(room.history.len() <= room.config.history);
            // Nobody speaks or renames under a nickname its address does not hold.
            for event in &out.events {
                let acting = match event {
                    Event::Room {
                        event: RoomEvent::Chat { nick, .. },
                        ..
                    } => nick,
                    Event::Room {
                        event: RoomEvent::Rename { new, .. },
                        ..
                    } => new,
                    _ => continue,
                };
                let from = from.expect("chat and rename come only from datagrams");
                assert_eq!(room.by_nick.get(&acting.key()), Some(&from), "{event:?}");
                assert_eq!(&room.members[&from].nick, acting);
            }
            for t in &out.transmits {
                assert!(t.bytes.len() <= MAX_DATAGRAM, "{} bytes", t.bytes.len());
                let s = std::str::from_utf8(&t.bytes).expect("valid UTF-8");
                let body = s.strip_suffix('\n').unwrap_or(s);
                assert!(!body.is_empty());
                assert!(
                    body.chars().all(|c| check_text_char(c).is_ok()),
                    "control character in {s:?}"
                );
                let now = room.members.get(&t.to).map(|m| m.dialect);
                if now.is_some() && now == before.get(&t.to).copied() {
                    match now {
                        Some(Dialect::Structured) => {
                            assert_eq!(body, s);
                            RelayMsg::parse(s.as_bytes()).expect("structured datagram parses");
                        }
                        // A HELLO is answered in the structured dialect.
                        Some(Dialect::Classic(LineEnding::Newline)) if !hello => {
                            assert_ne!(body, s)
                        }
                        Some(Dialect::Classic(LineEnding::Newline)) => {}
                        _ => assert_eq!(body, s, "bare member got a newline"),
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn random_traffic_keeps_the_room_consistent(
                actions in proptest::collection::vec(action(), 1..100)
            ) {
                let mut h = Harness::with(Config {
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
                });
                for action in actions {
                    let before: HashMap<SocketAddr, Dialect> =
                        h.room.members.iter().map(|(a, m)| (*a, m.dialect)).collect();
                    h.out.clear();
                    let now = h.now();
                    let mut from = None;
                    let mut hello = false;
                    match action {
                        Action::Datagram { from: n, cmd, newline } => {
                            let bytes = encode(&h, n, &cmd, newline);
                            // A SAY id the member sent recently is not relayed again.
                            let repeated = matches!(cmd, Cmd::Say(id, _)
                                if h.room.members.get(&addr(n)).is_some_and(|m| {
                                    m.recent_ids.as_ref().is_some_and(|ids| ids.contains(&id))
                                }));
                            hello = bytes.starts_with(b"HELLO");
                            from = Some(addr(n));
                            h.room.handle_datagram(now, addr(n), &bytes, &mut h.out);
                            let chats = h.out.events.iter().filter(|e| matches!(e, Event::Room {
                                event: RoomEvent::Chat { .. }, ..
                            })).count();
                            prop_assert!(chats <= 1);
                            prop_assert!(!(repeated && chats > 0), "repeated {cmd:?} relayed");
                        }
                        Action::Advance(ms) => h.advance_ms(ms),
                        Action::Timeout => h.room.handle_timeout(now, &mut h.out),
                        Action::Unreachable(n) => h.room.handle_unreachable(now, addr(n), &mut h.out),
                    }
                    check_invariants(&h.room, &before, from, hello, &h.out);
                }
            }
        }
    }
}
