//! `udpchat-hostile`: the hostile-classroom attacks of issue 12 (items
//! 1-9, crates/hostile, the same scenarios as tests/e2e/hostile.rs) against
//! a relay binary, each on a fresh relay process; prints one JSON object
//! with every scenario's figures (amplification factors, honest echo
//! latency during an attack as a ratio to the quiet run, join counts,
//! whether each spoof took effect). crates/bench/suite.py turns it into
//! the "Hostile classroom" table of BENCHMARKS.md.
//!
//! Loopback only; forging needs root or CAP_NET_RAW (scenarios that forge
//! are reported as skipped otherwise). About 40 s per relay binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use udpchat_hostile::{scenarios, Error};

/// The issue-12 attacks against one relay binary; JSON on stdout.
///
/// Example: udpchat-hostile --relay-bin target/release/udpchat-relay
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The relay binary (default: udpchat-relay beside this program).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// The client binary (default: udpchat beside this program).
    #[arg(long)]
    client_bin: Option<PathBuf>,
    /// Only these scenarios (comma-separated: icmp,icmp6,churn,amplification,
    /// forged-relay,flood-joins,reply-cost,spoof,fake-lines,invisible).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn beside_me(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name(name)
}

/// A relay child on 127.0.0.1:0 (or `bind`); killed on drop.
struct RelayChild {
    child: Child,
    addr: SocketAddr,
}

impl RelayChild {
    fn start(bin: &Path, bind: &str, flags: &[&str]) -> Result<RelayChild, String> {
        let mut child = Command::new(bin)
            .arg("--bind")
            .arg(bind)
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let addr = line.trim().rsplit(' ').next().and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(RelayChild { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("unexpected first line from the relay: {line:?}"))
            }
        }
    }
}

impl Drop for RelayChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one scenario on a fresh relay; its figures as JSON, or
/// `{"skipped": why}` / `{"error": what}`.
fn scenario<T: serde::Serialize>(
    relay_bin: &Path,
    bind: &str,
    flags: &[&str],
    run: impl FnOnce(SocketAddr) -> Result<T, Error>,
) -> Value {
    let relay = match RelayChild::start(relay_bin, bind, flags) {
        Ok(relay) => relay,
        Err(e) => return json!({ "error": e }),
    };
    let value = match run(relay.addr) {
        Ok(figures) => serde_json::to_value(figures).unwrap_or(Value::Null),
        Err(e @ Error::RawSocketsDenied(_)) => json!({ "skipped": e.to_string() }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    drop(relay);
    value
}

fn main() -> ExitCode {
    let args = Args::parse();
    let relay_bin = args.relay_bin.unwrap_or_else(|| beside_me("udpchat-relay"));
    let client_bin = args.client_bin.unwrap_or_else(|| beside_me("udpchat"));
    let client = client_bin.as_path();
    let want = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let limits = ["--rate-burst", "80", "--rate-per-sec", "40"];
    let v4 = "127.0.0.1:0";
    let mut report = serde_json::Map::new();
    let mut add = |name: &str, value: Value| {
        eprintln!("udpchat-hostile: {name} done");
        report.insert(name.to_owned(), value);
    };
    if want("icmp") {
        add(
            "icmp",
            scenario(&relay_bin, v4, &[], scenarios::icmp_eviction),
        );
    }
    if want("icmp6") && std::net::UdpSocket::bind("[::1]:0").is_ok() {
        let run = scenarios::icmp_eviction;
        add("icmp6", scenario(&relay_bin, "[::1]:0", &[], run));
    }
    if want("churn") {
        let run = |relay| scenarios::churn_behind_full_table(relay, Duration::from_secs(2));
        add("churn", scenario(&relay_bin, v4, &limits, run));
    }
    if want("amplification") {
        let run = scenarios::amplification_at_victims;
        add("amplification", scenario(&relay_bin, v4, &[], run));
    }
    if want("forged-relay") {
        let run = |relay| scenarios::forged_relay_datagrams(relay, client);
        add("forged_relay", scenario(&relay_bin, v4, &[], run));
    }
    if want("flood-joins") {
        let run = |relay| {
            scenarios::joins_under_ping_flood(relay, client, 3000, Duration::from_secs(4), 3)
        };
        add("flood_joins", scenario(&relay_bin, v4, &[], run));
    }
    if want("reply-cost") {
        let flags = [&limits[..], &["--history-on-join", "64"]].concat();
        let run = scenarios::reply_cost;
        add("reply_cost", scenario(&relay_bin, v4, &flags, run));
    }
    if want("spoof") {
        let run = |relay| scenarios::blind_spoof(relay, client);
        add("spoof", scenario(&relay_bin, v4, &[], run));
    }
    if want("fake-lines") {
        let texts = scenarios::fake_line_texts();
        let run = |relay| scenarios::refused_texts(relay, 8, &texts);
        add("fake_lines", scenario(&relay_bin, v4, &[], run));
    }
    if want("invisible") {
        let texts = scenarios::invisible_texts();
        let run = |relay| scenarios::refused_texts(relay, 9, &texts);
        add("invisible", scenario(&relay_bin, v4, &[], run));
    }
    println!("{}", Value::Object(report));
    ExitCode::SUCCESS
}
