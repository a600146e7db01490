//! The [`Room`] facade: datagrams, timeouts and operator actions come in;
//! each datagram gets its [`Context`] (time, sender, how to answer) once,
//! and goes to a handler that returns `Result<(), Refusal>`. The state
//! lives in the module types: [`Roster`], [`Limits`], [`Privates`],
//! [`History`].
//!
//! Decisions worth knowing:
//! - Every room event is rendered once per dialect and line ending; all
//!   recipients of one rendering share one `Rc<[u8]>`.
//! - Replies to non-members spend a global budget; their dialect is a
//!   guess from the datagram (see [`crate::dialect`]).
//! - A member that re-joins with the same nickname in the other dialect (or
//!   with another line ending) switches to it; no second JOIN.
//! - `JOIN` and `LEAVE` are room events only while the room holds at most
//!   [`Config::announce_limit`] members (the joiner or leaver counted):
//!   announcing every join to every member costs C²/2 datagrams for C
//!   joins, 50 million for a room of 10,000. Above the limit they are only
//!   reported as [`Event::Unannounced`] (log and transcript, no sequence
//!   number); `WHO` still lists the members.
//! - A structured member that joined with `key=` is reached only behind
//!   its `@<client key> ` prefix (so its copy of a broadcast is its own
//!   allocation, not the shared rendering) and heard only behind the relay
//!   key of its membership; anything else from its address is dropped
//!   before the rate limit, the flood guard and the idle timer see it
//!   (`handle_unauthenticated`), except a `HELLO`, which needs a valid
//!   cookie to do anything.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use udpchat_proto::{
    split_key_prefix, strip_line_ending, ByeCode, ClientMsg, Cookie, ErrorCode, JoinCode, Lang,
    LeaveReason, Nick, Origin, ParseError, RelayMsg, RoomEvent, SessionKey, Text, Token,
    MIN_HELLO_LEN, VERSION,
};

use crate::announce::Announcements;
use crate::attendance::Attendance;
use crate::cookie::CookieJar;
use crate::dialect::{looks_like_relay_output, rendering_index, Context, Recipient, Renderer};
use crate::hands::Hands;
use crate::history::History;
use crate::limits::{ip_key, FloodGuard, Limits, Take};
use crate::moderation::Moderation;
use crate::output::text_or;
use crate::private::Privates;
use crate::reserved::Reserved;
use crate::resume::ResumeKeys;
use crate::roster::{same_nick, MemberKeys, Roster, Unreachable, SAY_HOLD_MS};
use crate::speech::speech_event;
use crate::voice::Voices;
use crate::{Config, Dialect, Event, Outputs, Refusal, Stats, Transmit};

/// One chat room: the members, the history, the timers.
pub struct Room {
    config: Config,
    stats: Stats,
    /// Every time is kept as milliseconds since this instant.
    start: Instant,
    /// The latest time the shell passed in (stamps history entries).
    pub(crate) now_ms: u64,
    cookies: CookieJar,
    resume: ResumeKeys,
    pub(crate) roster: Roster,
    pub(crate) limits: Limits,
    flood: FloodGuard,
    privates: Privates,
    pub(crate) history: History,
    renderer: Renderer,
    /// When a held `SAY` has waited long enough, and whose: checked by the
    /// timer (lazily: a member may have left, or its SAYs gone since).
    say_holds: BinaryHeap<Reverse<(u64, SocketAddr)>>,
    /// Nicknames kept for the teacher and the relay, by key.
    reserved: Reserved,
    /// Bans, mutes, the lock, the join code, slow mode.
    pub(crate) moderation: Moderation,
    /// Raised hands, first in line first.
    pub(crate) hands: Hands,
    /// Moderated mode and who has a voice.
    pub(crate) voices: Voices,
    /// The recent announcements and who confirmed them.
    pub(crate) announcements: Announcements,
    /// Who came, when, for how long; the roster.
    pub(crate) attendance: Attendance,
}

impl Room {
    /// `key` keys the cookie hash (SipHash-1-3); the shell passes random bytes.
    pub fn new(config: Config, key: [u8; 16], now: Instant) -> Room {
        Room {
            stats: Stats::default(),
            start: now,
            now_ms: 0,
            cookies: CookieJar::new(key),
            resume: ResumeKeys::new(key),
            roster: Roster::new(&config),
            limits: Limits::new(&config),
            flood: FloodGuard::new(&config),
            privates: Privates::new(),
            history: History::new(config.history),
            renderer: Renderer::new(config.lang),
            say_holds: BinaryHeap::new(),
            reserved: Reserved::new(&config.reserved),
            moderation: Moderation::new(config.locked, config.join_code.clone(), config.slow_mode),
            hands: Hands::default(),
            voices: Voices::new(config.moderated),
            announcements: Announcements::default(),
            attendance: Attendance::new(&config.roster, config.late_after),
            config,
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
        self.now_ms = self.now_ms.max(now_ms);
        let (prefix, body) = split_key_prefix(bytes);
        let member = self.roster.get(&from).map(|m| (m.dialect, m.keys));
        let keys = member.and_then(|(_, keys)| keys);
        if let Some(keys) = keys {
            if !prefix.is_some_and(|p| p.matches(keys.relay)) {
                return self.handle_unauthenticated(now_ms, from, bytes, out);
            }
        }
        // A prefix from an address without a keyed membership proves
        // nothing and costs nothing: it is set aside (an evicted client
        // still gets its `not-joined`).
        let bytes = body;
        let ctx = Context::new(
            now_ms,
            from,
            member.map(|(dialect, _)| dialect),
            keys.map(|k| k.client),
            bytes,
        );
        // The rate limit comes before any parsing or fan-out work.
        let validated = member.is_some_and(|(dialect, _)| dialect == Dialect::Structured);
        let bucket = self.roster.get_mut(&from).map(|m| &mut m.bucket);
        match self
            .limits
            .take(bucket, from, bytes.len(), validated, now_ms)
        {
            Take::Allowed => {}
            Take::FirstExcess => {
                self.stats.rate_limited += 1;
                self.refuse(ctx, Refusal::OverRateLimit, out);
                return;
            }
            Take::Excess => {
                self.stats.rate_limited += 1;
                out.events.push(Event::Dropped {
                    addr: from,
                    why: "over the rate limit",
                });
                self.flood.over_limit(now_ms, from, &mut out.events);
                return;
            }
        }
        let msg = match ClientMsg::parse(bytes) {
            Ok(msg) => msg,
            Err(err) => return self.handle_malformed(ctx, bytes, err, out),
        };
        // Only a well-formed command keeps a member alive: junk (or a stale
        // peer's stray datagrams) must not hold its seat forever. It also
        // ends a muting by a port unreachable: the member is there after
        // all, and gets its waiting private messages at once (what it
        // missed of the room it asks for with RESEND).
        if self.roster.heard(from, now_ms) {
            if let Some(member) = self.roster.get(&from) {
                out.events.push(Event::Restored {
                    addr: from,
                    nick: member.nick.clone(),
                });
            }
            self.privates
                .moved(&mut self.roster, from, now_ms, &mut self.stats, out);
        }
        let ctx = ctx.for_command(&msg, bytes);
        if let Err(refusal) = self.dispatch(ctx, msg, bytes, out) {
            self.refuse(ctx, refusal, out);
        }
    }

    /// A datagram from a keyed member's address without its relay key: a
    /// blind spoofer's, or a `HELLO` (sent before the client knew the key).
    /// It does not touch the member: no bucket charge, no flood count, no
    /// idle refresh. Only a `HELLO` is looked at, as if from a stranger
    /// (its own stranger bucket, the global reply budget): it does
    /// something only with a valid cookie, which a blind spoofer cannot
    /// have, and without one it draws a `COOKIE` (smaller than the
    /// request). Everything else is dropped and counted.
    fn handle_unauthenticated(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        bytes: &[u8],
        out: &mut Outputs,
    ) {
        let hello = match ClientMsg::parse(bytes) {
            Ok(msg @ ClientMsg::Hello { .. }) => msg,
            _ => {
                self.stats.unauthenticated += 1;
                out.events.push(Event::Dropped {
                    addr: from,
                    why: "no valid session key from a keyed member's address",
                });
                return;
            }
        };
        if self.limits.take(None, from, bytes.len(), false, now_ms) != Take::Allowed {
            // Never a flood count: the member's own address must not be
            // blocked because someone forges it.
            self.stats.rate_limited += 1;
            out.events.push(Event::Dropped {
                addr: from,
                why: "over the rate limit (unauthenticated HELLO)",
            });
            return;
        }
        let ctx = Context::new(now_ms, from, None, None, bytes).for_command(&hello, bytes);
        if let Err(refusal) = self.dispatch(ctx, hello, bytes, out) {
            self.refuse(ctx, refusal, out);
        }
    }

    /// The OS reported `addr` unreachable (ICMP port unreachable; the
    /// shell passes only reports sent from `addr`'s own IP address).
    /// It is a hint: nothing more is sent to the member (no fan-out, no
    /// retransmission) until it speaks again, which restores it at once.
    /// It leaves as unreachable if it stays silent for
    /// [`Config::unreachable_grace`] (a restarted structured client may
    /// resume it meanwhile), or if reports keep coming for that long; at
    /// once if the grace is zero.
    pub fn handle_unreachable(&mut self, now: Instant, addr: SocketAddr, out: &mut Outputs) {
        self.now_ms = self.now_ms.max(self.ms(now));
        match self.roster.mark_unreachable(addr, self.ms(now)) {
            Unreachable::NotAMember => {}
            Unreachable::Muted { first: false } => {}
            Unreachable::Muted { first: true } => {
                if let Some(member) = self.roster.get(&addr) {
                    out.events.push(Event::Muted {
                        addr,
                        nick: member.nick.clone(),
                    });
                }
            }
            Unreachable::Leave => self.leave(addr, LeaveReason::Unreachable, out),
        }
    }

    /// Timers: idle eviction, private-message retransmission. Call when
    /// [`Room::poll_timeout`] passes.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outputs) {
        let now_ms = self.ms(now);
        self.now_ms = self.now_ms.max(now_ms);
        while let Some(addr) = self.roster.next_idle(now_ms) {
            let unreachable = self
                .roster
                .get(&addr)
                .is_some_and(|m| m.unreachable_since_ms != 0);
            if unreachable {
                self.leave(addr, LeaveReason::Unreachable, out);
            } else {
                self.evict(addr, out);
            }
        }
        self.privates
            .handle_timeout(now_ms, &mut self.roster, &mut self.stats, out);
        self.limits.handle_timeout(now_ms);
        // A flooder's bucket refilled while the kernel dropped its
        // datagrams: empty it, or the block's end releases a burst of its
        // messages, each fanned out to every member (measured: honest p99
        // 14 ms instead of 1 ms at a limit of 80 + 40/s).
        for addr in self.flood.handle_timeout(now_ms, &mut out.events) {
            match self.roster.get_mut(&addr) {
                Some(member) => member.bucket.drain(now_ms),
                None => self.limits.drain_stranger(addr, now_ms),
            }
        }
        // SAYs that waited long enough for a missing one go (a client
        // that never retransmits must not hold its later SAYs forever).
        while let Some(&Reverse((due, addr))) = self.say_holds.peek() {
            if due > now_ms {
                break;
            }
            self.say_holds.pop();
            self.release_says(addr, now_ms, out);
        }
        self.report_announcements(now_ms, out);
    }

    /// When [`Room::handle_timeout`] should next be called (it may be
    /// called early or late; nothing is lost either way).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.roster.deadline(),
            self.privates.deadline(),
            self.limits.deadline(),
            self.flood.deadline(),
            self.say_holds.peek().map(|Reverse((due, _))| *due),
            self.announcements.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|ms| self.start + Duration::from_millis(ms))
    }

    /// Operator console: a HOST room event. Err if the text breaks the text rules.
    pub fn host_message(
        &mut self,
        now: Instant,
        text: &str,
        out: &mut Outputs,
    ) -> Result<u64, ParseError> {
        self.now_ms = self.now_ms.max(self.ms(now));
        let text = Text::new(text)?;
        Ok(self.room_event(RoomEvent::Host(text), out))
    }

    /// Operator console /kick: BYE kicked to it, LEAVE kicked to the rest.
    /// An empty or invalid reason is replaced by a default one.
    pub fn kick(
        &mut self,
        now: Instant,
        nick: &str,
        reason: &str,
        out: &mut Outputs,
    ) -> Result<(), ErrorCode> {
        self.now_ms = self.now_ms.max(self.ms(now));
        let addr = Nick::new(nick)
            .ok()
            .and_then(|nick| self.roster.addr_of(&nick.key()))
            .ok_or(ErrorCode::NoSuchNick)?;
        self.remove_member(addr, reason, out);
        Ok(())
    }

    /// BYE shutdown to every member (members are then removed). An empty or
    /// invalid reason is replaced by a default one.
    pub fn shutdown(&mut self, now: Instant, reason: &str, out: &mut Outputs) {
        self.touch(now);
        let default = match self.config.lang {
            Lang::En => "the relay is shutting down",
            Lang::Zh => "服务器正在关闭",
        };
        let msg = RelayMsg::Bye {
            code: ByeCode::Shutdown,
            reason: text_or(reason, default),
        };
        self.broadcast(&msg, out);
        self.moderation.members_cleared();
        for (_, member) in self.roster.iter() {
            self.attendance.left(&member.nick, self.now_ms);
        }
        self.hands.clear();
        self.announcements.members_cleared();
        self.stats.leaves += self.roster.clear() as u64;
        self.limits.members_cleared();
        self.privates.clear();
    }

    /// Every member, sorted by nick key.
    pub fn members(&self) -> Vec<(Nick, SocketAddr, Dialect)> {
        self.roster
            .sorted()
            .map(|(addr, m)| (m.nick.clone(), addr, m.dialect))
            .collect()
    }

    /// How many members there are.
    pub fn member_count(&self) -> usize {
        self.roster.len()
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
        self.history.last_seq()
    }

    // ----- commands -----

    fn dispatch(
        &mut self,
        ctx: Context,
        msg: ClientMsg,
        bytes: &[u8],
        out: &mut Outputs,
    ) -> Result<(), Refusal> {
        match msg {
            ClientMsg::Join(nick, code) => {
                let (_, line_ending) = strip_line_ending(bytes);
                let options = JoinOptions {
                    code,
                    ..JoinOptions::default()
                };
                self.handle_join(ctx, nick, Dialect::Classic(line_ending), options, out)
            }
            ClientMsg::Hello {
                version,
                nick,
                cookie,
                since,
                resume,
                key,
                code,
            } => {
                let options = JoinOptions {
                    since,
                    resume,
                    key,
                    code,
                };
                if let Err(refusal) = self.handle_hello(ctx, version, nick, cookie, options, out) {
                    // Only a cookie-validated HELLO is refused: its answer
                    // carries the HELLO's key, whoever the address is.
                    self.refuse(ctx.with_key(key), refusal, out);
                }
                Ok(())
            }
            ClientMsg::Chat { nick, text } => {
                let nick = self.check_identity(ctx, &nick)?;
                let text = self.moderation.strip_join_word(ctx.from, text)?;
                self.check_speech(&nick, &text, ctx.now_ms)?;
                self.room_event(speech_event(nick, text), out);
                Ok(())
            }
            ClientMsg::Quit(nick, _) => {
                self.check_identity(ctx, &nick)?;
                self.leave(ctx.from, LeaveReason::Quit, out);
                Ok(())
            }
            ClientMsg::Who => self.handle_who(ctx, out),
            ClientMsg::Private { to, text } => self.handle_private(ctx, None, to, text, out),
            ClientMsg::PrivateReliable { id, to, text } => {
                self.handle_private(ctx, Some(id), to, text, out)
            }
            ClientMsg::Say { id, text } => self.handle_say(ctx, id, text, out),
            ClientMsg::Ping(token) => {
                let last_seq = self.history.last_seq();
                self.reply(ctx, &RelayMsg::Pong { last_seq, token }, out);
                Ok(())
            }
            ClientMsg::Rename(nick) => self.handle_rename(ctx, nick, out),
            ClientMsg::Ack(pid) => {
                match self.roster.get_mut(&ctx.from) {
                    Some(member) => member.outbox.ack(pid),
                    None => out.events.push(Event::Dropped {
                        addr: ctx.from,
                        why: "ACK from a non-member",
                    }),
                }
                Ok(())
            }
            ClientMsg::Resend { from, to } => self.handle_resend(ctx, from, to, out),
            ClientMsg::Seen(seq) => {
                self.handle_seen(ctx, seq, out);
                Ok(())
            }
            ClientMsg::Hand(question) | ClientMsg::ClassicHand(question) => {
                self.handle_hand(ctx, question, out)
            }
        }
    }

    /// A datagram that is not a command gets its parse error, unless
    /// answering could start a loop or amplify.
    fn handle_malformed(&mut self, ctx: Context, bytes: &[u8], err: ParseError, out: &mut Outputs) {
        if looks_like_relay_output(bytes) {
            // Another relay (or a client echoing us) is talking to us.
            // Answering with an error would start a loop of errors
            // answering errors, so stay silent.
            out.events.push(Event::Dropped {
                addr: ctx.from,
                why: "looks like relay output, not a command",
            });
            return;
        }
        let stranger = matches!(ctx.reply, Recipient::Stranger(_));
        if stranger && bytes.starts_with(b"HELLO") && bytes.len() < MIN_HELLO_LEN {
            // A structured join attempt: never answer it with more bytes
            // than it carried.
            out.events.push(Event::Dropped {
                addr: ctx.from,
                why: "short malformed HELLO from a non-member",
            });
            return;
        }
        self.refuse(ctx, Refusal::Malformed(err), out);
    }

    fn handle_join(
        &mut self,
        ctx: Context,
        nick: Nick,
        dialect: Dialect,
        options: JoinOptions,
        out: &mut Outputs,
    ) -> Result<(), Refusal> {
        if matches!(dialect, Dialect::Classic(_)) && !self.config.classic {
            return Err(Refusal::ClassicDisabled);
        }
        self.moderation.check_banned(ctx.from, ctx.now_ms)?;
        // The code word a classic member joined with comes back at the
        // start of its chat text (a course client sends `M alice CODE hi`).
        let join_word = match dialect {
            Dialect::Classic(_) => options.code.clone(),
            Dialect::Structured => None,
        };
        if let Some(member) = self.roster.get(&ctx.from) {
            if !same_nick(&member.nick, &nick) {
                let held = member.nick.clone();
                return Err(Refusal::AlreadyJoined { held, asked: nick });
            }
            // Idempotent: the reply was probably lost. No second JOIN.
            // A switch of dialect (or line ending) takes effect.
            if member.dialect != dialect {
                self.roster.switch_dialect(ctx.from, dialect, ctx.now_ms);
            }
            // Same membership, same relay key; the client's key is the
            // one this (address-validated) join gave.
            self.set_keys(ctx.from, options.key);
            self.moderation.set_join_word(ctx.from, join_word);
            self.welcome(ctx, out);
            return Ok(());
        }
        // A valid token proves this relay run handed it out, so `since`
        // belongs to this run's numbering; without one it is ignored.
        // The holder's token was made for the nickname it joined with (it
        // may have renamed since).
        let (key, look) = (nick.key(), nick.look_key());
        self.check_reserved(&nick, &key, &look)?;
        let holder = self.roster.addr_of(&key);
        let token_id = options.resume.as_ref().and_then(|token| {
            match holder.and_then(|h| self.roster.get(&h)) {
                Some(member) => ResumeKeys::matches(token, member.join_id, member.token_mac)
                    .then_some(member.join_id),
                None => self.resume.check(token, &nick),
            }
        });
        let since = token_id.and(options.since);
        if let Some(holder) = holder {
            if self.may_take_over(ctx, holder, dialect, token_id) {
                // Its own membership back with its token needs neither an
                // unlocked room nor the code; a classic reclaim does.
                let resumed = token_id.is_some_and(|id| {
                    self.roster
                        .get(&holder)
                        .is_some_and(|member| member.join_id == id)
                });
                if !resumed {
                    self.check_admission(ctx, options.code.as_ref())?;
                }
                if ip_key(holder) != ip_key(ctx.from) {
                    self.check_new_membership(ctx)?;
                } else if !self.limits.take_join(ctx.from, ctx.now_ms) {
                    return Err(Refusal::OverRateLimit);
                }
                self.take_over(ctx, holder, dialect, since, options.key, out);
                self.moderation.set_join_word(ctx.from, join_word);
                return Ok(());
            }
            return Err(self.taken(nick, holder, Refusal::NickTaken));
        }
        if let Some(other) = self.roster.addr_of_look(&look) {
            return Err(self.taken(nick, other, Refusal::NickTaken));
        }
        self.check_admission(ctx, options.code.as_ref())?;
        let members = self.roster.len();
        if members >= self.config.max_clients {
            return Err(Refusal::RoomFull { members });
        }
        self.check_new_membership(ctx)?;
        let bucket = self.limits.bucket_for_joiner(ctx.from, ctx.now_ms);
        let reply_bytes = self.limits.member_reply_bucket(ctx.now_ms);
        self.roster.insert(
            ctx.from,
            nick.clone(),
            dialect,
            bucket,
            reply_bytes,
            ctx.now_ms,
        );
        self.limits.member_added(ctx.from);
        self.start_membership(ctx.from, since);
        self.set_keys(ctx.from, options.key);
        self.moderation.set_join_word(ctx.from, join_word);
        self.stats.joins += 1;
        self.attendance.joined(&nick, ctx.from, ctx.now_ms);
        out.events.push(Event::Joined {
            addr: ctx.from,
            nick: nick.clone(),
            dialect,
        });
        self.welcome(ctx, out);
        let counted = self.roster.len();
        self.membership_event(RoomEvent::Join(nick), counted, out);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_hello(
        &mut self,
        ctx: Context,
        version: Token,
        nick: Nick,
        cookie: Option<Cookie>,
        options: JoinOptions,
        out: &mut Outputs,
    ) -> Result<(), Refusal> {
        let valid = cookie.is_some_and(|c| self.cookies.is_valid(ctx.from, c, ctx.now_ms));
        if !valid {
            if cookie.is_none() && ctx.len < MIN_HELLO_LEN {
                // The answer must never be larger than the request.
                out.events.push(Event::Dropped {
                    addr: ctx.from,
                    why: "cookie-less HELLO shorter than MIN_HELLO_LEN",
                });
                return Ok(());
            }
            let cookie = self.cookies.current(ctx.from, ctx.now_ms);
            // COOKIE is never prefixed.
            self.reply(ctx.with_key(None), &RelayMsg::Cookie(cookie), out);
            return Ok(());
        }
        if version.as_str() != VERSION {
            return Err(Refusal::BadVersion(version));
        }
        if options.key.is_none() && !self.config.allow_keyless {
            return Err(Refusal::KeyRequired);
        }
        self.handle_join(ctx, nick, Dialect::Structured, options, out)
    }

    /// Whether a new membership may begin now: the room is not locked, and
    /// the join carries the join code if one is set (a wrong code costs
    /// the IP address one of its guesses; with none left the code is not
    /// even looked at).
    fn check_admission(&mut self, ctx: Context, code: Option<&JoinCode>) -> Result<(), Refusal> {
        if self.moderation.locked() {
            return Err(Refusal::RoomLocked);
        }
        let Some(wanted) = self.moderation.code() else {
            return Ok(());
        };
        let Some(code) = code else {
            return Err(Refusal::CodeMissing);
        };
        let wait_ms = self.limits.code_guess_wait_ms(ctx.from, ctx.now_ms);
        if wait_ms > 0 {
            return Err(Refusal::CodeGuesses { wait_ms });
        }
        if !wanted.matches(code) {
            self.limits.wrong_code(ctx.from, ctx.now_ms);
            return Err(Refusal::CodeWrong);
        }
        Ok(())
    }

    /// Whether `ctx.from`'s IP address may have one more member now: at
    /// most [`Config::max_per_ip`] members, and its join bucket (N/Q churn
    /// from one host is bounded).
    fn check_new_membership(&mut self, ctx: Context) -> Result<(), Refusal> {
        let members = self.limits.members_on(ctx.from);
        let limit = self.config.max_per_ip;
        if limit > 0 && members as usize >= limit {
            return Err(Refusal::IpFull { members, limit });
        }
        if !self.limits.take_join(ctx.from, ctx.now_ms) {
            return Err(Refusal::OverRateLimit);
        }
        Ok(())
    }

    /// Whether the join from `ctx.from` may take over the membership at
    /// `holder` (which holds the nickname asked for):
    /// - with the resume token of exactly that membership (`token_id`);
    /// - a classic join from the same IP address (another port: a course
    ///   client restarted without `Q`) while the holder is a classic member
    ///   silent for at least [`Config::classic_reclaim_after`].
    fn may_take_over(
        &self,
        ctx: Context,
        holder: SocketAddr,
        dialect: Dialect,
        token_id: Option<u64>,
    ) -> bool {
        let Some(member) = self.roster.get(&holder) else {
            return false;
        };
        if token_id.is_some_and(|id| id == member.join_id) {
            return true;
        }
        let after =
            u64::try_from(self.config.classic_reclaim_after.as_millis()).unwrap_or(u64::MAX);
        matches!(dialect, Dialect::Classic(_))
            && matches!(member.dialect, Dialect::Classic(_))
            && after > 0
            && holder.ip() == ctx.from.ip()
            && ctx.now_ms.saturating_sub(member.last_heard_ms()) >= after
    }

    /// Moves the membership at `holder` to `ctx.from`: the old address is
    /// dropped without a `LEAVE`, the room sees `RECONNECT`, the member gets
    /// `WELCOME` (or `OK`) with a new join point, a new token and the
    /// history after `since`.
    fn take_over(
        &mut self,
        ctx: Context,
        holder: SocketAddr,
        dialect: Dialect,
        since: Option<u64>,
        key: Option<SessionKey>,
        out: &mut Outputs,
    ) {
        if !self
            .roster
            .move_member(holder, ctx.from, dialect, ctx.now_ms)
        {
            return;
        }
        self.limits.member_removed(holder);
        self.limits.member_added(ctx.from);
        self.moderation.set_join_word(holder, None);
        self.start_membership(ctx.from, since);
        // A new join id, so a new relay key: the old address's key dies.
        self.set_keys(ctx.from, key);
        let Some(member) = self.roster.get(&ctx.from) else {
            return;
        };
        let nick = member.nick.clone();
        self.hands.moved(holder, ctx.from);
        self.announcements.moved(holder, ctx.from);
        self.attendance.moved(&nick, ctx.from);
        self.stats.reconnects += 1;
        out.events.push(Event::Dropped {
            addr: holder,
            why: "its member reconnected from another address",
        });
        self.welcome(ctx, out);
        self.privates
            .moved(&mut self.roster, ctx.from, ctx.now_ms, &mut self.stats, out);
        let counted = self.roster.len();
        self.membership_event(RoomEvent::Reconnect(nick), counted, out);
    }

    /// A membership (new or taken over) begins at `addr`: its join point is
    /// the newest event now, it gets a new join id (so older tokens stop
    /// working), and its history starts after `since` or, without it,
    /// [`Config::history_on_join`] events before the join point.
    fn start_membership(&mut self, addr: SocketAddr, since: Option<u64>) {
        let join_seq = self.history.last_seq();
        let after_join = join_seq.saturating_add(1);
        let from = match since {
            Some(since) => since.saturating_add(1),
            None => after_join.saturating_sub(self.config.history_on_join as u64),
        };
        let oldest = self.history.oldest_seq().unwrap_or(after_join);
        let history_from = from.max(oldest).clamp(1, after_join);
        let join_id = self.resume.next_id();
        if let Some(member) = self.roster.get_mut(&addr) {
            member.join_seq = join_seq;
            member.history_from = history_from;
            member.join_id = join_id;
            member.token_mac = self.resume.mac(join_id, &member.nick);
        }
    }

    /// Gives the structured member at `addr` the client key `client` and
    /// its membership's relay key (from its join id); a classic member, or
    /// a join without `key=`, has none.
    fn set_keys(&mut self, addr: SocketAddr, client: Option<SessionKey>) {
        let Some(member) = self.roster.get_mut(&addr) else {
            return;
        };
        member.keys = match (member.dialect, client) {
            (Dialect::Structured, Some(client)) => Some(MemberKeys {
                client,
                relay: self.resume.relay_key(member.join_id),
            }),
            _ => None,
        };
    }

    /// `SAY`: like `M` as the nickname the address holds, relayed once per
    /// id and in id order per member: a `SAY` that arrives ahead of a
    /// missing id waits (bounded: see `RecentIds::release` in the roster). A repeat of
    /// a relayed one is answered, to the sender only, with its `CHAT` event
    /// again (origin `resend`): its echo was lost.
    fn handle_say(
        &mut self,
        ctx: Context,
        id: u64,
        text: Text,
        out: &mut Outputs,
    ) -> Result<(), Refusal> {
        let member = self.roster.get_mut(&ctx.from).ok_or(Refusal::NotJoined)?;
        let dialect = member.dialect;
        if let Some(seq) = member.recent_ids.seq_of(id) {
            out.events.push(Event::Dropped {
                addr: ctx.from,
                why: "repeated SAY id (relayed already)",
            });
            if let Some(event) = self.history.get(seq).filter(|_| seq > 0) {
                if dialect == Dialect::Structured {
                    let msg = RelayMsg::Event {
                        seq,
                        origin: Origin::Resend,
                        ago: Some(self.ago(seq)),
                        event: event.clone(),
                    };
                    self.reply(ctx, &msg, out);
                }
            }
            self.release_says(ctx.from, ctx.now_ms, out);
            return Ok(());
        }
        if !member.recent_ids.is_held(id) {
            let nick = member.nick.clone();
            if let Err(refusal) = self.check_speech(&nick, &text, ctx.now_ms) {
                // The id is used up, like a PMSG's: later SAYs do not wait
                // for it, and a retransmission is dropped (the client was
                // told once).
                if let Some(member) = self.roster.get_mut(&ctx.from) {
                    member.recent_ids.remember(id, 0);
                }
                self.release_says(ctx.from, ctx.now_ms, out);
                return Err(refusal);
            }
        }
        let Some(member) = self.roster.get_mut(&ctx.from) else {
            return Ok(());
        };
        if member.recent_ids.is_held(id) {
            out.events.push(Event::Dropped {
                addr: ctx.from,
                why: "repeated SAY id (waiting for an earlier one)",
            });
        } else if member.recent_ids.admit(id, text.clone(), ctx.now_ms) {
            self.relay_say(ctx.from, id, text, out);
        } else {
            let due = ctx.now_ms.saturating_add(SAY_HOLD_MS);
            self.say_holds.push(Reverse((due, ctx.from)));
        }
        self.release_says(ctx.from, ctx.now_ms, out);
        Ok(())
    }

    /// Relays `SAY id` of the member at `addr` as its `CHAT` event.
    fn relay_say(&mut self, addr: SocketAddr, id: u64, text: Text, out: &mut Outputs) {
        let Some(member) = self.roster.get(&addr) else {
            return;
        };
        let nick = member.nick.clone();
        // A SAY held from before a mute or moderated mode: nothing of a
        // muted or unvoiced member's reaches the room.
        let allowed = self
            .moderation
            .check_muted(&nick, self.now_ms)
            .and_then(|()| self.voices.check(&nick));
        if allowed.is_err() {
            if let Some(member) = self.roster.get_mut(&addr) {
                member.recent_ids.remember(id, 0);
            }
            return;
        }
        let seq = self.room_event(speech_event(nick, text), out);
        if let Some(member) = self.roster.get_mut(&addr) {
            member.recent_ids.remember(id, seq);
            member.recent_ids.relayed(id);
        }
    }

    /// Relays the held `SAY`s of the member at `addr` that may go now, in
    /// id order.
    fn release_says(&mut self, addr: SocketAddr, now_ms: u64, out: &mut Outputs) {
        while let Some((id, text)) = self
            .roster
            .get_mut(&addr)
            .and_then(|m| m.recent_ids.release(now_ms))
        {
            self.relay_say(addr, id, text, out);
        }
    }

    fn handle_who(&mut self, ctx: Context, out: &mut Outputs) -> Result<(), Refusal> {
        let dialect = self.member_dialect(ctx)?;
        let nicks: Vec<Nick> = self.roster.sorted().map(|(_, m)| m.nick.clone()).collect();
        let pages: Vec<Rc<[u8]>> = RelayMsg::who_pages(&nicks)
            .iter()
            .filter_map(|page| self.renderer.render_for(page, dialect, ctx.key))
            .collect();
        self.send_replies(ctx, &pages, false, out);
        Ok(())
    }

    /// `MSG` and `PMSG`: `PRIVATE` to the recipient (kept for retransmission
    /// if it is structured), `SENT` to the sender. A repeated `PMSG` id only
    /// gets its `SENT` again.
    fn handle_private(
        &mut self,
        ctx: Context,
        id: Option<u64>,
        to: Nick,
        text: Text,
        out: &mut Outputs,
    ) -> Result<(), Refusal> {
        self.member_dialect(ctx)?;
        if let Some(id) = id {
            if self
                .roster
                .get(&ctx.from)
                .is_some_and(|sender| sender.recent_ids.contains(id))
            {
                // Delivered already; the sender missed our SENT.
                let msg = RelayMsg::Sent {
                    id: Some(id),
                    to,
                    text,
                };
                self.reply(ctx, &msg, out);
                return Ok(());
            }
        }
        if let Some(sender) = self.roster.get(&ctx.from) {
            self.moderation.check_muted(&sender.nick, ctx.now_ms)?;
        }
        let to_addr = self
            .roster
            .addr_of(&to.key())
            .ok_or(Refusal::NoSuchNick(to))?;
        let Some(sender) = self.roster.get_mut(&ctx.from) else {
            return Ok(());
        };
        if let Some(id) = id {
            sender.recent_ids.remember(id, 0);
        }
        let from_nick = sender.nick.clone();
        let Some(recipient) = self.roster.get_mut(&to_addr) else {
            return Ok(());
        };
        let to_nick = recipient.nick.clone();
        let pid = self.privates.next_pid();
        let msg = RelayMsg::Private {
            pid,
            from: from_nick.clone(),
            text: text.clone(),
        };
        if let Some(bytes) = self.renderer.render(&msg, recipient.dialect) {
            let key = recipient.client_key();
            if recipient.dialect == Dialect::Structured {
                // Kept without the prefix: a takeover changes the key.
                let outbox = &mut recipient.outbox;
                let kept = Rc::clone(&bytes);
                self.privates
                    .track(outbox, to_addr, pid, kept, ctx.now_ms, out);
            }
            // A muted recipient gets it (from its outbox) when it speaks.
            if recipient.unreachable_since_ms == 0 {
                self.stats.datagrams_out += 1;
                out.transmits.push(Transmit::keyed(to_addr, key, bytes));
            }
        }
        let sent = RelayMsg::Sent {
            id,
            to: to_nick.clone(),
            text: text.clone(),
        };
        self.reply(ctx, &sent, out);
        out.events.push(Event::Private {
            from: from_nick,
            to: to_nick,
            text,
        });
        // Its id may be the one held SAYs wait for.
        self.release_says(ctx.from, ctx.now_ms, out);
        Ok(())
    }

    fn handle_rename(&mut self, ctx: Context, new: Nick, out: &mut Outputs) -> Result<(), Refusal> {
        self.member_dialect(ctx)?;
        let Some(member) = self.roster.get(&ctx.from) else {
            return Ok(());
        };
        if member.nick == new {
            out.events.push(Event::Dropped {
                addr: ctx.from,
                why: "rename to the nickname already held",
            });
            return Ok(());
        }
        // Its own nickname's look-alikes are free for it.
        let (key, look) = (new.key(), new.look_key());
        self.check_reserved(&new, &key, &look)?;
        let other = |addr: &SocketAddr| *addr != ctx.from;
        let holder = (self.roster.addr_of(&key).filter(other))
            .or_else(|| self.roster.addr_of_look(&look).filter(other));
        if let Some(holder) = holder {
            return Err(self.taken(new, holder, Refusal::RenameTaken));
        }
        if let Some(old) = self.roster.rename(ctx.from, new.clone()) {
            self.moderation.renamed(&old, &new);
            self.voices.renamed(&old, &new);
            self.hands.renamed(ctx.from, &new);
            self.attendance.renamed(&old, &new, ctx.from, ctx.now_ms);
            self.room_event(RoomEvent::Rename { old, new }, out);
        }
        Ok(())
    }

    fn handle_resend(
        &mut self,
        ctx: Context,
        first: u64,
        last: u64,
        out: &mut Outputs,
    ) -> Result<(), Refusal> {
        if self.member_dialect(ctx)? != Dialect::Structured {
            return Err(Refusal::ResendFromClassic);
        }
        let last_seq = self.history.last_seq();
        if first > last_seq {
            // Beyond the newest event: say which that is, so a client that
            // believed a forged (or a previous run's) number learns better.
            let pong = RelayMsg::Pong {
                last_seq,
                token: None,
            };
            self.reply(ctx, &pong, out);
            return Ok(());
        }
        let Some(resend) = self.history.resend(first, last) else {
            return Ok(());
        };
        let mut replies = Vec::new();
        if let Some((from, to)) = resend.gone {
            let gone = RelayMsg::Gone { from, to };
            replies.extend(
                self.renderer
                    .render_for(&gone, Dialect::Structured, ctx.key),
            );
        }
        for seq in resend.held {
            let Some(event) = self.history.get(seq) else {
                break;
            };
            let msg = RelayMsg::Event {
                seq,
                origin: Origin::Resend,
                ago: Some(self.ago(seq)),
                event: event.clone(),
            };
            if let Some(bytes) = self.renderer.render_for(&msg, Dialect::Structured, ctx.key) {
                replies.push(bytes);
            }
        }
        // All of it is charged at once: a range that does not fit is
        // refused, not cut short.
        self.send_replies(ctx, &replies, false, out);
        Ok(())
    }

    // ----- membership -----

    /// `nick-reserved` if `nick` (whose keys are `key` and `look`) is, or
    /// looks like, a name reserved for the teacher and the relay.
    fn check_reserved(&self, nick: &Nick, key: &str, look: &str) -> Result<(), Refusal> {
        match self.reserved.find(key, look) {
            Some(reserved) => Err(Refusal::NickReserved {
                asked: nick.clone(),
                reserved: reserved.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The refusal of `asked`, whose key the member at `holder` holds:
    /// `same` (plain `nick-taken`) if it is the member's nickname in the
    /// same letters, maybe another case; a look-alike names the member.
    fn taken(&self, asked: Nick, holder: SocketAddr, same: fn(Nick) -> Refusal) -> Refusal {
        match self.roster.get(&holder) {
            Some(member) if !member.nick.same_letters(&asked) => Refusal::LooksTaken {
                asked,
                online: member.nick.clone(),
            },
            _ => same(asked),
        }
    }

    /// The member's dialect, or `not-joined` for a non-member.
    fn member_dialect(&self, ctx: Context) -> Result<Dialect, Refusal> {
        let member = self.roster.get(&ctx.from).ok_or(Refusal::NotJoined)?;
        Ok(member.dialect)
    }

    /// The member's own nickname if the sender is a member holding
    /// `claimed`; otherwise `not-joined` or `not-yours`.
    fn check_identity(&self, ctx: Context, claimed: &Nick) -> Result<Nick, Refusal> {
        let member = self.roster.get(&ctx.from).ok_or(Refusal::NotJoined)?;
        if same_nick(&member.nick, claimed) {
            return Ok(member.nick.clone());
        }
        Err(Refusal::NotYours {
            held: member.nick.clone(),
            claimed: claimed.clone(),
        })
    }

    /// WELCOME (or the classic `OK`) to a member, and for a structured one
    /// its history: the events from its `history_from` to its join point
    /// (at most the newest [`HISTORY_BURST`] of them; the client asks for
    /// the rest with `RESEND`). A repeated WELCOME states the same join
    /// point and history range, so what the client lost meanwhile is a gap
    /// it repairs.
    ///
    /// It answers the join from `ctx.from` and is charged as one reply.
    fn welcome(&mut self, ctx: Context, out: &mut Outputs) {
        let Some(member) = self.roster.get(&ctx.from) else {
            return;
        };
        let dialect = member.dialect;
        let key = member.client_key();
        let (join_seq, history_from) = (member.join_seq, member.history_from);
        let msg = RelayMsg::Welcome {
            version: Token::new(VERSION).expect("VERSION is a valid token"),
            nick: member.nick.clone(),
            last_seq: join_seq,
            ping_interval: secs(self.config.ping_interval),
            idle_timeout: secs(self.config.idle_timeout),
            history_from: Some(history_from),
            resume: Some(ResumeKeys::token_of(member.join_id, member.token_mac)),
            key: member.keys.map(|k| k.relay),
        };
        let mut replies: Vec<Rc<[u8]>> = self
            .renderer
            .render_for(&msg, dialect, key)
            .into_iter()
            .collect();
        if dialect == Dialect::Structured && history_from <= join_seq {
            let first = history_from.max(join_seq.saturating_sub(HISTORY_BURST - 1));
            for seq in first..=join_seq {
                let Some(event) = self.history.get(seq) else {
                    continue;
                };
                let msg = RelayMsg::Event {
                    seq,
                    origin: Origin::History,
                    ago: Some(self.ago(seq)),
                    event: event.clone(),
                };
                replies.extend(self.renderer.render_for(&msg, dialect, key));
            }
        }
        let ctx = Context {
            reply: Recipient::Member(dialect),
            ..ctx
        };
        self.send_replies(ctx, &replies, false, out);
    }

    /// Removes the member at `addr`, if any, and tells the rest.
    pub(crate) fn leave(&mut self, addr: SocketAddr, reason: LeaveReason, out: &mut Outputs) {
        let Some(member) = self.roster.remove(addr) else {
            return;
        };
        self.moderation.member_left(addr, &member.nick);
        self.stats.leaves += 1;
        self.hands.remove(addr);
        self.announcements.member_left(addr);
        self.report_announcements(self.now_ms, out);
        self.attendance.left(&member.nick, self.now_ms);
        // Keep its rate-limit state, so quitting and rejoining buys nothing.
        self.limits
            .keep_leavers_bucket(addr, member.bucket, self.now_ms);
        self.limits.member_removed(addr);
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
        let counted = self.roster.len() + 1;
        self.membership_event(event, counted, out);
    }

    fn evict(&mut self, addr: SocketAddr, out: &mut Outputs) {
        let Some(member) = self.roster.get(&addr) else {
            return;
        };
        let dialect = member.dialect;
        let seconds = self.roster.idle_timeout_ms(dialect) / 1000;
        let reason = match self.config.lang {
            Lang::En => format!("no message for {seconds} s"),
            Lang::Zh => format!("{seconds} 秒内没有收到消息"),
        };
        let msg = RelayMsg::Bye {
            code: ByeCode::Timeout,
            reason: text_or(&reason, "timeout"),
        };
        self.send_to_member(addr, dialect, &msg, out);
        self.leave(addr, LeaveReason::Timeout, out);
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

    // ----- sending -----

    /// A numbered room event: live to every member, into history, logged.
    pub(crate) fn room_event(&mut self, event: RoomEvent, out: &mut Outputs) -> u64 {
        if let RoomEvent::Chat { nick, .. } | RoomEvent::Action { nick, .. } = &event {
            self.attendance.said(nick);
        }
        let seq = self.history.last_seq() + 1;
        out.events.push(Event::Room {
            seq,
            event: event.clone(),
        });
        let msg = RelayMsg::Event {
            seq,
            origin: Origin::Live,
            ago: None,
            event,
        };
        self.broadcast(&msg, out);
        if let RelayMsg::Event { event, .. } = msg {
            let recorded = self.history.record(event, self.now_ms);
            debug_assert_eq!(recorded, seq);
        }
        seq
    }

    /// Sends `msg` to every member, rendering it once per dialect and line
    /// ending: recipients share the bytes. Muted members (reported
    /// unreachable, silent since) are skipped.
    fn broadcast(&mut self, msg: &RelayMsg, out: &mut Outputs) {
        let mut renderings: [Option<Option<Rc<[u8]>>>; 3] = [None, None, None];
        let mut sent = 0;
        for (addr, member) in self.roster.iter() {
            if member.unreachable_since_ms != 0 {
                continue;
            }
            let slot = &mut renderings[rendering_index(member.dialect)];
            let bytes = slot.get_or_insert_with(|| self.renderer.render(msg, member.dialect));
            if let Some(bytes) = bytes {
                // A keyed member's copy shares the bytes; the shell sends
                // its key's prefix in front of them.
                out.transmits.push(Transmit::keyed(
                    *addr,
                    member.client_key(),
                    Rc::clone(bytes),
                ));
                sent += 1;
            }
        }
        self.stats.datagrams_out += sent;
    }

    /// Answers the sender of a datagram as its context says, charged to
    /// its reply budget (see [`Room::send_replies`]).
    pub(crate) fn reply(&mut self, ctx: Context, msg: &RelayMsg, out: &mut Outputs) {
        let Some(bytes) = self.renderer.render_for(msg, reply_dialect(ctx), ctx.key) else {
            return;
        };
        let cookie = matches!(msg, RelayMsg::Cookie(_));
        self.send_replies(ctx, std::slice::from_ref(&bytes), cookie, out);
    }

    /// Sends `replies` to the sender of a datagram, all or none: their
    /// bytes are charged to its reply budget (a structured member's own
    /// byte bucket and its IP address's; for an unvalidated address, its IP
    /// address's credit of three times what it sent, then the small
    /// allowance). If they do not fit, the request is refused instead (see
    /// [`Room::over_budget`]). Replies to a non-member also spend the
    /// global stranger budget (a `COOKIE`, `cookie`, within its IP
    /// address's share of it).
    fn send_replies(
        &mut self,
        ctx: Context,
        replies: &[Rc<[u8]>],
        cookie: bool,
        out: &mut Outputs,
    ) {
        if self.roster.is_muted(&ctx.from) {
            return;
        }
        let cost = replies.iter().map(|bytes| bytes.len()).sum();
        if !self.charge(ctx, cost) {
            self.over_budget(ctx, out);
            return;
        }
        if !self.budget_for_stranger(ctx, cookie, out) {
            return;
        }
        for bytes in replies {
            self.stats.datagrams_out += 1;
            out.transmits
                .push(Transmit::new(ctx.from, Rc::clone(bytes)));
        }
    }

    /// Charges `cost` reply bytes to the sender of a datagram; false if
    /// they do not fit (nothing is charged then).
    fn charge(&mut self, ctx: Context, cost: usize) -> bool {
        let validated = self
            .roster
            .get_mut(&ctx.from)
            .filter(|m| m.dialect == Dialect::Structured)
            .map(|m| &mut m.reply_bytes);
        self.limits
            .charge_reply(validated, ctx.from, cost, ctx.now_ms)
    }

    /// For a non-member, spends one reply from the global budget; false
    /// (and counted) if it is exhausted. Members pass free.
    fn budget_for_stranger(&mut self, ctx: Context, cookie: bool, out: &mut Outputs) -> bool {
        if self.roster.get(&ctx.from).is_some()
            || self.limits.reply_to_stranger(ctx.from, cookie, ctx.now_ms)
        {
            return true;
        }
        self.stats.stranger_replies_dropped += 1;
        out.events.push(Event::Dropped {
            addr: ctx.from,
            why: "reply budget for non-members exhausted",
        });
        false
    }

    /// A reply did not fit the sender's reply budget: nothing of it is
    /// sent; the sender gets `ERROR rate-limited` if that fits, else
    /// nothing. Counted in [`Stats::replies_over_budget`].
    fn over_budget(&mut self, ctx: Context, out: &mut Outputs) {
        self.stats.replies_over_budget += 1;
        out.events.push(Event::Dropped {
            addr: ctx.from,
            why: "reply over the sender's reply budget",
        });
        let msg = Refusal::OverRateLimit.reply(self.config.lang);
        let Some(bytes) = self.renderer.render_for(&msg, reply_dialect(ctx), ctx.key) else {
            return;
        };
        if self.charge(ctx, bytes.len()) && self.budget_for_stranger(ctx, false, out) {
            self.stats.datagrams_out += 1;
            out.transmits.push(Transmit::new(ctx.from, bytes));
        }
    }

    /// Sends to a member, uncharged: fan-out and the relay's own messages
    /// (`BYE`), not replies. Nothing goes to a muted member.
    pub(crate) fn send_to_member(
        &mut self,
        addr: SocketAddr,
        dialect: Dialect,
        msg: &RelayMsg,
        out: &mut Outputs,
    ) {
        if self.roster.is_muted(&addr) {
            return;
        }
        let key = self.roster.get(&addr).and_then(|m| m.client_key());
        if let Some(bytes) = self.renderer.render_for(msg, dialect, key) {
            self.stats.datagrams_out += 1;
            out.transmits.push(Transmit::new(addr, bytes));
        }
    }

    /// Answers a refused datagram with its `ERROR` and reports it.
    fn refuse(&mut self, ctx: Context, refusal: Refusal, out: &mut Outputs) {
        if refusal.counts_as_refused() {
            self.stats.refused += 1;
        }
        out.events.push(Event::Refused {
            addr: ctx.from,
            code: refusal.code(),
            detail: refusal.to_string(),
        });
        let reply = refusal.reply(self.config.lang);
        self.reply(ctx, &reply, out);
    }

    /// Whole seconds since event `seq` was numbered (0 if not held).
    fn ago(&self, seq: u64) -> u32 {
        let at = self.history.time_of(seq).unwrap_or(self.now_ms);
        u32::try_from(self.now_ms.saturating_sub(at) / 1000).unwrap_or(u32::MAX)
    }

    /// Room time at `now`, noted as the latest time seen (operator actions).
    pub(crate) fn touch(&mut self, now: Instant) -> u64 {
        let ms = self.ms(now);
        self.now_ms = self.now_ms.max(ms);
        ms
    }

    /// Room time at `now`.
    pub(crate) fn ms_at(&self, now: Instant) -> u64 {
        self.ms(now)
    }

    pub(crate) fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// The cookie the room hands `addr` at `now`.
    #[cfg(test)]
    pub(crate) fn cookie_for(&self, addr: SocketAddr, now: Instant) -> Cookie {
        self.cookies.current(addr, self.ms(now))
    }
}

/// Most history events sent with one `WELCOME`.
const HISTORY_BURST: u64 = udpchat_proto::MAX_RESEND;

/// What a join may carry besides the nickname (`HELLO`'s `since=`,
/// `resume=` and `key=`).
#[derive(Default)]
struct JoinOptions {
    since: Option<u64>,
    resume: Option<Token>,
    /// `key=`: the client's session key (structured joins).
    key: Option<SessionKey>,
    /// `code=`, or the code word of a classic `N nick CODE`.
    code: Option<JoinCode>,
}

/// The dialect a reply to the sender of a datagram takes.
fn reply_dialect(ctx: Context) -> Dialect {
    match ctx.reply {
        Recipient::Member(dialect) | Recipient::Stranger(dialect) => dialect,
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use udpchat_proto::LineEnding;

    use super::*;
    use crate::testing::{addr, to, Harness};

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
    fn repeated_say_id_is_answered_with_its_event_to_the_sender_only() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        assert_eq!(h.send(1, "SAY 9 once").len(), 2);
        let again = h.send(1, "SAY 9 once");
        assert_eq!(to(&again, 1), ["EVENT 3 resend ago=0 CHAT alice once"]);
        assert_eq!(again.len(), 1);
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
        // Id 1 is still in the window (answered with its event again), id
        // 0 fell out of it (relayed again).
        assert_eq!(
            to(&h.send(1, "SAY 1 m1"), 1),
            ["EVENT 3 resend ago=0 CHAT alice m1"]
        );
        assert_eq!(
            to(&h.send(1, "SAY 0 m0"), 1),
            ["EVENT 67 live CHAT alice m0"]
        );
    }

    #[test]
    fn says_ahead_of_a_missing_id_wait_and_go_in_id_order() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        assert_eq!(
            to(&h.send(1, "SAY 10 one"), 2),
            ["EVENT 3 live CHAT alice one"]
        );
        // 11 is lost on the way; 12 and 13 wait for it.
        assert_eq!(h.send(1, "SAY 12 three"), []);
        assert_eq!(h.send(1, "SAY 13 four"), []);
        // A repeat of a waiting one is not relayed either.
        assert_eq!(h.send(1, "SAY 12 three"), []);
        let sent = h.send(1, "SAY 11 two");
        assert_eq!(
            to(&sent, 2),
            [
                "EVENT 4 live CHAT alice two",
                "EVENT 5 live CHAT alice three",
                "EVENT 6 live CHAT alice four"
            ]
        );
    }

    #[test]
    fn a_missing_say_is_waited_for_only_so_long() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 one");
        assert_eq!(h.send(1, "SAY 3 three"), []);
        h.advance_ms(crate::roster::SAY_HOLD_MS);
        // Its retransmission finds the wait over: it goes without 2.
        assert_eq!(
            to(&h.send(1, "SAY 3 three"), 1),
            ["EVENT 3 live CHAT alice three"]
        );
        // 2 comes after all: relayed late, once.
        assert_eq!(
            to(&h.send(1, "SAY 2 two"), 1),
            ["EVENT 4 live CHAT alice two"]
        );
        assert_eq!(
            to(&h.send(1, "SAY 2 two"), 1),
            ["EVENT 4 resend ago=0 CHAT alice two"]
        );
    }

    #[test]
    fn the_timer_releases_held_says_of_a_client_that_never_retransmits() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 one");
        assert_eq!(h.send(1, "SAY 3 three"), []);
        h.advance_ms(crate::roster::SAY_HOLD_MS - 1);
        assert_eq!(h.timeout(), []);
        h.advance_ms(1);
        assert_eq!(to(&h.timeout(), 1), ["EVENT 3 live CHAT alice three"]);
    }

    #[test]
    fn a_pmsg_id_fills_the_gap_say_ids_wait_at() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "SAY 1 one");
        assert_eq!(h.send(1, "SAY 3 three"), []);
        let sent = h.send(1, "PMSG 2 bob psst");
        assert_eq!(
            to(&sent, 2).last().map(String::as_str),
            Some("EVENT 4 live CHAT alice three")
        );
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
        let again = h.send(1, "SAY 1 once");
        assert!(
            to(&again, 1)[0].contains(" resend ago=0 CHAT alice once"),
            "{again:?}"
        );
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
            to(&sent, 2),
            [
                "WELCOME udpchat/1 b 2 15 60 1 <token>",
                "EVENT 1 history ago=0 JOIN a",
                "EVENT 2 history ago=0 CHAT a hi",
            ]
        );
        assert_eq!(sent.len(), 3);
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
    fn poll_timeout_is_none_for_an_empty_room() {
        let h = Harness::new();
        assert_eq!(h.room.poll_timeout(), None);
    }
}
