//! Our own chat messages: queued as typed, sent one at a time as `SAY`,
//! sent again (same id) while the echo is late, matched against the echo,
//! and given up after a while.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, Text};

use super::pacing::Budget;
use super::{Action, MessageIds};
use crate::render::Line;

/// An own message whose echo is not back is sent again (same id) this long
/// after it went out; the wait doubles on each try up to [`SAY_RETRY_CAP`].
pub(super) const SAY_RETRY_FIRST: Duration = Duration::from_millis(300);
const SAY_RETRY_CAP: Duration = Duration::from_secs(2);
/// Own messages remembered until their echo comes back (more than one only
/// without repair), and for how long.
const UNECHOED_MAX: usize = 64;
const UNECHOED_AGE: Duration = Duration::from_secs(30);
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
    /// When to send it again if the echo is still not back.
    retry_at: Instant,
    /// Times sent again.
    retries: u32,
}

/// Our chat messages from typed to echoed.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Typed, not sent yet.
    queue: VecDeque<Text>,
    /// Sent and waiting for their echo, oldest first; with repair at most
    /// one, so our messages reach the room in the order typed.
    unechoed: VecDeque<Unechoed>,
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

    /// After a rejoin: a message in flight goes again at once, with its id.
    /// A relay that forgot us relays it, one that did not drops it if it had
    /// it already.
    pub(super) fn resend_all(&mut self, now: Instant) {
        for u in &mut self.unechoed {
            u.retry_at = now;
        }
    }

    /// Sends queued messages while they may go. Only while joined.
    pub(super) fn drain(
        &mut self,
        now: Instant,
        repair: bool,
        budget: &mut Budget,
        ids: &mut MessageIds,
        out: &mut Vec<Action>,
    ) {
        if self.rename_hold.is_some_and(|t| now < t) {
            return;
        }
        // One message in flight at a time: the relay relays each SAY id
        // once but in the order SAYs arrive, so a lost message sent again
        // would overtake the ones sent after it. Stop-and-wait keeps our
        // messages in the order typed.
        // (Without repair nothing is sent again, so nothing waits.)
        while (self.unechoed.is_empty() || !repair)
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
            self.unechoed.push_back(Unechoed {
                id,
                text,
                at: now,
                retry_at: now + SAY_RETRY_FIRST,
                retries: 0,
            });
        }
    }

    /// Sends our message in flight again if its echo is overdue: either the
    /// `SAY` was lost (the relay relays it now) or its echo was (the relay
    /// drops the repeat). Returns true if it went: the caller then sends a
    /// `PING`, whose `PONG` shows an event we missed, which repair fetches.
    /// Only while joined.
    pub(super) fn retransmit(
        &mut self,
        now: Instant,
        repair: bool,
        budget: &mut Budget,
        out: &mut Vec<Action>,
    ) -> bool {
        if !repair {
            return false;
        }
        let Some(u) = self.unechoed.front_mut() else {
            return false;
        };
        if u.retry_at > now || !budget.try_take(now) {
            return false;
        }
        u.retries = u.retries.saturating_add(1);
        u.retry_at = now
            + SAY_RETRY_FIRST
                .saturating_mul(1 << u.retries.min(8))
                .min(SAY_RETRY_CAP);
        let say = ClientMsg::Say {
            id: u.id,
            text: u.text.clone(),
        };
        out.push(Action::Send(say.encode()));
        true
    }

    /// Gives up on messages whose echo has not come for [`UNECHOED_AGE`],
    /// saying so.
    pub(super) fn expire(&mut self, now: Instant, out: &mut Vec<Action>) {
        while let Some(u) = self.unechoed.front() {
            if now.saturating_duration_since(u.at) < UNECHOED_AGE {
                break;
            }
            let short: String = u.text.as_str().chars().take(40).collect();
            let more = if short.len() < u.text.as_str().len() {
                "…"
            } else {
                ""
            };
            out.push(Action::Show(Line::Notice(format!(
                "your message \"{short}{more}\" was not confirmed by the relay; it may not have arrived"
            ))));
            self.unechoed.pop_front();
        }
    }

    /// Our own message came back from the room: the oldest unechoed one
    /// with that text is settled.
    pub(super) fn handle_echo(&mut self, text: &Text) {
        if let Some(i) = self.unechoed.iter().position(|u| &u.text == text) {
            self.unechoed.remove(i);
        }
    }

    /// When [`Outbox::drain`], [`Outbox::retransmit`] or [`Outbox::expire`]
    /// next have something to do, if called in that order.
    pub(super) fn poll_timeout(&self, repair: bool, budget: &Budget) -> Option<Instant> {
        let token = budget.token_at();
        let drain = (!self.queue.is_empty() && (self.unechoed.is_empty() || !repair))
            .then(|| self.rename_hold.map_or(token, |hold| hold.max(token)));
        let front = self.unechoed.front();
        let retry = front.filter(|_| repair).map(|u| u.retry_at.max(token));
        let expiry = front.map(|u| u.at + UNECHOED_AGE);
        [drain, retry, expiry].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use udpchat_proto::{Origin, Text};

    use super::super::pacing::{BUDGET_BURST, BUDGET_PER_SEC};
    use super::super::tests::{chat_event, joined, nick, says, sent, shown};
    use super::SAY_RETRY_FIRST;
    use crate::command::Input;
    use crate::render::Line;

    #[test]
    fn typed_text_becomes_say_with_an_id_and_echo_marks_it_own() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_input(now, Input::Say(Text::new("hi  你好").unwrap()));
        assert_eq!(sent(&a), ["SAY 1 hi  你好"]);
        assert!(!s.is_settled());
        let a = s.handle_datagram(now, &chat_event(6, Origin::Live, "alice", "hi  你好"));
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
    fn a_burst_of_lines_goes_one_at_a_time_paced_and_in_order() {
        let start = Instant::now();
        let mut s = joined(start);
        let mut actions = Vec::new();
        for i in 0..40 {
            actions.extend(s.handle_input(
                start,
                Input::Say(Text::new(&format!("line {i:02}")).unwrap()),
            ));
        }
        let mut order = Vec::new();
        let mut seq = 5;
        let mut t = start;
        for _ in 0..400 {
            for m in sent(&actions) {
                if let Some(rest) = m.strip_prefix("SAY ") {
                    let (id, text) = rest.split_once(' ').unwrap();
                    // Ids count up: each message is new.
                    assert_eq!(id, (order.len() + 1).to_string());
                    order.push(text.to_owned());
                    seq += 1;
                    // Nothing else goes out before this one's echo.
                    actions = s.handle_timeout(t);
                    assert!(!sent(&actions).iter().any(|m| m.starts_with("SAY ")));
                    actions = s.handle_datagram(t, &chat_event(seq, Origin::Live, "alice", text));
                }
            }
            let allowed = f64::from(BUDGET_BURST)
                + f64::from(BUDGET_PER_SEC) * (t - start).as_secs_f64()
                + 1.0;
            assert!(
                order.len() as f64 <= allowed,
                "{} by {:?}",
                order.len(),
                t - start
            );
            t += Duration::from_millis(50);
            actions.extend(s.handle_timeout(t));
        }
        let want: Vec<String> = (0..40).map(|i| format!("line {i:02}")).collect();
        assert_eq!(order, want);
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
        assert!(says(&s.handle_timeout(now + Duration::from_millis(200))).is_empty());
        // No echo in time: the same SAY again, with a ping whose PONG would
        // reveal an echo we missed.
        let t = now + SAY_RETRY_FIRST;
        let a = s.handle_timeout(t);
        assert_eq!(says(&a), ["SAY 1 lost"]);
        assert!(sent(&a).contains(&"PING".to_owned()), "{a:?}");
        // Then with backoff: 600 ms later, not before.
        assert!(says(&s.handle_timeout(t + Duration::from_millis(500))).is_empty());
        let t = t + Duration::from_millis(600);
        assert_eq!(says(&s.handle_timeout(t)), ["SAY 1 lost"]);
        // The echo settles it: nothing more goes out.
        s.handle_datagram(t, &chat_event(6, Origin::Live, "alice", "lost"));
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
        s.handle_datagram(t, b"PONG 6");
        let a = s.handle_timeout(t + Duration::from_millis(100));
        assert!(sent(&a).contains(&"RESEND 6 6".to_owned()), "{a:?}");
        let a = s.handle_datagram(t, &chat_event(6, Origin::Resend, "alice", "one"));
        assert_eq!(says(&a), ["SAY 2 two"]);
    }

    #[test]
    fn a_repeated_echo_does_not_confirm_the_next_message_with_the_same_text() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_input(now, Input::Say(Text::new("ok").unwrap()));
        s.handle_input(now, Input::Say(Text::new("ok").unwrap()));
        let a = s.handle_datagram(now, &chat_event(6, Origin::Live, "alice", "ok"));
        assert_eq!(says(&a), ["SAY 2 ok"]);
        // The network repeats the first echo: shown once, second still open.
        let a = s.handle_datagram(now, &chat_event(6, Origin::Live, "alice", "ok"));
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
            s.handle_datagram(t, b"PONG 5");
            let a = s.handle_timeout(t);
            tries += says(&a).iter().filter(|m| *m == "SAY 1 void").count();
            if shown(&a)
                .iter()
                .any(|l| matches!(l, Line::Notice(n) if n.contains("void")))
            {
                notice = Some(ms);
                assert_eq!(says(&s.handle_timeout(t)), ["SAY 2 next"]);
                break;
            }
        }
        assert_eq!(notice, Some(30_000));
        // 300 ms, 600 ms, 1.2 s, then every 2 s.
        assert!((14..=17).contains(&tries), "{tries} tries");
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
        let a = s.handle_datagram(now, b"EVENT 6 live RENAME alice alicia");
        assert_eq!(sent(&a), ["SAY 1 hi"]);
    }
}
