//! Repair under faults (`relay --loss P --dup P --reorder P --seed N`): a
//! seeded lossy path inside the kit ([`LossyPath`]: it drops, duplicates
//! and reorders what one member's socket sends and receives), and the
//! checks of the promises PROTOCOL.md makes about repair, written to
//! retry within bounded deadlines: `RESEND` repairs every gap and delivery
//! is contiguous after it, a duplicated `SAY` is relayed once, `PRIVATE`
//! is retransmitted until `ACK`. Members join on a clean path; the faults
//! start when the scenario does. Every other check is not run under
//! faults (it is reported as skipped, saying so).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, Origin, RelayMsg, RoomEvent, Token};

use crate::check::{CheckResult, NotPassed};
use crate::ctx::{seen, Ctx, Member};
use crate::lines;
use crate::probe::show_bytes;

/// The fault settings of a run: probabilities per datagram, and the seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultSettings {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub dup: f64,
    /// Probability that a datagram is held back and delivered after the next one.
    pub reorder: f64,
    /// The seed: the same seed makes the same decisions.
    pub seed: u64,
}

impl fmt::Display for FaultSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--loss {} --dup {} --reorder {} --seed {}",
            self.loss, self.dup, self.reorder, self.seed
        )
    }
}

/// Why a check is skipped in a run with faults.
pub const NOT_UNDER_FAULTS: &str = "not run under faults: the protocol promises repair only for RESEND, SAY and PMSG; run without --loss, --dup and --reorder for this check";

/// The lossy variant of a check, if it has one.
pub fn variant(id: &str) -> Option<fn(&mut Ctx) -> CheckResult> {
    match id {
        "struct.resend.repair" => Some(resend_repair),
        "struct.say.once" => Some(say_once),
        "struct.private.ack" => Some(private_ack),
        _ => None,
    }
}

/// SplitMix64 (as in crates/lossproxy): a seeded generator for the
/// path's decisions; not for anything secret.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// What the path did to one datagram, for the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered once.
    Delivered,
    /// Lost.
    Lost,
    /// Delivered twice.
    Duplicated,
    /// Held back, delivered after the next one.
    HeldBack,
}

impl Fate {
    /// The note added to the transcript's role, or "".
    pub fn note(self) -> &'static str {
        match self {
            Fate::Delivered => "",
            Fate::Lost => " [lost by --loss]",
            Fate::Duplicated => " [sent twice by --dup]",
            Fate::HeldBack => " [held back by --reorder]",
        }
    }
}

/// One member's lossy path, both ways. Deterministic for a seed and a
/// sequence of datagrams.
#[derive(Debug)]
pub struct LossyPath {
    settings: FaultSettings,
    rng: Rng,
    held_out: Option<Vec<u8>>,
    held_in: Option<Vec<u8>>,
    ready: VecDeque<Vec<u8>>,
}

impl LossyPath {
    /// A path with `settings`, its generator seeded with `seed`.
    pub fn new(settings: FaultSettings, seed: u64) -> LossyPath {
        LossyPath {
            settings,
            rng: Rng(seed),
            held_out: None,
            held_in: None,
            ready: VecDeque::new(),
        }
    }

    fn fate(&mut self, can_hold: bool) -> Fate {
        let s = self.settings;
        if self.rng.chance(s.loss) {
            Fate::Lost
        } else if self.rng.chance(s.reorder) && can_hold {
            Fate::HeldBack
        } else if self.rng.chance(s.dup) {
            Fate::Duplicated
        } else {
            Fate::Delivered
        }
    }

    /// What goes on the wire for one datagram the kit sends (zero, one or
    /// two copies, then a datagram held back before, if any), and its fate.
    pub fn outgoing(&mut self, bytes: &[u8]) -> (Vec<Vec<u8>>, Fate) {
        let fate = self.fate(self.held_out.is_none());
        let mut out = Vec::new();
        match fate {
            Fate::Lost => {}
            Fate::HeldBack => {
                self.held_out = Some(bytes.to_vec());
                return (out, fate);
            }
            Fate::Duplicated => {
                out.push(bytes.to_vec());
                out.push(bytes.to_vec());
            }
            Fate::Delivered => out.push(bytes.to_vec()),
        }
        out.extend(self.held_out.take());
        (out, fate)
    }

    /// The datagram held back on the way out, released (nothing came after it).
    pub fn release_out(&mut self) -> Option<Vec<u8>> {
        self.held_out.take()
    }

    /// Takes one datagram from the relay; returns its fate. What survives
    /// is read with [`LossyPath::next_delivered`].
    pub fn incoming(&mut self, bytes: Vec<u8>) -> Fate {
        let fate = self.fate(self.held_in.is_none());
        match fate {
            Fate::Lost => return fate,
            Fate::HeldBack => {
                self.held_in = Some(bytes);
                return fate;
            }
            Fate::Duplicated => {
                self.ready.push_back(bytes.clone());
                self.ready.push_back(bytes);
            }
            Fate::Delivered => self.ready.push_back(bytes),
        }
        self.ready.extend(self.held_in.take());
        fate
    }

    /// The next datagram delivered to the kit, if any.
    pub fn next_delivered(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// The datagram held back on the way in, released (nothing came after it).
    pub fn release_in(&mut self) {
        self.ready.extend(self.held_in.take());
    }
}

/// How long a lossy check waits before it asks again.
fn retry_gap(ctx: &Ctx) -> Duration {
    ctx.timeout.min(Duration::from_secs(1))
}

/// How often a lossy check asks again at most.
const TRIES: usize = 15;

/// A `CHAT` event: its number, speaker and text.
fn chat(msg: &RelayMsg) -> Option<(u64, String, String)> {
    match msg {
        RelayMsg::Event {
            seq,
            event: RoomEvent::Chat { nick, text },
            ..
        } => Some((*seq, nick.as_str().to_owned(), text.as_str().to_owned())),
        _ => None,
    }
}

/// The events a member holds, by number (the first copy's content kept;
/// a later copy with a different content is a failure).
#[derive(Default)]
struct Held {
    events: BTreeMap<u64, String>,
    newest: Option<u64>,
}

impl Held {
    /// Takes in what `sam` read; fails if an event number comes back with
    /// a different content.
    fn take(&mut self, msg: &RelayMsg, token: &str) -> CheckResult {
        match msg {
            RelayMsg::Event { seq, event, .. } => {
                let shown = format!("{event:?}");
                if let Some(before) = self.events.get(seq) {
                    if *before != shown {
                        return Err(NotPassed::fail(
                            format!("event {seq} is the same event every time it is sent"),
                            format!("it came as {before} and as {shown}"),
                        ));
                    }
                }
                self.events.insert(*seq, shown);
                self.newest = self.newest.max(Some(*seq));
            }
            RelayMsg::Pong {
                last_seq,
                token: Some(t),
            } if t.as_str() == token => {
                self.newest = self.newest.max(Some(*last_seq));
            }
            _ => {}
        }
        Ok(())
    }

    /// The numbers missing in `from..=newest`.
    fn missing(&self, from: u64) -> Vec<u64> {
        let Some(newest) = self.newest else {
            return Vec::new();
        };
        (from..=newest)
            .filter(|s| !self.events.contains_key(s))
            .collect()
    }
}

/// Reads what `member` receives for `period`, taking it into `held`.
fn gather(member: &Member, period: Duration, held: &mut Held, token: &str) -> CheckResult {
    let deadline = Instant::now() + period;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(bytes) = member.probe.recv(left) else {
            break;
        };
        if let Some(msg) = member.read(&bytes) {
            held.take(&msg, token)?;
        }
    }
    Ok(())
}

/// `bob` (on a clean path) says twelve texts; `sam` (on the lossy path)
/// misses some, learns the newest number with `PING`, and asks for every
/// gap with `RESEND` until it holds every event from its join point on;
/// then asks for its first event once more. Every text arrives, in order,
/// under contiguous numbers.
fn resend_repair(ctx: &mut Ctx) -> CheckResult {
    let bob = ctx.join("bob")?;
    let (sam, welcome) = ctx.join_structured("sam")?;
    ctx.lossy(&sam);
    let texts: Vec<String> = (1..=12)
        .map(|i| format!("repair {i} {}", ctx.unique()))
        .collect();
    for text in &texts {
        bob.say(text);
    }
    let token = format!("t{}", ctx.unique());
    let first = welcome.last_seq + 1;
    let gap = retry_gap(ctx);
    let mut held = Held::default();
    gather(&sam, gap, &mut held, &token)?;
    let mut resends = 0;
    let mut repaired = false;
    for _ in 0..TRIES {
        let holds_all = texts
            .iter()
            .all(|t| held.events.values().any(|e| e.contains(&format!("{t:?}"))));
        let missing = held.missing(first);
        if holds_all && missing.is_empty() {
            repaired = true;
            break;
        }
        if holds_all || held.newest.is_none() || missing.is_empty() {
            // The newest number may be further on than what arrived.
            sam.send_msg(&ClientMsg::Ping(Some(Token::new(&token).expect("valid"))));
        }
        if let (Some(from), Some(to)) = (missing.first(), missing.last()) {
            sam.send_msg(&ClientMsg::Resend {
                from: *from,
                to: *to,
            });
            resends += 1;
        }
        sam.probe.release();
        gather(&sam, gap, &mut held, &token)?;
    }
    let expected = format!(
        "after RESENDs, {} holds every event from its join point ({first}) on, bob's twelve texts among them",
        sam.nick()
    );
    if !repaired {
        return Err(NotPassed::fail(
            expected,
            format!(
                "after {resends} RESENDs over {TRIES} rounds, events {:?} are still missing (newest known: {:?})",
                held.missing(first),
                held.newest
            ),
        ));
    }
    // Contiguous delivery after repair: bob's texts in order.
    let order: Vec<usize> = held
        .events
        .values()
        .filter_map(|e| texts.iter().position(|t| e.contains(&format!("{t:?}"))))
        .collect();
    if order != (0..texts.len()).collect::<Vec<_>>() {
        return Err(NotPassed::fail(
            "bob's texts are numbered in the order he said them, each once",
            format!("by number they come in the order {order:?}"),
        ));
    }
    // And a RESEND of an event that did arrive is answered too (a relay
    // that ignores RESEND fails here even if no gap happened).
    let (seq, text) = held
        .events
        .iter()
        .find(|(_, e)| e.contains(&format!("{:?}", texts[0])))
        .map(|(s, _)| (*s, texts[0].clone()))
        .unwrap_or((first, texts[0].clone()));
    for _ in 0..TRIES {
        sam.send_msg(&ClientMsg::Resend { from: seq, to: seq });
        sam.probe.release();
        let (found, _) = sam.probe.recv_until(gap, |b| {
            sam.read(b).is_some_and(|m| {
                matches!(
                    m,
                    RelayMsg::Event {
                        origin: Origin::Resend,
                        ..
                    }
                ) && chat(&m).is_some_and(|(s, _, t)| s == seq && t == text)
            })
        });
        if found.is_some() {
            return Ok(());
        }
    }
    Err(NotPassed::fail(
        format!(
            "RESEND {seq} {seq} is answered with EVENT {seq} resend ... CHAT {} {text}",
            bob.nick()
        ),
        format!("no answer to {TRIES} RESENDs, {gap:?} apart"),
    ))
}

/// `sam` (on the lossy path, which duplicates) says one `SAY` until its
/// event comes back, then once more; `bob` (clean) sees the text once.
fn say_once(ctx: &mut Ctx) -> CheckResult {
    let (sam, _) = ctx.join_structured("sam")?;
    let bob = ctx.join("bob")?;
    ctx.lossy(&sam);
    let text = format!("only once {}", ctx.unique());
    let nick = sam.nick();
    let say = ClientMsg::Say {
        id: 1,
        text: lines::text(&text),
    };
    let gap = retry_gap(ctx);
    let mut echoed = false;
    let mut before = Vec::new();
    for _ in 0..TRIES {
        sam.send_msg(&say);
        sam.probe.release();
        let found;
        (found, before) = sam.probe.recv_until(gap, |b| {
            sam.read(b)
                .as_ref()
                .and_then(chat)
                .is_some_and(|(_, n, t)| n == nick && t == text)
        });
        if found.is_some() {
            echoed = true;
            break;
        }
    }
    if !echoed {
        return Err(NotPassed::fail(
            format!("{nick} gets its SAY's event back (live, or resend for a repeat)"),
            format!(
                "nothing after {TRIES} tries, {gap:?} apart{}",
                seen(&before)
            ),
        ));
    }
    // Once more, on purpose: a repeat the relay must not relay again.
    sam.send_msg(&say);
    sam.probe.release();
    let lines_before = ctx.barrier(&bob, &[&bob])?;
    let want = lines::chat(&nick, &text);
    let count = lines_before[0]
        .iter()
        .filter(|b| lines::is_line_any_ending(b, &want))
        .count();
    if count != 1 {
        return Err(NotPassed::fail(
            format!(
                "{} receives {} exactly once, however often SAY 1 arrives",
                bob.nick(),
                show_bytes(want[0].as_bytes(), 80)
            ),
            format!("it received it {count} times"),
        ));
    }
    Ok(())
}

/// `sam` sends a `PMSG` to `tom` until `SENT` comes back; the relay
/// repeats `PRIVATE` to `tom` (both on the lossy path) until his `ACK`
/// arrives, then stops; `tom` gets it under one pid only.
fn private_ack(ctx: &mut Ctx) -> CheckResult {
    let (sam, _) = ctx.join_structured("sam")?;
    let (tom, _) = ctx.join_structured("tom")?;
    ctx.lossy(&sam);
    ctx.lossy(&tom);
    let text = format!("just you {}", ctx.unique());
    let pmsg = ClientMsg::PrivateReliable {
        id: 5,
        to: lines::nick(&tom.nick()),
        text: lines::text(&text),
    };
    let gap = retry_gap(ctx);
    let is_sent = |b: &[u8]| matches!(sam.read(b), Some(RelayMsg::Sent { id: Some(5), text: t, .. }) if t.as_str() == text);
    let mut sent = false;
    for _ in 0..TRIES {
        sam.send_msg(&pmsg);
        sam.probe.release();
        if sam.probe.recv_until(gap, is_sent).0.is_some() {
            sent = true;
            break;
        }
    }
    if !sent {
        return Err(NotPassed::fail(
            format!(
                "SENT 5 {} {text} answers the PMSG (sent again until it comes)",
                tom.nick()
            ),
            format!("nothing after {TRIES} tries, {gap:?} apart"),
        ));
    }
    let private = |b: &[u8]| match tom.read(b) {
        Some(RelayMsg::Private { pid, from, text: t })
            if from.as_str() == sam.nick() && t.as_str() == text =>
        {
            Some(pid)
        }
        _ => None,
    };
    // The relay repeats PRIVATE about once a second until tom's ACK
    // arrives: wait up to 15 s for one copy to get through.
    let (found, _) = tom
        .probe
        .recv_until(Duration::from_secs(15), |b| private(b).is_some());
    let Some(pid) = found.as_deref().and_then(private) else {
        return Err(NotPassed::fail(
            format!(
                "{} receives PRIVATE pid {} {text}, repeated until ACK",
                tom.nick(),
                sam.nick()
            ),
            "no copy arrived within 15 s".to_owned(),
        ));
    };
    // ACK (again whenever a copy comes: the ACK can be lost) until 2.5 s
    // pass without a copy.
    for _ in 0..TRIES {
        tom.send_msg(&ClientMsg::Ack(pid));
        tom.probe.release();
        let (again, _) = tom
            .probe
            .recv_until(Duration::from_millis(2500), |b| private(b).is_some());
        match again.as_deref().and_then(private) {
            None => return Ok(()),
            Some(p) if p == pid => continue,
            Some(p) => {
                return Err(NotPassed::fail(
                    "a PMSG sent again (same id) is delivered once, under one pid",
                    format!("{} received it as pid {pid} and as pid {p}", tom.nick()),
                ))
            }
        }
    }
    Err(NotPassed::fail(
        format!(
            "the relay stops repeating PRIVATE {pid} once {}'s ACK arrives",
            tom.nick()
        ),
        format!("it still repeated it after {TRIES} ACKs"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(loss: f64, dup: f64, reorder: f64) -> FaultSettings {
        FaultSettings {
            loss,
            dup,
            reorder,
            seed: 7,
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions() {
        let run = |seed| {
            let mut path = LossyPath::new(settings(0.2, 0.1, 0.1), seed);
            (0..200u8)
                .map(|i| path.outgoing(&[i]).1)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let fates = run(7);
        let lost = fates.iter().filter(|f| **f == Fate::Lost).count();
        assert!((20..=60).contains(&lost), "{lost} of 200 lost at 0.2");
        assert!(fates.contains(&Fate::Duplicated) && fates.contains(&Fate::HeldBack));
    }

    #[test]
    fn a_held_datagram_comes_after_the_next_one() {
        let mut path = LossyPath::new(settings(0.0, 0.0, 1.0), 1);
        assert_eq!(path.outgoing(b"a"), (vec![], Fate::HeldBack));
        // Only one is held at a time: the next goes, then the held one.
        assert_eq!(
            path.outgoing(b"b"),
            (vec![b"b".to_vec(), b"a".to_vec()], Fate::Delivered)
        );
        path.incoming(b"x".to_vec());
        assert_eq!(path.next_delivered(), None);
        path.release_in();
        assert_eq!(path.next_delivered(), Some(b"x".to_vec()));
    }

    #[test]
    fn loss_and_duplication_in_both_directions() {
        let mut path = LossyPath::new(settings(1.0, 0.0, 0.0), 1);
        assert_eq!(path.outgoing(b"a"), (vec![], Fate::Lost));
        assert_eq!(path.incoming(b"x".to_vec()), Fate::Lost);
        assert_eq!(path.next_delivered(), None);
        let mut path = LossyPath::new(settings(0.0, 1.0, 0.0), 1);
        assert_eq!(path.outgoing(b"a").0.len(), 2);
        path.incoming(b"x".to_vec());
        assert_eq!(
            (path.next_delivered(), path.next_delivered()),
            (Some(b"x".to_vec()), Some(b"x".to_vec()))
        );
    }

    #[test]
    fn only_the_repair_checks_have_a_lossy_variant() {
        let with: Vec<_> = crate::registry::all()
            .into_iter()
            .filter(|c| variant(c.id).is_some())
            .map(|c| c.id)
            .collect();
        assert_eq!(
            with,
            [
                "struct.say.once",
                "struct.resend.repair",
                "struct.private.ack"
            ]
        );
    }
}
