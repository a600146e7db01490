//! The bounded history of numbered room events, for `RESEND` and for the
//! recent history a joining structured member gets.

use std::collections::VecDeque;

use udpchat_proto::RoomEvent;

/// The most recent room events. Sequence numbers are contiguous, so only
/// the first one is stored.
pub(crate) struct History {
    events: VecDeque<RoomEvent>,
    /// Sequence number of `events[0]` (meaningless while empty).
    first_seq: u64,
    capacity: usize,
}

impl History {
    pub(crate) fn new(capacity: usize) -> History {
        History {
            events: VecDeque::new(),
            first_seq: 1,
            capacity,
        }
    }

    /// Records event `seq`, which must be one more than the last recorded.
    pub(crate) fn push(&mut self, seq: u64, event: RoomEvent) {
        if self.capacity == 0 {
            return;
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.first_seq += 1;
        }
        if self.events.is_empty() {
            self.first_seq = seq;
        }
        debug_assert_eq!(seq, self.first_seq + self.events.len() as u64);
        self.events.push_back(event);
    }

    #[cfg(test)]
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
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &RoomEvent)> {
        let first = self.first_seq;
        self.events
            .iter()
            .enumerate()
            .map(move |(i, e)| (first + i as u64, e))
    }
}

#[cfg(test)]
mod tests {
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
}
