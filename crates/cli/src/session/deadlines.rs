//! The session against a scripted relay on a virtual clock. Each scenario
//! runs twice: once with `handle_timeout` every 50 ms (how the app used to
//! run), once with it only at `poll_timeout`. Both must send the same
//! datagrams in the same order, the second at the same time or sooner.
//!
//! The network loses datagrams by content, not by time (the first copy of
//! `EVENT 7 live ...`, say), so both runs lose the same ones although the
//! second sends sooner.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, Cookie, Nick, Origin, RelayMsg, RoomEvent, Text, Token, VERSION};

use super::tests::{keyed, KEY};
use super::{Action, Session};
use crate::command::{parse_input, Input};
use crate::render::Line;

/// One way, each way.
const LATENCY: Duration = Duration::from_millis(10);
const TICK: Duration = Duration::from_millis(50);

/// What happens in a scenario, besides what the session sends.
#[derive(Debug, Clone, Default)]
struct Scenario {
    /// Lines typed, at milliseconds since the start.
    typed: Vec<(u64, &'static str)>,
    /// `bob` says something to the room, at milliseconds since the start.
    bob_says: Vec<(u64, &'static str)>,
    /// The relay restarts at these milliseconds (`BYE shutdown`, then it
    /// knows no one and numbers from 0).
    restarts: Vec<u64>,
    /// From this millisecond on the relay is silent until it has received
    /// this many `HELLO`s (then it restarts): the link is lost.
    silence: Option<(u64, usize)>,
    /// Datagrams to the relay lost: the first `count` starting with the
    /// prefix.
    lost_to_relay: Vec<(&'static str, usize)>,
    /// Datagrams to the client lost, likewise.
    lost_to_client: Vec<(&'static str, usize)>,
    /// How long to run, in milliseconds.
    end: u64,
    /// How much later than when ticking a datagram may go (zero unless the
    /// scenario says why).
    slack: Duration,
    /// How many copies of one datagram the two runs may differ by (and then
    /// their times are not compared pairwise): a retransmission repeated
    /// for many seconds on a timeout measured from round trips that differ
    /// by up to a tick drifts differently in each, so one run can be a copy
    /// ahead when the link is declared lost.
    extra_copies: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tick,
    Poll,
}

/// What one run saw.
#[derive(Debug)]
struct Run {
    /// Datagrams the session sent, with when.
    sent: Vec<(Duration, String)>,
    /// Everything else it did, in order.
    other: Vec<Action>,
    /// How often `handle_timeout` was called.
    timeouts: usize,
}

#[derive(Debug)]
enum Arrival {
    ToRelay(Vec<u8>),
    ToClient(Vec<u8>),
    Typed(&'static str),
    BobSays(&'static str),
    Restart,
    Silence(usize),
}

/// The relay's side, as the real one answers one member.
struct Relay {
    seq: u64,
    events: BTreeMap<u64, RoomEvent>,
    /// SAY ids relayed, with their event's number.
    said: HashMap<u64, u64>,
    nick: Nick,
    joined: bool,
    /// `HELLO`s still to ignore while silent.
    silent_for: usize,
}

fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}

impl Relay {
    fn new() -> Relay {
        Relay {
            seq: 5,
            events: BTreeMap::new(),
            said: HashMap::new(),
            nick: nick("alice"),
            joined: false,
            silent_for: 0,
        }
    }

    fn restart(&mut self) {
        self.seq = 0;
        self.events.clear();
        self.said.clear();
        self.joined = false;
    }

    fn event(&mut self, event: RoomEvent) -> RelayMsg {
        self.seq += 1;
        self.events.insert(self.seq, event.clone());
        RelayMsg::Event {
            seq: self.seq,
            origin: Origin::Live,
            ago: None,
            event,
        }
    }

    /// Answers one datagram from the session.
    fn handle(&mut self, bytes: &[u8]) -> Vec<RelayMsg> {
        let msg = ClientMsg::parse(bytes).expect("the session sends valid datagrams");
        if self.silent_for > 0 {
            if matches!(msg, ClientMsg::Hello { .. }) {
                self.silent_for -= 1;
                if self.silent_for == 0 {
                    self.restart();
                }
            }
            return Vec::new();
        }
        let not_joined = || RelayMsg::Error {
            code: udpchat_proto::ErrorCode::NotJoined,
            reason: Text::new("you have not joined").unwrap(),
        };
        match msg {
            ClientMsg::Hello { cookie: None, .. } => {
                vec![RelayMsg::Cookie(Cookie(0x0123_4567_89ab_cdef))]
            }
            ClientMsg::Hello { nick, .. } => {
                if self.joined {
                    return Vec::new(); // a repeated HELLO: the WELCOME went already
                }
                self.joined = true;
                self.nick = nick.clone();
                let welcome = RelayMsg::Welcome {
                    version: Token::new(VERSION).unwrap(),
                    nick: nick.clone(),
                    last_seq: self.seq,
                    ping_interval: 15,
                    idle_timeout: 60,
                    history_from: None,
                    resume: None,
                    key: None,
                };
                vec![welcome, self.event(RoomEvent::Join(nick))]
            }
            _ if !self.joined => vec![not_joined()],
            ClientMsg::Say { id, text } => {
                // A repeat draws its event again (PROTOCOL.md section 8).
                if let Some(&seq) = self.said.get(&id) {
                    return vec![RelayMsg::Event {
                        seq,
                        origin: Origin::Resend,
                        ago: Some(0),
                        event: self.events[&seq].clone(),
                    }];
                }
                let event = self.event(RoomEvent::Chat {
                    nick: self.nick.clone(),
                    text,
                });
                self.said.insert(id, self.seq);
                vec![event]
            }
            ClientMsg::Ping(token) => vec![RelayMsg::Pong {
                last_seq: self.seq,
                token,
            }],
            ClientMsg::Resend { from, to } => (from..=to)
                .filter_map(|seq| {
                    let event = self.events.get(&seq)?.clone();
                    Some(RelayMsg::Event {
                        seq,
                        origin: Origin::Resend,
                        ago: None,
                        event,
                    })
                })
                .collect(),
            ClientMsg::PrivateReliable { id, to, text } => vec![RelayMsg::Sent {
                id: Some(id),
                to,
                text,
            }],
            ClientMsg::Rename(new) => {
                let old = std::mem::replace(&mut self.nick, new.clone());
                vec![self.event(RoomEvent::Rename { old, new })]
            }
            _ => Vec::new(),
        }
    }
}

/// Loses the first `count` datagrams starting with each prefix.
fn lose(rules: &mut [(&str, usize)], bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    for (prefix, count) in rules.iter_mut() {
        if *count > 0 && text.starts_with(*prefix) {
            *count -= 1;
            return true;
        }
    }
    false
}

fn run(scenario: &Scenario, mode: Mode) -> Run {
    let start = Instant::now();
    let mut session = Session::new(nick("alice"), start, 1, KEY);
    let mut relay = Relay::new();
    let mut lost_to_relay = scenario.lost_to_relay.clone();
    let mut lost_to_client = scenario.lost_to_client.clone();
    // Arrivals by time, then in the order they were queued.
    let mut queue: BTreeMap<(Duration, usize), Arrival> = BTreeMap::new();
    let mut queued = 0;
    let mut push = |queue: &mut BTreeMap<_, _>, at: Duration, arrival: Arrival| {
        queued += 1;
        queue.insert((at, queued), arrival);
    };
    let ms = Duration::from_millis;
    for &(at, line) in &scenario.typed {
        push(&mut queue, ms(at), Arrival::Typed(line));
    }
    for &(at, text) in &scenario.bob_says {
        push(&mut queue, ms(at), Arrival::BobSays(text));
    }
    for &at in &scenario.restarts {
        push(&mut queue, ms(at), Arrival::Restart);
    }
    if let Some((at, hellos)) = scenario.silence {
        push(&mut queue, ms(at), Arrival::Silence(hellos));
    }
    let end = ms(scenario.end);
    let mut result = Run {
        sent: Vec::new(),
        other: Vec::new(),
        timeouts: 0,
    };
    let mut next_tick = Duration::ZERO;
    let mut now = Duration::ZERO;
    let mut at_same_instant = 0;
    loop {
        let timer = match mode {
            Mode::Tick => Some(next_tick),
            Mode::Poll => session
                .poll_timeout()
                .map(|t| t.saturating_duration_since(start).max(now)),
        };
        let arrival = queue.first_key_value().map(|(&(at, _), _)| at);
        // On a tie, the arrival first.
        let next = match (arrival, timer) {
            (Some(a), Some(t)) if t < a => Err(t),
            (Some(a), _) => Ok(a),
            (None, Some(t)) => Err(t),
            (None, None) => break,
        };
        let (at, actions) = match next {
            Ok(a) => {
                let (_, arrival) = queue.pop_first().unwrap();
                let actions = match arrival {
                    Arrival::ToClient(bytes) => session.handle_datagram(start + a, &keyed(bytes)),
                    Arrival::Typed(line) => {
                        session.handle_input(start + a, parse_input(line).unwrap())
                    }
                    Arrival::ToRelay(bytes) => {
                        for reply in relay.handle(&bytes) {
                            let bytes = reply.encode();
                            if !lose(&mut lost_to_client, &bytes) {
                                push(&mut queue, a + LATENCY, Arrival::ToClient(bytes));
                            }
                        }
                        Vec::new()
                    }
                    Arrival::BobSays(text) => {
                        let event = relay.event(RoomEvent::Chat {
                            nick: nick("bob"),
                            text: Text::new(text).unwrap(),
                        });
                        let bytes = event.encode();
                        if relay.joined && !lose(&mut lost_to_client, &bytes) {
                            push(&mut queue, a + LATENCY, Arrival::ToClient(bytes));
                        }
                        Vec::new()
                    }
                    Arrival::Restart => {
                        let bye = RelayMsg::Bye {
                            code: udpchat_proto::ByeCode::Shutdown,
                            reason: Text::new("restarting").unwrap(),
                        };
                        push(&mut queue, a + LATENCY, Arrival::ToClient(bye.encode()));
                        relay.restart();
                        Vec::new()
                    }
                    Arrival::Silence(hellos) => {
                        relay.silent_for = hellos;
                        Vec::new()
                    }
                };
                (a, actions)
            }
            Err(t) => {
                result.timeouts += 1;
                if mode == Mode::Tick {
                    next_tick += TICK;
                } else if t == now {
                    at_same_instant += 1;
                    assert!(at_same_instant < 20, "poll_timeout stuck at {t:?}");
                }
                (t, session.handle_timeout(start + t))
            }
        };
        if at > end {
            break;
        }
        if at > now {
            at_same_instant = 0;
        }
        now = at;
        for action in actions {
            match action {
                Action::Send(bytes) => {
                    result
                        .sent
                        .push((now, String::from_utf8_lossy(&bytes).into_owned()));
                    if !lose(&mut lost_to_relay, &bytes) {
                        push(&mut queue, now + LATENCY, Arrival::ToRelay(bytes));
                    }
                }
                other => result.other.push(other),
            }
        }
    }
    result
}

/// Runs both ways and compares; returns the poll run for further checks.
///
/// Timers that are independent of one another may interleave differently
/// (the second run fires each at its deadline, the first at the next tick),
/// so what must match is each datagram's copies, the order of our chat
/// messages, what is shown, and the order of what the room said.
fn same_either_way(scenario: &Scenario) -> Run {
    let tick = run(scenario, Mode::Tick);
    let poll = run(scenario, Mode::Poll);
    let copies = |r: &Run| {
        let mut copies: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        for (at, m) in &r.sent {
            copies.entry(m.clone()).or_default().push(*at);
        }
        copies
    };
    let (poll_copies, tick_copies) = (copies(&poll), copies(&tick));
    // A datagram only one run sent is allowed within `extra_copies`.
    let none = Vec::new();
    for (m, tick_at) in &tick_copies {
        if !poll_copies.contains_key(m) {
            assert!(
                tick_at.len() <= scenario.extra_copies,
                "{m:?} only when ticking"
            );
        }
    }
    for (m, poll_at) in &poll_copies {
        let tick_at = tick_copies.get(m).unwrap_or(&none);
        assert!(
            poll_at.len().abs_diff(tick_at.len()) <= scenario.extra_copies,
            "copies of {m:?}: {} polling, {} ticking",
            poll_at.len(),
            tick_at.len()
        );
        // With copies allowed to differ, the pairs no longer line up.
        if scenario.extra_copies == 0 {
            for (p, t) in poll_at.iter().zip(tick_at) {
                assert!(p <= &(*t + scenario.slack), "{m:?} at {p:?}, not by {t:?}");
            }
        }
    }
    let says = |r: &Run| {
        r.sent
            .iter()
            .filter(|(_, m)| m.starts_with("SAY "))
            .map(|(_, m)| m.clone())
            .collect::<Vec<_>>()
    };
    let dedup = |mut v: Vec<String>| {
        v.dedup();
        v
    };
    if scenario.extra_copies == 0 {
        assert_eq!(says(&poll), says(&tick));
    } else {
        // The order of our messages, repeats aside.
        assert_eq!(dedup(says(&poll)), dedup(says(&tick)));
    }
    // What is shown: the same, room events in the same order.
    let sorted = |r: &Run| {
        let mut all: Vec<String> = r.other.iter().map(|a| format!("{a:?}")).collect();
        all.sort();
        all
    };
    assert_eq!(sorted(&poll), sorted(&tick));
    let room = |r: &Run| {
        r.other
            .iter()
            .filter(|a| matches!(a, Action::Show(Line::Chat { .. } | Line::Join { .. })))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(room(&poll), room(&tick));
    assert!(
        poll.timeouts * 5 < tick.timeouts,
        "{} wake-ups polling, {} ticking",
        poll.timeouts,
        tick.timeouts
    );
    poll
}

fn count(run: &Run, prefix: &str) -> usize {
    run.sent
        .iter()
        .filter(|(_, m)| m.starts_with(prefix))
        .count()
}

#[test]
fn a_quiet_session_wakes_only_for_its_timers() {
    let run = same_either_way(&Scenario {
        typed: vec![(500, "hello")],
        end: 40_000,
        ..Scenario::default()
    });
    assert_eq!(count(&run, "SAY 1 hello"), 1);
    // HELLO, HELLO with cookie, SAY, tail checks, keepalives and probes.
    assert!(run.timeouts < 20, "{} wake-ups", run.timeouts);
}

#[test]
fn lost_echo_retransmission_and_resend_match_ticking() {
    let run = same_either_way(&Scenario {
        typed: vec![(300, "one"), (300, "two"), (310, "three")],
        bob_says: vec![(5_000, "hi"), (5_020, "there")],
        // The echo of "one" (event 7) is lost, and so is the first answer
        // to the request for it; "two" is lost on the way to the relay;
        // bob's first line is lost, revealed by his second.
        lost_to_client: vec![
            ("EVENT 7 live", 1),
            ("EVENT 7 resend", 1),
            ("EVENT 10 live", 1),
        ],
        lost_to_relay: vec![("SAY 2 two", 1)],
        end: 20_000,
        // Whether RESEND 7 7 goes depends on whether the answer to the
        // repeated SAY 1 (event 7 again) comes before its first request is
        // due, which a 50 ms tick can change.
        extra_copies: 1,
        ..Scenario::default()
    });
    // "one" goes three times: its echo is lost, and so is the answer to
    // the first repeat (event 7 again); the second repeat's answer comes.
    assert_eq!(count(&run, "SAY 1 one"), 3);
    assert_eq!(count(&run, "SAY 2 two"), 2);
    assert_eq!(count(&run, "SAY 3 three"), 1);
    // The repeated SAY 1 draws event 7 again, so at most one request for
    // it (none when ticking).
    assert!(count(&run, "RESEND 7 7") <= 1);
    assert_eq!(count(&run, "RESEND 10 10"), 1);
}

#[test]
fn a_paced_burst_and_private_messages_match_ticking() {
    let lines = [
        "l01", "l02", "l03", "l04", "l05", "l06", "l07", "l08", "l09", "l10", "l11", "l12", "l13",
        "l14", "l15", "l16", "l17", "l18", "l19", "l20",
    ];
    let mut typed: Vec<(u64, &str)> = lines.iter().map(|l| (200, *l)).collect();
    typed.push((210, "/msg bob psst"));
    typed.push((220, "/msg carol hey"));
    let run = same_either_way(&Scenario {
        typed,
        // The first SENT is lost: the PMSG goes again after 1 s.
        lost_to_client: vec![("SENT", 1), ("EVENT 12 live", 1)],
        end: 30_000,
        // The budget is shared: the retransmitted PMSG, which cannot wait,
        // goes at its deadline and takes the token a SAY would have taken
        // 40 ms later at the tick, before the PMSG; that SAY then waits for
        // the next token.
        slack: Duration::from_millis(250),
        ..Scenario::default()
    });
    assert_eq!(count(&run, "SAY "), 21);
    assert_eq!(count(&run, "PMSG "), 3);
}

#[test]
fn a_rename_hold_ends_on_time_when_the_rename_is_lost() {
    let run = same_either_way(&Scenario {
        typed: vec![(400, "/nick alicia"), (410, "after")],
        // The RENAME is lost twice: the hold ends before it is repaired.
        lost_to_client: vec![("EVENT 7 live", 1), ("EVENT 7 resend", 1)],
        end: 10_000,
        ..Scenario::default()
    });
    assert_eq!(count(&run, "SAY 1 after"), 1);
}

#[test]
fn restart_and_lost_link_rejoin_as_when_ticking() {
    let run = same_either_way(&Scenario {
        typed: vec![(300, "before"), (30_050, "during")],
        restarts: vec![3_000],
        // Silent from 10 s: pings go unanswered, the link is lost after
        // 46 s, then the relay ignores 4 HELLOs before it answers.
        silence: Some((10_000, 4)),
        end: 80_000,
        // "during" is sent again every second (the timeout's cap) for 26 s.
        extra_copies: 1,
        ..Scenario::default()
    });
    // Two to join, one after the restart, five after the link is lost.
    assert_eq!(count(&run, "HELLO"), 8);
    // Sent until the link is lost, then again after the rejoin.
    let (last, _) = run.sent.iter().rfind(|(_, m)| m == "SAY 2 during").unwrap();
    assert!(*last > Duration::from_secs(50), "{last:?}");
}

proptest::proptest! {
    /// Whatever the relay sends and the user types: `handle_timeout` does
    /// nothing before `poll_timeout`, and once run at it, the deadline
    /// moves on (no busy loop).
    #[test]
    fn nothing_happens_before_poll_timeout(
        steps in proptest::collection::vec(
            (
                0u64..3000,
                proptest::prop_oneof![
                    "(EVENT [5-9] (live|resend) CHAT (a|b) x|EVENT [5-9] live JOIN b|PONG [0-9]|GONE [5-9] [5-9]|WELCOME udpchat/1 a [0-5] 15 60|COOKIE 00000000000000[0-9]{2}|ERROR (not-joined|nick-taken|rate-limited|no-such-nick) r|BYE shutdown r|PRIVATE [0-9] b hi|SENT [0-9] b hi)",
                    "(/say x|/msg b hi|/nick c|/who)",
                ],
            ),
            0..40,
        ),
    ) {
        let start = Instant::now();
        let mut session = Session::new(nick("a"), start, 1, KEY);
        let mut now = start;
        for (dt, step) in steps {
            let until = now + Duration::from_millis(dt);
            let mut at_same_instant = 0;
            while let Some(due) = session.poll_timeout().filter(|&due| due <= until) {
                if due > now {
                    let before = due - Duration::from_nanos(1);
                    let early = session.handle_timeout(before);
                    proptest::prop_assert!(early.is_empty(), "at {:?}: {:?}", before - start, early);
                    now = due;
                    at_same_instant = 0;
                } else {
                    at_same_instant += 1;
                    proptest::prop_assert!(at_same_instant < 20, "stuck at {:?}", now - start);
                }
                session.handle_timeout(now);
            }
            now = until;
            match step.strip_prefix('/') {
                Some("say x") => {
                    session.handle_input(now, Input::Say(Text::new("x").unwrap()));
                }
                Some(_) => {
                    session.handle_input(now, parse_input(&step).unwrap());
                }
                None => {
                    session.handle_datagram(now, &keyed(step.as_bytes()));
                }
            }
        }
    }
}
