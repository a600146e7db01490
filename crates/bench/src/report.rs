//! The one JSON object a run prints at the end.
//!
//! Derived with serde rather than written by hand because it is read back by
//! crates/bench/tests/smoke.rs and by the benchmark script: one definition keeps the
//! writer and the readers in step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::hist::Quantiles;

/// Everything a run measured. Fields that a mode does not measure are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `closed`, `rate`, `flood`, `join` (duration 0) or `limit`.
    pub mode: String,
    /// The relay (or, for `limit`, the sending socket).
    pub target: String,
    /// `classic` or `structured`; absent for `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    /// Receiving client sockets (members, not counting flooders).
    pub clients: usize,
    /// Clients that send measured messages.
    pub senders: usize,
    /// Extra members that flood.
    pub flooders: usize,
    /// Closed loop: messages in flight at most (`limit`: rounds of C
    /// datagrams not yet received, with --limit-window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Fixed-rate mode: aggregate messages per second asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// Length of the sending phase asked for, seconds.
    pub duration_s: f64,
    /// From the first send to the last delivery, seconds.
    pub elapsed_s: f64,
    /// The join phase; absent for `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinReport>,
    /// Measured messages sent (datagrams, for `limit`).
    pub sent: u64,
    /// Copies of measured messages received by members (datagrams received, for `limit`).
    pub delivered: u64,
    /// Copies that should have arrived: sent times members.
    pub expected: u64,
    /// delivered / elapsed_s.
    pub deliveries_per_sec: f64,
    /// sent / sending time.
    pub messages_per_sec: f64,
    /// What did not arrive.
    pub loss: Loss,
    /// One-way latency of measured copies; absent for `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Quantiles>,
    /// The flooders, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<FloodReport>,
    /// `limit` mode: how it sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_call: Option<String>,
    /// The relay process, with --relay-pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_process: Option<ProcessReport>,
    /// ERROR replies received, by code.
    pub errors: BTreeMap<String, u64>,
    /// Every datagram the clients received, of any kind.
    pub datagrams_received: u64,
    /// Receive buffer per client socket as the kernel reports it, bytes.
    pub rcvbuf_bytes: usize,
    /// With `--rounds N > 1`: every round's own report, the first included
    /// (whose figures are also the top-level ones). One join serves all
    /// rounds, which makes repeated runs with 10,000 members affordable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Report>,
}

/// The join phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinReport {
    /// Clients joined (members and flooders).
    pub clients: usize,
    /// From the first join datagram to the last answer, seconds.
    pub secs: f64,
    /// clients / secs.
    pub per_sec: f64,
    /// Join datagrams sent again after a timeout.
    pub retries: u64,
    /// Other datagrams received meanwhile (the room's JOIN events).
    pub events_received: u64,
}

/// What did not arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Messages no member received at all: the relay never fanned them out.
    pub never_fanned_out: u64,
    /// Copies missing from messages that some member did receive.
    pub missing_copies: u64,
    /// Copies received more than once (should be 0).
    pub duplicate_copies: u64,
    /// delivered / expected (1.0 = nothing lost).
    pub delivery_share: f64,
}

/// The flooders of the overload scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloodReport {
    /// Flood datagrams sent.
    pub sent: u64,
    /// sent / flood time.
    pub sent_per_sec: f64,
    /// Distinct flood messages some member received: what the relay accepted.
    pub accepted: u64,
    /// accepted / flood time.
    pub accepted_per_sec: f64,
    /// How long the flood ran, seconds.
    pub secs: f64,
}

/// The relay process, read from /proc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Its pid.
    pub pid: u32,
    /// Peak resident set size (VmHWM) at the end, KiB.
    pub peak_rss_kib: u64,
    /// Resident set size at the end, KiB.
    pub rss_kib: u64,
    /// Peak resident set size right after every client joined, before any
    /// message: the memory the members cost, KiB.
    pub peak_rss_joined_kib: u64,
    /// CPU time (user + system) during the join phase, seconds.
    pub cpu_join_s: f64,
    /// CPU time during the sending phase and drain, seconds.
    pub cpu_load_s: f64,
    /// cpu_load_s / elapsed_s: the share of one core the relay used.
    pub cpu_load_share: f64,
}

impl Report {
    /// Parses a report printed by `udpchat-bench`.
    pub fn from_json(s: &str) -> Result<Report, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}
