//! Raised hands: the queue of members waiting for the teacher, and the
//! room's handlers for `HAND`/`H` (a member raises its hand) and the
//! console's `/next` (the teacher calls on the first in line).
//!
//! Rules:
//! - one entry per member (by address, which the roster maps one-to-one to
//!   a nickname); raising again keeps the place in line and updates the
//!   question;
//! - a member that leaves (any reason) is taken out of the queue; one that
//!   reconnects from a new address or renames keeps its place;
//! - `/next` takes the first in line and sends it `HAND called` (classic:
//!   `* the teacher calls on you`), uncharged, like the relay's own `BYE`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_proto::{HandNotice, Nick, RelayMsg, Text};

use crate::dialect::Context;
use crate::{Event, Outputs, Refusal, Room};

/// A raised hand, as the console sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedHand {
    /// Who raised it (the nickname it holds now).
    pub nick: Nick,
    /// From where.
    pub addr: SocketAddr,
    /// What it wants to ask, if it said.
    pub question: Option<Text>,
    /// When it was first raised, on the room clock (since the room started).
    pub raised_at: Duration,
}

/// The queue of raised hands, first in line first.
#[derive(Debug, Default)]
pub(crate) struct Hands {
    queue: VecDeque<RaisedHand>,
}

impl Hands {
    /// Raises (or re-raises) the hand of the member at `addr`; returns its
    /// place in line, from 1, and whether it was up already.
    pub(crate) fn raise(
        &mut self,
        addr: SocketAddr,
        nick: Nick,
        question: Option<Text>,
        now_ms: u64,
    ) -> (usize, bool) {
        if let Some(i) = self.queue.iter().position(|h| h.addr == addr) {
            let hand = &mut self.queue[i];
            hand.nick = nick;
            hand.question = question;
            return (i + 1, true);
        }
        self.queue.push_back(RaisedHand {
            nick,
            addr,
            question,
            raised_at: Duration::from_millis(now_ms),
        });
        (self.queue.len(), false)
    }

    /// Takes the hand of the member at `addr` down (it left).
    pub(crate) fn remove(&mut self, addr: SocketAddr) -> Option<RaisedHand> {
        let i = self.queue.iter().position(|h| h.addr == addr)?;
        self.queue.remove(i)
    }

    /// The member moved to a new address (`RECONNECT`): its hand follows.
    pub(crate) fn moved(&mut self, old: SocketAddr, new: SocketAddr) {
        for hand in self.queue.iter_mut().filter(|h| h.addr == old) {
            hand.addr = new;
        }
    }

    /// The member at `addr` is now called `nick`.
    pub(crate) fn renamed(&mut self, addr: SocketAddr, nick: &Nick) {
        for hand in self.queue.iter_mut().filter(|h| h.addr == addr) {
            hand.nick = nick.clone();
        }
    }

    /// Takes the first in line.
    pub(crate) fn pop(&mut self) -> Option<RaisedHand> {
        self.queue.pop_front()
    }

    /// Everyone leaves (shutdown).
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }

    pub(crate) fn list(&self) -> Vec<RaisedHand> {
        self.queue.iter().cloned().collect()
    }
}

impl Room {
    /// `HAND [question]` or `H [question]`: the member's hand goes up (or
    /// its question is updated); it is told its place in line.
    pub(crate) fn handle_hand(
        &mut self,
        ctx: Context,
        question: Option<Text>,
        out: &mut Outputs,
    ) -> Result<(), Refusal> {
        let member = self.roster.get(&ctx.from).ok_or(Refusal::NotJoined)?;
        let nick = member.nick.clone();
        let (position, again) =
            self.hands
                .raise(ctx.from, nick.clone(), question.clone(), ctx.now_ms);
        out.events.push(Event::Hand {
            addr: ctx.from,
            nick,
            question,
            position,
            again,
        });
        let position = u32::try_from(position).unwrap_or(u32::MAX);
        self.reply(ctx, &RelayMsg::Hand(HandNotice::Up { position }), out);
        Ok(())
    }

    /// Operator console `/hands`: the raised hands, first in line first.
    pub fn hands(&self) -> Vec<RaisedHand> {
        self.hands.list()
    }

    /// Operator console `/next`: takes the first hand in line down and
    /// tells that member the teacher calls on it (in its dialect). `None`
    /// if no hand is up.
    pub fn next_hand(&mut self, now: Instant, out: &mut Outputs) -> Option<RaisedHand> {
        self.touch(now);
        while let Some(hand) = self.hands.pop() {
            let Some(member) = self.roster.get(&hand.addr) else {
                continue;
            };
            let dialect = member.dialect;
            self.send_to_member(hand.addr, dialect, &RelayMsg::Hand(HandNotice::Called), out);
            out.events.push(Event::Called {
                addr: hand.addr,
                nick: hand.nick.clone(),
            });
            return Some(hand);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{addr, to, Harness};
    use crate::Event;

    #[test]
    fn hands_queue_in_order_and_each_is_told_its_place() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.join_classic(3, "carol");
        let sent = h.send(1, "H what is a port?\n");
        assert_eq!(to(&sent, 1), ["* your hand is up; 1st in line"]);
        let sent = h.send(2, "HAND");
        assert_eq!(to(&sent, 2), ["HAND up 2"]);
        assert!(h.out.events.iter().any(|e| matches!(
            e,
            Event::Hand {
                position: 2,
                again: false,
                question: None,
                ..
            }
        )));
        let sent = h.send(3, "HAND why UDP?");
        assert_eq!(to(&sent, 3), ["* your hand is up; 3rd in line"]);
        // Nobody else hears of it.
        assert_eq!(sent.len(), 1);
        let queue: Vec<String> = h.room.hands().iter().map(|h| h.nick.to_string()).collect();
        assert_eq!(queue, ["alice", "bob", "carol"]);
        assert_eq!(
            h.room.hands()[0].question.as_ref().map(|q| q.as_str()),
            Some("what is a port?")
        );
    }

    #[test]
    fn raising_again_keeps_the_place_and_updates_the_question() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        h.send(1, "H first question");
        h.send(2, "H");
        let sent = h.send(1, "H better question");
        assert_eq!(to(&sent, 1), ["* your hand is up; 1st in line"]);
        let hands = h.room.hands();
        assert_eq!(hands.len(), 2);
        assert_eq!(
            hands[0].question.as_ref().unwrap().as_str(),
            "better question"
        );
        assert!(h
            .out
            .events
            .iter()
            .any(|e| matches!(e, Event::Hand { again: true, .. })));
    }

    #[test]
    fn a_leaver_is_taken_out_of_the_queue() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        h.send(1, "H");
        h.send(2, "H");
        h.send(1, "Q alice");
        let queue: Vec<String> = h.room.hands().iter().map(|h| h.nick.to_string()).collect();
        assert_eq!(queue, ["bob"]);
        // Joining again does not bring the hand back.
        h.join_classic(1, "alice");
        assert_eq!(h.room.hands().len(), 1);
    }

    #[test]
    fn next_calls_on_the_first_in_its_own_dialect() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_classic(2, "bob");
        h.send(1, "HAND");
        h.send(2, "H question");
        h.out.clear();
        let now = h.now();
        let first = h.room.next_hand(now, &mut h.out).unwrap();
        assert_eq!(first.nick.as_str(), "alice");
        assert_eq!(first.addr, addr(1));
        assert_eq!(to(&h.sent(), 1), ["HAND called"]);
        assert!(to(&h.sent(), 2).is_empty());
        h.out.clear();
        let second = h.room.next_hand(now, &mut h.out).unwrap();
        assert_eq!(second.nick.as_str(), "bob");
        assert_eq!(to(&h.sent(), 2), ["* the teacher calls on you"]);
        assert!(h
            .out
            .events
            .iter()
            .any(|e| matches!(e, Event::Called { .. })));
        h.out.clear();
        assert_eq!(h.room.next_hand(now, &mut h.out), None);
        assert!(h.sent().is_empty());
    }

    #[test]
    fn chinese_classic_lines_and_a_non_member_is_refused() {
        let mut h = Harness::with(crate::Config {
            lang: udpchat_proto::Lang::Zh,
            ..crate::Config::default()
        });
        h.join_classic(1, "小明");
        let sent = h.send(1, "H");
        assert_eq!(to(&sent, 1), ["* 你已举手，排第 1 位"]);
        let now = h.now();
        h.out.clear();
        h.room.next_hand(now, &mut h.out);
        assert_eq!(to(&h.sent(), 1), ["* 老师点到你了"]);
        let sent = h.send(9, "H\n");
        assert!(to(&sent, 9)[0].starts_with("错误 not-joined"), "{sent:?}");
        assert!(h.room.hands().is_empty());
    }

    #[test]
    fn a_renamed_member_keeps_its_place_under_its_new_name() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.send(1, "H");
        h.send(1, "NICK alicia");
        assert_eq!(h.room.hands()[0].nick.as_str(), "alicia");
    }
}
