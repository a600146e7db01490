//! What limits how fast we send and how often we say the same thing: our
//! token buckets (one for what the user does, one for repair), the
//! measured round trip that times retransmissions, and the least gap
//! between two notices of one kind.

use std::time::{Duration, Instant};

/// Our budget for what the user does (typed chat, private messages,
/// commands): below the relay's default rate limit (burst 80, 40 per
/// second) together with the repair allowance, so a pasted paragraph or a
/// script is paced, not dropped.
pub(super) const BUDGET_BURST: u32 = 30;
pub(super) const BUDGET_PER_SEC: u32 = 15;
/// The allowance for repair (retransmitted `SAY`s, `RESEND`, pings), apart
/// from what the user types so that neither starves the other.
pub(super) const REPAIR_BURST: u32 = 30;
pub(super) const REPAIR_PER_SEC: u32 = 20;

/// Bounds of the retransmission timeout (and of its backoff), and its value
/// before the first round trip is measured (RFC 6298 says 1 s; a chat relay
/// is near). The cap is low because what we repeat is small and paced by
/// the repair allowance, and a link that loses in bursts is left only by
/// sending: waiting longer only makes the burst last longer.
pub(super) const RTO_MIN: Duration = Duration::from_millis(50);
pub(super) const RTO_MAX: Duration = Duration::from_secs(1);
pub(super) const RTO_INITIAL: Duration = Duration::from_millis(100);
/// The least cap of the backoff (see [`Rtt::backoff_cap`]).
pub(super) const BACKOFF_CAP_MIN: Duration = Duration::from_millis(250);

/// The round trip to the relay, measured (RFC 6298): smoothed round trip
/// and its variation, from samples of exchanges that were not repeated
/// (Karn's rule: the callers only feed those).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Rtt {
    /// (SRTT, RTTVAR) once a sample came.
    estimate: Option<(Duration, Duration)>,
}

impl Rtt {
    /// One measured round trip.
    pub(super) fn sample(&mut self, r: Duration) {
        self.estimate = Some(match self.estimate {
            None => (r, r / 2),
            Some((srtt, var)) => {
                let diff = srtt.abs_diff(r);
                (srtt * 7 / 8 + r / 8, var * 3 / 4 + diff / 4)
            }
        });
    }

    /// The retransmission timeout: SRTT + 2 RTTVAR (RFC 6298 says 4; its
    /// variation here is mostly reordering, which a repeat does not hurt)
    /// within
    /// [`RTO_MIN`]..=[`RTO_MAX`].
    pub(super) fn rto(&self) -> Duration {
        match self.estimate {
            None => RTO_INITIAL,
            Some((srtt, var)) => (srtt + var * 2).clamp(RTO_MIN, RTO_MAX),
        }
    }

    /// The timeout after `tries` unanswered tries: doubled each time, at
    /// most [`Rtt::backoff_cap`].
    pub(super) fn backoff(&self, tries: u32) -> Duration {
        self.rto()
            .saturating_mul(1 << tries.min(8))
            .min(self.backoff_cap())
    }

    /// The longest wait between tries: four timeouts, within
    /// [`BACKOFF_CAP_MIN`]..=[`RTO_MAX`]. Near a relay, a lost request is
    /// asked again within a quarter second rather than a second: what we
    /// repeat is small, paced by the repair allowance, and a link that
    /// loses in bursts is left only by sending.
    pub(super) fn backoff_cap(&self) -> Duration {
        (self.rto() * 4).clamp(BACKOFF_CAP_MIN, RTO_MAX)
    }
}

/// Least time between two notices of the same kind.
const NOTICE_GAP: Duration = Duration::from_secs(3);
/// ... and between two "still missing" notices (loss is routine on Wi-Fi).
const WAITING_NOTICE_GAP: Duration = Duration::from_secs(10);
/// ... and between two "malformed datagram" notices.
const GARBAGE_NOTICE_GAP: Duration = Duration::from_secs(1);

/// A token bucket for what we send. It counts in nanoseconds of refill
/// rather than in fractional tokens so that the instant a token is back is
/// exact: [`super::Session::poll_timeout`] wakes at it, and a float could
/// come back a hair short of one token and wake the loop again and again.
#[derive(Debug)]
pub(super) struct Budget {
    /// Tokens times `token`; below zero after sending what could not wait.
    credit: i64,
    /// When `credit` was last brought up to date.
    at: Instant,
    /// One token, in nanoseconds of refill.
    token: i64,
    /// A full bucket.
    burst: i64,
}

impl Budget {
    /// A full bucket for what the user does.
    pub(super) fn new(now: Instant) -> Budget {
        Budget::with(now, BUDGET_BURST, BUDGET_PER_SEC)
    }

    /// A full bucket for repair.
    pub(super) fn repair(now: Instant) -> Budget {
        Budget::with(now, REPAIR_BURST, REPAIR_PER_SEC)
    }

    fn with(now: Instant, burst: u32, per_sec: u32) -> Budget {
        let token = 1_000_000_000 / i64::from(per_sec.max(1));
        let burst = token * i64::from(burst);
        Budget {
            credit: burst,
            at: now,
            token,
            burst,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_nanos();
        // Anything beyond twice the burst fills the bucket anyway.
        let elapsed = i64::try_from(elapsed)
            .unwrap_or(i64::MAX)
            .min(2 * self.burst);
        self.credit = (self.credit + elapsed).min(self.burst);
        self.at = now;
    }

    /// Takes a token if one is there (for what can wait: chat, resend).
    pub(super) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.credit >= self.token {
            self.credit -= self.token;
            true
        } else {
            false
        }
    }

    /// Takes a token whether or not one is there (for what cannot wait).
    pub(super) fn take(&mut self, now: Instant) {
        self.refill(now);
        self.credit = (self.credit - self.token).max(-self.burst);
    }

    /// How many whole tokens are there now, at most `most`.
    pub(super) fn whole_tokens(&mut self, now: Instant, most: usize) -> usize {
        self.refill(now);
        usize::try_from(self.credit.max(0) / self.token).map_or(most, |n| n.min(most))
    }

    /// Empties the bucket: the relay said we are too fast.
    pub(super) fn empty(&mut self) {
        // Not brought up to date first: the refill since `at` still comes
        // (as it always has; the pause is "no tokens saved", not a penalty).
        self.credit = 0;
    }

    /// When [`Budget::try_take`] next succeeds (in the past if a token is
    /// there now).
    pub(super) fn token_at(&self) -> Instant {
        match u64::try_from(self.token - self.credit) {
            Ok(short) if short > 0 => self.at + Duration::from_nanos(short),
            _ => self.at,
        }
    }
}

/// Kinds of notices that are rate limited.
#[derive(Debug, Clone, Copy)]
pub(super) enum NoticeKind {
    /// Events still missing after a few requests.
    Waiting,
    /// The relay said we are too fast.
    Rate,
    /// A rejoin refused (room full and the like); shares the slot of `Rate`.
    RoomFull,
    /// A malformed datagram from the relay.
    Garbage,
}

/// When each kind of notice was last shown.
#[derive(Debug, Default)]
pub(super) struct Notices {
    waiting: Option<Instant>,
    rate: Option<Instant>,
    garbage: Option<Instant>,
}

impl Notices {
    /// True (and noted) if a notice of this kind may be shown now.
    pub(super) fn due(&mut self, now: Instant, kind: NoticeKind) -> bool {
        let (slot, gap) = match kind {
            NoticeKind::Waiting => (&mut self.waiting, WAITING_NOTICE_GAP),
            NoticeKind::Rate | NoticeKind::RoomFull => (&mut self.rate, NOTICE_GAP),
            NoticeKind::Garbage => (&mut self.garbage, GARBAGE_NOTICE_GAP),
        };
        if slot.is_some_and(|t| now.saturating_duration_since(t) < gap) {
            return false;
        }
        *slot = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_follows_the_measured_round_trip_within_bounds_and_backs_off() {
        let mut rtt = Rtt::default();
        assert_eq!(rtt.rto(), RTO_INITIAL);
        rtt.sample(Duration::from_millis(100));
        // SRTT 100 ms, RTTVAR 50 ms: 200 ms.
        assert_eq!(rtt.rto(), Duration::from_millis(200));
        for _ in 0..50 {
            rtt.sample(Duration::from_millis(10));
        }
        assert_eq!(rtt.rto(), RTO_MIN);
        assert_eq!(rtt.backoff(1), RTO_MIN * 2);
        // Four timeouts, but not under a quarter second.
        assert_eq!(rtt.backoff(20), BACKOFF_CAP_MIN);
        rtt.sample(Duration::from_secs(30));
        assert_eq!(rtt.rto(), RTO_MAX);
    }

    #[test]
    fn a_burst_is_allowed_then_one_token_per_period() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        for _ in 0..BUDGET_BURST {
            assert!(budget.try_take(start));
        }
        assert!(!budget.try_take(start));
        let next = budget.token_at();
        assert_eq!(next, start + Duration::from_secs(1) / BUDGET_PER_SEC);
        assert!(!budget.try_take(next - Duration::from_nanos(1)));
        assert!(budget.try_take(next));
    }

    #[test]
    fn what_cannot_wait_goes_into_debt_and_delays_the_next_token() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        for _ in 0..BUDGET_BURST + 2 {
            budget.take(start);
        }
        let token = Duration::from_nanos(1_000_000_000 / u64::from(BUDGET_PER_SEC));
        assert_eq!(budget.token_at(), start + token * 3);
        assert_eq!(budget.whole_tokens(start, 4), 0);
        assert_eq!(budget.whole_tokens(start + Duration::from_secs(2), 4), 4);
    }

    #[test]
    fn the_token_time_is_exact_after_any_refills() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        budget.empty();
        let mut now = start;
        for ms in [7, 13, 1, 20, 11] {
            now += Duration::from_millis(ms);
            assert!(!budget.try_take(now));
        }
        let next = budget.token_at();
        assert!(!budget.try_take(next - Duration::from_nanos(1)));
        assert!(budget.try_take(next));
    }

    #[test]
    fn notices_of_one_kind_keep_their_gap() {
        let now = Instant::now();
        let mut notices = Notices::default();
        assert!(notices.due(now, NoticeKind::Rate));
        assert!(!notices.due(now + Duration::from_secs(2), NoticeKind::RoomFull));
        assert!(notices.due(now, NoticeKind::Waiting));
        assert!(notices.due(now + Duration::from_secs(3), NoticeKind::Rate));
    }
}
