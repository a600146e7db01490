//! The client's protocol logic: joining, keepalive, rejoining, private
//! messages, loss repair. No I/O and no clock: datagrams, typed input and
//! time come in; datagrams to send and lines to show come out as
//! [`Action`]s, and [`Session::poll_timeout`] says when time next matters.
//! The threads in `app` only move bytes.
//!
//! [`Session`] dispatches; each part keeps its state next to the methods
//! that change it:
//! - `link`: the joined link (event reassembly, keepalive, tail check,
//!   membership probe), which exists only inside [`State::Joined`];
//! - `outbox`: our chat messages, from typed to echoed;
//! - `privates`: private messages in both directions;
//! - `pacing`: the sending budgets (what the user does, and repair apart),
//!   the measured round trip, and the notice rate limits.
//!
//! `deadlines` (tests) checks [`Session::poll_timeout`] against ticking.

#[cfg(test)]
mod deadlines;
#[cfg(test)]
mod join_tests;
mod link;
mod outbox;
mod pacing;
mod privates;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use udpchat_proto::{
    split_key_prefix, ByeCode, ClientMsg, Cookie, ErrorCode, HandNotice, JoinCode, Nick, Origin,
    ParseError, RelayMsg, RoomEvent, SessionKey, Text, Token, MAX_NICK_BYTES, MAX_NICK_CHARS,
    VERSION,
};

use crate::catalog::{Msg, Reason};
use crate::command::Input;
use crate::reassembly;
use crate::render::Line;
use crate::text::sanitize;

use link::Link;
use outbox::Outbox;
use pacing::{Budget, NoticeKind, Notices, Rtt};
use privates::Privates;

/// First wait before retransmitting `HELLO`; it doubles on each try.
const HELLO_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between `HELLO`s of the first join, and of a rejoin.
const HELLO_CAP_FIRST: Duration = Duration::from_secs(1);
const HELLO_CAP_REJOIN: Duration = Duration::from_secs(4);
/// Silence after which the first join gives up.
const JOIN_GIVE_UP: Duration = Duration::from_secs(5);

/// What the session wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this datagram to the relay.
    Send(Vec<u8>),
    /// Show this line.
    Show(Line),
    /// The join completed (first time or after a rejoin).
    Joined {
        /// The nickname we hold.
        nick: Nick,
        /// True after a rejoin.
        rejoin: bool,
    },
    /// The relay refused the first join's nickname; ask for another.
    Refused {
        /// The stable code (`nick-taken`, `nick-invalid`, `nick-reserved`).
        code: ErrorCode,
        /// The relay's reason (unsanitized).
        reason: String,
    },
    /// The first join got no answer: `no relay answering at HOST:PORT`.
    NoRelay,
    /// The session is over (removed by the host, incompatible relay); exit
    /// with this code.
    End {
        /// Process exit code.
        code: u8,
    },
}

// One session holds one State for its life: boxing the link would save
// nothing worth an allocation per join.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum State {
    Joining(Joining),
    Joined(Link),
    Ended,
}

/// Sending `HELLO` until a `WELCOME` comes.
#[derive(Debug, Clone, Copy)]
struct Joining {
    rejoin: bool,
    tries: u32,
    next_hello: Instant,
    /// When the join started (first join: for giving up).
    started: Instant,
}

impl Joining {
    fn new(now: Instant, rejoin: bool) -> Joining {
        Joining {
            rejoin,
            tries: 0,
            next_hello: now,
            started: now,
        }
    }

    /// When a first join gives up: after [`JOIN_GIVE_UP`] without hearing
    /// from the relay. A rejoin never does.
    fn give_up_at(&self, last_rx: Option<Instant>) -> Option<Instant> {
        let heard = last_rx.map_or(self.started, |t| t.max(self.started));
        (!self.rejoin).then(|| heard + JOIN_GIVE_UP)
    }

    /// Notes a `HELLO` sent now by the retransmission timer.
    fn hello_sent(&mut self, now: Instant) {
        let cap = if self.rejoin {
            HELLO_CAP_REJOIN
        } else {
            HELLO_CAP_FIRST
        };
        let wait = HELLO_FIRST.saturating_mul(1 << self.tries.min(8)).min(cap);
        self.tries = self.tries.saturating_add(1);
        self.next_hello = now + wait;
    }

    fn poll_timeout(&self, last_rx: Option<Instant>) -> Instant {
        self.give_up_at(last_rx)
            .map_or(self.next_hello, |t| t.min(self.next_hello))
    }
}

/// The next `SAY`/`PMSG` id. One counter for both (the relay keeps one
/// window of recent ids per member), never restarted in a process: a
/// message sent again after a rejoin keeps its id, so a relay that still
/// knew us does not relay it twice.
#[derive(Debug)]
struct MessageIds {
    next: u64,
}

impl MessageIds {
    fn take(&mut self) -> u64 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        id
    }
}

/// Sends `msg`, taking a token whether or not one is there (for what
/// cannot wait).
fn send(budget: &mut Budget, now: Instant, msg: &ClientMsg, out: &mut Vec<Action>) {
    budget.take(now);
    out.push(Action::Send(msg.encode()));
}

/// One client's conversation with one relay, across rejoins.
#[derive(Debug)]
pub struct Session {
    nick: Nick,
    state: State,
    /// Our session key for this process run (`HELLO ... key=`): every
    /// datagram we accept after joining starts with `@<key> `.
    key: SessionKey,
    /// The relay's key from our last `WELCOME`: every datagram we send but
    /// `HELLO` starts with `@<relay key> `.
    relay_key: Option<SessionKey>,
    /// The link we had before a rejoin: if the `WELCOME` gives the same
    /// membership back (same token and join point: the relay had not
    /// forgotten us, e.g. a forged `ERROR not-joined`), we carry on with it
    /// instead of showing the history again.
    previous_link: Option<Box<Link>>,
    cookie: Option<Cookie>,
    /// When the relay last sent anything.
    last_rx: Option<Instant>,
    outbox: Outbox,
    privates: Privates,
    ids: MessageIds,
    budget: Budget,
    /// The allowance for repair: retransmitted `SAY`s, `RESEND`, pings.
    repair_budget: Budget,
    /// The measured round trip to the relay.
    rtt: Rtt,
    /// Room events reported lost for good (given up on, or gone).
    lost_events: u64,
    notices: Notices,
    /// Ask for missed events and resend lost own messages (the default).
    repair: bool,
    /// The resume token of our membership, if the relay gave one (kept for
    /// a rejoin, and by the app in a file for a new process).
    resume: Option<Token>,
    /// Every room event up to this one was shown (while not joined; a
    /// joined session asks its link). Sent as `since=` with the token.
    delivered: Option<u64>,
    /// When the relay says history events not shown yet were said (from
    /// their `ago=`), by sequence number.
    said_at: std::collections::BTreeMap<u64, Instant>,
    /// Piped mode: input has ended (see [`Session::end_of_input`]).
    input_ended: bool,
    /// The room's join code (`--code`), sent in every `HELLO`.
    code: Option<JoinCode>,
    /// The announcements (by sequence number) we answered `SEEN` to, so
    /// each is confirmed once (the newest [`SEEN_REMEMBERED`]).
    seen: std::collections::BTreeSet<u64>,
}

/// How many announcements' `SEEN` the client remembers sending.
const SEEN_REMEMBERED: usize = 64;

/// What piped mode is still waiting for when it leaves (see
/// [`Session::shortfall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shortfall {
    /// Own messages (chat and private) not confirmed by the relay.
    pub unconfirmed: usize,
    /// Room events up to the relay's newest at the end of input not shown
    /// yet; `None` if the relay never told us its newest.
    pub missing: Option<u64>,
    /// Room events reported lost for good.
    pub lost: u64,
}

impl Shortfall {
    /// True if nothing is missing or lost, and the relay said how many
    /// events there were.
    pub fn is_nothing(&self) -> bool {
        self.unconfirmed == 0 && self.missing == Some(0) && self.lost == 0
    }

    /// True if something is known to be missing or lost (an unanswered
    /// question about the relay's newest event is not).
    pub fn anything_lost(&self) -> bool {
        self.unconfirmed > 0 || self.missing.unwrap_or(0) > 0 || self.lost > 0
    }
}

/// What a client needs to take its membership back after a restart: the
/// relay's resume token and the last room event it showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeState {
    /// From `WELCOME`.
    pub token: Token,
    /// Every room event up to this one was shown (`HELLO ... since=`).
    pub since: Option<u64>,
}

impl Session {
    /// Starts joining as `nick`; the first `HELLO` goes out on the first
    /// [`Session::handle_timeout`]. `first_id` seeds the `SAY` and `PMSG`
    /// ids (pass something that differs between runs, such as the clock, so
    /// a restarted client on the same address does not reuse recent ids).
    /// `key` is this run's session key: pass random bits from the operating
    /// system (a blind spoofer must not guess it).
    pub fn new(nick: Nick, now: Instant, first_id: u64, key: SessionKey) -> Session {
        Session {
            nick,
            state: State::Joining(Joining::new(now, false)),
            key,
            relay_key: None,
            previous_link: None,
            cookie: None,
            last_rx: None,
            outbox: Outbox::default(),
            privates: Privates::default(),
            ids: MessageIds { next: first_id },
            budget: Budget::new(now),
            repair_budget: Budget::repair(now),
            rtt: Rtt::default(),
            lost_events: 0,
            notices: Notices::default(),
            repair: true,
            resume: None,
            delivered: None,
            said_at: std::collections::BTreeMap::new(),
            input_ended: false,
            code: None,
            seen: std::collections::BTreeSet::new(),
        }
    }

    /// Joins with the room's join code (`HELLO ... code=`).
    pub fn with_code(mut self, code: JoinCode) -> Session {
        self.code = Some(code);
        self
    }

    /// Joins with a resume token saved by an earlier process: the relay
    /// hands us our nickname back at once (the old process may have died
    /// without leaving) and sends only the events after `since`.
    pub fn with_resume(mut self, state: ResumeState) -> Session {
        self.resume = Some(state.token);
        self.delivered = state.since;
        self
    }

    /// What to save to take this membership back from a new process; `None`
    /// until the relay gave a token.
    pub fn resume_state(&self) -> Option<ResumeState> {
        let token = self.resume.clone()?;
        let since = match &self.state {
            State::Joined(link) => Some(link.delivered_through()),
            _ => self.delivered,
        };
        Some(ResumeState { token, since })
    }

    /// Piped mode: input has ended. Asks the relay for its newest event now
    /// (again after a rejoin), so that [`Session::is_caught_up`] can tell
    /// when we have everything said up to this moment; the ping goes out at
    /// the next [`Session::handle_timeout`], due at once.
    pub fn end_of_input(&mut self, now: Instant) {
        self.input_ended = true;
        if let State::Joined(link) = &mut self.state {
            link.start_sync(now);
        }
    }

    /// Piped mode may leave: own messages all confirmed, and every room
    /// event up to the relay's newest at the end of input shown (or
    /// reported lost).
    pub fn is_caught_up(&self) -> bool {
        let State::Joined(link) = &self.state else {
            return false;
        };
        self.is_settled()
            && link
                .sync_target()
                .is_some_and(|target| link.delivered_through() >= target)
    }

    /// What is still missing: own messages unconfirmed, room events not
    /// shown up to the relay's newest at the end of input, events lost.
    pub fn shortfall(&self) -> Shortfall {
        let missing = match &self.state {
            State::Joined(link) => link
                .sync_target()
                .map(|target| target.saturating_sub(link.delivered_through())),
            _ => None,
        };
        Shortfall {
            unconfirmed: self.unsettled(),
            missing,
            lost: self.lost_events,
        }
    }

    /// Something that changes while repair makes progress (events shown
    /// or given up on, own messages confirmed, the relay's answer to the
    /// end-of-input question), for noticing a stall.
    pub fn progress(&self) -> u64 {
        let (through, answered) = match &self.state {
            State::Joined(link) => (link.delivered_through(), link.sync_target().is_some()),
            _ => (0, false),
        };
        through.wrapping_sub(self.unsettled() as u64) ^ (u64::from(answered) << 63)
    }

    /// Turns loss repair off: missed room events are only reported, lost
    /// own messages are not sent again. For measuring what repair costs.
    pub fn without_repair(mut self) -> Session {
        self.repair = false;
        self
    }

    /// Starts over with another nickname after a refusal, keeping the
    /// cookie.
    pub fn retry_with(&mut self, nick: Nick, now: Instant) {
        self.nick = nick;
        self.state = State::Joining(Joining::new(now, false));
    }

    /// The nickname we hold (or are joining as).
    pub fn nick(&self) -> &Nick {
        &self.nick
    }

    /// True once joined and not since lost.
    pub fn is_joined(&self) -> bool {
        matches!(self.state, State::Joined(_))
    }

    /// True when nothing we sent is still waiting: no queued message, every
    /// own message echoed, every private message confirmed.
    pub fn is_settled(&self) -> bool {
        self.outbox.is_empty() && self.privates.is_empty()
    }

    /// How many of our messages are queued or not yet echoed.
    pub fn unsettled(&self) -> usize {
        self.outbox.len() + self.privates.len()
    }

    /// Leaves: sends `Q` if joined. The session is over afterwards.
    pub fn quit(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.is_joined() {
            let quit = ClientMsg::Quit(self.nick.clone(), None);
            send(&mut self.budget, now, &quit, &mut out);
        }
        self.end();
        self.seal(out)
    }

    /// Puts the relay's key in front of every datagram we send but `HELLO`
    /// (once we have one; every client datagram starts with a capital
    /// letter, so one already sealed starts with `@`).
    fn seal(&self, mut out: Vec<Action>) -> Vec<Action> {
        let Some(key) = self.relay_key else {
            return out;
        };
        for action in &mut out {
            if let Action::Send(bytes) = action {
                if !bytes.starts_with(b"HELLO ") && !bytes.starts_with(b"@") {
                    *bytes = key.prefixed(bytes);
                }
            }
        }
        out
    }

    /// The session is over; what was shown is kept for
    /// [`Session::resume_state`] (a new process resumes after it).
    fn end(&mut self) {
        if let State::Joined(link) = &self.state {
            self.delivered = Some(link.delivered_through());
        }
        self.state = State::Ended;
    }

    /// The earliest instant at which [`Session::handle_timeout`] has
    /// something to do; `None` once the session is over. Calling it only
    /// then (and on datagrams and input) sends what calling it every few
    /// milliseconds would, at the same time or sooner; the one exception is
    /// the shared budget: what cannot wait (a `PMSG` retransmission, say),
    /// run at its exact deadline, may take the token a paced `SAY` would
    /// have taken first at a later tick. The instant may be in the past:
    /// then call it now.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Ended => None,
            State::Joining(joining) => Some(joining.poll_timeout(self.last_rx)),
            State::Joined(link) => {
                let link = link.poll_timeout(self.last_rx, &self.repair_budget);
                let outbox =
                    self.outbox
                        .poll_timeout(self.repair, &self.budget, &self.repair_budget);
                let privates = self.privates.poll_timeout();
                Some(
                    [outbox, privates]
                        .into_iter()
                        .flatten()
                        .fold(link, Instant::min),
                )
            }
        }
    }

    /// Handles one line the user typed.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        let joined = self.is_joined();
        match input {
            Input::Say(text) => {
                self.outbox.push(text);
                if joined {
                    self.drain_outbox(now, &mut out);
                } else {
                    out.push(Action::Show(Line::Notice(Msg::NotConnectedQueued)));
                }
            }
            Input::Msg { to, text } => {
                let id = self.ids.take();
                self.privates.push(now, id, to, text);
                if joined {
                    self.privates.retransmit(now, &mut self.budget, &mut out);
                }
            }
            Input::Who | Input::Rename(_) | Input::Hand(_) if !joined => {
                out.push(Action::Show(Line::Error(Msg::NotConnected)))
            }
            Input::Who => send(&mut self.budget, now, &ClientMsg::Who, &mut out),
            // Sent once, like WHO: no answer means it was lost; type it again.
            Input::Hand(question) => {
                send(&mut self.budget, now, &ClientMsg::Hand(question), &mut out)
            }
            Input::Rename(new) => {
                self.outbox.hold_for_rename(now);
                send(&mut self.budget, now, &ClientMsg::Rename(new), &mut out);
            }
            Input::Help => out.push(Action::Show(Line::Help)),
            // The screen's business: the app clears it.
            Input::Clear => {}
            Input::Quit => out.extend(self.quit(now)),
            Input::Nothing => {}
        }
        self.seal(out)
    }

    /// Handles the passing of time: retransmissions, keepalive, loss
    /// detection, paced sending, resend requests.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match &mut self.state {
            State::Ended => {}
            State::Joining(joining) => {
                if joining.give_up_at(self.last_rx).is_some_and(|t| now >= t) {
                    self.end();
                    out.push(Action::NoRelay);
                } else if now >= joining.next_hello {
                    joining.hello_sent(now);
                    self.send_hello(now, &mut out);
                }
            }
            State::Joined(link) => {
                if link.is_lost(now, self.last_rx) {
                    self.start_rejoin(now, None, &mut out);
                    return self.seal(out);
                }
                link.handle_timeout(now, &self.rtt, &mut self.repair_budget, &mut out);
                self.outbox.drain(
                    now,
                    self.repair,
                    &self.rtt,
                    &mut self.budget,
                    &mut self.ids,
                    &mut out,
                );
                self.outbox.retransmit(
                    now,
                    self.repair,
                    &self.rtt,
                    &mut self.repair_budget,
                    &mut out,
                );
                self.privates.retransmit(now, &mut self.budget, &mut out);
                self.outbox.expire(now, &mut out);
                let outputs = link.poll_reassembly(now, &self.rtt, &mut self.repair_budget);
                self.apply(now, outputs, &mut out);
            }
        }
        self.seal(out)
    }

    /// Handles one datagram from the relay. Nothing in it is trusted, and
    /// only what carries our key counts: a blind spoofer (who can forge the
    /// relay's address but not read our traffic) is ignored, except that
    /// an unprefixed `COOKIE` is taken while joining and an unprefixed
    /// `ERROR not-joined` makes us rejoin (both cost at most a rejoin).
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(bytes) = self.authenticate(bytes) else {
            return out;
        };
        self.last_rx = Some(now);
        if let State::Joined(link) = &mut self.state {
            if !bytes.starts_with(b"PONG") {
                link.heard_as_member(now);
            }
        }
        let msg = match parse_relay(bytes) {
            Ok(msg) => msg,
            Err(notice) => {
                if self.notices.due(now, NoticeKind::Garbage) {
                    out.push(Action::Show(Line::Error(notice)));
                }
                return out;
            }
        };
        match self.state {
            State::Ended => {}
            State::Joining(Joining { rejoin, .. }) => {
                self.handle_joining(now, rejoin, msg, &mut out);
            }
            State::Joined(_) => self.handle_joined(now, msg, &mut out),
        }
        self.seal(out)
    }

    /// The datagram after our key's prefix, or a datagram that may come
    /// without it; `None` (logged at debug level) for anything else.
    fn authenticate<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let (prefix, body) = split_key_prefix(bytes);
        match prefix {
            Some(key) if key.matches(self.key) => return Some(body),
            Some(_) => {
                log::debug!("dropped a relay datagram with another session key");
                return None;
            }
            None => {}
        }
        let joining = matches!(self.state, State::Joining(_));
        match RelayMsg::parse(bytes) {
            Ok(RelayMsg::Cookie(_)) if joining => Some(bytes),
            Ok(RelayMsg::Error {
                code: ErrorCode::NotJoined,
                ..
            }) => Some(bytes),
            _ => {
                log::debug!(
                    "dropped a relay datagram without our session key: {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
                );
                None
            }
        }
    }

    fn handle_joining(&mut self, now: Instant, rejoin: bool, msg: RelayMsg, out: &mut Vec<Action>) {
        match msg {
            RelayMsg::Cookie(cookie) => {
                let fresh = self.cookie != Some(cookie);
                self.cookie = Some(cookie);
                if fresh {
                    self.send_hello(now, out);
                }
            }
            RelayMsg::Welcome {
                nick,
                last_seq,
                ping_interval,
                idle_timeout,
                history_from,
                resume,
                key,
                ..
            } => {
                // Everything we send from now on carries the relay's key
                // (none from a relay that did not take ours).
                self.relay_key = key;
                self.nick = nick.clone();
                let same_membership = resume.is_some() && resume == self.resume;
                if resume.is_some() {
                    self.resume = resume;
                }
                let mut link = match self.previous_link.take() {
                    Some(mut old) if same_membership && old.join_point() == last_seq => {
                        old.heard_as_member(now);
                        *old
                    }
                    _ => Link::new(
                        now,
                        last_seq,
                        history_from,
                        ping_interval,
                        idle_timeout,
                        self.repair,
                    ),
                };
                out.push(Action::Joined {
                    nick: nick.clone(),
                    rejoin,
                });
                if rejoin {
                    out.push(Action::Show(Line::Notice(Msg::Rejoined {
                        nick: nick.to_string(),
                    })));
                }
                // What was in flight goes again at once, with its id.
                self.privates.resend_all(now);
                self.outbox.resend_all(now);
                let rtt = self.rtt;
                self.outbox
                    .drain(now, self.repair, &rtt, &mut self.budget, &mut self.ids, out);
                self.outbox
                    .retransmit(now, self.repair, &rtt, &mut self.repair_budget, out);
                link.start_sync_if(self.input_ended, now);
                self.privates.retransmit(now, &mut self.budget, out);
                self.state = State::Joined(link);
            }
            RelayMsg::Error { code, reason } => match code {
                // A reserved name is refused on a rejoin too: a restarted
                // relay may keep it now, and no suffix makes it ours.
                ErrorCode::NickTaken | ErrorCode::NickInvalid | ErrorCode::NickReserved
                    if !rejoin || code == ErrorCode::NickReserved =>
                {
                    self.end();
                    out.push(Action::Refused {
                        code,
                        reason: reason.to_string(),
                    });
                }
                ErrorCode::NickTaken => {
                    let old = self.nick.clone();
                    self.nick = alternative_nick(&old);
                    out.push(Action::Show(Line::Notice(Msg::NickTakenRejoining {
                        old: old.to_string(),
                        new: self.nick.to_string(),
                    })));
                    self.send_hello(now, out);
                }
                // Answers to what we sent before the relay forgot us: what
                // is unechoed goes out again once we are back.
                ErrorCode::NotJoined | ErrorCode::NotYours => {}
                ErrorCode::RateLimited => {}
                // Retrying cannot help (the host decides), and for a code
                // each try costs one of the computer's guesses: stop, a
                // rejoin too, and say why.
                ErrorCode::BadVersion | ErrorCode::Banned | ErrorCode::BadCode => {
                    self.refuse_join(code, &reason, out)
                }
                ErrorCode::AlreadyJoined
                | ErrorCode::RoomFull
                | ErrorCode::IpFull
                | ErrorCode::ClassicDisabled
                | ErrorCode::RoomLocked
                | ErrorCode::BadSyntax
                | ErrorCode::TooLong
                | ErrorCode::BadUtf8
                | ErrorCode::UnknownVerb
                    if !rejoin =>
                {
                    self.refuse_join(code, &reason, out)
                }
                // A rejoin keeps trying (the room may have room again, an
                // old membership may time out); say why, now and then.
                _ if rejoin && self.notices.due(now, NoticeKind::RoomFull) => {
                    out.push(Action::Show(Line::Notice(Msg::StillRejoining {
                        reason: Reason::coded(code, reason.as_str()),
                    })));
                }
                _ => {} // not about the join, or said recently
            },
            RelayMsg::Bye {
                code: ByeCode::Kicked,
                reason,
            } => {
                self.end();
                out.push(Action::Show(Line::Notice(Msg::RemovedByHost {
                    reason: reason.to_string(),
                })));
                out.push(Action::End { code: 1 });
            }
            // Leftovers of the previous session, or early arrivals: the
            // reassembly of the new session will ask for what it needs.
            _ => {}
        }
    }

    fn handle_joined(&mut self, now: Instant, msg: RelayMsg, out: &mut Vec<Action>) {
        let State::Joined(link) = &mut self.state else {
            return;
        };
        match msg {
            RelayMsg::Event {
                seq,
                origin,
                ago,
                event,
            } => {
                if let Some(at) = ago.and_then(|s| now.checked_sub(Duration::from_secs(s.into()))) {
                    if seq > link.delivered_through() && self.said_at.len() < 4096 {
                        self.said_at.insert(seq, at);
                    }
                }
                // Our own message confirmed as soon as it arrives, whatever
                // gaps other people's messages have (an action is the
                // echo of the `/me ...` we sent).
                let own = match &event {
                    RoomEvent::Chat { nick, text } => Some((nick, text.clone())),
                    RoomEvent::Action { nick, text } => Some((
                        nick,
                        Text::new(&format!("/me {text}")).unwrap_or(text.clone()),
                    )),
                    _ => None,
                };
                if let Some((nick, text)) = own {
                    if origin != Origin::History && nick.key() == self.nick.key() {
                        self.outbox.handle_echo(now, seq, &text, &mut self.rtt);
                    }
                }
                let outputs = link.handle_event(now, seq, origin, event);
                let through = link.delivered_through();
                self.apply(now, outputs, out);
                self.said_at.retain(|&s, _| s > through);
                // The echo of our message may have come: send the next.
                self.drain_outbox(now, out);
            }
            RelayMsg::Private { pid, from, text } => {
                self.privates
                    .handle_private(now, pid, &from, &text, &mut self.budget, out);
            }
            RelayMsg::Sent { id, to, text } => {
                if let Some(line) = self.privates.handle_sent(id, &to, &text) {
                    out.push(Action::Show(line));
                }
            }
            RelayMsg::Who {
                page,
                pages,
                count,
                nicks,
            } => out.push(Action::Show(Line::Who {
                count,
                page,
                pages,
                nicks: nicks.iter().map(Nick::to_string).collect(),
            })),
            RelayMsg::Pong { last_seq, token } => {
                if let Some(outputs) = link.handle_pong(
                    now,
                    last_seq,
                    token.as_ref(),
                    &mut self.rtt,
                    &mut self.repair_budget,
                    out,
                ) {
                    self.apply(now, outputs, out);
                    self.drain_outbox(now, out);
                }
            }
            RelayMsg::Gone { from, to } => {
                let outputs = link.handle_gone(from, to);
                self.apply(now, outputs, out);
            }
            RelayMsg::Error { code, reason } => match code {
                ErrorCode::NotJoined => {
                    // The relay forgot us (restart, or idle eviction whose
                    // BYE was lost): what it refused since is sent again
                    // after the rejoin.
                    self.start_rejoin(now, Some(Msg::RelayForgotUs), out);
                }
                // Only `Q` names us (SAY does not): a late answer to a quit.
                ErrorCode::NotYours => {}
                ErrorCode::NickTaken | ErrorCode::NickInvalid | ErrorCode::NickReserved => {
                    self.outbox.end_rename_hold();
                    out.push(Action::Show(Line::Error(Msg::RenameRefused {
                        reason: Reason::coded(code, reason.as_str()),
                    })));
                }
                ErrorCode::NoSuchNick => {
                    let line = self
                        .privates
                        .handle_no_such_nick(Reason::coded(code, reason.as_str()));
                    out.push(Action::Show(line));
                }
                // The relay refused what we said, for good: a muted
                // member's messages, a message too early in slow mode.
                // ERROR carries no id and the relay drops a repeat of a
                // refused SAY, so sending again would only wait 30 s for
                // nothing: what is in flight is given up, and said so.
                ErrorCode::Muted
                | ErrorCode::SlowMode
                | ErrorCode::Moderated
                | ErrorCode::LooksLikeNotice => {
                    let dropped = self.outbox.give_up_in_flight();
                    if code == ErrorCode::Muted {
                        self.privates.give_up_all();
                    }
                    out.push(Action::Show(Line::Error(Msg::NotSent {
                        count: dropped,
                        reason: Reason::coded(code, reason.as_str()),
                    })));
                }
                ErrorCode::RateLimited => {
                    // The relay drops what follows until its bucket refills:
                    // pause. A message it dropped is sent again like any
                    // other whose echo does not come back.
                    self.budget.empty();
                    if self.notices.due(now, NoticeKind::Rate) {
                        out.push(Action::Show(Line::Notice(Msg::SlowingDown {
                            reason: Reason::coded(code, reason.as_str()),
                        })));
                    }
                }
                _ => out.push(Action::Show(Line::Error(Msg::RelayError {
                    reason: Reason::coded(code, reason.as_str()),
                }))),
            },
            RelayMsg::Bye { code, reason } => match code {
                ByeCode::Kicked => {
                    self.end();
                    out.push(Action::Show(Line::Notice(Msg::RemovedByHost {
                        reason: reason.to_string(),
                    })));
                    out.push(Action::End { code: 1 });
                }
                ByeCode::Shutdown => {
                    let reason = Reason::plain(reason.as_str());
                    self.start_rejoin(now, Some(Msg::RelayShuttingDown { reason }), out);
                }
                ByeCode::Timeout => {
                    let reason = Reason::plain(reason.as_str());
                    self.start_rejoin(now, Some(Msg::RelayDroppedUs { reason }), out);
                }
            },
            RelayMsg::Hand(HandNotice::Up { position }) => {
                out.push(Action::Show(Line::Notice(Msg::HandUp { position })));
            }
            RelayMsg::Hand(HandNotice::Called) => {
                out.push(Action::Show(Line::Notice(Msg::Called)));
            }
            RelayMsg::Voice(on) => {
                let msg = if on { Msg::CanSpeak } else { Msg::CannotSpeak };
                out.push(Action::Show(Line::Notice(msg)));
            }
            RelayMsg::Cookie(_) | RelayMsg::Welcome { .. } => {} // duplicates of the join
        }
    }

    /// Sends queued messages while they may go. Only while joined.
    fn drain_outbox(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.outbox.drain(
            now,
            self.repair,
            &self.rtt,
            &mut self.budget,
            &mut self.ids,
            out,
        );
    }

    /// Turns reassembly outputs into lines and requests.
    fn apply(&mut self, now: Instant, outputs: Vec<reassembly::Output>, out: &mut Vec<Action>) {
        for output in outputs {
            match output {
                reassembly::Output::Deliver {
                    seq,
                    event,
                    history,
                } => {
                    if matches!(event, RoomEvent::Announce(_)) {
                        self.confirm_announcement(now, seq, out);
                    }
                    let mut line = self.event_line(event, history);
                    let said = self.said_at.remove(&seq);
                    if let (true, Some(at)) = (history, said) {
                        line = Line::Said {
                            ago: now.saturating_duration_since(at),
                            line: Box::new(line),
                        };
                    }
                    out.push(Action::Show(line));
                }
                reassembly::Output::Lost { from, to, reason } => {
                    let n = to - from + 1;
                    self.lost_events = self.lost_events.saturating_add(n);
                    out.push(Action::Show(Line::Notice(Msg::Lost {
                        count: n,
                        why: reason,
                    })));
                }
                reassembly::Output::Request { from, to } => {
                    let resend = ClientMsg::Resend { from, to };
                    send(&mut self.repair_budget, now, &resend, out);
                }
                reassembly::Output::Waiting { missing } => {
                    if self.notices.due(now, NoticeKind::Waiting) {
                        out.push(Action::Show(Line::Notice(Msg::Waiting { missing })));
                    }
                }
            }
        }
    }

    /// The line for a room event, noting renames of ourselves and echoes of
    /// our own messages.
    fn event_line(&mut self, event: RoomEvent, history: bool) -> Line {
        match event {
            RoomEvent::Chat { nick, text } => {
                let own = !history && nick.key() == self.nick.key();
                Line::Chat {
                    nick: nick.to_string(),
                    text: text.to_string(),
                    own,
                    history,
                }
            }
            RoomEvent::Join(nick) => Line::Join {
                nick: nick.to_string(),
                history,
            },
            RoomEvent::Leave { nick, reason } => Line::Leave {
                nick: nick.to_string(),
                reason,
                history,
            },
            RoomEvent::Rename { old, new } => {
                if !history && old.key() == self.nick.key() {
                    self.nick = new.clone();
                    self.outbox.end_rename_hold();
                }
                Line::Rename {
                    old: old.to_string(),
                    new: new.to_string(),
                    history,
                }
            }
            RoomEvent::Reconnect(nick) => Line::Notice(Msg::Reconnected {
                nick: nick.to_string(),
                history,
            }),
            RoomEvent::Host(text) => Line::Host {
                text: text.to_string(),
                history,
            },
            RoomEvent::Action { nick, text } => Line::Action {
                nick: nick.to_string(),
                text: text.to_string(),
                history,
            },
            RoomEvent::Announce(text) => Line::Announce {
                text: text.to_string(),
                history,
            },
            RoomEvent::Moderated(on) => Line::Notice(Msg::Moderated { on, history }),
        }
    }

    /// Answers `SEEN seq` to the announcement that is event `seq`, once
    /// (live, history and resent alike).
    fn confirm_announcement(&mut self, now: Instant, seq: u64, out: &mut Vec<Action>) {
        if !self.seen.insert(seq) {
            return;
        }
        if self.seen.len() > SEEN_REMEMBERED {
            self.seen.pop_first();
        }
        send(&mut self.budget, now, &ClientMsg::Seen(seq), out);
    }

    fn refuse_join(&mut self, code: ErrorCode, reason: &Text, out: &mut Vec<Action>) {
        self.end();
        out.push(Action::Show(Line::Error(Msg::JoinRefused {
            reason: Reason::coded(code, reason.as_str()),
        })));
        out.push(Action::End { code: 1 });
    }

    /// Drops the link (a fresh one comes with the next `WELCOME`) and
    /// starts sending `HELLO` again.
    fn start_rejoin(&mut self, now: Instant, why: Option<Msg>, out: &mut Vec<Action>) {
        if let Some(why) = why {
            out.push(Action::Show(Line::Notice(why)));
        }
        out.push(Action::Show(Line::Notice(Msg::ConnectionLost)));
        // A new membership (maybe of a restarted relay, whose numbers
        // start again) confirms what it is shown again.
        self.seen.clear();
        let joining = State::Joining(Joining::new(now, true));
        if let State::Joined(link) = std::mem::replace(&mut self.state, joining) {
            self.delivered = Some(link.delivered_through());
            self.previous_link = Some(Box::new(link));
        }
    }

    fn send_hello(&mut self, now: Instant, out: &mut Vec<Action>) {
        let hello = ClientMsg::Hello {
            version: Token::new(VERSION).expect("VERSION is a valid token"),
            nick: self.nick.clone(),
            cookie: self.cookie,
            // Only the HELLO with a cookie counts; the first stays small.
            since: self.cookie.and(self.resume.as_ref()).and(self.delivered),
            resume: self.cookie.and(self.resume.clone()),
            key: Some(self.key),
            code: self.code.clone(),
        };
        send(&mut self.budget, now, &hello, out);
    }
}

/// Parses a relay datagram without trusting it. A datagram refused only
/// because of control characters is parsed again with them escaped (so a
/// misbehaving relay's message is still readable, and harmless); anything
/// else unparsable becomes a notice quoting a sanitized, shortened copy.
pub fn parse_relay(bytes: &[u8]) -> Result<RelayMsg, Msg> {
    match RelayMsg::parse(bytes) {
        Ok(msg) => Ok(msg),
        Err(error) => {
            let lossy = String::from_utf8_lossy(bytes);
            let escaped = sanitize(lossy.trim_end_matches(['\n', '\r']));
            if matches!(error, ParseError::ControlChar(_)) {
                if let Ok(msg) = RelayMsg::parse(escaped.as_bytes()) {
                    return Ok(msg);
                }
            }
            let mut shown: String = escaped.chars().take(80).collect();
            if escaped.chars().count() > 80 {
                shown.push('…');
            }
            Err(Msg::Malformed { error, shown })
        }
    }
}

/// Another nickname to try when ours was taken while we were away:
/// `alice` -> `alice_2`, `alice_2` -> `alice_3`, shortened to fit.
pub fn alternative_nick(nick: &Nick) -> Nick {
    let s = nick.as_str();
    let (base, n) = match s.rsplit_once('_') {
        Some((base, digits))
            if !base.is_empty()
                && !digits.is_empty()
                && digits.len() <= 6
                && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (base, digits.parse::<u32>().unwrap_or(1).saturating_add(1))
        }
        _ => (s, 2),
    };
    let suffix = format!("_{n}");
    let mut base: String = base.to_owned();
    while base.chars().count() + suffix.len() > MAX_NICK_CHARS
        || base.len() + suffix.len() > MAX_NICK_BYTES
    {
        base.pop();
    }
    Nick::new(&format!("{base}{suffix}")).unwrap_or_else(|_| nick.clone())
}
