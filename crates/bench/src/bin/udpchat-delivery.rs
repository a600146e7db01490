//! `udpchat-delivery`: delivery through a lossy network, measured on the
//! real binaries. For each loss pattern and seed it starts the relay, the
//! seeded loss proxy (crates/lossproxy) in front of it, and C piped
//! `udpchat` clients; each client types M lines at R lines a second; the
//! completion time is from the last line typed until every client shows
//! every line exactly once (in each sender's order). Prints a Markdown table:
//! loss pattern × (p50 / p99 / max completion, clients incomplete, datagrams
//! and bytes on the wire per delivered message per member).
//!
//! Loopback only; every run is bounded by `--deadline`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use udpchat_lossproxy::{Impairment, LossProxy, ProxyConfig};

/// Delivery through a lossy network, on the real relay and client binaries.
///
/// Example: udpchat-delivery --loss 0,0.2,0.3 --seeds 20
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The relay binary (default: udpchat-relay beside this program).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// The client binary (default: udpchat beside this program).
    #[arg(long)]
    client_bin: Option<PathBuf>,
    /// Loss probabilities to measure, each in both directions.
    #[arg(long, value_delimiter = ',', default_value = "0,0.2,0.3")]
    loss: Vec<f64>,
    /// Duplication probability towards the clients (and half of it towards
    /// the relay is not applied: a classic `M` has no id).
    #[arg(long, default_value_t = 0.02)]
    duplicate: f64,
    /// Reordering probability in both directions.
    #[arg(long, default_value_t = 0.03)]
    reorder: f64,
    /// Seeds per loss pattern.
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Clients.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Lines each client types.
    #[arg(long, default_value_t = 40)]
    messages: usize,
    /// Lines per second, each client.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Give up on a run this many seconds after the last line typed.
    #[arg(long, default_value_t = 120)]
    deadline: u64,
}

fn beside_me(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name(name)
}

/// A line printed by a client and when it appeared.
type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Seen,
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One run's result.
struct Run {
    /// Completion per client (None: incomplete at the deadline).
    completion: Vec<Option<Duration>>,
    /// Lines shown twice, or out of their sender's order.
    faults: usize,
    datagrams: u64,
    bytes: u64,
    deliveries: u64,
}

/// Starts the relay; returns it, its address, and its log lines (the
/// relay's own word on who joined: a client may miss its own join line
/// on a lossy network).
fn start_relay(bin: &PathBuf) -> Result<(Relay, SocketAddr, Seen), String> {
    let mut child = Command::new(bin)
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let log: Seen = Arc::default();
    let sink = Arc::clone(&log);
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            sink.lock().expect("lock").push((Instant::now(), line));
        }
    });
    let relay = Relay(child);
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .map_err(|e| format!("relay: {e}"))?;
    let addr = first
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("relay printed {first:?}"))?;
    Ok((relay, addr, log))
}

fn start_client(bin: &PathBuf, relay: SocketAddr, nick: &str) -> Result<Client, String> {
    let mut child = Command::new(bin)
        .args(["--relay", &relay.to_string(), "--nick", nick])
        .env_remove("UDPCHAT_RELAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            sink.lock().expect("lock").push((Instant::now(), line));
        }
    });
    Ok(Client {
        stdin: child.stdin.take(),
        child,
        seen,
    })
}

/// The payloads `m:<nick>:<n>` in a client's lines, with when each first
/// showed.
fn payloads(lines: &[(Instant, String)]) -> Vec<(Instant, String)> {
    lines
        .iter()
        .filter_map(|(at, l)| l.split_once(": m:").map(|(_, p)| (*at, format!("m:{p}"))))
        .collect()
}

fn run_once(
    args: &Args,
    relay_bin: &PathBuf,
    client_bin: &PathBuf,
    loss: f64,
    seed: u64,
) -> Result<Run, String> {
    let (_relay, relay_addr, relay_log) = start_relay(relay_bin)?;
    let config = ProxyConfig {
        seed,
        // No duplicates towards the relay: a repeated datagram there is the
        // protocol's own business (SAY ids), not the network's.
        to_relay: Impairment {
            drop: loss,
            duplicate: 0.0,
            reorder: args.reorder,
        },
        to_client: Impairment {
            drop: loss,
            duplicate: args.duplicate,
            reorder: args.reorder,
        },
        max_hold: Duration::from_millis(100),
    };
    let proxy = LossProxy::start(relay_addr, config).map_err(|e| format!("proxy: {e}"))?;
    let nicks: Vec<String> = (0..args.clients).map(|i| format!("c{i}")).collect();
    let mut clients = Vec::new();
    for nick in &nicks {
        clients.push(start_client(client_bin, proxy.addr(), nick)?);
    }
    // Everyone joined (says the relay's log) before the measured part.
    let join_deadline = Instant::now() + Duration::from_secs(60);
    for nick in &nicks {
        let want = format!("{nick} joined from ");
        while !relay_log
            .lock()
            .expect("lock")
            .iter()
            .any(|(_, l)| l.contains(&want))
        {
            if Instant::now() > join_deadline {
                return Err(format!("{nick} did not join within 60 s"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    proxy.reset_stats();
    let gap = Duration::from_secs_f64(1.0 / args.rate.max(0.1));
    let mut next = Instant::now();
    for i in 0..args.messages {
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
        next += gap;
        for (client, nick) in clients.iter_mut().zip(&nicks) {
            if let Some(stdin) = client.stdin.as_mut() {
                let _ = writeln!(stdin, "m:{nick}:{i:03}");
                let _ = stdin.flush();
            }
        }
    }
    let last_sent = Instant::now();
    let want: HashSet<String> = nicks
        .iter()
        .flat_map(|n| (0..args.messages).map(move |i| format!("m:{n}:{i:03}")))
        .collect();
    let deadline = last_sent + Duration::from_secs(args.deadline);
    let mut completion = vec![None; clients.len()];
    while Instant::now() < deadline && completion.iter().any(Option::is_none) {
        for (k, client) in clients.iter().enumerate() {
            if completion[k].is_some() {
                continue;
            }
            let seen = payloads(&client.seen.lock().expect("lock"));
            let mut have = HashSet::new();
            let mut at = last_sent;
            for (t, p) in &seen {
                if want.contains(p) && have.insert(p.clone()) {
                    at = at.max(*t);
                }
            }
            if have.len() == want.len() {
                completion[k] = Some(at.saturating_duration_since(last_sent));
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    let stats = proxy.stats();
    // Duplicates and order, per client.
    let mut faults = 0;
    let mut deliveries = 0u64;
    for client in &clients {
        let seen = payloads(&client.seen.lock().expect("lock"));
        let mut count: HashMap<&str, usize> = HashMap::new();
        let mut last: HashMap<&str, &str> = HashMap::new();
        for (_, p) in &seen {
            *count.entry(p.as_str()).or_default() += 1;
            let sender = p.split(':').nth(1).unwrap_or("");
            if let Some(prev) = last.insert(sender, p.as_str()) {
                if prev >= p.as_str() {
                    faults += 1;
                }
            }
        }
        faults += count.values().filter(|&&n| n > 1).count();
        deliveries += count.len() as u64;
    }
    for client in &mut clients {
        client.stdin = None;
    }
    Ok(Run {
        completion,
        faults,
        datagrams: stats.to_relay.datagrams_in + stats.to_client.datagrams_in,
        bytes: stats.to_relay.bytes_in + stats.to_client.bytes_in,
        deliveries,
    })
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> ExitCode {
    let args = Args::parse();
    let relay_bin = args
        .relay_bin
        .clone()
        .unwrap_or_else(|| beside_me("udpchat-relay"));
    let client_bin = args
        .client_bin
        .clone()
        .unwrap_or_else(|| beside_me("udpchat"));
    println!(
        "| loss each way (+{:.0} % dup, {:.0} % reorder) | runs | clients complete | completion p50 / p99 / max s | faults | datagrams/msg | bytes/msg |",
        args.duplicate * 100.0,
        args.reorder * 100.0
    );
    println!("|---|---|---|---|---|---|---|");
    for &loss in &args.loss {
        let mut times = Vec::new();
        let (mut complete, mut total, mut faults) = (0, 0, 0);
        let (mut datagrams, mut bytes, mut deliveries) = (0u64, 0u64, 0u64);
        for seed in 1..=args.seeds {
            match run_once(&args, &relay_bin, &client_bin, loss, seed) {
                Ok(run) => {
                    total += run.completion.len();
                    for c in run.completion.iter().flatten() {
                        complete += 1;
                        times.push(c.as_secs_f64());
                    }
                    faults += run.faults;
                    datagrams += run.datagrams;
                    bytes += run.bytes;
                    deliveries += run.deliveries;
                }
                Err(e) => {
                    eprintln!("udpchat-delivery: loss {loss} seed {seed}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            eprintln!("loss {loss} seed {seed} done");
        }
        times.sort_by(f64::total_cmp);
        let per = |n: u64| n as f64 / deliveries.max(1) as f64;
        println!(
            "| {:.0} % | {} | {complete} of {total} | {:.1} / {:.1} / {:.1} | {faults} | {:.2} | {:.1} |",
            loss * 100.0,
            args.seeds,
            quantile(&times, 0.5),
            quantile(&times, 0.99),
            times.last().copied().unwrap_or(f64::NAN),
            per(datagrams),
            per(bytes),
        );
    }
    ExitCode::SUCCESS
}
