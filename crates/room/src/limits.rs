//! Rate limits: a token bucket per address (a member's travels with it, a
//! stranger's is kept here) and the global budget for replies to
//! non-members.
//!
//! What happens to a datagram over its limit: the first one since the
//! bucket was full is refused with one `ERROR rate-limited`
//! ([`Refusal::OverRateLimit`](crate::Refusal::OverRateLimit)); later ones
//! are dropped silently and counted by the [`FloodGuard`], which decides
//! when the shell should block the sender in the kernel (see [`flood`]).

mod bucket;
pub(crate) mod flood;

use std::collections::HashMap;
use std::net::SocketAddr;

pub(crate) use bucket::{Bucket, Rate, Take};
pub(crate) use flood::FloodGuard;

use crate::Config;

/// The most rate-limit buckets kept for addresses that are not members.
/// Beyond it, new strangers go untracked (their replies are still bounded
/// by the global budget, and they cannot cause fan-out).
const MAX_STRANGERS: usize = 4096;

/// How often stranger buckets that have refilled are forgotten.
pub(crate) const PRUNE_EVERY_MS: u64 = 10_000;

/// The rate-limit state that is not a member's own bucket.
pub(crate) struct Limits {
    member_rate: Rate,
    /// Buckets of addresses that are not members (or no longer are).
    strangers: HashMap<SocketAddr, Bucket>,
    stranger_rate: Rate,
    /// The global budget for replies to non-members.
    stranger_budget: Bucket,
    next_prune_ms: u64,
}

impl Limits {
    pub(crate) fn new(config: &Config) -> Limits {
        let stranger_rate = Rate::new(
            config.stranger_replies_per_sec,
            config.stranger_replies_per_sec,
        );
        Limits {
            member_rate: Rate::new(config.rate_burst, config.rate_per_sec),
            strangers: HashMap::new(),
            stranger_rate,
            stranger_budget: Bucket::full(stranger_rate, 0),
            next_prune_ms: PRUNE_EVERY_MS,
        }
    }

    /// Takes a rate-limit token for a datagram from `from`, from `member`
    /// (its own bucket) if it is a member.
    pub(crate) fn take(
        &mut self,
        member: Option<&mut Bucket>,
        from: SocketAddr,
        now_ms: u64,
    ) -> Take {
        let rate = self.member_rate;
        if let Some(bucket) = member {
            return bucket.take(rate, now_ms);
        }
        if let Some(bucket) = self.strangers.get_mut(&from) {
            return bucket.take(rate, now_ms);
        }
        if self.strangers.len() >= MAX_STRANGERS {
            return Take::Allowed;
        }
        let mut bucket = Bucket::full(rate, now_ms);
        let take = bucket.take(rate, now_ms);
        self.strangers.insert(from, bucket);
        take
    }

    /// The bucket a joining address takes with it: its stranger bucket, so
    /// joining buys nothing, or a full one.
    pub(crate) fn bucket_for_joiner(&mut self, addr: SocketAddr, now_ms: u64) -> Bucket {
        self.strangers
            .remove(&addr)
            .unwrap_or_else(|| Bucket::full(self.member_rate, now_ms))
    }

    /// Keeps a leaver's bucket, so quitting and rejoining buys nothing.
    pub(crate) fn keep_leavers_bucket(&mut self, addr: SocketAddr, bucket: Bucket) {
        if self.strangers.len() < MAX_STRANGERS {
            self.strangers.insert(addr, bucket);
        }
    }

    /// Empties the bucket of `addr` if it is a tracked stranger (see
    /// [`Bucket::drain`]).
    pub(crate) fn drain_stranger(&mut self, addr: SocketAddr, now_ms: u64) {
        if let Some(bucket) = self.strangers.get_mut(&addr) {
            bucket.drain(now_ms);
        }
    }

    /// Spends one reply to a non-member from the global budget; false if
    /// it is exhausted.
    pub(crate) fn reply_to_stranger(&mut self, now_ms: u64) -> bool {
        self.stranger_budget.try_take(self.stranger_rate, now_ms)
    }

    /// Forgets stranger buckets that have refilled, every
    /// [`PRUNE_EVERY_MS`].
    pub(crate) fn handle_timeout(&mut self, now_ms: u64) {
        if now_ms >= self.next_prune_ms {
            let rate = self.member_rate;
            self.strangers.retain(|_, b| !b.is_full(rate, now_ms));
            self.next_prune_ms = now_ms + PRUNE_EVERY_MS;
        }
    }

    /// When [`Limits::handle_timeout`] has work (none while no stranger is
    /// tracked).
    pub(crate) fn deadline(&self) -> Option<u64> {
        (!self.strangers.is_empty()).then_some(self.next_prune_ms)
    }

    #[cfg(test)]
    pub(crate) fn strangers(&self) -> usize {
        self.strangers.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{to, Harness};
    use crate::Config;

    use super::PRUNE_EVERY_MS;

    #[test]
    fn first_excess_datagram_gets_one_rate_limited_error_then_silence() {
        let mut h = Harness::with(Config {
            rate_burst: 3,
            rate_per_sec: 1,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.send(1, "M alice 1");
        h.send(1, "M alice 2");
        let sent = h.send(1, "M alice 3");
        assert!(sent[0].1.starts_with("ERROR rate-limited: "), "{sent:?}");
        assert!(h.send(1, "M alice 4").is_empty());
        assert_eq!(h.room.stats().rate_limited, 2);
        // A refilled token lets one datagram through.
        h.advance_ms(1_000);
        assert_eq!(to(&h.send(1, "M alice 5"), 1), ["alice: 5"]);
    }

    #[test]
    fn a_flooder_is_blocked_then_unblocked_by_typed_events() {
        use std::time::Duration;
        let mut h = Harness::with(Config {
            rate_burst: 1,
            rate_per_sec: 1,
            ..Config::default()
        });
        let is_block = |e: &crate::Event| matches!(e, crate::Event::Block { .. });
        let mut blocks = Vec::new();
        // One allowed, one refused with an error, then silent excess: the
        // 100th excess datagram blocks the sender for the refill time (1 s).
        for _ in 0..(2 + super::flood::TRIGGER) {
            h.send(1, "PING");
            blocks.extend(h.out.events.iter().filter(|e| is_block(e)).cloned());
        }
        assert_eq!(
            blocks,
            [crate::Event::Block {
                addr: crate::testing::addr(1),
                duration: Duration::from_secs(1)
            }]
        );
        let due = h.room.poll_timeout().expect("the block ends");
        h.out.clear();
        h.room.handle_timeout(due, &mut h.out);
        assert_eq!(
            h.out.events,
            [crate::Event::Unblock {
                addr: crate::testing::addr(1)
            }]
        );
    }

    #[test]
    fn a_flooders_block_ends_without_a_burst_of_its_messages() {
        let mut h = Harness::with(Config {
            rate_burst: 40,
            rate_per_sec: 40,
            ..Config::default()
        });
        h.join_classic(1, "flood");
        h.join_classic(2, "bob");
        // 40 allowed, one refused, then 100 silent: blocked for 1 s.
        for _ in 0..(41 + super::flood::TRIGGER) {
            h.send(1, "M flood x");
        }
        let due = h.room.poll_timeout().expect("the block ends");
        h.out.clear();
        h.room.handle_timeout(due, &mut h.out);
        assert!(h
            .out
            .events
            .iter()
            .any(|e| matches!(e, crate::Event::Unblock { .. })));
        // The bucket refilled 40 tokens during the block; they are gone.
        let wait = due.saturating_duration_since(h.now());
        h.advance_ms(wait.as_millis() as u64 + 1);
        let burst: usize = (0..40).map(|_| to(&h.send(1, "M flood y"), 2).len()).sum();
        assert!(
            burst <= 1,
            "{burst} flood lines reached bob right after the block"
        );
        // Its rate still applies afterwards: one token every 25 ms.
        h.advance_ms(100);
        assert_eq!(to(&h.send(1, "M flood z"), 2), ["flood: z"]);
    }

    #[test]
    fn rate_limit_is_checked_before_parsing() {
        let mut h = Harness::with(Config {
            rate_burst: 2,
            ..Config::default()
        });
        h.send_bytes(1, b"\xff");
        h.send_bytes(1, b"\xff");
        let sent = h.send(1, "N alice");
        assert!(sent[0].1.starts_with("ERROR rate-limited: "), "{sent:?}");
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn say_is_rate_limited_like_any_datagram() {
        let mut h = Harness::with(Config {
            rate_burst: 4,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 a");
        h.send(1, "SAY 2 b");
        h.send(1, "SAY 3 c");
        let sent = h.send(1, "SAY 4 d");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR rate-limited "), "{sent:?}");
        // Dropped unseen, so its retransmission is relayed once it fits.
        h.advance_ms(1000);
        assert_eq!(to(&h.send(1, "SAY 4 d"), 1), ["EVENT 5 live CHAT alice d"]);
    }

    #[test]
    fn replies_to_strangers_share_a_global_budget() {
        let mut h = Harness::with(Config {
            stranger_replies_per_sec: 3,
            ..Config::default()
        });
        let replies: usize = (1..=5).map(|n| h.send(n, "PING").len()).sum();
        assert_eq!(replies, 3);
        assert_eq!(h.room.stats().stranger_replies_dropped, 2);
        // Members are not limited by it.
        h.join_classic(10, "alice");
        h.advance_ms(1_000);
        assert_eq!(h.send(1, "PING").len(), 1);
    }

    #[test]
    fn quitting_and_rejoining_keeps_the_rate_limit_state() {
        let mut h = Harness::with(Config {
            rate_burst: 3,
            rate_per_sec: 1,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.send(1, "Q alice");
        h.join_classic(1, "alice");
        assert!(h.send(1, "M alice x")[0]
            .1
            .starts_with("ERROR rate-limited"));
    }

    #[test]
    fn stranger_rate_state_is_forgotten_once_refilled() {
        let mut h = Harness::new();
        h.send(1, "PING");
        assert_eq!(h.room.limits.strangers(), 1);
        let due = h.room.poll_timeout().unwrap();
        h.elapsed = due - h.base;
        h.timeout();
        assert_eq!(h.room.limits.strangers(), 0);
        assert_eq!(h.room.poll_timeout(), None);
    }

    #[test]
    fn stranger_rate_state_is_kept_while_not_refilled() {
        let mut h = Harness::with(Config {
            rate_burst: 100,
            rate_per_sec: 1,
            ..Config::default()
        });
        for _ in 0..50 {
            h.send(1, "PING");
        }
        h.advance_ms(PRUNE_EVERY_MS);
        h.timeout();
        assert_eq!(h.room.limits.strangers(), 1);
    }
}
