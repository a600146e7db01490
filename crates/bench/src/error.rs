//! Why a benchmark run could not be done.

use std::io;

use thiserror::Error;

/// A benchmark that could not run. The message says what to do.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The target is not on this machine.
    #[error(
        "{0} is not a loopback address; udpchat-bench only sends to 127.0.0.1, ::1 or localhost"
    )]
    NotLoopback(String),
    /// The target could not be resolved.
    #[error("cannot resolve {addr:?}: {source}; give an address such as 127.0.0.1:10024")]
    Resolve {
        /// What was given.
        addr: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A client socket could not be opened.
    #[error("cannot open client socket {index}: {source}; with many clients, raise `ulimit -n`")]
    Socket {
        /// Which client.
        index: usize,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Some clients never got an answer to their join.
    #[error("{missing} of {total} clients did not join within {secs:.1} s ({retries} retries); is a relay running at {relay}, with --max-clients and rate limits that allow this many?{hint}")]
    JoinTimeout {
        /// Clients still waiting.
        missing: usize,
        /// Clients in all.
        total: usize,
        /// How long we tried.
        secs: f64,
        /// Join datagrams sent again.
        retries: u64,
        /// The target.
        relay: String,
        /// Extra hint (ICMP errors seen, ...).
        hint: String,
    },
    /// The relay refused a join.
    #[error("the relay refused {nick}'s join: ERROR {code}; start it with a larger --max-clients, classic enabled, or restart it so old members are gone")]
    JoinRefused {
        /// Our nickname.
        nick: String,
        /// The error code.
        code: String,
    },
    /// /proc could not be read for --relay-pid.
    #[error(
        "cannot read /proc/{pid}: {source}; is --relay-pid the relay's process id on this machine?"
    )]
    Proc {
        /// The pid given.
        pid: u32,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Another system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Options that do not fit together.
    #[error("{0}")]
    Usage(String),
}

impl BenchError {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: &'static str) -> impl FnOnce(io::Error) -> BenchError {
        move |source| BenchError::Io { context, source }
    }
}
