//! What a check works with: fresh sockets ([`Ctx::probe`]), unique
//! nicknames, members (joined in `join.rs`), waits with deadlines, and a
//! barrier that makes "nothing arrived" a fact instead of a guess.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use udpchat_proto::{ClientMsg, LineEnding, RelayMsg};

use crate::check::NotPassed;
use crate::lines;
use crate::lossy::{FaultSettings, LossyPath};
pub use crate::member::{Keys, Member, Welcome};
use crate::probe::{show_bytes, Pacer, Probe, Received, Transcript};

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
    faults: Option<(FaultSettings, u64)>,
    /// All of this check's sockets on one address (for a loopback target,
    /// they are otherwise spread over 127.0.0.2-40, see
    /// [`crate::probe::spread_addr`]).
    pub one_address: bool,
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
            faults: None,
            one_address: false,
        }
    }

    /// Runs this check with faults: [`Ctx::lossy`] then puts a member
    /// behind a lossy path seeded from `seed`.
    pub fn set_faults(&mut self, faults: FaultSettings, seed: u64) {
        self.faults = Some((faults, seed));
    }

    /// Puts `member`'s socket behind a seeded lossy path (both ways), if
    /// this check runs with faults; else does nothing. Each member gets
    /// its own generator (the check's seed plus a count).
    pub fn lossy(&mut self, member: &Member) {
        if let Some((settings, seed)) = &mut self.faults {
            *seed = seed.wrapping_add(1);
            member
                .probe
                .set_lossy(Some(LossyPath::new(*settings, *seed)));
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
        let local = if self.one_address {
            None
        } else {
            crate::probe::spread_addr(self.target)
        };
        Probe::new_from(
            local,
            self.target,
            who,
            Rc::clone(&self.run.pacer),
            Rc::clone(&self.transcript),
            Rc::clone(&self.received),
        )
        .map(Rc::new)
        .map_err(|e| NotPassed::Skip(format!("the kit cannot open a UDP socket: {e}")))
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

    /// Keeps `member` for the clean-up (it quits after the check).
    pub fn keep(&mut self, member: &Member) {
        self.members.push(member.clone());
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
