//! The numbering of room events and the bounded history of them, for
//! `RESEND` and for the recent history a joining structured member gets.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use udpchat_proto::{RoomEvent, MAX_RESEND};

/// The most recent room events. Sequence numbers are contiguous, so only
/// the first one is stored.
pub(crate) struct History {
    events: VecDeque<RoomEvent>,
    /// When each of `events` was numbered (the room's milliseconds).
    times: VecDeque<u64>,
    /// Sequence number of `events[0]` (meaningless while empty).
    first_seq: u64,
    capacity: usize,
    /// The newest event's number (0 before the first), held or not.
    last_seq: u64,
}

/// What to answer a `RESEND`: the part no longer held (`GONE`), then the
/// events still held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resend {
    /// `GONE <from> <to>`, if some of the range fell out of the history.
    pub(crate) gone: Option<(u64, u64)>,
    /// The sequence numbers to send again.
    pub(crate) held: RangeInclusive<u64>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> History {
        History {
            events: VecDeque::new(),
            times: VecDeque::new(),
            first_seq: 1,
            capacity,
            last_seq: 0,
        }
    }

    /// The newest event's sequence number (0 before the first).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Numbers `event`, said at `at_ms`, and keeps it; returns its
    /// sequence number.
    pub(crate) fn record(&mut self, event: RoomEvent, at_ms: u64) -> u64 {
        self.last_seq += 1;
        self.push_at(self.last_seq, event, at_ms);
        self.last_seq
    }

    /// When event `seq` was numbered, if still held.
    pub(crate) fn time_of(&self, seq: u64) -> Option<u64> {
        let index = seq.checked_sub(self.first_seq)?;
        self.times.get(usize::try_from(index).ok()?).copied()
    }

    /// What a `RESEND <first> <last>` gets: at most [`MAX_RESEND`] events
    /// from `first`, none beyond the newest; `None` if that leaves nothing.
    pub(crate) fn resend(&self, first: u64, last: u64) -> Option<Resend> {
        let first = first.max(1);
        let last = last
            .min(self.last_seq)
            .min(first.saturating_add(MAX_RESEND - 1));
        if first > last {
            return None;
        }
        let oldest = self.oldest_seq().unwrap_or(self.last_seq + 1);
        Some(Resend {
            gone: (first < oldest).then(|| (first, last.min(oldest - 1))),
            held: first.max(oldest)..=last,
        })
    }

    /// Records event `seq` with time 0 (tests).
    #[cfg(test)]
    fn push(&mut self, seq: u64, event: RoomEvent) {
        self.push_at(seq, event, 0);
    }

    /// Records event `seq`, which must be one more than the last recorded.
    fn push_at(&mut self, seq: u64, event: RoomEvent, at_ms: u64) {
        if self.capacity == 0 {
            return;
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.times.pop_front();
            self.first_seq += 1;
        }
        if self.events.is_empty() {
            self.first_seq = seq;
        }
        debug_assert_eq!(seq, self.first_seq + self.events.len() as u64);
        self.events.push_back(event);
        self.times.push_back(at_ms);
    }

    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The oldest sequence number still held, if any.
    pub(crate) fn oldest_seq(&self) -> Option<u64> {
        (!self.events.is_empty()).then_some(self.first_seq)
    }

    /// Event `seq`, if still held.
    pub(crate) fn get(&self, seq: u64) -> Option<&RoomEvent> {
        let index = seq.checked_sub(self.first_seq)?;
        self.events.get(usize::try_from(index).ok()?)
    }

    /// Every held event with its sequence number, oldest first.
    #[cfg(test)]
    fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &RoomEvent)> {
        let first = self.first_seq;
        self.events
            .iter()
            .enumerate()
            .map(move |(i, e)| (first + i as u64, e))
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{to, Harness};
    use crate::{Config, Outputs};

    use super::*;
    use udpchat_proto::{Nick, Text};

    fn host(s: &str) -> RoomEvent {
        RoomEvent::Host(Text::new(s).unwrap())
    }

    #[test]
    fn oldest_events_fall_out_when_full() {
        let mut h = History::new(2);
        h.push(1, host("a"));
        h.push(2, host("b"));
        h.push(3, host("c"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.oldest_seq(), Some(2));
        assert_eq!(h.get(1), None);
        assert_eq!(h.get(3), Some(&host("c")));
        assert_eq!(h.get(4), None);
        let seqs: Vec<u64> = h.iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, [2, 3]);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut h = History::new(0);
        h.push(1, RoomEvent::Join(Nick::new("a").unwrap()));
        assert_eq!(h.len(), 0);
        assert_eq!(h.oldest_seq(), None);
    }

    // ----- through the room -----

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
                "WELCOME udpchat/1 bob 3 15 60 1 <token>",
                "EVENT 1 history ago=0 JOIN alice",
                "EVENT 2 history ago=0 CHAT alice one",
                "EVENT 3 history ago=0 HOST two",
                "EVENT 4 live JOIN bob",
            ]
        );
        assert_eq!(to(&sent, 1), ["* bob joined"]);
    }

    #[test]
    fn history_on_join_is_the_most_recent_events_of_any_kind() {
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
        let history: Vec<String> = to(&sent, 2)
            .into_iter()
            .filter(|s| s.contains(" history "))
            .collect();
        // Contiguous, so that the client can tell a lost one from a skipped
        // one: WELCOME states the range.
        assert_eq!(
            history,
            [
                "EVENT 4 history ago=0 CHAT alice c",
                "EVENT 5 history ago=0 RENAME alice alicia"
            ]
        );
        assert_eq!(to(&sent, 2)[0], "WELCOME udpchat/1 bob 5 15 60 4 <token>");
    }

    #[test]
    fn history_and_resent_events_say_how_long_ago_they_were_numbered() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 early");
        h.advance_ms(90_500);
        h.send(1, "SAY 2 late");
        h.advance_ms(30_000);
        let sent = h.join_structured(2, "bob");
        assert_eq!(
            to(&sent, 2)[1..4],
            [
                "EVENT 1 history ago=120 JOIN alice",
                "EVENT 2 history ago=120 CHAT alice early",
                "EVENT 3 history ago=30 CHAT alice late",
            ]
        );
        assert_eq!(to(&sent, 2)[4], "EVENT 4 live JOIN bob");
        assert_eq!(
            to(&h.send(2, "RESEND 2 2"), 2),
            ["EVENT 2 resend ago=120 CHAT alice early"]
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
    fn resend_sends_held_events_with_resend_origin() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "M alice a");
        h.send(1, "M alice b");
        let sent = h.send(1, "RESEND 2 99");
        assert_eq!(
            to(&sent, 1),
            [
                "EVENT 2 resend ago=0 CHAT alice a",
                "EVENT 3 resend ago=0 CHAT alice b"
            ]
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
                "EVENT 3 resend ago=0 CHAT alice b",
                "EVENT 4 resend ago=0 CHAT alice c"
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
        assert_eq!(sent[63].1, "EVENT 64 resend ago=0 CHAT alice 62");
    }

    #[test]
    fn resend_beyond_last_seq_is_answered_with_pong_last_seq() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        assert_eq!(to(&h.send(1, "RESEND 5 9"), 1), ["PONG 1"]);
        // A forged huge number gets the same answer.
        let huge = format!("RESEND {} {}", u64::MAX - 1, u64::MAX);
        assert_eq!(to(&h.send(1, &huge), 1), ["PONG 1"]);
        // The newest event itself is still resent.
        assert_eq!(
            to(&h.send(1, "RESEND 1 9"), 1),
            ["EVENT 1 resend ago=0 JOIN alice"]
        );
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
}
