//! A log-linear latency histogram: constant memory, 1.6% resolution.
//!
//! Millions of deliveries per run make storing every sample wasteful; 64
//! linear sub-buckets per power of two keep any quantile within 1.6% of the
//! true value, and the exact minimum and maximum are kept on the side.

use serde::{Deserialize, Serialize};

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 2) * SUB as usize;

/// Counts of nanosecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

/// Quantiles of a histogram, in microseconds (what a reader compares).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Samples counted.
    pub count: u64,
    /// Smallest sample.
    pub min_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let group = (exp - SUB_BITS) as usize; // >= 1
    let sub = (v >> group) as usize; // in [SUB, 2 * SUB)
    group * SUB as usize + sub
}

/// The smallest value that falls into bucket `i`, and the bucket's width.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < 2 * SUB as usize {
        return (i as u64, 1);
    }
    let group = i / SUB as usize - 1;
    let sub = (i % SUB as usize) as u64 + SUB;
    (sub << group, 1 << group)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Counts one value (nanoseconds).
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding
    /// the sample of rank ceil(q * n), clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return (low + width / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Summary in microseconds; all zero when empty.
    pub fn quantiles(&self) -> Quantiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        if self.total == 0 {
            return Quantiles {
                count: 0,
                min_us: 0.0,
                p50_us: 0.0,
                p99_us: 0.0,
                max_us: 0.0,
                mean_us: 0.0,
            };
        }
        Quantiles {
            count: self.total,
            min_us: us(self.min),
            p50_us: us(self.quantile(0.50)),
            p99_us: us(self.quantile(0.99)),
            max_us: us(self.max),
            mean_us: (self.sum / u128::from(self.total)) as f64 / 1000.0,
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        let mut expected_low = 0u64;
        for i in 0..index(u64::MAX) + 1 {
            let (low, width) = bucket_range(i);
            assert_eq!(low, expected_low, "bucket {i}");
            assert_eq!(index(low), i);
            assert_eq!(index(low + (width - 1)), i);
            expected_low = low.wrapping_add(width);
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let q = h.quantiles();
        assert_eq!(q.count, 100_000);
        assert!((q.p50_us - 50_000.0).abs() / 50_000.0 < 0.02, "{q:?}");
        assert!((q.p99_us - 99_000.0).abs() / 99_000.0 < 0.02, "{q:?}");
        assert_eq!(q.max_us, 100_000.0);
        assert_eq!(q.min_us, 1.0);
    }

    proptest! {
        #[test]
        fn quantile_is_within_resolution(values in prop::collection::vec(1u64..10_000_000_000, 1..200), q in 0.0f64..=1.0) {
            let mut h = Histogram::new();
            for &v in &values { h.record(v); }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1] as f64;
            let got = h.quantile(q) as f64;
            prop_assert!((got - exact).abs() <= exact * (1.0 / SUB as f64) + 1.0, "exact {} got {}", exact, got);
            prop_assert!(h.quantile(0.5) <= h.quantile(0.99));
            prop_assert!(h.quantile(0.99) <= sorted[sorted.len() - 1]);
        }
    }
}
