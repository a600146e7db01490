//! One direction of one client's path to the room: latency, jitter, loss
//! (independent or in bursts), duplication and reordering, all drawn from
//! the link's own seeded generator.

use std::time::Duration;

use crate::rng::SplitMix64;

/// How a link loses datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Each datagram independently with this probability.
    Independent(f64),
    /// Gilbert-Elliott: a two-state chain (good, bad) stepped once per
    /// datagram, with its own loss probability in each state. Losses come
    /// in runs, as on a Wi-Fi link that fades for a moment.
    Burst {
        /// Chance per datagram to go from good to bad.
        enter_bad: f64,
        /// Chance per datagram to go from bad back to good (the mean burst
        /// length is its inverse).
        leave_bad: f64,
        /// Loss probability while good.
        loss_good: f64,
        /// Loss probability while bad.
        loss_bad: f64,
    },
}

impl Loss {
    /// The long-run share of datagrams lost.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::Independent(p) => p,
            Loss::Burst {
                enter_bad,
                leave_bad,
                loss_good,
                loss_bad,
            } => {
                let bad = enter_bad / (enter_bad + leave_bad);
                bad * loss_bad + (1.0 - bad) * loss_good
            }
        }
    }
}

/// What a link does to the datagrams it carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way latency of every datagram.
    pub delay: Duration,
    /// Up to this much more, uniformly (so datagrams close together can
    /// swap places).
    pub jitter: Duration,
    /// Which datagrams never arrive.
    pub loss: Loss,
    /// Chance that a datagram that arrives arrives twice (the copy with
    /// its own jitter and hold).
    pub duplicate: f64,
    /// Chance that a datagram is held back, up to [`LinkConfig::max_hold`]
    /// more, so that later ones overtake it.
    pub reorder: f64,
    /// The longest a reordered datagram is held.
    pub max_hold: Duration,
}

impl LinkConfig {
    /// A clean link: 5 ms one way, nothing lost, duplicated or reordered.
    pub const CLEAN: LinkConfig = LinkConfig {
        delay: Duration::from_millis(5),
        jitter: Duration::ZERO,
        loss: Loss::Independent(0.0),
        duplicate: 0.0,
        reorder: 0.0,
        max_hold: Duration::from_millis(400),
    };

    /// A clean link that loses `loss` of the datagrams independently.
    pub fn lossy(loss: f64) -> LinkConfig {
        LinkConfig {
            loss: Loss::Independent(loss),
            ..LinkConfig::CLEAN
        }
    }

    /// Also duplicates `duplicate` and reorders `reorder` of the datagrams,
    /// with up to 2 ms of jitter.
    pub fn with_dup_reorder(self, duplicate: f64, reorder: f64) -> LinkConfig {
        LinkConfig {
            duplicate,
            reorder,
            jitter: Duration::from_millis(2),
            ..self
        }
    }
}

/// Datagrams and bytes seen by one link, or summed over several.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WireStats {
    /// Datagrams put on the wire by the sender.
    pub datagrams_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Datagrams handed to the receiver (copies included).
    pub datagrams_delivered: u64,
    /// Their bytes.
    pub bytes_delivered: u64,
    /// Datagrams lost.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Datagrams held back for reordering.
    pub reordered: u64,
}

impl std::ops::AddAssign for WireStats {
    fn add_assign(&mut self, other: WireStats) {
        self.datagrams_sent += other.datagrams_sent;
        self.bytes_sent += other.bytes_sent;
        self.datagrams_delivered += other.datagrams_delivered;
        self.bytes_delivered += other.bytes_delivered;
        self.dropped += other.dropped;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
    }
}

/// One direction of a path, with its generator and its counters.
#[derive(Debug, Clone)]
pub struct Link {
    config: LinkConfig,
    rng: SplitMix64,
    /// The Gilbert-Elliott state.
    bad: bool,
    stats: WireStats,
}

impl Link {
    /// A link drawing from `rng`.
    pub fn new(config: LinkConfig, rng: SplitMix64) -> Link {
        Link {
            config,
            rng,
            bad: false,
            stats: WireStats::default(),
        }
    }

    /// Changes what the link does from now on (keeps its generator).
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    /// The link's counters.
    pub fn stats(&self) -> WireStats {
        self.stats
    }

    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.stats = WireStats::default();
    }

    /// Carries one datagram of `len` bytes: how long after now each copy
    /// arrives (none if lost, two if duplicated).
    pub fn carry(&mut self, len: usize) -> Vec<Duration> {
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += len as u64;
        if self.lose() {
            self.stats.dropped += 1;
            return Vec::new();
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut arrivals = Vec::with_capacity(copies);
        for _ in 0..copies {
            let mut after = self.config.delay + self.rng.up_to(self.config.jitter);
            if self.rng.chance(self.config.reorder) {
                self.stats.reordered += 1;
                after += self.rng.up_to(self.config.max_hold);
            }
            self.stats.datagrams_delivered += 1;
            self.stats.bytes_delivered += len as u64;
            arrivals.push(after);
        }
        arrivals
    }

    fn lose(&mut self) -> bool {
        match self.config.loss {
            Loss::Independent(p) => self.rng.chance(p),
            Loss::Burst {
                enter_bad,
                leave_bad,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad { leave_bad } else { enter_bad };
                if self.rng.chance(flip) {
                    self.bad = !self.bad;
                }
                self.rng.chance(if self.bad { loss_bad } else { loss_good })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn losses(config: LinkConfig, n: usize) -> Vec<bool> {
        let mut link = Link::new(config, SplitMix64::new(3));
        (0..n).map(|_| link.carry(10).is_empty()).collect()
    }

    #[test]
    fn independent_loss_is_near_its_rate() {
        let lost = losses(LinkConfig::lossy(0.2), 20_000);
        let share = lost.iter().filter(|&&l| l).count() as f64 / 20_000.0;
        assert!((0.18..0.22).contains(&share), "{share}");
    }

    #[test]
    fn burst_loss_comes_in_runs_at_its_mean_rate() {
        let loss = Loss::Burst {
            enter_bad: 0.02,
            leave_bad: 0.2,
            loss_good: 0.01,
            loss_bad: 0.8,
        };
        let lost = losses(
            LinkConfig {
                loss,
                ..LinkConfig::CLEAN
            },
            50_000,
        );
        let share = lost.iter().filter(|&&l| l).count() as f64 / 50_000.0;
        assert!((loss.mean() - 0.02..loss.mean() + 0.02).contains(&share));
        // Runs: after a loss, another loss is far likelier than the mean.
        let pairs = lost.windows(2).filter(|w| w[0]).count() as f64;
        let both = lost.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        assert!(both / pairs > 3.0 * share, "{} vs {share}", both / pairs);
    }

    #[test]
    fn duplicates_and_holds_are_counted() {
        let mut link = Link::new(
            LinkConfig::CLEAN.with_dup_reorder(0.5, 0.5),
            SplitMix64::new(9),
        );
        let mut copies = 0;
        let mut late = 0;
        for _ in 0..1000 {
            for after in link.carry(10) {
                copies += 1;
                assert!(after >= LinkConfig::CLEAN.delay);
                if after > Duration::from_millis(10) {
                    late += 1;
                }
            }
        }
        let stats = link.stats();
        assert_eq!(stats.datagrams_delivered, copies);
        assert!(
            stats.duplicated > 400 && stats.duplicated < 600,
            "{stats:?}"
        );
        assert!(late > 300, "{late}");
    }
}
