//! Token buckets: the per-address rate limit and the global budget for
//! replies to non-members.

/// The shape of a bucket: how many tokens it holds and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    burst: u64,
    per_sec: u64,
}

impl Rate {
    pub(crate) fn new(burst: u32, per_sec: u32) -> Rate {
        Rate {
            burst: u64::from(burst),
            per_sec: u64::from(per_sec),
        }
    }

    fn capacity_milli(self) -> u64 {
        self.burst * 1000
    }
}

/// What [`Bucket::take`] decided about one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// A token was available: handle the datagram.
    Allowed,
    /// The first datagram over the limit since the bucket was last full:
    /// answer it with one `ERROR rate-limited`.
    FirstExcess,
    /// Over the limit and already told: drop silently.
    Excess,
}

/// A token bucket counted in thousandths of a token and refilled lazily
/// from the time passed in, so it needs no timer of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    milli: u64,
    last_ms: u64,
    /// Set by the first excess datagram, cleared only when the bucket is
    /// full again: a sender that keeps flooding hears `rate-limited` once,
    /// not once per refilled token.
    warned: bool,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn full(rate: Rate, now_ms: u64) -> Bucket {
        Bucket {
            milli: rate.capacity_milli(),
            last_ms: now_ms,
            warned: false,
        }
    }

    fn refill(&mut self, rate: Rate, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        let cap = rate.capacity_milli();
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(rate.per_sec))
            .min(cap);
        if self.milli == cap {
            self.warned = false;
        }
    }

    /// Takes one token for a datagram, saying what to do with it.
    pub(crate) fn take(&mut self, rate: Rate, now_ms: u64) -> Take {
        if self.try_take(rate, now_ms) {
            Take::Allowed
        } else if !self.warned {
            self.warned = true;
            Take::FirstExcess
        } else {
            Take::Excess
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, rate: Rate, now_ms: u64) -> bool {
        self.refill(rate, now_ms);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens if there are that many (all or nothing).
    pub(crate) fn try_take_n(&mut self, rate: Rate, now_ms: u64, n: u64) -> bool {
        self.refill(rate, now_ms);
        let cost = n.saturating_mul(1000);
        if self.milli >= cost {
            self.milli -= cost;
            true
        } else {
            false
        }
    }

    /// Whether `n` tokens are there (refilling first, taking nothing).
    pub(crate) fn has(&mut self, rate: Rate, now_ms: u64, n: u64) -> bool {
        self.refill(rate, now_ms);
        self.milli >= n.saturating_mul(1000)
    }

    /// Milliseconds until `n` tokens are there (0 if they are now).
    pub(crate) fn ms_until(&mut self, rate: Rate, now_ms: u64, n: u64) -> u64 {
        self.refill(rate, now_ms);
        let missing = n.saturating_mul(1000).saturating_sub(self.milli);
        match rate.per_sec {
            0 if missing > 0 => u64::MAX,
            0 => 0,
            per_ms => missing.div_ceil(per_ms),
        }
    }

    /// Takes one token only if at least `keep` more stay in the bucket.
    pub(crate) fn try_take_keeping(&mut self, rate: Rate, now_ms: u64, keep: u64) -> bool {
        self.refill(rate, now_ms);
        if self.milli >= (keep + 1) * 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    /// Keeps the fewer tokens of `self` and `other` (both refilled to
    /// `now_ms`): `other`'s holder now shares this bucket.
    pub(crate) fn merge_stricter(&mut self, mut other: Bucket, rate: Rate, now_ms: u64) {
        self.refill(rate, now_ms);
        other.refill(rate, now_ms);
        self.milli = self.milli.min(other.milli);
        self.warned |= other.warned;
    }

    /// Empties the bucket (and stays silent about it): a flooder whose
    /// kernel block ends must not find the tokens that refilled meanwhile,
    /// or it gets them all at once, each fanned out to every member.
    pub(crate) fn drain(&mut self, now_ms: u64) {
        self.milli = 0;
        self.last_ms = self.last_ms.max(now_ms);
        self.warned = true;
    }

    /// Whether the bucket has refilled completely (so forgetting it changes
    /// nothing).
    pub(crate) fn is_full(&self, rate: Rate, now_ms: u64) -> bool {
        let mut copy = *self;
        copy.refill(rate, now_ms);
        copy.milli == rate.capacity_milli()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_allowed_then_first_excess_then_silence() {
        let rate = Rate::new(3, 1);
        let mut b = Bucket::full(rate, 0);
        for _ in 0..3 {
            assert_eq!(b.take(rate, 0), Take::Allowed);
        }
        assert_eq!(b.take(rate, 0), Take::FirstExcess);
        assert_eq!(b.take(rate, 0), Take::Excess);
        assert_eq!(b.take(rate, 10), Take::Excess);
    }

    #[test]
    fn refilled_token_is_allowed_but_warning_waits_for_full_bucket() {
        let rate = Rate::new(3, 1);
        let mut b = Bucket::full(rate, 0);
        for _ in 0..3 {
            b.take(rate, 0);
        }
        assert_eq!(b.take(rate, 0), Take::FirstExcess);
        assert_eq!(b.take(rate, 1000), Take::Allowed);
        assert_eq!(b.take(rate, 1000), Take::Excess);
        // Full again after 3 s of quiet: the next excess is reported again.
        assert!(b.is_full(rate, 4000));
        for _ in 0..3 {
            assert_eq!(b.take(rate, 4000), Take::Allowed);
        }
        assert_eq!(b.take(rate, 4000), Take::FirstExcess);
    }

    #[test]
    fn zero_burst_allows_nothing() {
        let rate = Rate::new(0, 5);
        let mut b = Bucket::full(rate, 0);
        assert!(!b.try_take(rate, 10_000));
    }

    #[test]
    fn time_going_backwards_does_not_refill() {
        let rate = Rate::new(1, 1);
        let mut b = Bucket::full(rate, 5000);
        assert!(b.try_take(rate, 5000));
        assert!(!b.try_take(rate, 0));
        assert!(!b.try_take(rate, 5999));
        assert!(b.try_take(rate, 6000));
    }
}
