//! Our own chat messages: queued as typed, sent as `SAY` with several in
//! flight, sent again (same id) when the echo is later than the measured
//! round trip allows, confirmed by the echo whatever gaps other people's
//! messages have, and given up after a while.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, Text};

use super::pacing::{Budget, Rtt};
use super::{Action, MessageIds};
use crate::catalog::Msg;
use crate::render::Line;

/// Own messages in flight at once (the relay keeps a member's `SAY`s in id
/// order, holding up to 32 that arrive ahead of a missing one).
pub(super) const WINDOW: usize = 16;
/// Of those, how many of the oldest are sent again when overdue.
const RETRANSMIT_FRONT: usize = 3;
/// Own messages remembered until their echo comes back, and for how long.
const UNECHOED_MAX: usize = 64;
const UNECHOED_AGE: Duration = Duration::from_secs(30);
/// Sequence numbers of echoes remembered, so that a copy the network
/// repeats does not confirm another message with the same text.
const ECHOES_REMEMBERED: usize = 256;
/// How long messages typed after `/nick` wait for the rename to take effect,
/// so that the room sees them after it, under the new nickname.
const RENAME_HOLD: Duration = Duration::from_secs(2);

/// An own message sent as `SAY` and not yet seen come back from the relay.
#[derive(Debug)]
struct Unechoed {
    id: u64,
    text: Text,
    /// When it was first sent.
    at: Instant,
    /// When it was last sent.
    sent_at: Instant,
    /// When to send it again if the echo is still not back.
    retry_at: Instant,
    /// Times sent again.
    retries: u32,
    /// Sent when nothing older was in flight: the relay relayed it at once
    /// (nothing to wait behind), so its round trip is a fair sample.
    alone: bool,
}

/// Our chat messages from typed to echoed.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Typed, not sent yet.
    queue: VecDeque<Text>,
    /// Sent and waiting for their echo, oldest first.
    unechoed: VecDeque<Unechoed>,
    /// Whether the relay has echoed one of our `SAY`s since we joined: until
    /// then only one goes at a time, so the relay's idea of our next id
    /// starts from our first (PROTOCOL.md section 8, per-sender order).
    opened: bool,
    /// Sequence numbers of the echoes that confirmed a message.
    echoes: VecDeque<u64>,
    /// Until when our messages wait for a rename we asked for.
    rename_hold: Option<Instant>,
}

impl Outbox {
    /// Queues a typed message.
    pub(super) fn push(&mut self, text: Text) {
        self.queue.push_back(text);
    }

    /// How many are queued or not yet echoed.
    pub(super) fn len(&self) -> usize {
        self.queue.len() + self.unechoed.len()
    }

    /// True when everything typed has been echoed (or given up).
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.unechoed.is_empty()
    }

    /// We asked for a rename: what is typed next waits for it.
    pub(super) fn hold_for_rename(&mut self, now: Instant) {
        self.rename_hold = Some(now + RENAME_HOLD);
    }

    /// The rename happened, or was refused: stop waiting for it.
    pub(super) fn end_rename_hold(&mut self) {
        self.rename_hold = None;
    }

    /// After a (re)join: what is in flight goes again at once, with its id.
    /// A relay that forgot us relays it, one that did not sends its echo
    /// again. Sequence numbers of a new relay run start over.
    pub(super) fn resend_all(&mut self, now: Instant) {
        self.opened = false;
        self.echoes.clear();
        for u in &mut self.unechoed {
            u.retry_at = now;
        }
    }

    fn window(&self, repair: bool) -> usize {
        match (repair, self.opened) {
            // Without repair nothing is sent again, so nothing waits.
            (false, _) => usize::MAX,
            (true, true) => WINDOW,
            (true, false) => 1,
        }
    }

    /// Sends queued messages while the window and the budget allow. Only
    /// while joined.
    pub(super) fn drain(
        &mut self,
        now: Instant,
        repair: bool,
        rtt: &Rtt,
        budget: &mut Budget,
        ids: &mut MessageIds,
        out: &mut Vec<Action>,
    ) {
        if self.rename_hold.is_some_and(|t| now < t) {
            return;
        }
        while self.unechoed.len() < self.window(repair)
            && !self.queue.is_empty()
            && budget.try_take(now)
        {
            let Some(text) = self.queue.pop_front() else {
                break;
            };
            let id = ids.take();
            let say = ClientMsg::Say {
                id,
                text: text.clone(),
            };
            out.push(Action::Send(say.encode()));
            if self.unechoed.len() >= UNECHOED_MAX {
                self.unechoed.pop_front();
            }
            let alone = self.unechoed.is_empty();
            self.unechoed.push_back(Unechoed {
                alone,
                id,
                text,
                at: now,
                sent_at: now,
                retry_at: now + rtt.rto(),
                retries: 0,
            });
        }
    }

    /// Sends the oldest messages in flight (at most [`RETRANSMIT_FRONT`])
    /// again if their echo is overdue: either the `SAY` was lost (the relay
    /// relays it now, and the later ones it held behind it) or its echo was
    /// (the relay sends the echo again). Only the oldest few: the relay
    /// relays our `SAY`s in id order, so later ones wait behind a lost one
    /// there, and a later one whose echo is lost is fetched by repair as a
    /// gap in the room's events; more than one because the oldest's echo
    /// may be what was lost while the next `SAY` was. Paid from the repair
    /// allowance. Only while joined.
    pub(super) fn retransmit(
        &mut self,
        now: Instant,
        repair: bool,
        rtt: &Rtt,
        budget: &mut Budget,
        out: &mut Vec<Action>,
    ) {
        if !repair {
            return;
        }
        for u in self.unechoed.iter_mut().take(RETRANSMIT_FRONT) {
            if u.retry_at > now {
                continue;
            }
            if !budget.try_take(now) {
                return;
            }
            u.retries = u.retries.saturating_add(1);
            u.sent_at = now;
            u.retry_at = now + rtt.backoff(u.retries);
            let say = ClientMsg::Say {
                id: u.id,
                text: u.text.clone(),
            };
            out.push(Action::Send(say.encode()));
        }
    }

    /// The relay refused our chat for good (`muted`, `slow-mode`): every
    /// message in flight is given up (an echo that still comes is shown as
    /// anyone's line). Returns how many.
    pub(super) fn give_up_in_flight(&mut self) -> usize {
        let n = self.unechoed.len();
        self.unechoed.clear();
        n
    }

    /// Gives up on messages whose echo has not come for [`UNECHOED_AGE`],
    /// saying so.
    pub(super) fn expire(&mut self, now: Instant, out: &mut Vec<Action>) {
        while let Some(u) = self.unechoed.front() {
            if now.saturating_duration_since(u.at) < UNECHOED_AGE {
                break;
            }
            let short: String = u.text.as_str().chars().take(40).collect();
            let more = short.len() < u.text.as_str().len();
            out.push(Action::Show(Line::Notice(Msg::MessageUnconfirmed {
                start: short,
                more,
            })));
            self.unechoed.pop_front();
        }
    }

    /// Our own message came back from the room as event `seq` (live, or
    /// resent because we repeated its `SAY`): the oldest unechoed one with
    /// that text is confirmed. Its round trip is a sample only if it was
    /// sent once (Karn's rule) and nothing older was in flight then (it
    /// did not wait at the relay behind a lost one).
    pub(super) fn handle_echo(&mut self, now: Instant, seq: u64, text: &Text, rtt: &mut Rtt) {
        if self.echoes.contains(&seq) {
            return;
        }
        let Some(i) = self.unechoed.iter().position(|u| &u.text == text) else {
            return;
        };
        if let Some(u) = self.unechoed.remove(i) {
            if u.retries == 0 && u.alone {
                rtt.sample(now.saturating_duration_since(u.sent_at));
            }
        }
        self.opened = true;
        // Progress: the relay is reachable. Like TCP on a new ACK, the
        // oldest ones go back to the plain timeout (they may have waited at
        // the relay behind the one just confirmed, unanswered).
        let rto = rtt.rto();
        for u in self.unechoed.iter_mut().take(RETRANSMIT_FRONT) {
            u.retry_at = u.retry_at.min(u.sent_at + rto);
        }
        if self.echoes.len() == ECHOES_REMEMBERED {
            self.echoes.pop_front();
        }
        self.echoes.push_back(seq);
    }

    /// When [`Outbox::drain`], [`Outbox::retransmit`] or [`Outbox::expire`]
    /// next have something to do, if called in that order.
    pub(super) fn poll_timeout(
        &self,
        repair: bool,
        budget: &Budget,
        repair_budget: &Budget,
    ) -> Option<Instant> {
        let token = budget.token_at();
        let drain = (!self.queue.is_empty() && self.unechoed.len() < self.window(repair))
            .then(|| self.rename_hold.map_or(token, |hold| hold.max(token)));
        let retry = self
            .unechoed
            .iter()
            .take(RETRANSMIT_FRONT)
            .filter(|_| repair)
            .map(|u| u.retry_at)
            .min()
            .map(|t| t.max(repair_budget.token_at()));
        let expiry = self.unechoed.front().map(|u| u.at + UNECHOED_AGE);
        [drain, retry, expiry].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use udpchat_proto::{Origin, Text};

    use super::super::pacing::RTO_INITIAL as SAY_RETRY_FIRST;
    use super::super::pacing::{BUDGET_BURST, BUDGET_PER_SEC};
    use super::super::tests::{chat_event, joined, keyed, nick, says, sent, shown};
    use crate::command::Input;
    use crate::render::Line;

    #[test]
    fn typed_text_becomes_say_with_an_id_and_echo_marks_it_own() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_input(now, Input::Say(Text::new("hi  你好").unwrap()));
        assert_eq!(sent(&a), ["SAY 1 hi  你好"]);
        assert!(!s.is_settled());
        let a = s.handle_datagram(
            now,
            &keyed(chat_event(6, Origin::Live, "alice", "hi  你好")),
        );
        assert_eq!(
            shown(&a),
            [Line::Chat {
                nick: "alice".into(),
                text: "hi  你好".into(),
                own: true,
                history: false
            }]
        );
        assert!(s.is_settled());
    }

    #[test]
    fn a_burst_of_lines_goes_paced_in_order_first_alone_then_several_in_flight() {
        let start = Instant::now();
        let mut s = joined(start);
        let mut actions = Vec::new();
        for i in 0..60 {
            actions.extend(s.handle_input(
                start,
                Input::Say(Text::new(&format!("line {i:02}")).unwrap()),
            ));
        }
        // The first goes alone: the relay learns our first id from it.
        assert_eq!(says(&actions), ["SAY 1 line 00"]);
        let mut order: Vec<String> = Vec::new();
        let mut in_flight: Vec<String> = Vec::new();
        let mut most_in_flight = 0;
        let mut seq = 5;
        let mut t = start;
        for _ in 0..400 {
            for m in says(&actions) {
                let rest = m.strip_prefix("SAY ").unwrap();
                let (id, text) = rest.split_once(' ').unwrap();
                // Ids count up: each message is new.
                assert_eq!(id, (order.len() + 1).to_string());
                order.push(text.to_owned());
                in_flight.push(text.to_owned());
            }
            most_in_flight = most_in_flight.max(in_flight.len());
            let allowed = f64::from(BUDGET_BURST)
                + f64::from(BUDGET_PER_SEC) * (t - start).as_secs_f64()
                + 1.0;
            assert!(
                order.len() as f64 <= allowed,
                "{} by {:?}",
                order.len(),
                t - start
            );
            // The relay echoes what is in flight 20 ms later.
            t += Duration::from_millis(20);
            actions = Vec::new();
            for text in in_flight.drain(..) {
                seq += 1;
                actions.extend(
                    s.handle_datagram(t, &keyed(chat_event(seq, Origin::Live, "alice", &text))),
                );
            }
            actions.extend(s.handle_timeout(t));
        }
        let want: Vec<String> = (0..60).map(|i| format!("line {i:02}")).collect();
        assert_eq!(order, want);
        assert_eq!(most_in_flight, super::WINDOW);
        assert!(s.is_settled());
    }

    #[test]
    fn own_message_lost_on_the_way_is_sent_again_with_its_id() {
        let now = Instant::now();
        let mut s = joined(now);
        assert_eq!(
            says(&s.handle_input(now, Input::Say(Text::new("lost").unwrap()))),
            ["SAY 1 lost"]
        );
        let early = now + SAY_RETRY_FIRST - Duration::from_millis(1);
        assert!(says(&s.handle_timeout(early)).is_empty());
        // No echo in time (the timeout before a round trip is measured):
        // the same SAY again.
        let t = now + SAY_RETRY_FIRST;
        let a = s.handle_timeout(t);
        // No PING with it: the relay answers a repeat with the event.
        assert_eq!(sent(&a), ["SAY 1 lost"]);
        // Then with backoff: twice the timeout later, not before.
        let again = t + SAY_RETRY_FIRST * 2;
        assert!(says(&s.handle_timeout(again - Duration::from_millis(1))).is_empty());
        let t = again;
        assert_eq!(says(&s.handle_timeout(t)), ["SAY 1 lost"]);
        // The echo settles it: nothing more goes out.
        s.handle_datagram(t, &keyed(chat_event(6, Origin::Live, "alice", "lost")));
        assert!(s.is_settled());
        assert!(says(&s.handle_timeout(t + Duration::from_secs(10))).is_empty());
    }

    #[test]
    fn lost_echo_is_fetched_with_resend_and_the_next_message_follows() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("one").unwrap()));
        s.handle_input(now, Input::Say(Text::new("two").unwrap()));
        let t = now + SAY_RETRY_FIRST;
        assert_eq!(says(&s.handle_timeout(t)), ["SAY 1 one"]);
        // The relay had it (event 6) and dropped the repeat; its PONG says so.
        s.handle_datagram(t, &keyed(b"PONG 6"));
        let a = s.handle_timeout(t + Duration::from_millis(100));
        assert!(sent(&a).contains(&"RESEND 6 6".to_owned()), "{a:?}");
        let a = s.handle_datagram(t, &keyed(chat_event(6, Origin::Resend, "alice", "one")));
        assert_eq!(says(&a), ["SAY 2 two"]);
    }

    #[test]
    fn a_repeated_echo_does_not_confirm_the_next_message_with_the_same_text() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("ok").unwrap()));
        s.handle_input(now, Input::Say(Text::new("ok").unwrap()));
        let a = s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "alice", "ok")));
        assert_eq!(says(&a), ["SAY 2 ok"]);
        // The network repeats the first echo: shown once, second still open.
        let a = s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "alice", "ok")));
        assert!(shown(&a).is_empty());
        assert!(!s.is_settled());
        let t = now + SAY_RETRY_FIRST;
        assert_eq!(says(&s.handle_timeout(t)), ["SAY 2 ok"]);
    }

    #[test]
    fn unconfirmed_message_is_given_up_after_30_s_with_a_notice() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("void").unwrap()));
        s.handle_input(now, Input::Say(Text::new("next").unwrap()));
        let mut tries = 0;
        let mut notice = None;
        for ms in (100..=31_000).step_by(100) {
            let t = now + Duration::from_millis(ms);
            // Keep the connection alive meanwhile.
            s.handle_datagram(t, &keyed(b"PONG 5"));
            let a = s.handle_timeout(t);
            tries += says(&a).iter().filter(|m| *m == "SAY 1 void").count();
            if shown(&a)
                .iter()
                .any(|l| matches!(l, Line::Notice(n) if n.text(crate::catalog::Lang::En).contains("void")))
            {
                notice = Some(ms);
                assert_eq!(says(&s.handle_timeout(t)), ["SAY 2 next"]);
                break;
            }
        }
        assert_eq!(notice, Some(30_000));
        // 100 ms, 200 ms, then every 400 ms (four timeouts).
        assert!((70..=80).contains(&tries), "{tries} tries");
    }

    #[test]
    fn messages_typed_right_after_nick_go_out_after_the_rename() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_input(now, Input::Rename(nick("alicia")));
        assert_eq!(sent(&a), ["NICK alicia"]);
        // Sent now, it could reach the room before the rename.
        let a = s.handle_input(now, Input::Say(Text::new("hi").unwrap()));
        assert!(sent(&a).is_empty());
        let a = s.handle_datagram(now, &keyed(b"EVENT 6 live RENAME alice alicia"));
        assert_eq!(sent(&a), ["SAY 1 hi"]);
    }
}
