//! Smoke test of `udpchat-bench`: a one-second run against the debug relay,
//! so the tool cannot rot. The benchmark itself (crates/bench/run.sh) does
//! not run in CI; this checks that the tool works and its JSON is sane, never
//! how fast anything is.

use std::net::SocketAddr;
use std::process::{Command, Output};

use clap::Parser as _;
use udpchat_bench::Report;

const BENCH_BIN: &str = env!("CARGO_BIN_EXE_udpchat-bench");

/// The real relay, run in a thread of this test process (the relay binary
/// belongs to the root package, out of reach of `CARGO_BIN_EXE_*` here). The
/// thread runs until the test process ends.
struct Relay {
    addr: SocketAddr,
}

impl Relay {
    fn start(flags: &[&str]) -> Relay {
        let mut argv = vec!["udpchat-relay", "--bind", "127.0.0.1:0"];
        argv.extend(flags);
        let args = udpchat_relay::cli::Args::try_parse_from(&argv).expect("relay flags");
        // The server holds its room's `Rc`s, so it is made in its own thread.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server = udpchat_relay::start(&args).expect("start the relay");
            tx.send(server.local_addr())
                .expect("test waits for the address");
            server.run()
        });
        let addr = rx.recv().expect("relay thread started");
        Relay { addr }
    }

    /// The relay's process is this one.
    fn pid(&self) -> u32 {
        std::process::id()
    }
}

fn bench(args: &[&str]) -> Output {
    Command::new(BENCH_BIN)
        .args(args)
        .args(["--progress", "never"])
        .output()
        .expect("cannot start udpchat-bench")
}

fn report_of(out: &Output) -> Report {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "udpchat-bench failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Report::from_json(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

fn assert_sane_lossless(r: &Report, clients: u64) {
    assert!(r.sent > 0, "{r:?}");
    assert_eq!(r.expected, r.sent * clients, "{r:?}");
    assert_eq!(r.delivered, r.expected, "every copy arrives: {r:?}");
    assert_eq!(r.loss.never_fanned_out, 0, "{r:?}");
    assert_eq!(r.loss.missing_copies, 0, "{r:?}");
    assert_eq!(r.loss.duplicate_copies, 0, "{r:?}");
    assert_eq!(r.loss.delivery_share, 1.0, "{r:?}");
    assert!(r.deliveries_per_sec > 0.0, "{r:?}");
    assert!(r.elapsed_s > 0.0, "{r:?}");
    let lat = r.latency.expect("latency measured");
    assert_eq!(lat.count, r.delivered, "{r:?}");
    assert!(lat.min_us > 0.0, "{lat:?}");
    assert!(lat.min_us <= lat.p50_us, "{lat:?}");
    assert!(lat.p50_us <= lat.p99_us, "{lat:?}");
    assert!(lat.p99_us <= lat.max_us, "{lat:?}");
    let join = r.join.as_ref().expect("join measured");
    assert_eq!(join.clients as u64, clients);
}

// Loose enough that a busy CI machine loses nothing to the tool's timeouts.
const PATIENT: &[&str] = &["--msg-timeout-ms", "20000", "--drain-ms", "20000"];

#[test]
fn closed_loop_classic_run_reports_no_loss() {
    let relay = Relay::start(&["--rate-burst", "1000000", "--rate-per-sec", "1000000"]);
    let addr = relay.addr.to_string();
    let pid = relay.pid().to_string();
    let mut args = vec![
        "--relay",
        &addr,
        "--relay-pid",
        &pid,
        "-c",
        "10",
        "-d",
        "0.5",
        "--rounds",
        "2",
    ];
    args.extend(PATIENT);
    let r = report_of(&bench(&args));
    assert_eq!(r.rounds.len(), 2, "one report per round");
    assert_eq!(
        r.rounds[0],
        Report {
            rounds: vec![],
            ..r.clone()
        }
    );
    for round in &r.rounds {
        assert_sane_lossless(round, 10);
    }
    assert_eq!(r.mode, "closed");
    assert_eq!(r.dialect.as_deref(), Some("classic"));
    assert_eq!(r.window, Some(8));
    assert_sane_lossless(&r, 10);
    let process = r.relay_process.expect("--relay-pid given");
    assert_eq!(process.pid, relay.pid());
    assert!(process.peak_rss_kib > 0 && process.peak_rss_kib >= process.rss_kib);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn fixed_rate_structured_run_reports_no_loss() {
    let relay = Relay::start(&["--rate-burst", "1000", "--rate-per-sec", "1000"]);
    let addr = relay.addr.to_string();
    let mut args = vec![
        "--relay",
        &addr,
        "--dialect",
        "structured",
        "-c",
        "10",
        "-s",
        "2",
        "--mode",
        "rate",
        "--rate",
        "50",
        "-d",
        "1",
    ];
    args.extend(PATIENT);
    let r = report_of(&bench(&args));
    assert_eq!(r.mode, "rate");
    assert_eq!(r.dialect.as_deref(), Some("structured"));
    assert_sane_lossless(&r, 10);
}

#[test]
fn limit_mode_needs_no_relay() {
    let r = report_of(&bench(&["--limit", "-c", "10", "-d", "0.3"]));
    assert_eq!(r.mode, "limit");
    assert!(r.sent > 0 && r.delivered > 0, "{r:?}");
    assert!(r.delivered <= r.sent, "{r:?}");
    assert!(r.deliveries_per_sec > 0.0, "{r:?}");
}

#[test]
fn non_loopback_target_is_refused() {
    let out = bench(&["--relay", "192.0.2.1:10024", "-c", "1", "-d", "1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a loopback address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

/// The Python reference relay the benchmark compares against still speaks
/// the dialect the tool expects. Skipped where there is no python3.
#[test]
fn reference_python_relay_works_with_the_tool() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/reference/relay.py");
    let Ok(mut child) = Command::new("python3")
        .args([script, "--bind", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("no python3: skipped");
        return;
    };
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout is piped");
    let child = Kill(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reference relay prints its address");
    let addr = line
        .trim()
        .strip_prefix("reference relay listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let pid = child.0.id().to_string();
    let mut args = vec![
        "--relay",
        &addr,
        "--relay-pid",
        &pid,
        "-c",
        "5",
        "-d",
        "0.5",
    ];
    args.extend(PATIENT);
    let r = report_of(&bench(&args));
    assert_sane_lossless(&r, 5);
}
