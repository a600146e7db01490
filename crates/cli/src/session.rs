//! The client's protocol logic: joining, keepalive, rejoining, private
//! messages, loss repair. No I/O and no clock: datagrams, typed input and
//! time come in; datagrams to send and lines to show come out as
//! [`Action`]s. The threads in `app` only move bytes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use udpchat_proto::{
    ByeCode, ClientMsg, Cookie, ErrorCode, Nick, ParseError, RelayMsg, RoomEvent, Text, Token,
    MAX_NICK_BYTES, MAX_NICK_CHARS, VERSION,
};

use crate::command::Input;
use crate::reassembly::{self, LossReason, Reassembly};
use crate::render::Line;
use crate::text::sanitize;

/// First wait before retransmitting `HELLO`; it doubles on each try.
const HELLO_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between `HELLO`s of the first join, and of a rejoin.
const HELLO_CAP_FIRST: Duration = Duration::from_secs(1);
const HELLO_CAP_REJOIN: Duration = Duration::from_secs(4);
/// Silence after which the first join gives up.
const JOIN_GIVE_UP: Duration = Duration::from_secs(5);
/// Pings missed before the connection counts as lost.
const PINGS_BEFORE_LOST: u32 = 3;
/// Retransmission of our private messages until `SENT` (PROTOCOL.md: after
/// 1 s, 2 s, 4 s and 8 s, then report failure).
const PRIVATE_FIRST: Duration = Duration::from_secs(1);
const PRIVATE_TRIES: u32 = 5;
/// How many private message ids to remember for deduplication.
const SEEN_PIDS: usize = 256;
/// After activity, ask for the relay's newest sequence number this soon, so
/// a lost last message is noticed without waiting for the next keepalive.
const TAIL_CHECK: Duration = Duration::from_millis(1000);
/// Tail-check pings sent (1 s, 2 s, 4 s apart) until one is answered.
const TAIL_CHECKS: u32 = 3;
/// An own message whose echo is not back is sent again (same id) this long
/// after it went out; the wait doubles on each try up to [`SAY_RETRY_CAP`].
const SAY_RETRY_FIRST: Duration = Duration::from_millis(300);
const SAY_RETRY_CAP: Duration = Duration::from_secs(2);
/// Our own sending budget, below the relay's default rate limit (burst 20,
/// 5 per second) so a pasted paragraph or a script is paced, not dropped.
const BUDGET_BURST: f64 = 12.0;
const BUDGET_PER_SEC: f64 = 4.0;
/// Resend requests allowed per poll.
const RESEND_PER_POLL: usize = 4;
/// Own messages remembered until their echo comes back (more than one only
/// without repair), and for how long.
const UNECHOED_MAX: usize = 64;
const UNECHOED_AGE: Duration = Duration::from_secs(30);
/// Least time between two notices of the same kind.
const NOTICE_GAP: Duration = Duration::from_secs(3);
/// How long messages typed after `/nick` wait for the rename to take effect,
/// so that the room sees them after it, under the new nickname.
const RENAME_HOLD: Duration = Duration::from_secs(2);
/// ... and between two "still missing" notices (loss is routine on Wi-Fi).
const WAITING_NOTICE_GAP: Duration = Duration::from_secs(10);

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
        /// The stable code (`nick-taken`, `nick-invalid`).
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Joining {
        rejoin: bool,
        tries: u32,
        next_hello: Instant,
        /// When the join started (first join: for giving up).
        started: Instant,
    },
    Joined,
    Ended,
}

/// An own message sent as `SAY` and not yet seen come back from the relay.
#[derive(Debug)]
struct Unechoed {
    id: u64,
    text: Text,
    /// When it was first sent.
    at: Instant,
    /// When to send it again if the echo is still not back.
    retry_at: Instant,
    /// Times sent again.
    retries: u32,
}

#[derive(Debug)]
struct PendingPrivate {
    id: u64,
    to: Nick,
    text: Text,
    tries: u32,
    due: Instant,
}

/// A token bucket for what we send.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * BUDGET_PER_SEC).min(BUDGET_BURST);
        self.at = now;
    }

    /// Takes a token if one is there (for what can wait: chat, resend).
    fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token whether or not one is there (for what cannot wait).
    fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(-BUDGET_BURST);
    }
}

/// One client's conversation with one relay, across rejoins.
#[derive(Debug)]
pub struct Session {
    nick: Nick,
    state: State,
    cookie: Option<Cookie>,
    reassembly: Reassembly,
    last_rx: Option<Instant>,
    /// When the relay last sent something only a member gets (anything but
    /// `PONG`, which strangers get too), or we last probed membership.
    last_member_rx: Instant,
    ping_interval: Duration,
    next_ping: Instant,
    tail_check: Option<Instant>,
    /// Tail-check pings still to send if none is answered.
    tail_checks_left: u32,
    /// Until when our messages wait for a rename we asked for.
    rename_hold: Option<Instant>,
    outbox: VecDeque<Text>,
    /// Sent and waiting for their echo, oldest first; with repair at most
    /// one, so our messages reach the room in the order typed.
    unechoed: VecDeque<Unechoed>,
    privates: Vec<PendingPrivate>,
    /// The next `SAY`/`PMSG` id. One counter for both (the relay keeps one
    /// window of recent ids per member), never restarted in a process: a
    /// message sent again after a rejoin keeps its id, so a relay that still
    /// knew us does not relay it twice.
    next_id: u64,
    seen_pids: VecDeque<u64>,
    budget: Budget,
    last_waiting_notice: Option<Instant>,
    last_rate_notice: Option<Instant>,
    last_garbage_notice: Option<Instant>,
    /// Ask for missed events and resend lost own messages (the default).
    repair: bool,
}

impl Session {
    /// Starts joining as `nick`; the first `HELLO` goes out on the first
    /// [`Session::handle_timeout`]. `first_id` seeds the `SAY` and `PMSG`
    /// ids (pass something that differs between runs, such as the clock, so
    /// a restarted client on the same address does not reuse recent ids).
    pub fn new(nick: Nick, now: Instant, first_id: u64) -> Session {
        Session {
            nick,
            state: State::Joining {
                rejoin: false,
                tries: 0,
                next_hello: now,
                started: now,
            },
            cookie: None,
            reassembly: Reassembly::new(0),
            last_rx: None,
            last_member_rx: now,
            ping_interval: Duration::from_secs(15),
            next_ping: now,
            tail_check: None,
            tail_checks_left: 0,
            rename_hold: None,
            outbox: VecDeque::new(),
            unechoed: VecDeque::new(),
            privates: Vec::new(),
            next_id: first_id,
            seen_pids: VecDeque::new(),
            budget: Budget {
                tokens: BUDGET_BURST,
                at: now,
            },
            last_waiting_notice: None,
            last_rate_notice: None,
            last_garbage_notice: None,
            repair: true,
        }
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
        self.state = State::Joining {
            rejoin: false,
            tries: 0,
            next_hello: now,
            started: now,
        };
    }

    /// The nickname we hold (or are joining as).
    pub fn nick(&self) -> &Nick {
        &self.nick
    }

    /// True once joined and not since lost.
    pub fn is_joined(&self) -> bool {
        self.state == State::Joined
    }

    /// True when nothing we sent is still waiting: no queued message, every
    /// own message echoed, every private message confirmed.
    pub fn is_settled(&self) -> bool {
        self.outbox.is_empty() && self.unechoed.is_empty() && self.privates.is_empty()
    }

    /// How many of our messages are queued or not yet echoed.
    pub fn unsettled(&self) -> usize {
        self.outbox.len() + self.unechoed.len() + self.privates.len()
    }

    /// Leaves: sends `Q` if joined. The session is over afterwards.
    pub fn quit(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Joined {
            let quit = ClientMsg::Quit(self.nick.clone());
            self.send(now, &quit, &mut out);
        }
        self.state = State::Ended;
        out
    }

    /// Handles one line the user typed.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        let joined = self.state == State::Joined;
        match input {
            Input::Say(text) => {
                self.outbox.push_back(text);
                if !joined {
                    out.push(Action::Show(Line::Notice(
                        "not connected right now; your message will be sent when the relay answers"
                            .into(),
                    )));
                }
                self.drain_outbox(now, &mut out);
            }
            Input::Msg { to, text } => {
                let id = self.take_id();
                self.privates.push(PendingPrivate {
                    id,
                    to,
                    text,
                    tries: 0,
                    due: now,
                });
                self.retransmit_privates(now, &mut out);
            }
            Input::Who | Input::Rename(_) if !joined => out.push(Action::Show(Line::Error(
                "not connected right now; try again in a moment".into(),
            ))),
            Input::Who => self.send(now, &ClientMsg::Who, &mut out),
            Input::Rename(new) => {
                self.rename_hold = Some(now + RENAME_HOLD);
                self.send(now, &ClientMsg::Rename(new), &mut out);
            }
            Input::Help => out.push(Action::Show(Line::Help)),
            Input::Quit => out.extend(self.quit(now)),
            Input::Nothing => {}
        }
        out
    }

    /// Handles the passing of time: retransmissions, keepalive, loss
    /// detection, paced sending, resend requests.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Ended => {}
            State::Joining {
                rejoin,
                tries,
                next_hello,
                started,
            } => {
                let heard = self.last_rx.map_or(started, |t| t.max(started));
                if !rejoin && now.saturating_duration_since(heard) >= JOIN_GIVE_UP {
                    self.state = State::Ended;
                    out.push(Action::NoRelay);
                } else if now >= next_hello {
                    let cap = if rejoin {
                        HELLO_CAP_REJOIN
                    } else {
                        HELLO_CAP_FIRST
                    };
                    let wait = HELLO_FIRST.saturating_mul(1 << tries.min(8)).min(cap);
                    self.state = State::Joining {
                        rejoin,
                        tries: tries.saturating_add(1),
                        next_hello: now + wait,
                        started,
                    };
                    self.send_hello(now, &mut out);
                }
            }
            State::Joined => {
                let last_rx = self.last_rx.unwrap_or(now);
                let lost_after = self.ping_interval * PINGS_BEFORE_LOST + Duration::from_secs(1);
                if now.saturating_duration_since(last_rx) > lost_after {
                    self.start_rejoin(now, None, &mut out);
                    return out;
                }
                let tail_due = self.tail_check.is_some_and(|t| t <= now);
                if now >= self.next_ping || tail_due {
                    if tail_due {
                        // Again later, in case this ping or its PONG is lost.
                        self.tail_checks_left = self.tail_checks_left.saturating_sub(1);
                        let done = TAIL_CHECKS - self.tail_checks_left;
                        self.tail_check = (self.tail_checks_left > 0)
                            .then(|| now + TAIL_CHECK.saturating_mul(1 << done.min(8)));
                    }
                    self.ping(now, &mut out);
                }
                // A restarted relay answers our pings like anyone's, and if
                // its newest number happens to equal ours nothing else tells
                // us it forgot us. Now and then ask something only a member
                // gets answered: a non-member draws ERROR not-joined.
                let known = self.reassembly.known_last();
                if known > 0
                    && now.saturating_duration_since(self.last_member_rx) > self.ping_interval * 2
                {
                    self.last_member_rx = now;
                    let probe = ClientMsg::Resend {
                        from: known,
                        to: known,
                    };
                    self.send(now, &probe, &mut out);
                }
                self.drain_outbox(now, &mut out);
                self.retransmit_say(now, &mut out);
                self.retransmit_privates(now, &mut out);
                while let Some(u) = self.unechoed.front() {
                    if now.saturating_duration_since(u.at) < UNECHOED_AGE {
                        break;
                    }
                    let short: String = u.text.as_str().chars().take(40).collect();
                    let more = if short.len() < u.text.as_str().len() {
                        "…"
                    } else {
                        ""
                    };
                    out.push(Action::Show(Line::Notice(format!(
                        "your message \"{short}{more}\" was not confirmed by the relay; it may not have arrived"
                    ))));
                    self.unechoed.pop_front();
                }
                self.budget.refill(now);
                let budget = (self.budget.tokens.max(0.0) as usize).min(RESEND_PER_POLL);
                let outputs = self.reassembly.poll(now, budget);
                self.apply(now, outputs, &mut out);
            }
        }
        out
    }

    /// Handles one datagram from the relay. Nothing in it is trusted.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        self.last_rx = Some(now);
        if !bytes.starts_with(b"PONG") {
            self.last_member_rx = now;
        }
        let msg = match parse_relay(bytes) {
            Ok(msg) => msg,
            Err(notice) => {
                if self
                    .last_garbage_notice
                    .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
                {
                    self.last_garbage_notice = Some(now);
                    out.push(Action::Show(Line::Error(notice)));
                }
                return out;
            }
        };
        match self.state {
            State::Ended => {}
            State::Joining { rejoin, .. } => self.handle_joining(now, rejoin, msg, &mut out),
            State::Joined => self.handle_joined(now, msg, &mut out),
        }
        out
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
                ..
            } => {
                self.nick = nick.clone();
                self.reassembly = Reassembly::new(last_seq);
                if !self.repair {
                    self.reassembly = Reassembly::new(last_seq).without_repair();
                }
                let mut interval = u64::from(ping_interval.clamp(1, 300));
                if idle_timeout >= 3 {
                    interval = interval.min(u64::from(idle_timeout / 3));
                }
                self.ping_interval = Duration::from_secs(interval);
                self.next_ping = now + self.ping_interval;
                self.last_member_rx = now;
                // Our JOIN event follows the WELCOME; if it is lost, only a
                // PONG reveals it: ask soon rather than at the next keepalive.
                self.schedule_tail_check(now);
                self.state = State::Joined;
                out.push(Action::Joined {
                    nick: nick.clone(),
                    rejoin,
                });
                if rejoin {
                    out.push(Action::Show(Line::Notice(format!("rejoined as {nick}"))));
                }
                for p in &mut self.privates {
                    p.due = now;
                }
                // A message in flight goes again at once, with its id: a
                // relay that forgot us relays it, one that did not drops it
                // if it had it already.
                for u in &mut self.unechoed {
                    u.retry_at = now;
                }
                self.drain_outbox(now, out);
                self.retransmit_say(now, out);
                self.retransmit_privates(now, out);
            }
            RelayMsg::Error { code, reason } => match code {
                ErrorCode::NickTaken | ErrorCode::NickInvalid if !rejoin => {
                    self.state = State::Ended;
                    out.push(Action::Refused {
                        code,
                        reason: reason.to_string(),
                    });
                }
                ErrorCode::NickTaken => {
                    let old = self.nick.clone();
                    self.nick = alternative_nick(&old);
                    out.push(Action::Show(Line::Notice(format!(
                        "your nickname {old} is taken now; rejoining as {}",
                        self.nick
                    ))));
                    self.send_hello(now, out);
                }
                // Answers to what we sent before the relay forgot us: what
                // is unechoed goes out again once we are back.
                ErrorCode::NotJoined | ErrorCode::NotYours => {}
                ErrorCode::RateLimited => {}
                ErrorCode::BadVersion => self.refuse_join(&reason, out),
                ErrorCode::AlreadyJoined
                | ErrorCode::RoomFull
                | ErrorCode::ClassicDisabled
                | ErrorCode::BadSyntax
                | ErrorCode::TooLong
                | ErrorCode::BadUtf8
                | ErrorCode::UnknownVerb
                    if !rejoin =>
                {
                    self.refuse_join(&reason, out)
                }
                // A rejoin keeps trying (the room may have room again, an
                // old membership may time out); say why, now and then.
                _ if rejoin && self.notice_due(now, NoticeKind::RoomFull) => {
                    out.push(Action::Show(Line::Notice(format!(
                        "{reason}; still trying to rejoin…"
                    ))));
                }
                _ => {} // not about the join, or said recently
            },
            RelayMsg::Bye {
                code: ByeCode::Kicked,
                reason,
            } => {
                self.state = State::Ended;
                out.push(Action::Show(Line::Notice(format!(
                    "you were removed by the host: {reason}"
                ))));
                out.push(Action::End { code: 1 });
            }
            // Leftovers of the previous session, or early arrivals: the
            // reassembly of the new session will ask for what it needs.
            _ => {}
        }
    }

    fn handle_joined(&mut self, now: Instant, msg: RelayMsg, out: &mut Vec<Action>) {
        match msg {
            RelayMsg::Event { seq, origin, event } => {
                if origin == udpchat_proto::Origin::Live {
                    // Once the room goes quiet, ask whether its last event
                    // reached us (a busy room reveals gaps by itself).
                    self.schedule_tail_check(now);
                }
                let outputs = self.reassembly.handle_event(now, seq, origin, event);
                self.apply(now, outputs, out);
                // The echo of our message may have come: send the next.
                self.drain_outbox(now, out);
            }
            RelayMsg::Private { pid, from, text } => {
                // Acknowledge every copy: our previous ACK may have been lost.
                self.send(now, &ClientMsg::Ack(pid), out);
                if !self.seen_pids.contains(&pid) {
                    if self.seen_pids.len() >= SEEN_PIDS {
                        self.seen_pids.pop_front();
                    }
                    self.seen_pids.push_back(pid);
                    out.push(Action::Show(Line::PrivateFrom {
                        from: from.to_string(),
                        text: text.to_string(),
                    }));
                }
            }
            RelayMsg::Sent { id, to, text } => {
                let known = match id {
                    Some(id) => match self.privates.iter().position(|p| p.id == id) {
                        Some(i) => {
                            self.privates.remove(i);
                            true
                        }
                        None => false, // a duplicate SENT
                    },
                    None => true,
                };
                if known {
                    out.push(Action::Show(Line::PrivateTo {
                        to: to.to_string(),
                        text: text.to_string(),
                    }));
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
            RelayMsg::Pong { last_seq, .. } => {
                // The tail question is answered.
                self.tail_check = None;
                self.tail_checks_left = 0;
                let known = self.reassembly.known_last();
                if last_seq < known {
                    // A restarted relay (numbering from 1 again), or just a
                    // PONG the network delayed behind newer events. Ask
                    // something only a member gets answered: a relay that
                    // forgot us says not-joined, and we rejoin then.
                    self.last_member_rx = now;
                    let probe = ClientMsg::Resend {
                        from: known,
                        to: known,
                    };
                    self.send(now, &probe, out);
                } else {
                    // If our echo was lost, this reveals it and repair
                    // fetches it.
                    let outputs = self.reassembly.handle_last_seq(now, last_seq);
                    self.apply(now, outputs, out);
                    self.drain_outbox(now, out);
                }
            }
            RelayMsg::Gone { from, to } => {
                let outputs = self.reassembly.handle_gone(from, to);
                self.apply(now, outputs, out);
            }
            RelayMsg::Error { code, reason } => match code {
                ErrorCode::NotJoined => {
                    // The relay forgot us (restart, or idle eviction whose
                    // BYE was lost): what it refused since is sent again
                    // after the rejoin.
                    self.start_rejoin(now, Some("the relay no longer knows us"), out);
                }
                // Only `Q` names us (SAY does not): a late answer to a quit.
                ErrorCode::NotYours => {}
                ErrorCode::NickTaken | ErrorCode::NickInvalid => {
                    self.rename_hold = None;
                    out.push(Action::Show(Line::Error(format!(
                        "cannot change nickname: {reason}"
                    ))));
                }
                ErrorCode::NoSuchNick => {
                    // Errors carry no id; the relay answers in order, so it
                    // is about the oldest unconfirmed private message.
                    let line = if self.privates.is_empty() {
                        reason.to_string()
                    } else {
                        let p = self.privates.remove(0);
                        format!("{reason}; private message to {} not sent", p.to)
                    };
                    out.push(Action::Show(Line::Error(line)));
                }
                ErrorCode::RateLimited => {
                    // The relay drops what follows until its bucket refills:
                    // pause. A message it dropped is sent again like any
                    // other whose echo does not come back.
                    self.budget.tokens = 0.0;
                    if self.notice_due(now, NoticeKind::Rate) {
                        out.push(Action::Show(Line::Notice(format!(
                            "{reason} (slowing down)"
                        ))));
                    }
                }
                _ => out.push(Action::Show(Line::Error(format!("relay: {reason}")))),
            },
            RelayMsg::Bye { code, reason } => match code {
                ByeCode::Kicked => {
                    self.state = State::Ended;
                    out.push(Action::Show(Line::Notice(format!(
                        "you were removed by the host: {reason}"
                    ))));
                    out.push(Action::End { code: 1 });
                }
                ByeCode::Shutdown => {
                    let why = format!("the relay is shutting down: {reason}");
                    self.start_rejoin(now, Some(&why), out);
                }
                ByeCode::Timeout => {
                    let why = format!("the relay disconnected us: {reason}");
                    self.start_rejoin(now, Some(&why), out);
                }
            },
            RelayMsg::Cookie(_) | RelayMsg::Welcome { .. } => {} // duplicates of the join
        }
    }

    /// Turns reassembly outputs into lines and requests.
    fn apply(&mut self, now: Instant, outputs: Vec<reassembly::Output>, out: &mut Vec<Action>) {
        for output in outputs {
            match output {
                reassembly::Output::Deliver { event, history, .. } => {
                    let line = self.event_line(event, history);
                    out.push(Action::Show(line));
                }
                reassembly::Output::Lost { from, to, reason } => {
                    let n = to - from + 1;
                    let what = if n == 1 {
                        "1 message".to_owned()
                    } else {
                        format!("{n} messages")
                    };
                    let text = match reason {
                        LossReason::Gone => {
                            format!("{what} lost for good (the relay no longer has them)")
                        }
                        LossReason::NoAnswer => {
                            format!("{what} missed (the relay did not send them again)")
                        }
                        LossReason::TooFarBehind => format!("{what} missed"),
                    };
                    out.push(Action::Show(Line::Notice(text)));
                }
                reassembly::Output::Request { from, to } => {
                    self.budget.take(now);
                    self.emit(ClientMsg::Resend { from, to }.encode(), out);
                }
                reassembly::Output::Waiting { missing } => {
                    if self.notice_due(now, NoticeKind::Waiting) {
                        out.push(Action::Show(Line::Notice(format!(
                            "{missing} missed message(s), asking the relay again…"
                        ))));
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
                if own {
                    if let Some(i) = self.unechoed.iter().position(|u| u.text == text) {
                        self.unechoed.remove(i);
                    }
                }
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
                    self.rename_hold = None;
                }
                Line::Rename {
                    old: old.to_string(),
                    new: new.to_string(),
                    history,
                }
            }
            RoomEvent::Host(text) => Line::Host {
                text: text.to_string(),
                history,
            },
        }
    }

    fn schedule_tail_check(&mut self, now: Instant) {
        self.tail_check = Some(now + TAIL_CHECK);
        self.tail_checks_left = TAIL_CHECKS;
    }

    fn refuse_join(&mut self, reason: &Text, out: &mut Vec<Action>) {
        self.state = State::Ended;
        out.push(Action::Show(Line::Error(format!(
            "the relay refused to let us join: {reason}"
        ))));
        out.push(Action::End { code: 1 });
    }

    fn start_rejoin(&mut self, now: Instant, why: Option<&str>, out: &mut Vec<Action>) {
        if let Some(why) = why {
            out.push(Action::Show(Line::Notice(why.to_owned())));
        }
        out.push(Action::Show(Line::Notice(
            "connection lost, rejoining…".into(),
        )));
        self.state = State::Joining {
            rejoin: true,
            tries: 0,
            next_hello: now,
            started: now,
        };
        self.tail_check = None;
    }

    fn send_hello(&mut self, now: Instant, out: &mut Vec<Action>) {
        let hello = ClientMsg::Hello {
            version: Token::new(VERSION).expect("VERSION is a valid token"),
            nick: self.nick.clone(),
            cookie: self.cookie,
        };
        self.send(now, &hello, out);
    }

    fn send(&mut self, now: Instant, msg: &ClientMsg, out: &mut Vec<Action>) {
        self.budget.take(now);
        self.emit(msg.encode(), out);
    }

    fn emit(&mut self, bytes: Vec<u8>, out: &mut Vec<Action>) {
        out.push(Action::Send(bytes));
    }

    /// Keepalive and "what is your newest event?" in one.
    fn ping(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.next_ping = now + self.ping_interval;
        self.send(now, &ClientMsg::Ping(None), out);
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Sends our message in flight again if its echo is overdue: either the
    /// `SAY` was lost (the relay relays it now) or its echo was (the relay
    /// drops the repeat, and the `PONG` of the ping sent with it shows the
    /// event we missed, which repair then fetches).
    fn retransmit_say(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.repair || self.state != State::Joined {
            return;
        }
        let Some(u) = self.unechoed.front_mut() else {
            return;
        };
        if u.retry_at > now || !self.budget.try_take(now) {
            return;
        }
        u.retries = u.retries.saturating_add(1);
        u.retry_at = now
            + SAY_RETRY_FIRST
                .saturating_mul(1 << u.retries.min(8))
                .min(SAY_RETRY_CAP);
        let say = ClientMsg::Say {
            id: u.id,
            text: u.text.clone(),
        };
        self.emit(say.encode(), out);
        self.ping(now, out);
    }

    fn drain_outbox(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Joined || self.rename_hold.is_some_and(|t| now < t) {
            return;
        }
        // One message in flight at a time: the relay relays each SAY id
        // once but in the order SAYs arrive, so a lost message sent again
        // would overtake the ones sent after it. Stop-and-wait keeps our
        // messages in the order typed.
        // (Without repair nothing is sent again, so nothing waits.)
        while (self.unechoed.is_empty() || !self.repair)
            && !self.outbox.is_empty()
            && self.budget.try_take(now)
        {
            let Some(text) = self.outbox.pop_front() else {
                break;
            };
            let id = self.take_id();
            let say = ClientMsg::Say {
                id,
                text: text.clone(),
            };
            self.emit(say.encode(), out);
            if self.unechoed.len() >= UNECHOED_MAX {
                self.unechoed.pop_front();
            }
            self.unechoed.push_back(Unechoed {
                id,
                text,
                at: now,
                retry_at: now + SAY_RETRY_FIRST,
                retries: 0,
            });
        }
    }

    fn retransmit_privates(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Joined {
            return;
        }
        let mut i = 0;
        while i < self.privates.len() {
            let p = &mut self.privates[i];
            if p.due > now {
                i += 1;
                continue;
            }
            if p.tries >= PRIVATE_TRIES {
                let p = self.privates.remove(i);
                out.push(Action::Show(Line::Error(format!(
                    "private message to {} was not confirmed by the relay; it may not have arrived",
                    p.to
                ))));
                continue;
            }
            p.due = now + PRIVATE_FIRST.saturating_mul(1 << p.tries.min(8));
            p.tries += 1;
            let msg = ClientMsg::PrivateReliable {
                id: p.id,
                to: p.to.clone(),
                text: p.text.clone(),
            };
            self.send(now, &msg, out);
            i += 1;
        }
    }

    fn notice_due(&mut self, now: Instant, kind: NoticeKind) -> bool {
        let slot = match kind {
            NoticeKind::Waiting => &mut self.last_waiting_notice,
            NoticeKind::Rate | NoticeKind::RoomFull => &mut self.last_rate_notice,
        };
        let gap = match kind {
            NoticeKind::Waiting => WAITING_NOTICE_GAP,
            NoticeKind::Rate | NoticeKind::RoomFull => NOTICE_GAP,
        };
        if slot.is_some_and(|t| now.saturating_duration_since(t) < gap) {
            return false;
        }
        *slot = Some(now);
        true
    }
}

#[derive(Debug, Clone, Copy)]
enum NoticeKind {
    Waiting,
    Rate,
    RoomFull,
}

/// Parses a relay datagram without trusting it. A datagram refused only
/// because of control characters is parsed again with them escaped (so a
/// misbehaving relay's message is still readable, and harmless); anything
/// else unparsable becomes a notice quoting a sanitized, shortened copy.
pub fn parse_relay(bytes: &[u8]) -> Result<RelayMsg, String> {
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
            Err(format!(
                "ignored a malformed datagram from the relay ({error}): {shown}"
            ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_proto::{LeaveReason, Origin};

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    fn sent(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(b) => Some(String::from_utf8(b.clone()).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn shown(actions: &[Action]) -> Vec<Line> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Show(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    fn relay(msg: &RelayMsg) -> Vec<u8> {
        msg.encode()
    }

    fn welcome(nick: &str, last_seq: u64) -> Vec<u8> {
        relay(&RelayMsg::Welcome {
            version: Token::new(VERSION).unwrap(),
            nick: Nick::new(nick).unwrap(),
            last_seq,
            ping_interval: 15,
            idle_timeout: 60,
        })
    }

    fn chat_event(seq: u64, origin: Origin, who: &str, text: &str) -> Vec<u8> {
        relay(&RelayMsg::Event {
            seq,
            origin,
            event: RoomEvent::Chat {
                nick: nick(who),
                text: Text::new(text).unwrap(),
            },
        })
    }

    /// A session that has completed the handshake at `now`.
    fn joined(now: Instant) -> Session {
        let mut s = Session::new(nick("alice"), now, 1);
        s.handle_timeout(now);
        s.handle_datagram(now, b"COOKIE 0123456789abcdef");
        let a = s.handle_datagram(now, &welcome("alice", 5));
        assert!(a.contains(&Action::Joined {
            nick: nick("alice"),
            rejoin: false
        }));
        s
    }

    #[test]
    fn handshake_sends_padded_hello_then_cookie_hello() {
        let now = Instant::now();
        let mut s = Session::new(nick("alice"), now, 1);
        let first = sent(&s.handle_timeout(now));
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with("HELLO udpchat/1 alice - "));
        assert!(first[0].len() >= udpchat_proto::MIN_HELLO_LEN);
        let second = sent(&s.handle_datagram(now, b"COOKIE 0123456789abcdef"));
        assert_eq!(second, ["HELLO udpchat/1 alice 0123456789abcdef"]);
        assert!(!s.is_joined());
        s.handle_datagram(now, &welcome("alice", 0));
        assert!(s.is_joined());
    }

    #[test]
    fn hello_is_retransmitted_with_backoff_then_gives_up() {
        let start = Instant::now();
        let mut s = Session::new(nick("alice"), start, 1);
        let mut hellos = Vec::new();
        let mut gave_up = None;
        for ms in (0..6000).step_by(50) {
            let now = start + Duration::from_millis(ms);
            let actions = s.handle_timeout(now);
            if !sent(&actions).is_empty() {
                hellos.push(ms);
            }
            if actions.contains(&Action::NoRelay) {
                gave_up = Some(ms);
                break;
            }
        }
        assert_eq!(&hellos[..4], [0, 250, 750, 1750]);
        assert!(hellos.windows(2).all(|w| w[1] - w[0] <= 1000));
        assert_eq!(gave_up, Some(5000));
    }

    #[test]
    fn taken_nick_on_first_join_is_reported_with_the_relay_reason() {
        let now = Instant::now();
        let mut s = Session::new(nick("alice"), now, 1);
        s.handle_timeout(now);
        let a = s.handle_datagram(now, b"ERROR nick-taken nickname is taken; choose another");
        assert_eq!(
            a,
            [Action::Refused {
                code: ErrorCode::NickTaken,
                reason: "nickname is taken; choose another".into()
            }]
        );
        s.retry_with(nick("alice2"), now);
        assert!(sent(&s.handle_timeout(now))[0].starts_with("HELLO udpchat/1 alice2 -"));
    }

    #[test]
    fn typed_text_becomes_say_with_an_id_and_echo_marks_it_own() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_input(now, Input::Say(Text::new("hi  你好").unwrap()));
        assert_eq!(sent(&a), ["SAY 1 hi  你好"]);
        assert!(!s.is_settled());
        let a = s.handle_datagram(now, &chat_event(6, Origin::Live, "alice", "hi  你好"));
        assert_eq!(
            shown(&a),
            [Line::Chat {
                nick: "alice".into(),
                text: "hi  你好".into(),
                own: true,
                history: false
            }]
        );
        assert!(s.is_settled());
    }

    #[test]
    fn a_burst_of_lines_goes_one_at_a_time_paced_and_in_order() {
        let start = Instant::now();
        let mut s = joined(start);
        let mut actions = Vec::new();
        for i in 0..40 {
            actions.extend(s.handle_input(
                start,
                Input::Say(Text::new(&format!("line {i:02}")).unwrap()),
            ));
        }
        let mut order = Vec::new();
        let mut seq = 5;
        let mut t = start;
        for _ in 0..400 {
            for m in sent(&actions) {
                if let Some(rest) = m.strip_prefix("SAY ") {
                    let (id, text) = rest.split_once(' ').unwrap();
                    // Ids count up: each message is new.
                    assert_eq!(id, (order.len() + 1).to_string());
                    order.push(text.to_owned());
                    seq += 1;
                    // Nothing else goes out before this one's echo.
                    actions = s.handle_timeout(t);
                    assert!(!sent(&actions).iter().any(|m| m.starts_with("SAY ")));
                    actions = s.handle_datagram(t, &chat_event(seq, Origin::Live, "alice", text));
                }
            }
            let allowed = BUDGET_BURST + BUDGET_PER_SEC * (t - start).as_secs_f64() + 1.0;
            assert!(
                order.len() as f64 <= allowed,
                "{} by {:?}",
                order.len(),
                t - start
            );
            t += Duration::from_millis(50);
            actions.extend(s.handle_timeout(t));
        }
        let want: Vec<String> = (0..40).map(|i| format!("line {i:02}")).collect();
        assert_eq!(order, want);
        assert!(s.is_settled());
    }

    fn says(actions: &[Action]) -> Vec<String> {
        sent(actions)
            .into_iter()
            .filter(|m| m.starts_with("SAY "))
            .collect()
    }

    #[test]
    fn own_message_lost_on_the_way_is_sent_again_with_its_id() {
        let now = Instant::now();
        let mut s = joined(now);
        assert_eq!(
            says(&s.handle_input(now, Input::Say(Text::new("lost").unwrap()))),
            ["SAY 1 lost"]
        );
        assert!(says(&s.handle_timeout(now + Duration::from_millis(200))).is_empty());
        // No echo in time: the same SAY again, with a ping whose PONG would
        // reveal an echo we missed.
        let t = now + SAY_RETRY_FIRST;
        let a = s.handle_timeout(t);
        assert_eq!(says(&a), ["SAY 1 lost"]);
        assert!(sent(&a).contains(&"PING".to_owned()), "{a:?}");
        // Then with backoff: 600 ms later, not before.
        assert!(says(&s.handle_timeout(t + Duration::from_millis(500))).is_empty());
        let t = t + Duration::from_millis(600);
        assert_eq!(says(&s.handle_timeout(t)), ["SAY 1 lost"]);
        // The echo settles it: nothing more goes out.
        s.handle_datagram(t, &chat_event(6, Origin::Live, "alice", "lost"));
        assert!(s.is_settled());
        assert!(says(&s.handle_timeout(t + Duration::from_secs(10))).is_empty());
    }

    #[test]
    fn lost_echo_is_fetched_with_resend_and_the_next_message_follows() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("one").unwrap()));
        s.handle_input(now, Input::Say(Text::new("two").unwrap()));
        let t = now + SAY_RETRY_FIRST;
        assert_eq!(says(&s.handle_timeout(t)), ["SAY 1 one"]);
        // The relay had it (event 6) and dropped the repeat; its PONG says so.
        s.handle_datagram(t, b"PONG 6");
        let a = s.handle_timeout(t + Duration::from_millis(100));
        assert!(sent(&a).contains(&"RESEND 6 6".to_owned()), "{a:?}");
        let a = s.handle_datagram(t, &chat_event(6, Origin::Resend, "alice", "one"));
        assert_eq!(says(&a), ["SAY 2 two"]);
    }

    #[test]
    fn a_repeated_echo_does_not_confirm_the_next_message_with_the_same_text() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("ok").unwrap()));
        s.handle_input(now, Input::Say(Text::new("ok").unwrap()));
        let a = s.handle_datagram(now, &chat_event(6, Origin::Live, "alice", "ok"));
        assert_eq!(says(&a), ["SAY 2 ok"]);
        // The network repeats the first echo: shown once, second still open.
        let a = s.handle_datagram(now, &chat_event(6, Origin::Live, "alice", "ok"));
        assert!(shown(&a).is_empty());
        assert!(!s.is_settled());
        let t = now + SAY_RETRY_FIRST;
        assert_eq!(says(&s.handle_timeout(t)), ["SAY 2 ok"]);
    }

    #[test]
    fn unconfirmed_message_is_given_up_after_30_s_with_a_notice() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("void").unwrap()));
        s.handle_input(now, Input::Say(Text::new("next").unwrap()));
        let mut tries = 0;
        let mut notice = None;
        for ms in (100..=31_000).step_by(100) {
            let t = now + Duration::from_millis(ms);
            // Keep the connection alive meanwhile.
            s.handle_datagram(t, b"PONG 5");
            let a = s.handle_timeout(t);
            tries += says(&a).iter().filter(|m| *m == "SAY 1 void").count();
            if shown(&a)
                .iter()
                .any(|l| matches!(l, Line::Notice(n) if n.contains("void")))
            {
                notice = Some(ms);
                assert_eq!(says(&s.handle_timeout(t)), ["SAY 2 next"]);
                break;
            }
        }
        assert_eq!(notice, Some(30_000));
        // 300 ms, 600 ms, 1.2 s, then every 2 s.
        assert!((14..=17).contains(&tries), "{tries} tries");
    }

    #[test]
    fn private_messages_are_retransmitted_until_sent() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_input(
            now,
            Input::Msg {
                to: nick("bob"),
                text: Text::new("psst").unwrap(),
            },
        );
        assert_eq!(sent(&a), ["PMSG 1 bob psst"]);
        let a = s.handle_timeout(now + Duration::from_millis(1100));
        assert!(sent(&a).contains(&"PMSG 1 bob psst".to_owned()));
        let a = s.handle_datagram(now, b"SENT 1 bob psst");
        assert_eq!(
            shown(&a),
            [Line::PrivateTo {
                to: "bob".into(),
                text: "psst".into()
            }]
        );
        // A duplicate SENT shows nothing, and nothing is retransmitted.
        assert!(shown(&s.handle_datagram(now, b"SENT 1 bob psst")).is_empty());
        let a = s.handle_timeout(now + Duration::from_secs(5));
        assert!(!sent(&a).iter().any(|m| m.starts_with("PMSG")));
    }

    #[test]
    fn private_in_is_acked_every_time_and_shown_once() {
        let now = Instant::now();
        let mut s = joined(now);
        for round in 0..3 {
            let a = s.handle_datagram(now, b"PRIVATE 9 bob secret");
            assert_eq!(sent(&a), ["ACK 9"]);
            assert_eq!(shown(&a).len(), usize::from(round == 0));
        }
    }

    #[test]
    fn gap_is_repaired_with_resend() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_datagram(now, &chat_event(6, Origin::Live, "bob", "one"));
        let a = s.handle_datagram(now, &chat_event(8, Origin::Live, "bob", "three"));
        assert!(shown(&a).is_empty());
        let a = s.handle_timeout(now + Duration::from_millis(100));
        assert!(sent(&a).contains(&"RESEND 7 7".to_owned()));
        let a = s.handle_datagram(now, &chat_event(7, Origin::Resend, "bob", "two"));
        let texts: Vec<_> = shown(&a)
            .into_iter()
            .map(|l| match l {
                Line::Chat { text, .. } => text,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["two", "three"]);
    }

    #[test]
    fn silence_means_connection_lost_and_rejoin_with_same_nick() {
        let now = Instant::now();
        let mut s = joined(now);
        let later = now + Duration::from_secs(47);
        let a = s.handle_timeout(later);
        assert!(shown(&a).contains(&Line::Notice("connection lost, rejoining…".into())));
        let a = s.handle_timeout(later);
        assert!(sent(&a)[0].starts_with("HELLO udpchat/1 alice "));
        // Rejoining never gives up.
        let a = s.handle_timeout(later + Duration::from_secs(600));
        assert!(!a.contains(&Action::NoRelay));
        assert!(!sent(&a).is_empty());
    }

    #[test]
    fn pong_below_what_we_saw_is_checked_with_a_probe_before_rejoining() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_datagram(now, &chat_event(6, Origin::Live, "bob", "x"));
        // A late PONG, overtaken by event 6: no reason to rejoin yet.
        let a = s.handle_datagram(now, b"PONG 5");
        assert_eq!(sent(&a), ["RESEND 6 6"]);
        assert!(s.is_joined());
        // A restarted relay: its answer to the probe says it forgot us.
        let a = s.handle_datagram(now, b"PONG 0");
        assert_eq!(sent(&a), ["RESEND 6 6"]);
        let a = s.handle_datagram(now, b"ERROR not-joined you have not joined");
        assert!(shown(&a).contains(&Line::Notice("connection lost, rejoining…".into())));
        assert!(!s.is_joined());
        // After the new WELCOME, sequence numbers start over.
        s.handle_datagram(now, &welcome("alice", 0));
        let a = s.handle_datagram(now, &chat_event(1, Origin::Live, "bob", "again"));
        assert_eq!(shown(&a).len(), 1);
    }

    #[test]
    fn a_late_pong_overtaken_by_newer_events_is_not_a_restart() {
        let now = Instant::now();
        let mut s = joined(now);
        // Ask for the newest number while we know 5...
        let ping = sent(&s.handle_timeout(now + Duration::from_secs(16)));
        assert!(ping.contains(&"PING".to_owned()), "{ping:?}");
        // ...event 6 overtakes the answer, which says 5.
        s.handle_datagram(now, &chat_event(6, Origin::Live, "bob", "x"));
        let a = s.handle_datagram(now, b"PONG 5");
        assert!(s.is_joined(), "{a:?}");
        // The relay answers the probe as it answers a member: no rejoin.
        assert_eq!(sent(&a), ["RESEND 6 6"]);
        let a = s.handle_datagram(now, &chat_event(6, Origin::Resend, "bob", "x"));
        assert!(s.is_joined());
        assert!(shown(&a).is_empty(), "shown twice: {a:?}");
    }

    #[test]
    fn after_the_room_goes_quiet_the_tail_is_checked_until_answered() {
        let start = Instant::now();
        let mut s = joined(start);
        // WELCOME's own tail check, answered.
        s.handle_timeout(start + TAIL_CHECK);
        s.handle_datagram(start + TAIL_CHECK, b"PONG 5");
        let quiet = start + Duration::from_secs(2);
        s.handle_datagram(quiet, &chat_event(6, Origin::Live, "bob", "last words"));
        let mut pings = Vec::new();
        for ms in (0..14_000).step_by(100) {
            let now = quiet + Duration::from_millis(ms);
            if sent(&s.handle_timeout(now))
                .iter()
                .any(|m| m.starts_with("PING"))
            {
                pings.push(ms);
            }
        }
        // Unanswered: 1 s, then 2 s and 4 s later; then only keepalive.
        assert_eq!(pings, [1000, 3000, 7000]);

        s.handle_datagram(quiet, &chat_event(7, Origin::Live, "bob", "more"));
        let now = quiet + Duration::from_millis(1000);
        assert!(sent(&s.handle_timeout(now))
            .iter()
            .any(|m| m.starts_with("PING")));
        s.handle_datagram(now, b"PONG 7");
        for ms in (1100..8000).step_by(100) {
            let later = quiet + Duration::from_millis(ms);
            assert!(!sent(&s.handle_timeout(later))
                .iter()
                .any(|m| m.starts_with("PING")));
        }
    }

    #[test]
    fn a_quiet_room_still_checks_that_the_relay_knows_us() {
        let start = Instant::now();
        let mut s = joined(start);
        s.handle_datagram(start, b"EVENT 6 live JOIN alice");
        let mut probes = Vec::new();
        for secs in 1..=40 {
            let now = start + Duration::from_secs(secs);
            for m in sent(&s.handle_timeout(now)) {
                if m.starts_with("PING") {
                    // Anyone gets PONG, even from a restarted relay.
                    s.handle_datagram(now, b"PONG 6");
                }
                if m.starts_with("RESEND") {
                    probes.push((secs, m));
                }
            }
        }
        assert_eq!(probes.first(), Some(&(31, "RESEND 6 6".to_owned())));
        assert!(s.is_joined());
        // A relay that forgot us says so, and we rejoin.
        s.handle_datagram(start, b"ERROR not-joined you have not joined");
        assert!(!s.is_joined());
    }

    #[test]
    fn not_joined_error_rejoins_and_resends_the_refused_message() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("lost one").unwrap()));
        let a = s.handle_datagram(now, b"ERROR not-joined you have not joined");
        assert!(!s.is_joined());
        assert!(shown(&a).contains(&Line::Notice("connection lost, rejoining…".into())));
        s.handle_timeout(now);
        let a = s.handle_datagram(now, &welcome("alice", 0));
        assert_eq!(says(&a), ["SAY 1 lost one"]);
    }

    #[test]
    fn not_joined_arriving_while_already_rejoining_keeps_going() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_datagram(now, &chat_event(6, Origin::Live, "bob", "x"));
        s.handle_input(now, Input::Say(Text::new("in flight").unwrap()));
        // The restarted relay's BYE starts the rejoin first...
        s.handle_datagram(now, b"BYE shutdown restarting");
        assert!(!s.is_joined());
        // ...then its refusal of our message arrives.
        let a = s.handle_datagram(now, b"ERROR not-joined you have not joined");
        assert!(!a.iter().any(|a| matches!(a, Action::End { .. })), "{a:?}");
        s.handle_timeout(now);
        let a = s.handle_datagram(now, &welcome("alice", 0));
        assert_eq!(says(&a), ["SAY 1 in flight"], "{a:?}");
    }

    #[test]
    fn full_room_ends_the_first_join_but_not_a_rejoin() {
        let now = Instant::now();
        let mut s = Session::new(nick("alice"), now, 1);
        s.handle_timeout(now);
        let a = s.handle_datagram(now, b"ERROR room-full the room is full");
        assert!(a.contains(&Action::End { code: 1 }));

        let mut s = joined(now);
        s.handle_datagram(now, b"BYE shutdown bye");
        let a = s.handle_datagram(now, b"ERROR room-full the room is full");
        assert!(!a.iter().any(|a| matches!(a, Action::End { .. })));
        assert!(!sent(&s.handle_timeout(now + Duration::from_secs(5))).is_empty());
    }

    #[test]
    fn taken_nick_on_rejoin_picks_an_alternative() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_datagram(now, b"BYE shutdown restarting");
        s.handle_timeout(now);
        let a = s.handle_datagram(now, b"ERROR nick-taken taken");
        assert_eq!(s.nick().as_str(), "alice_2");
        assert!(sent(&a)[0].starts_with("HELLO udpchat/1 alice_2 "));
    }

    #[test]
    fn kicked_ends_the_session() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_datagram(now, b"BYE kicked be nice");
        assert!(a.contains(&Action::End { code: 1 }));
    }

    #[test]
    fn rename_of_ourselves_updates_our_nick() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_input(now, Input::Rename(nick("alicia")));
        assert_eq!(sent(&a), ["NICK alicia"]);
        s.handle_datagram(now, b"EVENT 6 live RENAME alice alicia");
        assert_eq!(s.nick().as_str(), "alicia");
        let a = s.handle_input(now, Input::Say(Text::new("x").unwrap()));
        assert_eq!(sent(&a), ["SAY 1 x"]);
        let a = s.handle_datagram(now, b"EVENT 7 live CHAT alicia x");
        assert!(s.is_settled());
        assert!(matches!(&shown(&a)[..], [Line::Chat { own: true, .. }]));
    }

    #[test]
    fn messages_typed_right_after_nick_go_out_after_the_rename() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_input(now, Input::Rename(nick("alicia")));
        assert_eq!(sent(&a), ["NICK alicia"]);
        // Sent now, it could reach the room before the rename.
        let a = s.handle_input(now, Input::Say(Text::new("hi").unwrap()));
        assert!(sent(&a).is_empty());
        let a = s.handle_datagram(now, b"EVENT 6 live RENAME alice alicia");
        assert_eq!(sent(&a), ["SAY 1 hi"]);
    }

    #[test]
    fn message_in_flight_keeps_its_id_across_a_rejoin() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("hi").unwrap()));
        s.handle_input(
            now,
            Input::Msg {
                to: nick("bob"),
                text: Text::new("psst").unwrap(),
            },
        );
        // Silence: we rejoin, though the relay may still hold us (and our
        // SAY): the same id lets it drop a repeat.
        let later = now + Duration::from_secs(47);
        s.handle_timeout(later);
        s.handle_timeout(later);
        let a = s.handle_datagram(later, &welcome("alice", 9));
        assert_eq!(says(&a), ["SAY 1 hi"]);
        assert!(sent(&a).contains(&"PMSG 2 bob psst".to_owned()), "{a:?}");
        // New messages take new ids.
        s.handle_datagram(later, &chat_event(10, Origin::Live, "alice", "hi"));
        let a = s.handle_input(later, Input::Say(Text::new("again").unwrap()));
        assert_eq!(says(&a), ["SAY 3 again"]);
    }

    #[test]
    fn control_characters_from_a_bad_relay_are_escaped_not_dropped() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_datagram(now, b"EVENT 6 live CHAT eve hi\x1b[2J\xe2\x80\xae");
        assert_eq!(
            shown(&a),
            [Line::Chat {
                nick: "eve".into(),
                text: "hi\\u{1b}[2J\\u{202e}".into(),
                own: false,
                history: false
            }]
        );
    }

    #[test]
    fn garbage_from_the_relay_becomes_a_sanitized_notice() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_datagram(now, b"\x1b]0;pwned\x07\xff");
        match &shown(&a)[..] {
            [Line::Error(text)] => {
                assert!(text.starts_with("ignored a malformed datagram"));
                assert!(!text.chars().any(crate::text::must_escape), "{text:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn history_on_join_is_marked() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_datagram(now, &chat_event(3, Origin::History, "alice", "before"));
        assert_eq!(
            shown(&a),
            [Line::Chat {
                nick: "alice".into(),
                text: "before".into(),
                own: false,
                history: true
            }]
        );
        let a = s.handle_datagram(
            now,
            &relay(&RelayMsg::Event {
                seq: 6,
                origin: Origin::Live,
                event: RoomEvent::Leave {
                    nick: nick("bob"),
                    reason: LeaveReason::Quit,
                },
            }),
        );
        assert_eq!(shown(&a).len(), 1);
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Any datagrams, well-formed or not, in any state: no panic, and
        /// nothing unsanitized is ever shown as an error notice.
        #[test]
        fn any_datagrams_never_panic(
            datagrams in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..80),
                    "(EVENT [0-9]{1,3} (live|resend|history) CHAT [a-c] x|PONG [0-9]{1,3}( [0-9]{1,2})?|GONE [0-9]{1,3} [0-9]{1,3}|WELCOME udpchat/1 a [0-9]{1,3} [0-9]{1,2} [0-9]{1,3}|COOKIE 00000000000000[0-9]{2}|ERROR (not-joined|nick-taken|rate-limited|no-such-nick) r|BYE (shutdown|timeout|kicked) r|PRIVATE [0-9] b hi|SENT [0-9] b hi)"
                        .prop_map(String::into_bytes),
                ],
                0..40,
            ),
        ) {
            let start = Instant::now();
            let mut s = Session::new(nick("a"), start, 1);
            for (i, d) in datagrams.iter().enumerate() {
                let now = start + Duration::from_millis(300 * i as u64);
                let mut actions = s.handle_datagram(now, d);
                actions.extend(s.handle_timeout(now));
                actions.extend(s.handle_input(now, Input::Say(Text::new("x").unwrap())));
                for a in actions {
                    if let Action::Show(Line::Error(t)) = a {
                        proptest::prop_assert!(!t.chars().any(crate::text::must_escape), "{:?}", t);
                    }
                }
            }
        }
    }

    #[test]
    fn alternative_nicks_count_up_and_fit() {
        assert_eq!(alternative_nick(&nick("alice")).as_str(), "alice_2");
        assert_eq!(alternative_nick(&nick("alice_2")).as_str(), "alice_3");
        let long = nick(&"x".repeat(24));
        let alt = alternative_nick(&long);
        assert_eq!(alt.as_str(), format!("{}_2", "x".repeat(22)));
    }
}
