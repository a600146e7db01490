//! Putting the room's numbered events back in order: gap detection, resend
//! requests, and delivery exactly once.
//!
//! Contract: no I/O and no clock; time comes in as `now`. Feed it every
//! `EVENT`, `GONE` and `PONG` of one relay session (one `WELCOME`); it says
//! what to display, in sequence order, each event exactly once, and which
//! `RESEND` ranges to ask for. Events after a gap are held back until the gap
//! is repaired, declared gone by the relay, or given up on after a bounded
//! number of requests; then a [`Output::Lost`] says how many were lost.
//!
//! Memory stays bounded whatever the relay sends: at most [`MAX_WINDOW`]
//! sequence numbers are tracked; a jump further ahead than that declares the
//! older part lost without ever allocating per missing number.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use udpchat_proto::{Origin, RoomEvent};

/// The most sequence numbers tracked (missing or held) at once.
pub const MAX_WINDOW: u64 = 4096;

/// Missing events this close (or closer) to a range being requested join
/// it.
const MERGE_GAP: u64 = 4;

/// The most events one `RESEND` asks for (the relay clamps to 64 too).
pub const MAX_RESEND: u64 = 64;

/// How long to wait before the first request for a gap (reordered datagrams
/// usually fill it by then), then the base of the doubling re-request delay.
/// The base is the retransmission timeout the session measures (see
/// [`Reassembly::set_retry`]); this before it is set.
const FIRST_DELAY: Duration = Duration::from_millis(40);
const RETRY_BASE: Duration = Duration::from_millis(300);
const RETRY_CAP: Duration = Duration::from_secs(1);
/// Requests per missing event before it counts as lost: with 30% of the
/// datagrams lost each way a request fails about half the time; the waits
/// are capped at a quarter second to a second (the session's backoff cap),
/// so this many make 30 s to 2 minutes of asking before giving up, which
/// also outlasts a short outage.
const MAX_TRIES: u32 = 120;
/// Requests after which the user is told events are being waited for.
const TRIES_BEFORE_WAITING: u32 = 2;

/// Why events were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// The relay said they are no longer in its history (`GONE`).
    Gone,
    /// The relay did not answer our requests.
    NoAnswer,
    /// They were too far behind newer events to keep waiting for.
    TooFarBehind,
}

/// What the reassembly wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Display this event, now. `history` events were said before we joined.
    Deliver {
        /// Its sequence number.
        seq: u64,
        /// What happened.
        event: RoomEvent,
        /// From the history sent on join.
        history: bool,
    },
    /// Events `from..=to` will never be displayed.
    Lost {
        /// First lost sequence number.
        from: u64,
        /// Last lost sequence number.
        to: u64,
        /// Why.
        reason: LossReason,
    },
    /// Send `RESEND from to`.
    Request {
        /// First wanted.
        from: u64,
        /// Last wanted.
        to: u64,
    },
    /// Some events are still missing after a few requests: tell the user
    /// they are being waited for.
    Waiting {
        /// How many are missing now.
        missing: u64,
    },
}

#[derive(Debug)]
enum Slot {
    Event(RoomEvent),
    Lost(LossReason),
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    tries: u32,
    /// When the last request went out (or the gap was noticed).
    since: Instant,
}

impl Attempt {
    fn due(&self, base: Duration, cap: Duration) -> Instant {
        let wait = if self.tries == 0 {
            FIRST_DELAY
        } else {
            base.saturating_mul(1 << (self.tries - 1).min(8)).min(cap)
        };
        self.since + wait
    }
}

/// The reassembly state of one relay session.
#[derive(Debug)]
pub struct Reassembly {
    /// `last-seq` from `WELCOME`: history is at or below it.
    base: u64,
    /// Highest history sequence number displayed.
    history_shown: u64,
    /// Next sequence number to display.
    next: u64,
    /// Highest sequence number displayed as an event (not declared lost).
    shown_through: u64,
    /// Where the window stood before it last jumped ahead (a sequence
    /// number far ahead arrived), until the relay confirms its newest.
    skipped_from: Option<u64>,
    /// Highest sequence number known to exist.
    known_last: u64,
    /// Received (or lost) at or above `next`, waiting for the gap below.
    held: BTreeMap<u64, Slot>,
    /// Known to exist, at or above `next`, not received.
    missing: BTreeMap<u64, Attempt>,
    /// Requests per missing event before it counts as lost (0: never ask).
    max_tries: u32,
    /// `WELCOME` stated the history range: history events are numbered
    /// contiguously and repaired like live ones.
    ranged: bool,
    /// Wait after the first request, doubled after each...
    retry_base: Duration,
    /// ... up to this.
    retry_cap: Duration,
}

impl Reassembly {
    /// Starts after `WELCOME ... <last_seq> ...`: the next live event is
    /// `last_seq + 1`.
    pub fn new(last_seq: u64) -> Reassembly {
        // u64::MAX itself is never used: `next` must stay representable.
        let last_seq = last_seq.min(u64::MAX - 1);
        Reassembly {
            base: last_seq,
            history_shown: 0,
            next: last_seq.saturating_add(1),
            shown_through: 0,
            skipped_from: None,
            known_last: last_seq,
            held: BTreeMap::new(),
            missing: BTreeMap::new(),
            max_tries: MAX_TRIES,
            ranged: false,
            retry_base: RETRY_BASE,
            retry_cap: RETRY_CAP,
        }
    }

    /// Starts after `WELCOME ... <last_seq> ... <history_from> ...`: events
    /// `history_from..=last_seq` are the history (said before we joined)
    /// and, like every later event, are expected: whatever of them does not
    /// arrive is asked for with `RESEND`.
    pub fn with_history(now: Instant, last_seq: u64, history_from: u64) -> Reassembly {
        let mut r = Reassembly::new(last_seq);
        let from = history_from
            .clamp(1, r.next)
            .max(r.next.saturating_sub(MAX_WINDOW));
        r.next = from;
        r.known_last = from - 1;
        r.ranged = true;
        let mut out = Vec::new();
        r.extend_known(now, last_seq.min(u64::MAX - 1), &mut out);
        debug_assert!(out.is_empty());
        r
    }

    /// Times re-requests from this (the measured retransmission timeout),
    /// doubling up to `cap` (at most 1 s).
    pub fn set_retry(&mut self, base: Duration, cap: Duration) {
        self.retry_base = base;
        self.retry_cap = cap.min(RETRY_CAP);
    }

    /// Never asks for missing events: a gap is reported lost as soon as a
    /// reordered datagram would have filled it (to measure what repair
    /// costs, or for a relay that cannot resend).
    pub fn without_repair(mut self) -> Reassembly {
        self.max_tries = 0;
        self
    }

    /// The join point this reassembly started from (`WELCOME`'s `last-seq`).
    pub fn join_point(&self) -> u64 {
        self.base
    }

    /// The highest sequence number known to exist (seen, or announced by a
    /// `PONG`). A relay announcing less than this has restarted.
    pub fn known_last(&self) -> u64 {
        self.known_last
    }

    /// Every event up to this number has been delivered or reported lost.
    pub fn delivered_through(&self) -> u64 {
        self.next - 1
    }

    /// How many events are known to exist but not received yet.
    pub fn missing(&self) -> u64 {
        self.missing.len() as u64
    }

    /// Handles `EVENT <seq> <origin> ...`.
    pub fn handle_event(
        &mut self,
        now: Instant,
        seq: u64,
        origin: Origin,
        event: RoomEvent,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if origin == Origin::History && !self.ranged {
            // History precedes our JOIN and is not contiguous (only some
            // kinds are kept): show each once, in order, never as a gap.
            if seq <= self.base && seq > self.history_shown {
                self.history_shown = seq;
                out.push(Output::Deliver {
                    seq,
                    event,
                    history: true,
                });
            }
            return out;
        }
        if seq < self.next || self.held.contains_key(&seq) || seq == u64::MAX {
            return out; // duplicate (or a number no relay reaches)
        }
        self.extend_known(now, seq, &mut out);
        if seq < self.next {
            return out; // the window moved past it
        }
        self.missing.remove(&seq);
        self.held.insert(seq, Slot::Event(event));
        self.flush(&mut out);
        out
    }

    /// Handles the `last-seq` of a `PONG`: anything newer than what we saw
    /// was lost on the way (a lost last message) and gets requested.
    pub fn handle_last_seq(&mut self, now: Instant, last_seq: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.extend_known(now, last_seq, &mut out);
        out
    }

    /// Handles a `last-seq` the relay confirmed (`PONG`, also the answer to
    /// a `RESEND` beyond its newest event): no event above it exists. If we
    /// believed in more (a forged or stale number), the held events above
    /// it, never shown, are discarded, nothing above it is missing, and if
    /// we skipped past it without showing anything there (a forged huge
    /// number moved the window), we expect `last_seq + 1` again. Events
    /// shown above it stay shown (a `PONG` the network delayed, or a
    /// restarted relay: the caller probes).
    pub fn handle_confirmed_last(&mut self, now: Instant, last_seq: u64) -> Vec<Output> {
        let last_seq = last_seq.min(u64::MAX - 1);
        if last_seq >= self.known_last {
            // Whatever the window jumped to exists: the jump stands.
            self.skipped_from = None;
            return self.handle_last_seq(now, last_seq);
        }
        let above = last_seq + 1;
        self.held.split_off(&above);
        self.missing.split_off(&above);
        let skipped_from = self.skipped_from.take();
        let mut out = Vec::new();
        if self.next > above && self.shown_through < above {
            // Back to where the jump started: what exists there is asked for.
            self.next = skipped_from
                .unwrap_or(above)
                .clamp(self.shown_through + 1, above);
            self.known_last = self.next - 1;
            self.extend_known(now, last_seq, &mut out);
        } else {
            self.known_last = last_seq.max(self.next - 1);
        }
        self.flush(&mut out);
        out
    }

    /// Handles `GONE <from> <to>`: those events will never come.
    pub fn handle_gone(&mut self, from: u64, to: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if from > to {
            return out;
        }
        let gone: Vec<u64> = self.missing.range(from..=to).map(|(&s, _)| s).collect();
        for seq in gone {
            self.missing.remove(&seq);
            self.held.insert(seq, Slot::Lost(LossReason::Gone));
        }
        self.flush(&mut out);
        out
    }

    /// Says which ranges to request now (at most `budget` requests), gives
    /// up on events asked for too often, and reports what is still missing.
    pub fn poll(&mut self, now: Instant, budget: usize) -> Vec<Output> {
        let mut out = Vec::new();
        let mut exhausted = Vec::new();
        let mut due = Vec::new();
        for (&seq, attempt) in &self.missing {
            if attempt.due(self.retry_base, self.retry_cap) <= now {
                if attempt.tries >= self.max_tries {
                    exhausted.push(seq);
                } else {
                    due.push(seq);
                }
            }
        }
        for seq in exhausted {
            self.missing.remove(&seq);
            self.held.insert(seq, Slot::Lost(LossReason::NoAnswer));
        }
        self.flush(&mut out);

        let mut retrying = false;
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for seq in due {
            if !self.missing.contains_key(&seq) {
                continue;
            }
            let count = ranges.len();
            match ranges.last_mut() {
                // Close gaps go in one request (what we have in between
                // comes again and is dropped): requests cost our budget,
                // answers do not.
                Some((from, to)) if seq - *to <= MERGE_GAP && seq - *from < MAX_RESEND => *to = seq,
                _ if count >= budget => break,
                _ => ranges.push((seq, seq)),
            }
        }
        for &(from, to) in &ranges {
            for (_, attempt) in self.missing.range_mut(from..=to) {
                retrying |= attempt.tries >= TRIES_BEFORE_WAITING;
                attempt.tries += 1;
                attempt.since = now;
            }
            out.push(Output::Request { from, to });
        }
        if retrying {
            out.push(Output::Waiting {
                missing: self.missing(),
            });
        }
        out
    }

    /// When [`Reassembly::poll`] next has something to do, given enough
    /// budget: the earlier of [`Reassembly::next_request`] and
    /// [`Reassembly::next_give_up`]. `None` while nothing is missing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.missing
            .values()
            .map(|a| a.due(self.retry_base, self.retry_cap))
            .min()
    }

    /// When [`Reassembly::poll`] next wants to request a missing event (it
    /// does so only with budget left).
    pub fn next_request(&self) -> Option<Instant> {
        self.missing
            .values()
            .filter(|a| a.tries < self.max_tries)
            .map(|a| a.due(self.retry_base, self.retry_cap))
            .min()
    }

    /// When [`Reassembly::poll`] next gives up on a missing event (whatever
    /// the budget).
    pub fn next_give_up(&self) -> Option<Instant> {
        self.missing
            .values()
            .filter(|a| a.tries >= self.max_tries)
            .map(|a| a.due(self.retry_base, self.retry_cap))
            .min()
    }

    /// Notes that events up to `last` exist, opening gaps for the ones not
    /// received, and moves the window if it would grow past [`MAX_WINDOW`].
    fn extend_known(&mut self, now: Instant, last: u64, out: &mut Vec<Output>) {
        let last = last.min(u64::MAX - 1);
        if last <= self.known_last {
            return;
        }
        let window_start = last.saturating_sub(MAX_WINDOW - 1);
        if window_start > self.next {
            self.skip_to(window_start, out);
        }
        let first_new = self.known_last.saturating_add(1).max(self.next);
        for seq in first_new..=last {
            self.missing.insert(
                seq,
                Attempt {
                    tries: 0,
                    since: now,
                },
            );
        }
        self.known_last = last;
    }

    /// Delivers everything held below `limit` and declares the rest below
    /// it lost, without iterating over the (possibly huge) lost range.
    fn skip_to(&mut self, limit: u64, out: &mut Vec<Output>) {
        self.skipped_from.get_or_insert(self.next);
        let kept = self.held.split_off(&limit);
        let below = std::mem::replace(&mut self.held, kept);
        self.missing = self.missing.split_off(&limit);
        let mut cursor = self.next;
        for (seq, slot) in below {
            if seq > cursor {
                push_lost(out, cursor, seq - 1, LossReason::TooFarBehind);
            }
            if matches!(slot, Slot::Event(_)) {
                self.shown_through = seq;
            }
            emit(out, seq, slot, self.base);
            cursor = seq + 1;
        }
        if cursor < limit {
            push_lost(out, cursor, limit - 1, LossReason::TooFarBehind);
        }
        self.next = limit;
        self.known_last = self.known_last.max(limit - 1);
    }

    /// Delivers what is contiguous from `next`.
    fn flush(&mut self, out: &mut Vec<Output>) {
        while let Some(slot) = self.held.remove(&self.next) {
            if matches!(slot, Slot::Event(_)) {
                self.shown_through = self.next;
            }
            emit(out, self.next, slot, self.base);
            self.next += 1;
        }
    }
}

/// Events up to `base` (the join point) were said before we joined.
fn emit(out: &mut Vec<Output>, seq: u64, slot: Slot, base: u64) {
    match slot {
        Slot::Event(event) => out.push(Output::Deliver {
            seq,
            event,
            history: seq <= base,
        }),
        Slot::Lost(reason) => push_lost(out, seq, seq, reason),
    }
}

/// Adds a loss, merging it with an adjacent loss of the same kind just
/// before it so the user reads one line per run.
fn push_lost(out: &mut Vec<Output>, from: u64, to: u64, reason: LossReason) {
    if let Some(Output::Lost {
        to: prev_to,
        reason: prev_reason,
        ..
    }) = out.last_mut()
    {
        if *prev_reason == reason && *prev_to + 1 == from {
            *prev_to = to;
            return;
        }
    }
    out.push(Output::Lost { from, to, reason });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use udpchat_proto::{Nick, Text};

    fn chat(n: u64) -> RoomEvent {
        RoomEvent::Chat {
            nick: Nick::new("a").unwrap(),
            text: Text::new(&format!("m{n}")).unwrap(),
        }
    }

    fn delivered(out: &[Output]) -> Vec<u64> {
        out.iter()
            .filter_map(|o| match o {
                Output::Deliver { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    fn requests(out: &[Output]) -> Vec<(u64, u64)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Request { from, to } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_order_events_are_delivered_at_once() {
        let now = Instant::now();
        let mut r = Reassembly::new(10);
        assert_eq!(
            delivered(&r.handle_event(now, 11, Origin::Live, chat(11))),
            [11]
        );
        assert_eq!(
            delivered(&r.handle_event(now, 12, Origin::Live, chat(12))),
            [12]
        );
        assert!(r.poll(now + Duration::from_secs(10), 8).is_empty());
    }

    #[test]
    fn duplicates_are_dropped() {
        let now = Instant::now();
        let mut r = Reassembly::new(0);
        assert_eq!(
            delivered(&r.handle_event(now, 1, Origin::Live, chat(1))),
            [1]
        );
        assert!(r.handle_event(now, 1, Origin::Live, chat(1)).is_empty());
        assert!(r.handle_event(now, 1, Origin::Resend, chat(1)).is_empty());
    }

    #[test]
    fn gap_is_held_back_requested_and_filled_in_order() {
        let now = Instant::now();
        let mut r = Reassembly::new(0);
        r.handle_event(now, 1, Origin::Live, chat(1));
        assert!(delivered(&r.handle_event(now, 4, Origin::Live, chat(4))).is_empty());
        assert_eq!(r.missing(), 2);
        // Not at once: a reordered datagram may still come.
        assert!(requests(&r.poll(now, 8)).is_empty());
        let later = now + Duration::from_millis(100);
        assert_eq!(requests(&r.poll(later, 8)), [(2, 3)]);
        assert_eq!(
            delivered(&r.handle_event(later, 3, Origin::Resend, chat(3))),
            []
        );
        assert_eq!(
            delivered(&r.handle_event(later, 2, Origin::Resend, chat(2))),
            [2, 3, 4]
        );
        assert_eq!(r.missing(), 0);
    }

    #[test]
    fn unanswered_requests_are_repeated_then_given_up_as_lost() {
        let start = Instant::now();
        let mut r = Reassembly::new(0);
        r.handle_event(start, 2, Origin::Live, chat(2));
        let mut now = start;
        let mut asked = 0;
        let mut waiting = false;
        let mut lost = None;
        for _ in 0..2000 {
            now += Duration::from_millis(100);
            for o in r.poll(now, 8) {
                match o {
                    Output::Request { from: 1, to: 1 } => asked += 1,
                    Output::Waiting { missing: 1 } => waiting = true,
                    Output::Lost { from, to, reason } => lost = Some((from, to, reason)),
                    Output::Deliver { seq, .. } => assert_eq!(seq, 2),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(asked, MAX_TRIES);
        assert!(waiting);
        assert_eq!(lost, Some((1, 1, LossReason::NoAnswer)));
        assert_eq!(r.missing(), 0);
    }

    #[test]
    fn poll_timeout_is_when_poll_next_requests_or_gives_up() {
        let start = Instant::now();
        let mut r = Reassembly::new(0);
        assert_eq!(r.poll_timeout(), None);
        r.handle_event(start, 3, Origin::Live, chat(3));
        let mut now = start;
        let mut requests = 0;
        while let Some(due) = r.poll_timeout() {
            assert!(due > now);
            assert!(r.poll(due - Duration::from_nanos(1), 8).is_empty());
            if r.next_give_up().is_some() {
                assert_eq!(r.next_request(), None);
            } else {
                assert_eq!(r.next_request(), Some(due));
                requests += 1;
            }
            assert!(!r.poll(due, 8).is_empty());
            now = due;
        }
        assert_eq!(requests, MAX_TRIES);
        assert_eq!(r.delivered_through(), 3);
    }

    #[test]
    fn without_repair_the_only_deadline_is_giving_up() {
        let start = Instant::now();
        let mut r = Reassembly::new(0).without_repair();
        r.handle_event(start, 2, Origin::Live, chat(2));
        assert_eq!(r.next_request(), None);
        assert_eq!(r.next_give_up(), Some(start + FIRST_DELAY));
        assert_eq!(r.poll_timeout(), Some(start + FIRST_DELAY));
    }

    #[test]
    fn without_repair_gaps_are_reported_lost_without_requests() {
        let now = Instant::now();
        let mut r = Reassembly::new(0).without_repair();
        assert!(delivered(&r.handle_event(now, 3, Origin::Live, chat(3))).is_empty());
        let out = r.poll(now + Duration::from_millis(100), 8);
        assert!(requests(&out).is_empty());
        assert_eq!(
            out[0],
            Output::Lost {
                from: 1,
                to: 2,
                reason: LossReason::NoAnswer
            }
        );
        assert_eq!(delivered(&out), [3]);
    }

    #[test]
    fn gone_declares_the_range_lost_and_releases_what_follows() {
        let now = Instant::now();
        let mut r = Reassembly::new(0);
        r.handle_event(now, 5, Origin::Live, chat(5));
        let out = r.handle_gone(1, 3);
        assert_eq!(
            out,
            [Output::Lost {
                from: 1,
                to: 3,
                reason: LossReason::Gone
            }]
        );
        assert_eq!(
            delivered(&r.handle_event(now, 4, Origin::Resend, chat(4))),
            [4, 5]
        );
    }

    #[test]
    fn pong_reveals_a_lost_last_message() {
        let now = Instant::now();
        let mut r = Reassembly::new(3);
        r.handle_event(now, 4, Origin::Live, chat(4));
        r.handle_last_seq(now, 5);
        assert_eq!(requests(&r.poll(now + Duration::from_secs(1), 8)), [(5, 5)]);
        assert_eq!(
            delivered(&r.handle_event(now, 5, Origin::Resend, chat(5))),
            [5]
        );
    }

    #[test]
    fn history_is_shown_once_marked_and_is_never_a_gap() {
        let now = Instant::now();
        let mut r = Reassembly::new(10);
        let out = r.handle_event(now, 3, Origin::History, chat(3));
        assert!(matches!(
            out[..],
            [Output::Deliver {
                seq: 3,
                history: true,
                ..
            }]
        ));
        assert_eq!(
            delivered(&r.handle_event(now, 7, Origin::History, chat(7))),
            [7]
        );
        assert!(r.handle_event(now, 7, Origin::History, chat(7)).is_empty());
        assert!(r
            .handle_event(now, 11, Origin::History, chat(11))
            .is_empty());
        assert_eq!(r.missing(), 0);
        assert!(r.poll(now + Duration::from_secs(5), 8).is_empty());
    }

    #[test]
    fn a_confirmed_last_seq_undoes_a_forged_huge_number() {
        let now = Instant::now();
        let mut r = Reassembly::new(4);
        // A forged event far ahead moves the window and declares 5.. lost.
        let out = r.handle_event(now, u64::MAX - 1, Origin::Live, chat(1));
        assert!(delivered(&out).is_empty());
        assert!(r.delivered_through() > 1_000);
        // The relay says its newest is 6: we expect 5 again, and ask for
        // 5 and 6.
        let out = r.handle_confirmed_last(now, 6);
        assert!(delivered(&out).is_empty());
        assert_eq!(r.delivered_through(), 4);
        assert_eq!(r.known_last(), 6);
        assert_eq!(r.missing(), 2);
        let out = r.handle_event(now, 5, Origin::Live, chat(5));
        assert_eq!(delivered(&out), [5]);
        let out = r.handle_event(now, 7, Origin::Live, chat(7));
        assert!(delivered(&out).is_empty(), "6 is missing");
        let out = r.handle_event(now, 6, Origin::Live, chat(6));
        assert_eq!(delivered(&out), [6, 7]);
    }

    #[test]
    fn a_confirmed_last_seq_discards_held_events_above_it_but_keeps_what_was_shown() {
        let now = Instant::now();
        let mut r = Reassembly::new(0);
        assert_eq!(
            delivered(&r.handle_event(now, 1, Origin::Live, chat(1))),
            [1]
        );
        assert_eq!(
            delivered(&r.handle_event(now, 2, Origin::Live, chat(2))),
            [2]
        );
        // Held behind a gap at 3.
        assert!(delivered(&r.handle_event(now, 9, Origin::Live, chat(9))).is_empty());
        let out = r.handle_confirmed_last(now, 4);
        assert!(delivered(&out).is_empty());
        assert_eq!(r.known_last(), 4);
        assert_eq!(r.missing(), 2, "3 and 4 are still missing, 5..=9 are not");
        // A PONG below what was shown (delayed) leaves it shown.
        let out = r.handle_confirmed_last(now, 1);
        assert!(out.is_empty());
        assert_eq!(r.delivered_through(), 2);
        assert_eq!(
            delivered(&r.handle_event(now, 3, Origin::Live, chat(3))),
            [3]
        );
    }

    #[test]
    fn a_huge_jump_does_not_allocate_per_missing_number() {
        let now = Instant::now();
        let mut r = Reassembly::new(0);
        r.handle_event(now, 2, Origin::Live, chat(2));
        let out = r.handle_event(now, u64::MAX - 1, Origin::Live, chat(0));
        assert!(r.missing() < MAX_WINDOW);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Lost {
                from: 1,
                to: 1,
                reason: LossReason::TooFarBehind
            }
        )));
        assert_eq!(delivered(&out), [2]);
        // Requests are chunked and bounded by the budget.
        let reqs = requests(&r.poll(now + Duration::from_secs(1), 3));
        assert_eq!(reqs.len(), 3);
        assert!(reqs.iter().all(|(f, t)| t - f < MAX_RESEND));
    }

    #[test]
    fn the_largest_sequence_numbers_do_not_overflow() {
        let start = Instant::now();
        let mut r = Reassembly::new(u64::MAX);
        r.handle_event(start, u64::MAX, Origin::Live, chat(0));
        r.handle_last_seq(start, u64::MAX);
        let mut r = Reassembly::new(u64::MAX - 10);
        r.handle_event(start, u64::MAX - 1, Origin::Live, chat(0));
        r.handle_event(start, u64::MAX, Origin::Live, chat(0));
        // Give up on everything missing: delivery reaches the top.
        for i in 1..400 {
            r.poll(start + Duration::from_secs(i), 8);
        }
        assert_eq!(r.missing(), 0);
        assert_eq!(r.delivered_through(), u64::MAX - 1);
    }

    proptest! {
        /// Whatever a (hostile) relay sends, nothing panics and what is
        /// tracked stays within the window.
        #[test]
        fn any_input_keeps_memory_bounded(
            start_seq in any::<u64>(),
            steps in proptest::collection::vec(
                (0u8..4, any::<u64>(), any::<u64>(), any::<bool>()), 0..60),
        ) {
            let start = Instant::now();
            let mut r = Reassembly::new(start_seq);
            for (i, (kind, a, b, small)) in steps.into_iter().enumerate() {
                let now = start + Duration::from_millis(100 * i as u64);
                // Mix near and far numbers.
                let a = if small { start_seq.saturating_add(a % 300) } else { a };
                match kind {
                    0 => { r.handle_event(now, a, Origin::Live, chat(0)); }
                    1 => { r.handle_last_seq(now, a); }
                    2 => { r.handle_gone(a, b); }
                    _ => { r.poll(now, 8); }
                }
                prop_assert!(r.missing() + r.held.len() as u64 <= MAX_WINDOW);
            }
        }
    }

    #[test]
    fn requests_never_exceed_max_resend() {
        let now = Instant::now();
        let mut r = Reassembly::new(0);
        r.handle_event(now, 200, Origin::Live, chat(200));
        let reqs = requests(&r.poll(now + Duration::from_secs(1), 100));
        assert_eq!(reqs, [(1, 64), (65, 128), (129, 192), (193, 199)]);
    }

    /// The relay side of the property test: every event it ever sent, with
    /// the oldest `forgotten` ones gone from history.
    fn relay_answer(n: u64, forgotten: u64, from: u64, to: u64) -> (Vec<u64>, Option<(u64, u64)>) {
        let to = to.min(n);
        if from > to {
            return (Vec::new(), None);
        }
        let gone = if from <= forgotten {
            Some((from, to.min(forgotten)))
        } else {
            None
        };
        ((from.max(forgotten + 1)..=to).collect(), gone)
    }

    type Collected = Result<Vec<(u64, u64)>, TestCaseError>;

    /// Sorts outputs into what was shown, what was lost and what to request.
    fn collect(out: Vec<Output>, shown: &mut Vec<u64>, lost: &mut Vec<u64>) -> Collected {
        let mut reqs = Vec::new();
        for o in out {
            match o {
                Output::Deliver { seq, history, .. } => {
                    prop_assert!(!history);
                    shown.push(seq);
                }
                Output::Lost { from, to, reason } => {
                    prop_assert_eq!(reason, LossReason::Gone);
                    lost.extend(from..=to);
                }
                Output::Request { from, to } => reqs.push((from, to)),
                Output::Waiting { .. } => {}
            }
        }
        Ok(reqs)
    }

    proptest! {
        /// For any loss, duplication and reordering followed by repair,
        /// what is displayed is exactly what was sent, in order, once; and
        /// when the relay forgot some, exactly those are reported lost.
        #[test]
        fn repair_delivers_the_sent_sequence(
            n in 1u64..120,
            copies in proptest::collection::vec(0usize..3, 120),
            order in proptest::collection::vec(any::<u16>(), 240),
            forgotten_pct in prop_oneof![Just(0u64), 0u64..60],
            resend_loss in proptest::collection::vec(any::<bool>(), 64),
        ) {
            let forgotten = n * forgotten_pct / 100;
            let start = Instant::now();
            let mut r = Reassembly::new(0);
            // The network: each event 0, 1 or 2 times, shuffled.
            let mut wire: Vec<u64> = Vec::new();
            for seq in 1..=n {
                for _ in 0..copies[(seq - 1) as usize] {
                    wire.push(seq);
                }
            }
            let mut keyed: Vec<(u16, u64)> =
                wire.iter().enumerate().map(|(i, &s)| (order[i % order.len()], s)).collect();
            keyed.sort();
            let mut shown = Vec::new();
            let mut lost = Vec::new();
            for (_, seq) in keyed {
                let out = r.handle_event(start, seq, Origin::Live, chat(seq));
                collect(out, &mut shown, &mut lost)?;
            }
            // Repair: a PONG tells the newest number; requests are answered
            // from history, some answers lost too, until nothing is missing.
            let out = r.handle_last_seq(start, n);
            collect(out, &mut shown, &mut lost)?;
            let mut now = start;
            let mut round = 0;
            while r.missing() > 0 {
                prop_assert!(round < 40, "repair did not converge");
                now += Duration::from_millis(500);
                let out = r.poll(now, 8);
                let reqs = collect(out, &mut shown, &mut lost)?;
                for (from, to) in reqs {
                    let (events, gone) = relay_answer(n, forgotten, from, to);
                    if let Some((f, t)) = gone {
                        let out = r.handle_gone(f, t);
                        collect(out, &mut shown, &mut lost)?;
                    }
                    for seq in events {
                        // Early rounds lose some answers; repair must cope.
                        if round < 2 && resend_loss[(seq % 64) as usize] {
                            continue;
                        }
                        let out = r.handle_event(now, seq, Origin::Resend, chat(seq));
                        collect(out, &mut shown, &mut lost)?;
                    }
                }
                round += 1;
            }
            // Forgotten events that did arrive the first time are shown; the
            // rest are reported lost; together, 1..=n in order, once each.
            let mut all: Vec<u64> = shown.iter().chain(lost.iter()).copied().collect();
            all.sort();
            prop_assert_eq!(all, (1..=n).collect::<Vec<_>>());
            prop_assert!(shown.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", shown);
            prop_assert!(lost.iter().all(|&s| s <= forgotten));
            if forgotten == 0 {
                prop_assert_eq!(shown, (1..=n).collect::<Vec<_>>());
            }
        }
    }
}
