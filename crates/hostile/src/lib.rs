//! The attacks of issue 12 ("a hostile classroom LAN") against a running
//! relay, as functions with typed figures: forged ICMP errors, a full
//! stranger table, forged sources aimed at victims, forged relay datagrams,
//! floods during joins, blind spoofing of a structured member, fake relay
//! lines and invisible characters in text.
//!
//! Contract: no function starts a relay; each takes the relay's address
//! (and the `udpchat` client binary where a structured victim is needed),
//! runs its attack bounded in count and time (a few seconds each), and
//! returns what it measured. Only loopback traffic: forged sources lie in
//! `127.0.0.0/8` (or are `::1`), which `udpchat_udp::raw` enforces. Each
//! scenario uses its own `127.x.y.z` addresses, so per-address limits of
//! one scenario's parties do not mix.
//!
//! Forging needs raw sockets (root or `CAP_NET_RAW`): without them the
//! scenarios that forge return [`Error::RawSocketsDenied`], which callers
//! report as a skip. The honest members speak the classic dialect
//! ([`member::Member`]); structured victims are the real client
//! ([`client::RealClient`]).

pub mod client;
pub mod member;
pub mod scenarios;
pub mod structured;

use std::time::Duration;

use serde::Serialize;

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This process may not open raw sockets.
    #[error("SKIPPED: raw sockets need root/CAP_NET_RAW ({0})")]
    RawSocketsDenied(std::io::Error),
    /// A socket or process operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The relay refused an honest setup step.
    #[error("the relay refused a setup step: {0}")]
    Refused(String),
    /// The relay did not answer an honest setup step.
    #[error("no answer to {0}")]
    NoAnswer(String),
}

impl Error {
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> Error {
        Error::Io { what, source }
    }
}

/// Echo latencies of an honest member (`M` until its own line comes back).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Echoes that came back.
    pub samples: usize,
    /// Probes with no echo within [`member::PROBE_TIMEOUT`].
    pub lost: usize,
    /// Median, microseconds (0 without samples).
    pub p50_us: u64,
    /// 99th percentile, microseconds (0 without samples).
    pub p99_us: u64,
}

impl Latency {
    /// The figures of these samples.
    pub fn of(mut samples: Vec<Duration>, lost: usize) -> Latency {
        samples.sort();
        let at = |q: f64| -> u64 {
            if samples.is_empty() {
                return 0;
            }
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i].as_micros() as u64
        };
        Latency {
            samples: samples.len(),
            lost,
            p50_us: at(0.5),
            p99_us: at(0.99),
        }
    }

    /// p50 and p99 as ratios to `quiet`'s (a lost probe counts as the
    /// probe timeout).
    pub fn ratio_to(&self, quiet: &Latency) -> (f64, f64) {
        let timeout = member::PROBE_TIMEOUT.as_micros() as u64;
        let p = |x: u64, samples: usize| if samples == 0 { timeout } else { x };
        let q50 = p(quiet.p50_us, quiet.samples).max(1) as f64;
        let q99 = p(quiet.p99_us, quiet.samples).max(1) as f64;
        let mut p99 = p(self.p99_us, self.samples);
        if self.lost > 0 && (self.lost * 100 >= self.samples + self.lost) {
            p99 = timeout;
        }
        (p(self.p50_us, self.samples) as f64 / q50, p99 as f64 / q99)
    }
}

/// An honest member's echo latency in a quiet second before an attack and
/// during it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HonestLatency {
    /// Before the attack.
    pub quiet: Latency,
    /// During it.
    pub attack: Latency,
}

/// Datagrams and bytes an attacker sent and what came out because of them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Traffic {
    /// Datagrams the attacker sent.
    pub datagrams_in: u64,
    /// Their bytes (UDP payload).
    pub bytes_in: u64,
    /// Datagrams the watched receivers (victims, observers) got meanwhile.
    pub datagrams_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
}

impl Traffic {
    /// Bytes out per byte in (0 if nothing was sent).
    pub fn amplification(&self) -> f64 {
        if self.bytes_in == 0 {
            0.0
        } else {
            self.bytes_out as f64 / self.bytes_in as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn latency_percentiles_come_from_sorted_samples() {
        let l = Latency::of(ms(&[5, 1, 3, 2, 4]), 0);
        assert_eq!((l.samples, l.p50_us, l.p99_us), (5, 3000, 5000));
    }

    #[test]
    fn many_lost_probes_count_as_the_timeout_in_the_ratio() {
        let quiet = Latency::of(ms(&[1, 1, 1]), 0);
        let attack = Latency::of(ms(&[2]), 1);
        let (p50, p99) = attack.ratio_to(&quiet);
        assert_eq!(p50, 2.0);
        // Half the probes lost: p99 is the probe timeout, over a 1 ms quiet p99.
        assert_eq!(p99, member::PROBE_TIMEOUT.as_micros() as f64 / 1000.0);
    }

    #[test]
    fn amplification_is_bytes_out_per_byte_in() {
        let t = Traffic {
            bytes_in: 10,
            bytes_out: 35,
            ..Traffic::default()
        };
        assert_eq!(t.amplification(), 3.5);
        assert_eq!(Traffic::default().amplification(), 0.0);
    }
}
