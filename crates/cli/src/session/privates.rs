//! Private messages: ours go out as `PMSG` and are sent again until the
//! relay confirms them with `SENT` (or says `no-such-nick`); theirs are
//! acknowledged every time and shown once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, Nick, Text};

use super::pacing::Budget;
use super::{send, Action};
use crate::catalog::{Msg, Reason};
use crate::render::Line;

/// Retransmission of our private messages until `SENT` (PROTOCOL.md: after
/// 1 s, 2 s, 4 s and 8 s, then report failure).
const PRIVATE_FIRST: Duration = Duration::from_secs(1);
const PRIVATE_TRIES: u32 = 5;
/// How many private message ids to remember for deduplication.
const SEEN_PIDS: usize = 256;

/// One of our private messages not yet confirmed.
#[derive(Debug)]
struct Pending {
    id: u64,
    to: Nick,
    text: Text,
    tries: u32,
    due: Instant,
}

/// Private messages in both directions.
#[derive(Debug, Default)]
pub(super) struct Privates {
    /// Ours, oldest first.
    pending: Vec<Pending>,
    /// The ids of the last [`SEEN_PIDS`] received, to show each once.
    seen: VecDeque<u64>,
}

impl Privates {
    /// Queues one of ours; it goes out on the next [`Privates::retransmit`].
    pub(super) fn push(&mut self, now: Instant, id: u64, to: Nick, text: Text) {
        self.pending.push(Pending {
            id,
            to,
            text,
            tries: 0,
            due: now,
        });
    }

    /// How many of ours are not confirmed yet.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when all of ours are confirmed (or given up).
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// After a rejoin: everything unconfirmed goes again at once.
    pub(super) fn resend_all(&mut self, now: Instant) {
        for p in &mut self.pending {
            p.due = now;
        }
    }

    /// Sends what is due (with backoff), and gives up on what was sent
    /// [`PRIVATE_TRIES`] times. Only while joined.
    pub(super) fn retransmit(&mut self, now: Instant, budget: &mut Budget, out: &mut Vec<Action>) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            if p.due > now {
                i += 1;
                continue;
            }
            if p.tries >= PRIVATE_TRIES {
                let p = self.pending.remove(i);
                out.push(Action::Show(Line::Error(Msg::PrivateUnconfirmed {
                    to: p.to.to_string(),
                })));
                continue;
            }
            p.due = now + PRIVATE_FIRST.saturating_mul(1 << p.tries.min(8));
            p.tries += 1;
            let msg = ClientMsg::PrivateReliable {
                id: p.id,
                to: p.to.clone(),
                text: p.text.clone(),
            };
            send(budget, now, &msg, out);
            i += 1;
        }
    }

    /// When [`Privates::retransmit`] next has something to do.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.due).min()
    }

    /// `PRIVATE <pid> <from> <text>`: acknowledged every time (our previous
    /// `ACK` may have been lost), shown the first time.
    pub(super) fn handle_private(
        &mut self,
        now: Instant,
        pid: u64,
        from: &Nick,
        text: &Text,
        budget: &mut Budget,
        out: &mut Vec<Action>,
    ) {
        send(budget, now, &ClientMsg::Ack(pid), out);
        if !self.seen.contains(&pid) {
            if self.seen.len() >= SEEN_PIDS {
                self.seen.pop_front();
            }
            self.seen.push_back(pid);
            out.push(Action::Show(Line::PrivateFrom {
                from: from.to_string(),
                text: text.to_string(),
            }));
        }
    }

    /// `SENT [<id>] <to> <text>`: ours arrived. Shown once per id (the
    /// network may repeat the `SENT`); a `SENT` without id is shown as is.
    pub(super) fn handle_sent(&mut self, id: Option<u64>, to: &Nick, text: &Text) -> Option<Line> {
        let known = match id {
            Some(id) => match self.pending.iter().position(|p| p.id == id) {
                Some(i) => {
                    self.pending.remove(i);
                    true
                }
                None => false, // a duplicate SENT
            },
            None => true,
        };
        known.then(|| Line::PrivateTo {
            to: to.to_string(),
            text: text.to_string(),
        })
    }

    /// `ERROR muted`: none of ours will be delivered; stop sending them.
    pub(super) fn give_up_all(&mut self) {
        self.pending.clear();
    }

    /// `ERROR no-such-nick`: errors carry no id, but the relay answers in
    /// order, so it is about the oldest unconfirmed private message.
    pub(super) fn handle_no_such_nick(&mut self, reason: Reason) -> Line {
        let to = (!self.pending.is_empty()).then(|| self.pending.remove(0).to.to_string());
        Line::Error(Msg::NoSuchNick { reason, to })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use udpchat_proto::Text;

    use super::super::tests::{joined, keyed, nick, sent, shown};
    use crate::command::Input;
    use crate::render::Line;

    #[test]
    fn private_messages_are_retransmitted_until_sent() {
        let now = Instant::now();
        let mut s = joined(now);
        let a = s.handle_input(
            now,
            Input::Msg {
                to: nick("bob"),
                text: Text::new("psst").unwrap(),
            },
        );
        assert_eq!(sent(&a), ["PMSG 1 bob psst"]);
        let a = s.handle_timeout(now + Duration::from_millis(1100));
        assert!(sent(&a).contains(&"PMSG 1 bob psst".to_owned()));
        let a = s.handle_datagram(now, &keyed(b"SENT 1 bob psst"));
        assert_eq!(
            shown(&a),
            [Line::PrivateTo {
                to: "bob".into(),
                text: "psst".into()
            }]
        );
        // A duplicate SENT shows nothing, and nothing is retransmitted.
        assert!(shown(&s.handle_datagram(now, &keyed(b"SENT 1 bob psst"))).is_empty());
        let a = s.handle_timeout(now + Duration::from_secs(5));
        assert!(!sent(&a).iter().any(|m| m.starts_with("PMSG")));
    }

    #[test]
    fn private_in_is_acked_every_time_and_shown_once() {
        let now = Instant::now();
        let mut s = joined(now);
        for round in 0..3 {
            let a = s.handle_datagram(now, &keyed(b"PRIVATE 9 bob secret"));
            assert_eq!(sent(&a), ["ACK 9"]);
            assert_eq!(shown(&a).len(), usize::from(round == 0));
        }
    }
}
