//! A member's private messages waiting for their `ACK` (the state; the
//! sending and retransmission rules are in [`crate::private`]). Kept apart
//! so the roster, which holds one per member, need not know those rules.

use std::collections::VecDeque;
use std::rc::Rc;

/// One `PRIVATE` waiting for its `ACK`.
pub(crate) struct Pending {
    pub(crate) pid: u64,
    pub(crate) first_sent_ms: u64,
    pub(crate) retransmits: u8,
    pub(crate) bytes: Rc<[u8]>,
}

/// A member's unacknowledged `PRIVATE`s, allocated only when used.
#[derive(Default)]
#[allow(clippy::box_collection)]
pub(crate) struct Outbox(pub(crate) Option<Box<VecDeque<Pending>>>);

impl Outbox {
    /// Forgets every waiting message.
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// The recipient acknowledged `pid`.
    pub(crate) fn ack(&mut self, pid: u64) {
        if let Some(pending) = self.0.as_mut() {
            pending.retain(|p| p.pid != pid);
            if pending.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Whether nothing waits (and nothing is allocated).
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The private ids waiting, oldest first.
    #[cfg(test)]
    pub(crate) fn pids(&self) -> Vec<u64> {
        self.0
            .iter()
            .flat_map(|pending| pending.iter().map(|p| p.pid))
            .collect()
    }
}
