//! The simulated clients. Each is driven only through its sans-IO core and
//! says when it wants to be woken; none reads a clock.
//!
//! - [`StructuredClient`]: the real client's [`Session`], driven like the
//!   binary's piped mode (lines typed, then a grace period, then `/quit`).
//! - [`ClassicClient`]: an `nc`-style classic client: `N` until `OK`, then
//!   one `M` per typed line, recording what it receives.
//! - [`NaiveClient`]: a structured client without any repair (joins, sends
//!   each line once as `SAY`, ignores gaps, never pings), the baseline
//!   for what repair costs.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use udpchat_cli::command::{parse_input, split_long_line, Input};
use udpchat_cli::render::Line;
use udpchat_cli::session::{Action, Session, Shortfall};
use udpchat_proto::{
    ClientMsg, Cookie, Nick, RelayMsg, RoomEvent, SessionKey, Text, Token, VERSION,
};

/// How often a structured client's session gets a timeout tick: the
/// binary's read timeout (`READ_TICK` in the cli's app.rs).
///
/// How often piped mode checks, after end of input, whether its messages
/// are settled (the app's grace loop sleeps 20 ms between checks).
const GRACE_POLL: Duration = Duration::from_millis(20);

/// Piped mode's quit timers after end of input (`GRACE_MAX`, `GRACE_STALL`
/// in the cli's app.rs), mirrored here.
const GRACE_MAX: Duration = Duration::from_secs(60);
const GRACE_STALL: Duration = Duration::from_secs(5);
const GRACE_UNANSWERED: Duration = Duration::from_secs(15);

/// How often the classic and naive clients repeat a join attempt.
const JOIN_RETRY: Duration = Duration::from_millis(300);

/// One chat message as a client displayed it, or as the room numbered it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Chat {
    /// Who said it.
    pub nick: String,
    /// What.
    pub text: String,
}

impl Chat {
    /// A chat message from `nick`.
    pub fn new(nick: &str, text: &str) -> Chat {
        Chat {
            nick: nick.to_owned(),
            text: text.to_owned(),
        }
    }
}

/// A line a structured client showed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// When it was shown.
    pub at: Instant,
    /// What.
    pub line: Line,
}

/// The piped-mode quit logic, running once input has ended.
#[derive(Debug, Clone, Copy)]
struct Grace {
    start: Instant,
    last_progress: Instant,
    progress: u64,
}

/// The real client's session, driven as the binary's piped mode drives it.
#[derive(Debug)]
pub struct StructuredClient {
    session: Session,
    /// Typed lines waiting for the join (piped mode reads stdin only once
    /// joined).
    typed: VecDeque<String>,
    input_ended: bool,
    grace: Option<Grace>,
    next_grace_check: Instant,
    joined_at: Option<Instant>,
    shown: Vec<Shown>,
    /// Set when the client stopped: quit, ended, refused or no relay.
    stopped_at: Option<Instant>,
    /// What was still missing when piped mode left.
    shortfall: Option<Shortfall>,
    ended: Option<String>,
}

impl StructuredClient {
    /// A client joining as `nick` (with loss repair unless `repair` is
    /// false, like `--no-repair`); `first_id` seeds its `SAY` ids.
    pub fn new(nick: Nick, now: Instant, first_id: u64, repair: bool) -> StructuredClient {
        // A session key of its own, reproducible from the seed (the real
        // client draws one from the operating system).
        let key = SessionKey::from_u64(first_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
        let session = Session::new(nick, now, first_id, key);
        let session = if repair {
            session
        } else {
            session.without_repair()
        };
        StructuredClient {
            session,
            typed: VecDeque::new(),
            input_ended: false,
            grace: None,
            next_grace_check: now,
            joined_at: None,
            shown: Vec::new(),
            stopped_at: None,
            shortfall: None,
            ended: None,
        }
    }

    /// The session, to look at its state.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// When the first join completed.
    pub fn joined_at(&self) -> Option<Instant> {
        self.joined_at
    }

    /// Every line shown, in order.
    pub fn shown(&self) -> &[Shown] {
        &self.shown
    }

    /// The chat messages shown (history included), in order.
    pub fn chats(&self) -> Vec<Chat> {
        self.chats_with_times()
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    }

    /// The chat messages shown, with when each was shown.
    pub fn chats_with_times(&self) -> Vec<(Instant, Chat)> {
        self.shown
            .iter()
            .filter_map(|s| match &s.line {
                Line::Chat { nick, text, .. } => Some((s.at, Chat::new(nick, text))),
                Line::Said { line, .. } => match &**line {
                    Line::Chat { nick, text, .. } => Some((s.at, Chat::new(nick, text))),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// When the client stopped (quit after its input ended, or ended).
    pub fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at
    }

    /// How many own messages were still unconfirmed when it quit.
    pub fn left_unsettled(&self) -> usize {
        self.shortfall.map_or(0, |s| s.unconfirmed)
    }

    /// What piped mode was still missing when it left (the binary says it
    /// on stderr and exits non-zero unless nothing).
    pub fn shortfall(&self) -> Option<Shortfall> {
        self.shortfall
    }

    /// Why the session ended by itself, if it did (kicked, refused, no
    /// relay).
    pub fn ended(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    pub(crate) fn handle_line(&mut self, now: Instant, line: &str, out: &mut Vec<Vec<u8>>) {
        self.typed.push_back(line.to_owned());
        self.feed(now, out);
    }

    pub(crate) fn end_input(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.input_ended = true;
        self.feed(now, out);
    }

    pub(crate) fn handle_datagram(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.stopped_at.is_some() {
            return;
        }
        let actions = self.session.handle_datagram(now, bytes);
        self.perform(now, actions, out);
        self.feed(now, out);
    }

    /// Like the app's reader thread: the session's timers run when its
    /// [`Session::poll_timeout`] has passed; after end of input, piped mode
    /// checks every [`GRACE_POLL`] whether it may leave.
    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        if self.stopped_at.is_some() {
            return;
        }
        if self.session.poll_timeout().is_some_and(|at| at <= now) {
            let actions = self.session.handle_timeout(now);
            self.perform(now, actions, out);
            self.feed(now, out);
        }
        if self.grace.is_some() && now >= self.next_grace_check {
            self.next_grace_check = now + GRACE_POLL;
            self.check_grace(now, out);
        }
    }

    /// When to call [`StructuredClient::handle_timeout`] next: the
    /// session's own deadline, or the next grace check.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped_at.is_some() {
            return None;
        }
        let grace = self.grace.is_some().then_some(self.next_grace_check);
        [self.session.poll_timeout(), grace]
            .into_iter()
            .flatten()
            .min()
    }

    /// Piped mode: lines are read (and handed to the session) only once
    /// joined; a `/quit` line ends input.
    fn feed(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        if self.joined_at.is_none() || self.stopped_at.is_some() {
            return;
        }
        while let Some(line) = self.typed.pop_front() {
            for piece in split_long_line(&line) {
                match parse_input(piece) {
                    Ok(Input::Quit) => {
                        self.typed.clear();
                        self.input_ended = true;
                        break;
                    }
                    Ok(input) => {
                        let actions = self.session.handle_input(now, input);
                        self.perform(now, actions, out);
                    }
                    // The binary complains on stderr; nothing is sent.
                    Err(_) => {}
                }
            }
        }
        if self.input_ended && self.grace.is_none() {
            self.session.end_of_input(now);
            self.grace = Some(Grace {
                start: now,
                last_progress: now,
                progress: self.session.progress(),
            });
        }
    }

    /// Piped mode after end of input: leave once our messages are
    /// confirmed and we have every event up to the relay's newest at the
    /// end of input, or when repair stops making progress (or at most
    /// after [`GRACE_MAX`]).
    fn check_grace(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        let Some(grace) = self.grace.as_mut() else {
            return;
        };
        let progress = self.session.progress();
        if progress != grace.progress {
            grace.progress = progress;
            grace.last_progress = now;
        }
        // Until the relay says how many events there are, repair has no
        // goal yet: wait longer (the question is repeated meanwhile).
        let stall = if self.session.shortfall().missing.is_some() {
            GRACE_STALL
        } else {
            GRACE_UNANSWERED
        };
        let stalled = now.saturating_duration_since(grace.last_progress) >= stall;
        if self.session.is_caught_up() || stalled || now >= grace.start + GRACE_MAX {
            self.shortfall = Some(self.session.shortfall());
            let actions = self.session.quit(now);
            self.perform(now, actions, out);
            self.stopped_at = Some(now);
        }
    }

    fn perform(&mut self, now: Instant, actions: Vec<Action>, out: &mut Vec<Vec<u8>>) {
        for action in actions {
            match action {
                Action::Send(bytes) => out.push(bytes),
                Action::Show(line) => self.shown.push(Shown { at: now, line }),
                Action::Joined { .. } => {
                    self.joined_at.get_or_insert(now);
                }
                Action::Refused { reason, .. } => self.stop(now, format!("refused: {reason}")),
                Action::NoRelay => self.stop(now, "no relay answering".to_owned()),
                Action::End { code } => self.stop(now, format!("ended with exit code {code}")),
            }
        }
    }

    fn stop(&mut self, now: Instant, why: String) {
        self.ended = Some(why);
        self.stopped_at = Some(now);
    }
}

/// An `nc`-style classic client.
#[derive(Debug)]
pub struct ClassicClient {
    nick: Nick,
    joined: bool,
    next_join: Instant,
    typed: VecDeque<String>,
    received: Vec<(Instant, Vec<u8>)>,
    stopped_at: Option<Instant>,
}

impl ClassicClient {
    /// A classic client that will join as `nick`.
    pub fn new(nick: Nick, now: Instant) -> ClassicClient {
        ClassicClient {
            nick,
            joined: false,
            next_join: now,
            typed: VecDeque::new(),
            received: Vec::new(),
            stopped_at: None,
        }
    }

    /// Every datagram received, with when.
    pub fn received(&self) -> &[(Instant, Vec<u8>)] {
        &self.received
    }

    /// The received datagrams as text lines.
    pub fn lines(&self) -> Vec<String> {
        self.received
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// True once an `OK` came.
    pub fn is_joined(&self) -> bool {
        self.joined
    }

    /// When the client left (its input ended).
    pub fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at
    }

    pub(crate) fn handle_line(&mut self, now: Instant, line: &str, out: &mut Vec<Vec<u8>>) {
        self.typed.push_back(line.to_owned());
        self.flush(now, out);
    }

    /// End of input: leave, saying `Q` three times (the network may lose
    /// some; a classic client has no way to know).
    pub(crate) fn end_input(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.flush(now, out);
        for _ in 0..3 {
            out.push(format!("Q {}", self.nick).into_bytes());
        }
        self.stopped_at = Some(now);
    }

    pub(crate) fn handle_datagram(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.stopped_at.is_some() {
            return;
        }
        if bytes == b"OK" {
            self.joined = true;
        }
        self.received.push((now, bytes.to_vec()));
        self.flush(now, out);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        if self.stopped_at.is_some() || self.joined || now < self.next_join {
            return;
        }
        out.push(format!("N {}", self.nick).into_bytes());
        self.next_join = now + JOIN_RETRY;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (self.stopped_at.is_none() && !self.joined).then_some(self.next_join)
    }

    fn flush(&mut self, _now: Instant, out: &mut Vec<Vec<u8>>) {
        if !self.joined {
            return;
        }
        while let Some(line) = self.typed.pop_front() {
            out.push(format!("M {} {line}", self.nick).into_bytes());
        }
    }
}

/// A structured client with no repair at all.
#[derive(Debug)]
pub struct NaiveClient {
    nick: Nick,
    cookie: Option<Cookie>,
    joined: bool,
    next_join: Instant,
    next_id: u64,
    typed: VecDeque<String>,
    /// Sequence numbers of the chat events received.
    seen: BTreeSet<u64>,
    chats: Vec<(Instant, Chat)>,
    stopped_at: Option<Instant>,
}

impl NaiveClient {
    /// A naive client that will join as `nick`.
    pub fn new(nick: Nick, now: Instant) -> NaiveClient {
        NaiveClient {
            nick,
            cookie: None,
            joined: false,
            next_join: now,
            next_id: 1,
            typed: VecDeque::new(),
            seen: BTreeSet::new(),
            chats: Vec::new(),
            stopped_at: None,
        }
    }

    /// True once a `WELCOME` came.
    pub fn is_joined(&self) -> bool {
        self.joined
    }

    /// When the client left (its input ended).
    pub fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at
    }

    /// The distinct chat messages received, in arrival order.
    pub fn chats(&self) -> Vec<Chat> {
        self.chats.iter().map(|(_, c)| c.clone()).collect()
    }

    pub(crate) fn handle_line(&mut self, now: Instant, line: &str, out: &mut Vec<Vec<u8>>) {
        self.typed.push_back(line.to_owned());
        self.flush(now, out);
    }

    pub(crate) fn end_input(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.flush(now, out);
        out.push(ClientMsg::Quit(self.nick.clone(), None).encode());
        self.stopped_at = Some(now);
    }

    pub(crate) fn handle_datagram(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.stopped_at.is_some() {
            return;
        }
        match RelayMsg::parse(bytes) {
            Ok(RelayMsg::Cookie(cookie)) if !self.joined => {
                self.cookie = Some(cookie);
                out.push(self.hello());
                self.next_join = now + JOIN_RETRY;
            }
            Ok(RelayMsg::Welcome { .. }) => {
                self.joined = true;
                self.flush(now, out);
            }
            Ok(RelayMsg::Event {
                seq,
                event: RoomEvent::Chat { nick, text },
                ..
            }) if self.seen.insert(seq) => {
                self.chats
                    .push((now, Chat::new(nick.as_str(), text.as_str())));
            }
            _ => {}
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        if self.stopped_at.is_some() || self.joined || now < self.next_join {
            return;
        }
        out.push(self.hello());
        self.next_join = now + JOIN_RETRY;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (self.stopped_at.is_none() && !self.joined).then_some(self.next_join)
    }

    fn hello(&self) -> Vec<u8> {
        ClientMsg::Hello {
            version: Token::new(VERSION).expect("VERSION is a valid token"),
            nick: self.nick.clone(),
            cookie: self.cookie,
            since: None,
            resume: None,
            // Naive: no session key, so the relay knows it by its address.
            key: None,
            code: None,
        }
        .encode()
    }

    fn flush(&mut self, _now: Instant, out: &mut Vec<Vec<u8>>) {
        if !self.joined {
            return;
        }
        while let Some(line) = self.typed.pop_front() {
            let Ok(text) = Text::new(&line) else {
                continue;
            };
            let say = ClientMsg::Say {
                id: self.next_id,
                text,
            };
            self.next_id += 1;
            out.push(say.encode());
        }
    }
}
