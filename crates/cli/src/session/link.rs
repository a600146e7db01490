//! The link to the relay while joined: the room's numbered events put back
//! in order, keepalive, the tail check after activity (pings matched to
//! their `PONG` by token), and the membership probe that notices a relay
//! which forgot us. Exists only while joined: a rejoin starts a fresh one
//! from the new `WELCOME`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, Origin, RoomEvent, Token};

use super::pacing::{Budget, Rtt};
use super::{send, Action};
use crate::reassembly::{self, Reassembly};

/// Pings missed before the connection counts as lost.
const PINGS_BEFORE_LOST: u32 = 3;
/// Membership probes in a row without an event in between.
const MAX_PROBES: u32 = 3;
/// After activity, ask for the relay's newest sequence number once the
/// room has been quiet this long, so a lost last message is noticed
/// without waiting for the next keepalive.
pub(super) const TAIL_CHECK: Duration = Duration::from_millis(500);
/// Resend requests allowed per poll.
const RESEND_PER_POLL: usize = 4;
/// Pings remembered for matching their `PONG` (round-trip samples).
const PINGS_REMEMBERED: usize = 8;
/// The least step of [`Instant`]: a deadline "after" an instant is this
/// much later.
const TICK: Duration = Duration::from_nanos(1);

/// A question "what is your newest event?" that must be answered by a
/// `PONG` to a ping sent after it was asked.
#[derive(Debug, Clone, Copy)]
struct Tail {
    /// The first ping token that counts as an answer.
    first_token: u64,
    /// When to ping (again).
    next_at: Instant,
    /// Pings sent for it so far.
    tries: u32,
}

/// One joined relay session (one `WELCOME`).
#[derive(Debug)]
pub(super) struct Link {
    reassembly: Reassembly,
    ping_interval: Duration,
    next_ping: Instant,
    /// The tail check in progress: runs until a `PONG` answers a ping sent
    /// after the activity that started it.
    tail: Option<Tail>,
    /// Tail checks answered since the last live event: the next one is
    /// asked twice as late (others may still be sending, and their last
    /// event may be lost too), until the keepalive takes over.
    followups: u32,
    /// The token of the next ping.
    next_token: u64,
    /// Recent pings: token and when sent.
    pings: VecDeque<(u64, Instant)>,
    /// End of input: the first token whose `PONG` tells the relay's newest
    /// number then, and that number once known.
    sync: Option<(u64, Option<u64>)>,
    /// When the relay last sent something only a member gets (anything but
    /// `PONG`, which strangers get too), or we last probed membership.
    last_member_rx: Instant,
    /// Probes sent since the last event: a relay answers a probe beyond its
    /// newest event with a `PONG` below it, which would ask again forever.
    probes: u32,
}

impl Link {
    /// The link a `WELCOME` opens.
    pub(super) fn new(
        now: Instant,
        last_seq: u64,
        history_from: Option<u64>,
        ping_interval: u32,
        idle_timeout: u32,
        repair: bool,
    ) -> Link {
        let mut reassembly = match history_from {
            Some(from) => Reassembly::with_history(now, last_seq, from),
            None => Reassembly::new(last_seq),
        };
        if !repair {
            reassembly = reassembly.without_repair();
        }
        let mut interval = u64::from(ping_interval.clamp(1, 300));
        if idle_timeout >= 3 {
            interval = interval.min(u64::from(idle_timeout / 3));
        }
        let ping_interval = Duration::from_secs(interval);
        let mut link = Link {
            reassembly,
            ping_interval,
            next_ping: now + ping_interval,
            tail: None,
            followups: 0,
            next_token: 1,
            pings: VecDeque::new(),
            sync: None,
            last_member_rx: now,
            probes: 0,
        };
        // Our JOIN event follows the WELCOME; if it is lost, only a PONG
        // reveals it: ask soon rather than at the next keepalive.
        link.schedule_tail_check(now + TAIL_CHECK);
        link
    }

    /// Every room event up to this one was shown or reported missed.
    pub(super) fn delivered_through(&self) -> u64 {
        self.reassembly.delivered_through()
    }

    /// The relay sent something only a member gets.
    /// The join point of the membership this link belongs to.
    pub(super) fn join_point(&self) -> u64 {
        self.reassembly.join_point()
    }

    pub(super) fn heard_as_member(&mut self, now: Instant) {
        self.last_member_rx = now;
    }

    /// Silence for this long (since `last_rx`) means the link is lost.
    fn lost_after(&self) -> Duration {
        self.ping_interval * PINGS_BEFORE_LOST + Duration::from_secs(1)
    }

    /// True when the relay has been silent too long.
    pub(super) fn is_lost(&self, now: Instant, last_rx: Option<Instant>) -> bool {
        let last_rx = last_rx.unwrap_or(now);
        now.saturating_duration_since(last_rx) > self.lost_after()
    }

    /// Keepalive, tail check and membership probe, as due.
    pub(super) fn handle_timeout(
        &mut self,
        now: Instant,
        rtt: &Rtt,
        budget: &mut Budget,
        out: &mut Vec<Action>,
    ) {
        let tail_due = self.tail.is_some_and(|t| t.next_at <= now);
        if now >= self.next_ping || tail_due {
            if let Some(tail) = self.tail.as_mut().filter(|_| tail_due) {
                // Again later, in case this ping or its PONG is lost: until
                // answered, backing off from the measured round trip.
                tail.tries = tail.tries.saturating_add(1);
                tail.next_at = now + rtt.backoff(tail.tries).max(rtt.rto());
            }
            self.ping(now, budget, out);
        }
        // A restarted relay answers our pings like anyone's, and if its
        // newest number happens to equal ours nothing else tells us it
        // forgot us. Now and then ask something only a member gets
        // answered: a non-member draws ERROR not-joined.
        if self.reassembly.known_last() > 0
            && now.saturating_duration_since(self.last_member_rx) > self.ping_interval * 2
        {
            self.probe(now, budget, out);
        }
    }

    /// Keepalive and "what is your newest event?" in one, with a fresh
    /// token.
    pub(super) fn ping(&mut self, now: Instant, budget: &mut Budget, out: &mut Vec<Action>) {
        self.next_ping = now + self.ping_interval;
        let token = self.next_token;
        self.next_token += 1;
        if self.pings.len() == PINGS_REMEMBERED {
            self.pings.pop_front();
        }
        self.pings.push_back((token, now));
        let token = Token::new(&token.to_string()).expect("a number is a token");
        send(budget, now, &ClientMsg::Ping(Some(token)), out);
    }

    /// Asks for our newest event again: a member gets it, a stranger gets
    /// `ERROR not-joined`.
    fn probe(&mut self, now: Instant, budget: &mut Budget, out: &mut Vec<Action>) {
        self.last_member_rx = now;
        let known = self.reassembly.known_last();
        let probe = ClientMsg::Resend {
            from: known,
            to: known,
        };
        send(budget, now, &probe, out);
    }

    /// Starts (or restarts) the tail check: a ping at `at`, and only a
    /// `PONG` to a ping from then on answers it.
    fn schedule_tail_check(&mut self, at: Instant) {
        self.tail = Some(Tail {
            first_token: self.next_token,
            next_at: at,
            tries: 0,
        });
    }

    /// End of input: ask now for the relay's newest number; once a `PONG`
    /// answers, [`Link::synced_through`] says it.
    pub(super) fn start_sync(&mut self, now: Instant) {
        if self.sync.is_none() {
            self.sync = Some((self.next_token, None));
            self.schedule_tail_check(now);
        }
    }

    /// [`Link::start_sync`] if input has ended (a new link after a rejoin).
    pub(super) fn start_sync_if(&mut self, input_ended: bool, now: Instant) {
        if input_ended {
            self.start_sync(now);
        }
    }

    /// The relay's newest number as of the end of input, once known.
    pub(super) fn sync_target(&self) -> Option<u64> {
        self.sync.and_then(|(_, target)| target)
    }

    /// `EVENT <seq> <origin> ...`.
    pub(super) fn handle_event(
        &mut self,
        now: Instant,
        seq: u64,
        origin: Origin,
        event: RoomEvent,
    ) -> Vec<reassembly::Output> {
        self.probes = 0;
        if origin == Origin::Live {
            // Once the room goes quiet, ask whether its last event reached
            // us (a busy room reveals gaps by itself).
            self.followups = 0;
            self.schedule_tail_check(now + TAIL_CHECK);
        }
        self.reassembly.handle_event(now, seq, origin, event)
    }

    /// `PONG <last-seq> [token]`: answers the tail question if it answers a
    /// ping sent since it was asked. Returns what the reassembly makes of
    /// it, or `None` if it needs checking first.
    pub(super) fn handle_pong(
        &mut self,
        now: Instant,
        last_seq: u64,
        token: Option<&Token>,
        rtt: &mut Rtt,
        budget: &mut Budget,
        out: &mut Vec<Action>,
    ) -> Option<Vec<reassembly::Output>> {
        let token = token.and_then(|t| t.to_string().parse::<u64>().ok());
        if let Some(token) = token {
            if let Some(i) = self.pings.iter().position(|&(t, _)| t == token) {
                // Each ping has its own token: the sample is unambiguous.
                if let Some((_, sent)) = self.pings.remove(i) {
                    rtt.sample(now.saturating_duration_since(sent));
                }
            }
            if self.tail.is_some_and(|t| token >= t.first_token) {
                // Answered. Ask again later, twice as late each time, while
                // that is sooner than the keepalive.
                self.followups = self.followups.saturating_add(1);
                let later = TAIL_CHECK.saturating_mul(1 << self.followups.min(16));
                self.tail = None;
                if later < self.ping_interval {
                    self.schedule_tail_check(now + later);
                }
            }
        }
        if last_seq < self.reassembly.known_last() {
            // We believed in events the relay says do not exist: a forged
            // or stale number (held events above it go, and a window a
            // forged number moved comes back), a restarted relay (numbering
            // from 1 again), or just a PONG the network delayed behind
            // newer events.
            let outputs = self.reassembly.handle_confirmed_last(now, last_seq);
            if self.reassembly.delivered_through() > last_seq && self.probes < MAX_PROBES {
                // Shown events above it: ask something only a member gets
                // answered; a relay that forgot us says not-joined, and we
                // rejoin then. (A few times: the relay answers a probe
                // beyond its newest event with a PONG like this one.)
                self.probes += 1;
                self.probe(now, budget, out);
            }
            Some(outputs)
        } else {
            if let (Some(token), Some((first, target @ None))) = (token, self.sync.as_mut()) {
                if token >= *first {
                    *target = Some(last_seq);
                }
            }
            // If our echo was lost, this reveals it and repair fetches it.
            Some(self.reassembly.handle_last_seq(now, last_seq))
        }
    }

    /// `GONE <from> <to>`.
    pub(super) fn handle_gone(&mut self, from: u64, to: u64) -> Vec<reassembly::Output> {
        self.reassembly.handle_gone(from, to)
    }

    /// Resend requests as the budget allows, and losses given up on.
    pub(super) fn poll_reassembly(
        &mut self,
        now: Instant,
        rtt: &Rtt,
        budget: &mut Budget,
    ) -> Vec<reassembly::Output> {
        self.reassembly.set_retry(rtt.rto(), rtt.backoff_cap());
        let allowed = budget.whole_tokens(now, RESEND_PER_POLL);
        self.reassembly.poll(now, allowed)
    }

    /// When [`Link::is_lost`], [`Link::handle_timeout`] or
    /// [`Link::poll_reassembly`] next have something to do.
    pub(super) fn poll_timeout(&self, last_rx: Option<Instant>, budget: &Budget) -> Instant {
        let lost = last_rx.map(|t| t + self.lost_after() + TICK);
        let probe = (self.reassembly.known_last() > 0)
            .then(|| self.last_member_rx + self.ping_interval * 2 + TICK);
        // A request needs a token; giving up on one does not.
        let request = self
            .reassembly
            .next_request()
            .map(|t| t.max(budget.token_at()));
        [
            lost,
            self.tail.map(|t| t.next_at),
            probe,
            request,
            self.reassembly.next_give_up(),
        ]
        .into_iter()
        .flatten()
        .fold(self.next_ping, Instant::min)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use udpchat_proto::Origin;

    use super::super::tests::{chat_event, joined, keyed, sent, shown, welcome};
    use super::super::Action;
    use super::TAIL_CHECK;
    use crate::render::Line;

    #[test]
    fn gap_is_repaired_with_resend() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "one")));
        let a = s.handle_datagram(now, &keyed(chat_event(8, Origin::Live, "bob", "three")));
        assert!(shown(&a).is_empty());
        let a = s.handle_timeout(now + Duration::from_millis(100));
        assert!(sent(&a).contains(&"RESEND 7 7".to_owned()));
        let a = s.handle_datagram(now, &keyed(chat_event(7, Origin::Resend, "bob", "two")));
        let texts: Vec<_> = shown(&a)
            .into_iter()
            .map(|l| match l {
                Line::Chat { text, .. } => text,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["two", "three"]);
    }

    #[test]
    fn silence_means_connection_lost_and_rejoin_with_same_nick() {
        let now = Instant::now();
        let mut s = joined(now);
        let later = now + Duration::from_secs(47);
        let a = s.handle_timeout(later);
        assert!(shown(&a).contains(&Line::Notice(crate::catalog::Msg::ConnectionLost)));
        let a = s.handle_timeout(later);
        assert!(sent(&a)[0].starts_with("HELLO udpchat/1 alice "));
        // Rejoining never gives up.
        let a = s.handle_timeout(later + Duration::from_secs(600));
        assert!(!a.contains(&Action::NoRelay));
        assert!(!sent(&a).is_empty());
    }

    #[test]
    fn pong_below_what_we_saw_is_checked_with_a_probe_before_rejoining() {
        let now = Instant::now();
        let mut s = joined(now);
        s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "x")));
        // A late PONG, overtaken by event 6: no reason to rejoin yet.
        let a = s.handle_datagram(now, &keyed(b"PONG 5"));
        assert_eq!(sent(&a), ["RESEND 6 6"]);
        assert!(s.is_joined());
        // A restarted relay: its answer to the probe says it forgot us.
        let a = s.handle_datagram(now, &keyed(b"PONG 0"));
        assert_eq!(sent(&a), ["RESEND 6 6"]);
        let a = s.handle_datagram(now, &keyed(b"ERROR not-joined you have not joined"));
        assert!(shown(&a).contains(&Line::Notice(crate::catalog::Msg::ConnectionLost)));
        assert!(!s.is_joined());
        // After the new WELCOME, sequence numbers start over.
        s.handle_datagram(now, &keyed(welcome("alice", 0)));
        let a = s.handle_datagram(now, &keyed(chat_event(1, Origin::Live, "bob", "again")));
        assert_eq!(shown(&a).len(), 1);
    }

    #[test]
    fn a_late_pong_overtaken_by_newer_events_is_not_a_restart() {
        let now = Instant::now();
        let mut s = joined(now);
        // Ask for the newest number while we know 5...
        let ping = sent(&s.handle_timeout(now + Duration::from_secs(16)));
        assert!(ping.iter().any(|m| m.starts_with("PING ")), "{ping:?}");
        // ...event 6 overtakes the answer, which says 5.
        s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "x")));
        let a = s.handle_datagram(now, &keyed(b"PONG 5"));
        assert!(s.is_joined(), "{a:?}");
        // The relay answers the probe as it answers a member: no rejoin.
        assert_eq!(sent(&a), ["RESEND 6 6"]);
        let a = s.handle_datagram(now, &keyed(chat_event(6, Origin::Resend, "bob", "x")));
        assert!(s.is_joined());
        assert!(shown(&a).is_empty(), "shown twice: {a:?}");
    }

    #[test]
    fn after_the_room_goes_quiet_the_tail_is_checked_until_answered() {
        let start = Instant::now();
        let mut s = joined(start);
        // WELCOME's own tail check, answered.
        assert_eq!(sent(&s.handle_timeout(start + TAIL_CHECK)), ["PING 1"]);
        s.handle_datagram(start + TAIL_CHECK, &keyed(b"PONG 5 1"));
        let quiet = start + Duration::from_secs(2);
        s.handle_datagram(
            quiet,
            &keyed(chat_event(6, Origin::Live, "bob", "last words")),
        );
        let mut pings = Vec::new();
        for ms in (0..14_000).step_by(100) {
            let now = quiet + Duration::from_millis(ms);
            if sent(&s.handle_timeout(now))
                .iter()
                .any(|m| m.starts_with("PING"))
            {
                pings.push(ms);
            }
        }
        // Unanswered: after 0.5 s of quiet, then backing off from the
        // round trip (measured by the first PONG: at the 50 ms floor) up to
        // four timeouts, at least 250 ms (300 ms in steps of 100 ms), for
        // as long as no PONG answers.
        assert_eq!(pings[..3], [500, 600, 800]);
        assert!(
            pings.windows(2).skip(2).all(|w| w[1] - w[0] == 300),
            "{pings:?}"
        );
        assert!(pings.len() > 40);
        // A PONG to a ping from before the activity does not answer it.
        s.handle_datagram(quiet, &keyed(b"PONG 6 1"));
        let now = quiet + Duration::from_millis(14_000);
        assert!(sent(&s.handle_timeout(now))[0].starts_with("PING "));

        s.handle_datagram(now, &keyed(chat_event(7, Origin::Live, "bob", "more")));
        let now = now + TAIL_CHECK;
        let ping = sent(&s.handle_timeout(now)).remove(0);
        let token = ping.strip_prefix("PING ").unwrap();
        s.handle_datagram(now, &keyed(format!("PONG 7 {token}").as_bytes()));
        // Answered: asked again only 1 s later (twice the quiet time, in
        // case others' last events are lost too), not before.
        let mut next = None;
        for ms in (100..8000).step_by(100) {
            let later = now + Duration::from_millis(ms);
            if sent(&s.handle_timeout(later))
                .iter()
                .any(|m| m.starts_with("PING"))
            {
                next = Some(ms);
                break;
            }
        }
        assert_eq!(next, Some(1000));
    }

    #[test]
    fn a_quiet_room_still_checks_that_the_relay_knows_us() {
        let start = Instant::now();
        let mut s = joined(start);
        s.handle_datagram(start, &keyed(b"EVENT 6 live JOIN alice"));
        let mut probes = Vec::new();
        for secs in 1..=40 {
            let now = start + Duration::from_secs(secs);
            for m in sent(&s.handle_timeout(now)) {
                if m.starts_with("PING") {
                    // Anyone gets PONG, even from a restarted relay.
                    s.handle_datagram(now, &keyed(b"PONG 6"));
                }
                if m.starts_with("RESEND") {
                    probes.push((secs, m));
                }
            }
        }
        assert_eq!(probes.first(), Some(&(31, "RESEND 6 6".to_owned())));
        assert!(s.is_joined());
        // A relay that forgot us says so, and we rejoin.
        s.handle_datagram(start, &keyed(b"ERROR not-joined you have not joined"));
        assert!(!s.is_joined());
    }
}

#[cfg(test)]
mod end_of_input_tests {
    use std::time::{Duration, Instant};

    use udpchat_proto::Origin;

    use super::super::tests::{chat_event, joined, keyed, sent};
    use super::super::Shortfall;

    /// The token of the one `PING` among `sent`.
    fn ping_token(sent: &[String]) -> String {
        let ping = sent
            .iter()
            .find(|m| m.starts_with("PING "))
            .expect("a PING");
        ping["PING ".len()..].to_owned()
    }

    #[test]
    fn piped_mode_is_caught_up_only_with_everything_up_to_the_relays_newest_at_the_end() {
        let start = Instant::now();
        let mut s = joined(start);
        // The tail check after WELCOME asks with token 1, unanswered yet.
        let now = start + super::TAIL_CHECK;
        assert_eq!(ping_token(&sent(&s.handle_timeout(now))), "1");
        s.handle_datagram(now, &keyed(chat_event(6, Origin::Live, "bob", "one")));
        s.end_of_input(now);
        assert!(!s.is_caught_up(), "the relay has not said its newest yet");
        assert_eq!(s.shortfall().missing, None);
        // The question goes at once, with a fresh token.
        let token = ping_token(&sent(&s.handle_timeout(now)));
        // A PONG to an older ping does not answer it.
        s.handle_datagram(now, &keyed(b"PONG 8 1"));
        assert_eq!(s.shortfall().missing, None);
        // The answer: 8 is the newest, we have up to 6.
        s.handle_datagram(now, &keyed(format!("PONG 8 {token}").as_bytes()));
        assert!(!s.is_caught_up());
        assert_eq!(
            s.shortfall(),
            Shortfall {
                unconfirmed: 0,
                missing: Some(2),
                lost: 0
            }
        );
        assert!(s.shortfall().anything_lost());
        // Repair asks for them; they come.
        let later = now + Duration::from_millis(100);
        assert!(sent(&s.handle_timeout(later)).contains(&"RESEND 7 8".to_owned()));
        s.handle_datagram(later, &keyed(chat_event(7, Origin::Resend, "bob", "two")));
        s.handle_datagram(later, &keyed(chat_event(8, Origin::Resend, "bob", "three")));
        assert!(s.is_caught_up());
        assert!(s.shortfall().is_nothing());
    }
}
