//! What limits how fast we send and how often we say the same thing: our
//! token bucket, and the least gap between two notices of one kind.

use std::time::{Duration, Instant};

/// Our own sending budget, below the relay's default rate limit (burst 20,
/// 5 per second) so a pasted paragraph or a script is paced, not dropped.
pub(super) const BUDGET_BURST: u32 = 12;
pub(super) const BUDGET_PER_SEC: u32 = 4;
/// One token, in nanoseconds of refill. The bucket counts in these units
/// rather than in fractional tokens so that the instant a token is back is
/// exact: [`super::Session::poll_timeout`] wakes at it, and a float could
/// come back a hair short of one token and wake the loop again and again.
const TOKEN: i64 = 1_000_000_000 / BUDGET_PER_SEC as i64;
const BURST: i64 = TOKEN * BUDGET_BURST as i64;

/// Least time between two notices of the same kind.
const NOTICE_GAP: Duration = Duration::from_secs(3);
/// ... and between two "still missing" notices (loss is routine on Wi-Fi).
const WAITING_NOTICE_GAP: Duration = Duration::from_secs(10);
/// ... and between two "malformed datagram" notices.
const GARBAGE_NOTICE_GAP: Duration = Duration::from_secs(1);

/// A token bucket for what we send.
#[derive(Debug)]
pub(super) struct Budget {
    /// Tokens times [`TOKEN`]; below zero after sending what could not wait.
    credit: i64,
    /// When `credit` was last brought up to date.
    at: Instant,
}

impl Budget {
    /// A full bucket.
    pub(super) fn new(now: Instant) -> Budget {
        Budget {
            credit: BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_nanos();
        // Anything beyond twice the burst fills the bucket anyway.
        let elapsed = i64::try_from(elapsed).unwrap_or(i64::MAX).min(2 * BURST);
        self.credit = (self.credit + elapsed).min(BURST);
        self.at = now;
    }

    /// Takes a token if one is there (for what can wait: chat, resend).
    pub(super) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.credit >= TOKEN {
            self.credit -= TOKEN;
            true
        } else {
            false
        }
    }

    /// Takes a token whether or not one is there (for what cannot wait).
    pub(super) fn take(&mut self, now: Instant) {
        self.refill(now);
        self.credit = (self.credit - TOKEN).max(-BURST);
    }

    /// How many whole tokens are there now, at most `most`.
    pub(super) fn whole_tokens(&mut self, now: Instant, most: usize) -> usize {
        self.refill(now);
        usize::try_from(self.credit.max(0) / TOKEN).map_or(most, |n| n.min(most))
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
        match u64::try_from(TOKEN - self.credit) {
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
    fn a_burst_is_allowed_then_one_token_per_quarter_second() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        for _ in 0..BUDGET_BURST {
            assert!(budget.try_take(start));
        }
        assert!(!budget.try_take(start));
        let next = budget.token_at();
        assert_eq!(next, start + Duration::from_millis(250));
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
        assert_eq!(budget.token_at(), start + Duration::from_millis(750));
        assert_eq!(budget.whole_tokens(start, 4), 0);
        assert_eq!(budget.whole_tokens(start + Duration::from_secs(2), 4), 4);
    }

    #[test]
    fn the_token_time_is_exact_after_any_refills() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        budget.empty();
        let mut now = start;
        for ms in [7, 13, 1, 50, 33] {
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
