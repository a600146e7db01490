//! `udpchat-bench`: a load generator for udpchat relays, measured against
//! the machine's own loopback limit.
//!
//! Contract: Linux only (`recvmmsg`, `sendmmsg`, `/proc`, CPU pinning); sends only
//! to loopback addresses; every run is bounded in time and in count. A run
//! prints one JSON object ([`Report`]) on stdout, and a progress line on
//! stderr when stderr is a terminal.
//!
//! Modes:
//! - load (default): join `--clients` sockets to the relay, drive `--senders`
//!   of them (`--mode closed|rate|flood`), optionally with `--flooders` extra
//!   members flooding, and receive on every socket;
//! - `--duration 0`: join only (the join storm, and memory per member);
//! - `--limit`: no relay; one thread sends a fixed 64-byte datagram round
//!   robin to `--clients` sockets, received the same way. The ceiling.

mod error;
mod hist;
pub mod limit;
pub mod load;
mod net;
mod procfs;
mod report;
mod wire;

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

pub use error::BenchError;
pub use report::{FloodReport, JoinReport, Loss, ProcessReport, Quantiles, Report};

/// Load generator for udpchat relays (loopback only).
///
/// Joins C client sockets to a relay, drives S of them, receives on all of
/// them with mio + recvmmsg, and prints one JSON object: deliveries per
/// second, loss, latency quantiles, and the relay's memory and CPU time when
/// given its pid. `--limit` measures the machine's loopback ceiling instead.
#[derive(Debug, Parser)]
#[command(name = "udpchat-bench", version, about, long_about = None)]
pub struct Cli {
    /// Relay address (must be loopback: 127.0.0.1, ::1 or localhost).
    #[arg(long, default_value = "127.0.0.1:10024")]
    pub relay: String,
    /// The relay's process id: report its peak RSS (VmHWM) and CPU time.
    #[arg(long)]
    pub relay_pid: Option<u32>,
    /// Receiving member sockets (C).
    #[arg(short = 'c', long, default_value_t = 100)]
    pub clients: usize,
    /// How many of the members send measured messages (S).
    #[arg(short = 's', long, default_value_t = 1)]
    pub senders: usize,
    /// How the senders send.
    #[arg(long, value_enum, default_value_t = load::Mode::Closed)]
    pub mode: load::Mode,
    /// Closed loop: messages in flight at most (W).
    #[arg(short = 'w', long, default_value_t = 8)]
    pub window: usize,
    /// Fixed rate: aggregate messages per second over all senders.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds of sending; 0 = join only (join storm, memory).
    #[arg(short = 'd', long, default_value_t = 5.0)]
    pub duration: f64,
    /// Dialect the clients join with.
    #[arg(long, value_enum, default_value_t = load::Dialect::Classic)]
    pub dialect: load::Dialect,
    /// Extra members that flood chat as fast as one thread can while the
    /// senders send (the overload scenario).
    #[arg(long, default_value_t = 0)]
    pub flooders: usize,
    /// Length of the classic line each measured message becomes, bytes.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Joins outstanding at once.
    #[arg(long, default_value_t = 64)]
    pub join_window: usize,
    /// Milliseconds before an unanswered join is sent again (doubling, up to 8x).
    #[arg(long, default_value_t = 1000)]
    pub join_timeout_ms: u64,
    /// Seconds before giving up on joining (10,000 members take minutes:
    /// every join is announced to every member).
    #[arg(long, default_value_t = 900.0)]
    pub join_deadline: f64,
    /// Milliseconds after which a message not yet delivered to every member
    /// counts as settled (its missing copies are lost).
    #[arg(long, default_value_t = 1000)]
    pub msg_timeout_ms: u64,
    /// Longest wait for stragglers after sending, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub drain_ms: u64,
    /// Most measured messages (or limit datagrams) per run.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_messages: u64,
    /// Receive buffer per client socket, bytes (SO_RCVBUFFORCE when root).
    #[arg(long)]
    pub rcvbuf: Option<usize>,
    /// Measure the loopback limit instead of a relay (no relay needed).
    #[arg(long)]
    pub limit: bool,
    /// `--limit`: 0 sends as fast as the kernel takes datagrams; W > 0 keeps
    /// at most W rounds of C datagrams unreceived, like a relay in closed loop.
    #[arg(long, default_value_t = 0)]
    pub limit_window: u64,
    /// The limit sender's system call.
    #[arg(long, value_enum, default_value_t = limit::SendCall::Sendmmsg)]
    pub send_call: limit::SendCall,
    /// Progress line on stderr: auto (when a terminal), always, never.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub progress: String,
    /// Send `Q nick` from every client at the end (leave the room tidy).
    #[arg(long)]
    pub quit: bool,
    /// Pin the receiving (and measured-sending) thread to this CPU. With the
    /// relay pinned to another one (`taskset -c`), both sides of the
    /// measurement get one core each, as in `--limit` with --sender-cpu.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// `--limit`: pin the sending thread to this CPU.
    #[arg(long)]
    pub sender_cpu: Option<usize>,
    /// Sending phases after one join, each reported in `rounds` (repeated
    /// measurements without paying for the join again).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
}

/// Entry point called by the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udpchat-bench: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Resolves `addr` and refuses anything that is not loopback.
pub fn loopback_target(addr: &str) -> Result<SocketAddr, BenchError> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| BenchError::Resolve {
            addr: addr.to_owned(),
            source,
        })?
        .collect();
    if resolved.is_empty() {
        return Err(BenchError::Resolve {
            addr: addr.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        });
    }
    // Every resolution must be loopback, so a name cannot smuggle in another
    // host; prefer IPv4 (what the relay binds by default).
    if let Some(bad) = resolved.iter().find(|a| !a.ip().is_loopback()) {
        return Err(BenchError::NotLoopback(bad.to_string()));
    }
    Ok(*resolved
        .iter()
        .find(|a| a.is_ipv4())
        .unwrap_or(&resolved[0]))
}

fn secs(s: f64, what: &str) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| *d <= Duration::from_secs(3600))
        .ok_or_else(|| BenchError::Usage(format!("{what} must be between 0 and 3600 seconds")))
}

/// Runs what the command line asks for.
pub fn run(cli: Cli) -> Result<Report, BenchError> {
    let progress = match cli.progress.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stderr().is_terminal(),
    };
    let duration = secs(cli.duration, "--duration")?;
    let needed = cli.clients + cli.flooders + 64;
    let fd_limit = udpchat_udp::host::raise_fd_limit().unwrap_or(0);
    if (fd_limit as usize) < needed {
        return Err(BenchError::Usage(format!(
            "{needed} file descriptors needed but the limit is {fd_limit}; raise `ulimit -n`"
        )));
    }
    if cli.clients > 100_000 || cli.flooders > 1000 {
        return Err(BenchError::Usage(
            "at most 100,000 --clients and 1,000 --flooders".into(),
        ));
    }
    // Enough buffer for a burst of a few hundred datagrams per socket,
    // smaller with many sockets so 10,000 of them stay within memory.
    let rcvbuf = cli.rcvbuf.unwrap_or(if cli.clients <= 1000 {
        4 << 20
    } else {
        1 << 20
    });
    if let Some(cpu) = cli.cpu {
        udpchat_udp::host::pin_current_thread(Some(cpu)).map_err(|source| BenchError::Io {
            context: "pinning to --cpu",
            source,
        })?;
    }
    if cli.limit {
        return limit::run(limit::LimitOptions {
            sender_cpu: cli.sender_cpu,
            window: cli.limit_window,
            clients: cli.clients,
            duration,
            send_call: cli.send_call,
            rcvbuf,
            max_datagrams: cli.max_messages,
            drain: Duration::from_millis(cli.drain_ms),
            progress,
        });
    }
    let relay = loopback_target(&cli.relay)?;
    let nick_prefix = format!("b{:x}-", std::process::id() % 0xfff + 1);
    load::run(load::LoadOptions {
        relay,
        relay_pid: cli.relay_pid,
        clients: cli.clients,
        senders: cli.senders,
        mode: cli.mode,
        window: cli.window,
        rate: cli.rate,
        duration,
        dialect: cli.dialect,
        flooders: cli.flooders,
        payload: cli.payload,
        join_window: cli.join_window,
        join_timeout: Duration::from_millis(cli.join_timeout_ms.max(1)),
        join_deadline: secs(cli.join_deadline, "--join-deadline")?,
        msg_timeout: Duration::from_millis(cli.msg_timeout_ms.max(1)),
        drain: Duration::from_millis(cli.drain_ms),
        max_messages: cli.max_messages.min(100_000_000),
        rcvbuf,
        progress,
        quit: cli.quit,
        rounds: cli.rounds,
        nick_prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(loopback_target("127.0.0.1:10024").is_ok());
        assert!(loopback_target("[::1]:10024").is_ok());
        assert!(loopback_target("localhost:10024")
            .unwrap()
            .ip()
            .is_loopback());
        // Non-loopback targets are refused before any socket exists (these
        // addresses are only parsed; nothing is sent to them).
        assert!(matches!(
            loopback_target("10.0.0.1:10024"), // parsed only, never sent to
            Err(BenchError::NotLoopback(_))
        ));
        assert!(matches!(
            loopback_target("192.168.1.5:1"), // parsed only, never sent to
            Err(BenchError::NotLoopback(_))
        ));
        assert!(loopback_target("no port").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
