//! Private messages to structured members: each `PRIVATE` waits in the
//! recipient's [`Outbox`] until it is acknowledged, and is sent again 1, 2,
//! 4 and 8 s after the first send, then given up; at most
//! [`MAX_PENDING_PRIVATE`] wait per member.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::outbox::{Outbox, Pending};
use crate::roster::Roster;
use crate::{Event, Outputs, Stats, Transmit};

/// Unacknowledged `PRIVATE` messages kept per structured member; when full,
/// the oldest is given up.
pub(crate) const MAX_PENDING_PRIVATE: usize = 32;

/// When an unacknowledged `PRIVATE` is sent again, counted from the first
/// send. After the last one the relay gives up.
const RETRANSMIT_AFTER_MS: [u64; 4] = [1_000, 2_000, 4_000, 8_000];

/// When to send a `PRIVATE` again. Private ids are unique per run, so a
/// timer for an acknowledged or dropped message simply finds nothing.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RetransmitTimer {
    due_ms: u64,
    addr: SocketAddr,
    pid: u64,
}

/// The private ids and the retransmission timers of every outbox.
pub(crate) struct Privates {
    retransmits: BinaryHeap<Reverse<RetransmitTimer>>,
    next_pid: u64,
}

impl Privates {
    pub(crate) fn new() -> Privates {
        Privates {
            retransmits: BinaryHeap::new(),
            next_pid: 1,
        }
    }

    /// A fresh private id (unique per run).
    pub(crate) fn next_pid(&mut self) -> u64 {
        let pid = self.next_pid;
        self.next_pid += 1;
        pid
    }

    /// Keeps `bytes`, the `PRIVATE` `pid` just sent to `to`, in its outbox
    /// until acknowledged, giving up the oldest if the outbox is full.
    pub(crate) fn track(
        &mut self,
        outbox: &mut Outbox,
        to: SocketAddr,
        pid: u64,
        bytes: Rc<[u8]>,
        now_ms: u64,
        out: &mut Outputs,
    ) {
        let pending = outbox.0.get_or_insert_with(Default::default);
        if pending.len() == MAX_PENDING_PRIVATE {
            pending.pop_front();
            out.events.push(Event::Dropped {
                addr: to,
                why: "too many unacknowledged private messages; gave up the oldest",
            });
        }
        pending.push_back(Pending {
            pid,
            first_sent_ms: now_ms,
            retransmits: 0,
            bytes,
        });
        self.retransmits.push(Reverse(RetransmitTimer {
            due_ms: now_ms + RETRANSMIT_AFTER_MS[0],
            addr: to,
            pid,
        }));
    }

    /// Sends every `PRIVATE` due again by `now_ms`, giving up those sent
    /// often enough.
    pub(crate) fn handle_timeout(
        &mut self,
        now_ms: u64,
        roster: &mut Roster,
        stats: &mut Stats,
        out: &mut Outputs,
    ) {
        while let Some(Reverse(timer)) = self.retransmits.peek() {
            if timer.due_ms > now_ms {
                break;
            }
            let Some(Reverse(timer)) = self.retransmits.pop() else {
                break;
            };
            self.retransmit(timer, roster, stats, out);
        }
    }

    fn retransmit(
        &mut self,
        timer: RetransmitTimer,
        roster: &mut Roster,
        stats: &mut Stats,
        out: &mut Outputs,
    ) {
        let Some(member) = roster.get_mut(&timer.addr) else {
            return;
        };
        let key = member.client_key();
        let Some(pending) = member.outbox.0.as_mut() else {
            return;
        };
        let Some(index) = pending.iter().position(|p| p.pid == timer.pid) else {
            return;
        };
        let entry = &mut pending[index];
        let scheduled = RETRANSMIT_AFTER_MS
            .get(usize::from(entry.retransmits))
            .map(|after| entry.first_sent_ms + after);
        if scheduled != Some(timer.due_ms) {
            // An older schedule's timer (the member resumed or spoke again
            // after a port unreachable, and got a fresh one).
            return;
        }
        if member.unreachable_since_ms != 0 {
            // Muted by a port unreachable: not sent, not counted, no next
            // timer; its first command sends it again with a fresh
            // schedule (`moved`).
            return;
        }
        stats.datagrams_out += 1;
        out.transmits
            .push(Transmit::keyed(timer.addr, key, Rc::clone(&entry.bytes)));
        entry.retransmits += 1;
        if let Some(after) = RETRANSMIT_AFTER_MS.get(usize::from(entry.retransmits)) {
            self.retransmits.push(Reverse(RetransmitTimer {
                due_ms: entry.first_sent_ms + after,
                ..timer
            }));
        } else {
            pending.remove(index);
            if pending.is_empty() {
                member.outbox.clear();
            }
            out.events.push(Event::Dropped {
                addr: timer.addr,
                why: "private message never acknowledged; gave up",
            });
        }
    }

    /// The member now at `to` came from another address (a resume), or
    /// spoke again after a port unreachable had muted it: its
    /// unacknowledged `PRIVATE`s go to it at once, with a fresh
    /// retransmission schedule (older timers find nothing or repeat one).
    pub(crate) fn moved(
        &mut self,
        roster: &mut Roster,
        to: SocketAddr,
        now_ms: u64,
        stats: &mut Stats,
        out: &mut Outputs,
    ) {
        let Some(member) = roster.get_mut(&to) else {
            return;
        };
        // The new address's key (the outbox keeps the bare datagrams).
        let key = member.client_key();
        let Some(pending) = member.outbox.0.as_mut() else {
            return;
        };
        for entry in pending.iter_mut() {
            entry.first_sent_ms = now_ms;
            entry.retransmits = 0;
            stats.datagrams_out += 1;
            out.transmits
                .push(Transmit::keyed(to, key, Rc::clone(&entry.bytes)));
            self.retransmits.push(Reverse(RetransmitTimer {
                due_ms: now_ms + RETRANSMIT_AFTER_MS[0],
                addr: to,
                pid: entry.pid,
            }));
        }
    }

    /// When [`Privates::handle_timeout`] next has work.
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.retransmits.peek().map(|Reverse(t)| t.due_ms)
    }

    /// Forgets every timer (the room emptied).
    pub(crate) fn clear(&mut self) {
        self.retransmits.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use udpchat_proto::{LineEnding, Nick, Text};

    use super::*;
    use crate::testing::{addr, to, Harness};
    use crate::{Config, Dialect};

    fn outbox(h: &Harness, n: u8) -> &Outbox {
        &h.room.roster.get(&addr(n)).unwrap().outbox
    }

    #[test]
    fn msg_delivers_private_and_confirms_to_the_sender() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(1, "MSG BOB psst");
        assert_eq!(to(&sent, 2), ["[private from alice] psst"]);
        assert_eq!(to(&sent, 1), ["[private to bob] psst"]);
        assert!(h.out.events.contains(&Event::Private {
            from: Nick::new("alice").unwrap(),
            to: Nick::new("bob").unwrap(),
            text: Text::new("psst").unwrap(),
        }));
    }

    #[test]
    fn structured_private_and_sent_carry_ids() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        let sent = h.send(1, "PMSG 7 bob psst");
        assert_eq!(to(&sent, 2), ["PRIVATE 1 alice psst"]);
        assert_eq!(to(&sent, 1), ["SENT 7 bob psst"]);
        let sent = h.send(1, "MSG bob again");
        assert_eq!(to(&sent, 1), ["SENT - bob again"]);
    }

    #[test]
    fn private_to_absent_nick_is_no_such_nick() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(1, "MSG zed hi");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR no-such-nick: "));
        assert!(sent[0].1.contains("(zed)"));
    }

    #[test]
    fn duplicate_pmsg_only_resends_sent() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "PMSG 7 bob psst");
        let sent = h.send(1, "PMSG 7 bob psst");
        assert_eq!(sent, [(1, "SENT 7 bob psst".to_string())]);
    }

    #[test]
    fn pmsg_dedup_remembers_only_the_last_64_ids() {
        let mut h = Harness::with(Config {
            rate_burst: 1000,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        for id in 0..65 {
            h.send(1, &format!("PMSG {id} bob m{id}"));
        }
        // Id 0 fell out of the window, id 1 did not.
        assert_eq!(to(&h.send(1, "PMSG 0 bob m0"), 2).len(), 1);
        assert_eq!(to(&h.send(1, "PMSG 2 bob m2"), 2).len(), 0);
    }

    #[test]
    fn unacked_private_is_retransmitted_at_1_2_4_8_s_then_given_up() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "MSG bob psst");
        let mut at = Vec::new();
        for ms in (0..20_000).step_by(250) {
            h.elapsed = Duration::from_millis(ms);
            // Keep both members alive.
            for n in [1, 2] {
                h.send(n, "PING");
            }
            let sent = h.timeout();
            if to(&sent, 2).contains(&"PRIVATE 1 alice psst".to_owned()) {
                at.push(ms);
            }
        }
        assert_eq!(at, [1_000, 2_000, 4_000, 8_000]);
        assert!(outbox(&h, 2).is_empty());
    }

    #[test]
    fn acked_private_is_not_retransmitted() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "MSG bob psst");
        h.send(2, "ACK 1");
        h.advance_ms(1_000);
        assert!(h.timeout().is_empty());
        assert!(outbox(&h, 2).is_empty());
    }

    #[test]
    fn rejoining_as_classic_drops_pending_structured_privates() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "MSG bob psst");
        h.send(2, "N bob");
        assert_eq!(
            h.room.roster.get(&addr(2)).unwrap().dialect,
            Dialect::Classic(LineEnding::Bare)
        );
        h.advance_ms(1_000);
        assert!(to(&h.timeout(), 2).is_empty());
    }

    #[test]
    fn classic_recipient_gets_no_retransmission() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_classic(2, "bob");
        h.send(1, "MSG bob psst");
        h.advance_ms(1_000);
        assert!(h.timeout().is_empty());
    }

    #[test]
    fn unacked_private_queue_is_bounded() {
        let mut h = Harness::with(Config {
            rate_burst: 1000,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        for i in 0..(MAX_PENDING_PRIVATE + 5) {
            h.send(1, &format!("MSG bob m{i}"));
        }
        let pids = outbox(&h, 2).pids();
        assert_eq!(pids.len(), MAX_PENDING_PRIVATE);
        assert_eq!(pids[0], 6);
    }

    #[test]
    fn ack_from_stranger_is_dropped_silently() {
        let mut h = Harness::new();
        assert!(h.send(1, "ACK 3").is_empty());
    }
}
