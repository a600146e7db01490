//! End to end through the seeded loss proxy (crates/lossproxy): the real
//! `udpchat` client, in piped mode, against the real relay.
//!
//! - Three structured clients exchange 300 messages at 20% loss in each
//!   direction (plus some reordering, and duplicates towards the clients);
//!   each ends with every room message exactly once, in the room's order
//!   (the relay's transcript is the reference), and all 300 got through.
//!   A classic client through the same proxy keeps working: it only misses
//!   what was dropped.
//! - `loss_measurements` (ignored by default, run by hand with
//!   `cargo test --test loss_repair -- --ignored --nocapture`) prints
//!   datagrams and bytes on the wire per delivered message at 0%, 5% and
//!   20% loss, with repair (the real client) and without (a client that
//!   ignores gaps and never resends).

mod hostile_util;
mod util;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hostile_util::{check_datagram, Ending};
use udpchat_lossproxy::{Impairment, LossProxy, ProxyConfig, ProxyStats};
use udpchat_proto::{ClientMsg, Nick, RelayMsg, RoomEvent, Token, VERSION};
use util::{Relay, TempFile};

const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_udpchat");

/// The real client in piped mode; killed on drop.
struct ChatProcess {
    nick: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect_lines(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            sink.lock().expect("lines lock").push(line);
        }
    });
    lines
}

impl ChatProcess {
    fn start(relay: SocketAddr, nick: &str) -> ChatProcess {
        let mut child = Command::new(CLIENT_BIN)
            .args(["--relay", &relay.to_string(), "--nick", nick])
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start udpchat");
        let stdin = child.stdin.take();
        let lines = collect_lines(child.stdout.take().expect("piped"));
        let stderr = collect_lines(child.stderr.take().expect("piped"));
        ChatProcess {
            nick: nick.to_owned(),
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{text}").expect("write to udpchat");
        stdin.flush().expect("flush udpchat stdin");
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines lock").clone()
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.lines()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// End of input: the client sends `Q` and exits by itself.
    fn finish(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                _ => return None,
            }
        }
    }

    fn describe(&self) -> String {
        let lines = self.lines();
        let tail: Vec<_> = lines.iter().rev().take(5).rev().collect();
        // Notices (losses, rejoins, history) say most about a failure.
        let notices: Vec<_> = lines
            .iter()
            .filter(|l| !l.contains(": m:") || l.contains("[history]"))
            .take(30)
            .collect();
        format!(
            "{}: {} lines, notices {notices:?}, last {tail:?}; stderr {:?}; pid {}",
            self.nick,
            lines.len(),
            self.stderr.lock().expect("lock"),
            self.child.id()
        )
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test payloads (`m:...`) in the displayed lines, in order (private
/// lines excluded). Lines shown as `[history]` count: a client whose
/// WELCOME was lost gets the messages sent meanwhile as history when its
/// retried join is answered, once each and before the rest.
fn payloads(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.contains("[private"))
        .filter_map(|l| l.split_once(": m:").map(|(_, p)| format!("m:{p}")))
        .collect()
}

/// The chat payloads of the relay's transcript, in sequence order.
fn transcript_payloads(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    payloads(&text.lines().map(str::to_owned).collect::<Vec<_>>())
}

/// A classic `nc`-style client through the proxy, on its own thread: joins
/// (re-sending `N` until `OK`), says `w:<k>` every half second until `go`
/// (a warm-up: a structured client that shows one has its WELCOME), then
/// sends `count` messages a few hundred ms apart, and records everything
/// it receives until `stop`.
struct ClassicClient {
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<thread::JoinHandle<usize>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    go: Arc<std::sync::atomic::AtomicBool>,
}

impl ClassicClient {
    fn start(proxy: SocketAddr, nick: &'static str, count: usize) -> ClassicClient {
        use std::sync::atomic::{AtomicBool, Ordering};
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let go = Arc::new(AtomicBool::new(false));
        let (g, st, gone) = (Arc::clone(&got), Arc::clone(&stop), Arc::clone(&go));
        let thread = thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            let mut buf = vec![0u8; 65536];
            let mut joined = false;
            let mut sent = 0;
            let mut warmups = 0;
            let mut next = Instant::now();
            let start = Instant::now();
            while !st.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(300) {
                if Instant::now() >= next {
                    if !joined {
                        let _ = socket.send_to(format!("N {nick}").as_bytes(), proxy);
                        next = Instant::now() + Duration::from_millis(300);
                    } else if !gone.load(Ordering::SeqCst) {
                        let _ = socket.send_to(format!("M {nick} w:{warmups}").as_bytes(), proxy);
                        warmups += 1;
                        next = Instant::now() + Duration::from_millis(500);
                    } else if sent < count {
                        let _ = socket
                            .send_to(format!("M {nick} m:{nick}:{sent:03}").as_bytes(), proxy);
                        sent += 1;
                        next = Instant::now() + Duration::from_millis(400);
                    } else {
                        next = Instant::now() + Duration::from_secs(3600);
                    }
                }
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    if from != proxy {
                        continue;
                    }
                    if &buf[..n] == b"OK" {
                        joined = true;
                    }
                    g.lock().expect("lock").push(buf[..n].to_vec());
                }
            }
            // Leave (a few times: the network may lose some).
            for _ in 0..5 {
                let _ = socket.send_to(format!("Q {nick}").as_bytes(), proxy);
                thread::sleep(Duration::from_millis(20));
            }
            sent
        });
        ClassicClient {
            got,
            thread: Some(thread),
            stop,
            go,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    fn finish(&mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("classic thread"))
            .unwrap_or(0)
    }
}

const NICKS: [&str; 3] = ["ann", "ben", "cat"];

/// Waits until the relay logged every client's join. A client may not have
/// its WELCOME yet (lost and retried): what is said meanwhile reaches it as
/// history with its retried WELCOME (hence `--history-on-join` in the tests).
fn wait_joined(relay: &Relay, clients: &[ChatProcess]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for c in clients {
        let needle = format!("{} joined from", c.nick);
        while !relay.stderr().contains(&needle) {
            assert!(
                Instant::now() < deadline,
                "{} never joined; {}",
                c.nick,
                clients
                    .iter()
                    .map(ChatProcess::describe)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

fn lossy(seed: u64, drop: f64) -> ProxyConfig {
    ProxyConfig {
        seed,
        // No duplicates towards the relay: the structured clients' `SAY` is
        // deduplicated by id, but the classic client's `M` carries none, so
        // a copy would be relayed twice and break the exactly-once check.
        to_relay: Impairment {
            drop,
            duplicate: 0.0,
            reorder: drop / 4.0,
        },
        to_client: Impairment {
            drop,
            duplicate: drop / 4.0,
            reorder: drop / 4.0,
        },
        // Long enough that a held datagram is usually overtaken by its
        // sender's next one (clients send a few a second). `SAY` ids make a
        // retransmission of a late message harmless.
        max_hold: Duration::from_millis(400),
    }
}

#[test]
fn three_structured_clients_get_all_300_messages_once_in_order_through_20_percent_loss() {
    const PER_CLIENT: usize = 100;
    let transcript = TempFile::new("loss-transcript");
    let relay = Relay::start(&[
        "--transcript",
        transcript.as_str(),
        "--history-on-join",
        "1000",
    ]);
    let proxy = LossProxy::start(relay.addr, lossy(0x10552020, 0.2)).expect("proxy");

    let mut clients: Vec<ChatProcess> = NICKS
        .iter()
        .map(|n| ChatProcess::start(proxy.addr(), n))
        .collect();
    wait_joined(&relay, &clients);
    let mut classic = ClassicClient::start(proxy.addr(), "cla", 10);
    // Everyone has its WELCOME once it shows a warm-up line: from then on,
    // what it misses is repaired (before, it could only come as history,
    // which is best effort).
    for c in &clients {
        assert!(
            c.wait_until(Duration::from_secs(60), |l| l
                .iter()
                .any(|x| x.contains(": w:"))),
            "{} never showed a warm-up line: {}",
            c.nick,
            c.describe()
        );
    }
    classic.go.store(true, std::sync::atomic::Ordering::SeqCst);
    // Everyone types as fast as they like; the client paces its sending.
    for i in 0..PER_CLIENT {
        for c in clients.iter_mut() {
            let line = format!("m:{}:{i:03}", c.nick);
            c.say(&line);
        }
    }
    let want: HashSet<String> = NICKS
        .iter()
        .flat_map(|n| (0..PER_CLIENT).map(move |i| format!("m:{n}:{i:03}")))
        .collect();
    let complete = |l: &[String]| {
        let got: HashSet<String> = payloads(l).into_iter().collect();
        want.is_subset(&got)
    };
    // One deadline for all: 300 messages at the client's pace (4 a second
    // each) take about 30 s; repair at 20% loss adds some.
    let deadline = Instant::now() + Duration::from_secs(240);
    for c in &clients {
        let done = c.wait_until(deadline.saturating_duration_since(Instant::now()), complete);
        if !done {
            let reference = transcript_payloads(&transcript.0);
            let missing_in_room: Vec<_> = want.iter().filter(|w| !reference.contains(w)).collect();
            eprintln!(
                "room has {} chats; {} of the 300 never reached it: {missing_in_room:?}",
                reference.len(),
                missing_in_room.len()
            );
        }
        assert!(
            done,
            "{} did not get all {} messages: missing {:?}; {}",
            c.nick,
            want.len(),
            {
                let got: HashSet<String> = payloads(&c.lines()).into_iter().collect();
                let mut missing: Vec<_> = want.difference(&got).cloned().collect();
                missing.sort();
                missing.truncate(10);
                missing
            },
            c.describe()
        );
    }
    // Let the classic client's last messages and any repair settle.
    let reference_len = |r: &Vec<String>| r.len();
    let mut reference = transcript_payloads(&transcript.0);
    let settle = Instant::now() + Duration::from_secs(30);
    while Instant::now() < settle {
        reference = transcript_payloads(&transcript.0);
        if clients
            .iter()
            .all(|c| payloads(&c.lines()).len() >= reference_len(&reference))
        {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let classic_sent = classic.finish();
    let stats = proxy.stats();

    // Exactly once, in the room's order, for every structured client.
    for c in &clients {
        let got = payloads(&c.lines());
        assert_eq!(
            got,
            reference,
            "{} differs from the room's order ({} vs {} messages)",
            c.nick,
            got.len(),
            reference.len()
        );
        let mut seen = HashSet::new();
        let twice: Vec<&String> = got.iter().filter(|p| !seen.insert(*p)).collect();
        assert!(twice.is_empty(), "{} shows {twice:?} twice", c.nick);
        assert!(
            !c.lines().iter().any(|l| l.contains("lost")),
            "{} reports losses: {}",
            c.nick,
            c.describe()
        );
    }
    assert!(
        want.iter().all(|w| reference.contains(w)),
        "all 300 reached the room"
    );

    // The classic client kept working: clean lines, only real room
    // messages, and most of them despite the loss. (It has no sequence
    // numbers, so the network's reordering and duplicates reach its screen.)
    let classic_lines = classic.lines();
    for bytes in classic.got.lock().expect("lock").iter() {
        check_datagram(bytes, Ending::Bare).expect("clean datagram to the classic client");
    }
    let classic_got: HashSet<String> = payloads(&classic_lines).into_iter().collect();
    let room: HashSet<&String> = reference.iter().collect();
    for p in &classic_got {
        assert!(
            room.contains(p),
            "classic client got {p:?}, not a room message"
        );
    }
    assert!(
        classic_got.len() * 2 > reference.len(),
        "classic client got only {} of {}",
        classic_got.len(),
        reference.len()
    );
    let classic_in_room = reference.iter().filter(|p| p.starts_with("m:cla:")).count();
    assert!(
        classic_in_room > 0,
        "none of the classic client's messages got through"
    );

    for c in clients.iter_mut() {
        let status = c.finish(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "{} exit: {status:?}",
            c.nick
        );
    }
    eprintln!(
        "loss 20%: {} room messages, each structured client got all exactly once in order; \
         classic client sent {classic_sent}, {classic_in_room} reached the room, it received {} of {}; \
         proxy {:?}",
        reference.len(),
        classic_got.len(),
        reference.len(),
        stats
    );
}

/// A structured client that ignores gaps: joins (retrying), sends its
/// messages once each, never asks for resends, never acknowledges; counts
/// the distinct chat events it receives.
fn naive_client(
    proxy: SocketAddr,
    nick: &str,
    messages: usize,
    barrier: Arc<Barrier>,
    listen: Duration,
) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let nick = Nick::new(nick).expect("nick");
    let version = Token::new(VERSION).expect("version");
    let mut buf = vec![0u8; 2048];
    let mut cookie = None;
    let start = Instant::now();
    // Join, re-sending until WELCOME.
    'join: while start.elapsed() < Duration::from_secs(60) {
        let hello = ClientMsg::Hello {
            version: version.clone(),
            nick: nick.clone(),
            cookie,
        };
        let _ = socket.send_to(&hello.encode(), proxy);
        let wait = Instant::now() + Duration::from_millis(300);
        while Instant::now() < wait {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                match RelayMsg::parse(&buf[..n]) {
                    Ok(RelayMsg::Cookie(c)) => {
                        cookie = Some(c);
                        continue 'join;
                    }
                    Ok(RelayMsg::Welcome { .. }) => break 'join,
                    _ => {}
                }
            }
        }
    }
    // Twice: the test resets the counters between the two.
    barrier.wait();
    barrier.wait();
    let mut seen = HashSet::new();
    let record = |bytes: &[u8], seen: &mut HashSet<u64>| {
        if let Ok(RelayMsg::Event {
            seq,
            event: RoomEvent::Chat { .. },
            ..
        }) = RelayMsg::parse(bytes)
        {
            seen.insert(seq);
        }
    };
    // The same pace as the real client's budget (4 a second).
    for i in 0..messages {
        let chat = ClientMsg::Chat {
            nick: nick.clone(),
            text: udpchat_proto::Text::new(&format!("m:{nick}:{i:03}")).expect("text"),
        };
        let _ = socket.send_to(&chat.encode(), proxy);
        let until = Instant::now() + Duration::from_millis(250);
        while Instant::now() < until {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                record(&buf[..n], &mut seen);
            }
        }
    }
    let until = Instant::now() + listen;
    while Instant::now() < until {
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            record(&buf[..n], &mut seen);
        }
    }
    seen.len()
}

struct Measurement {
    loss: f64,
    repair: bool,
    sent: usize,
    delivered: usize,
    stats: ProxyStats,
}

fn measure(loss: f64, repair: bool, per_client: usize) -> Measurement {
    let relay = Relay::start(&["--history-on-join", "1000"]);
    let proxy = LossProxy::start(relay.addr, lossy(0x3ea5, loss)).expect("proxy");
    let sent = per_client * NICKS.len();
    let (delivered, stats) = if repair {
        let mut clients: Vec<ChatProcess> = NICKS
            .iter()
            .map(|n| ChatProcess::start(proxy.addr(), n))
            .collect();
        wait_joined(&relay, &clients);
        let mut warm = ClassicClient::start(proxy.addr(), "cla", 0);
        for c in &clients {
            c.wait_until(Duration::from_secs(60), |l| {
                l.iter().any(|x| x.contains(": w:"))
            });
        }
        // The warm-up client leaves, so that it receives nothing counted.
        warm.finish();
        thread::sleep(Duration::from_millis(1000));
        proxy.reset_stats();
        for i in 0..per_client {
            for c in clients.iter_mut() {
                let line = format!("m:{}:{i:03}", c.nick);
                c.say(&line);
            }
        }
        for c in &clients {
            c.wait_until(Duration::from_secs(120), |l| payloads(l).len() >= sent);
        }
        // Whatever is still in flight (tail checks, pings) belongs to the cost.
        thread::sleep(Duration::from_secs(2));
        let delivered = clients
            .iter()
            .map(|c| {
                payloads(&c.lines())
                    .into_iter()
                    .collect::<HashSet<_>>()
                    .len()
            })
            .sum();
        let stats = proxy.stats();
        for c in clients.iter_mut() {
            c.finish(Duration::from_secs(30));
        }
        (delivered, stats)
    } else {
        let barrier = Arc::new(Barrier::new(NICKS.len() + 1));
        let threads: Vec<_> = NICKS
            .iter()
            .map(|n| {
                let (b, addr, n) = (Arc::clone(&barrier), proxy.addr(), n.to_string());
                thread::spawn(move || naive_client(addr, &n, per_client, b, Duration::from_secs(2)))
            })
            .collect();
        // All joined: count from the first message on.
        barrier.wait();
        proxy.reset_stats();
        barrier.wait();
        let delivered = threads
            .into_iter()
            .map(|t| t.join().expect("naive client"))
            .sum();
        (delivered, proxy.stats())
    };
    Measurement {
        loss,
        repair,
        sent,
        delivered,
        stats,
    }
}

#[test]
#[ignore = "a measurement (about two minutes); run with --ignored --nocapture"]
fn loss_measurements() {
    const PER_CLIENT: usize = 40;
    let mut rows = Vec::new();
    for loss in [0.0, 0.05, 0.2] {
        for repair in [false, true] {
            rows.push(measure(loss, repair, PER_CLIENT));
        }
    }
    eprintln!(
        "\n3 structured clients x {PER_CLIENT} messages; wire = every datagram the senders put on \
         the wire, both directions, from the first message on (joins excluded; pings, resends \
         and the tail included); delivered = distinct chat \
         messages shown, summed over the 3 clients (at most {}).",
        3 * 3 * PER_CLIENT
    );
    eprintln!("loss  repair  delivered  ratio   datagrams/msg  bytes/msg  (to relay / to clients datagrams)");
    let mut by_key = HashMap::new();
    for m in &rows {
        let d = m.delivered.max(1) as f64;
        eprintln!(
            "{:>3.0}%  {:<6}  {:>9}  {:>5.1}%  {:>13.2}  {:>9.1}  ({} / {})",
            m.loss * 100.0,
            if m.repair { "yes" } else { "no" },
            m.delivered,
            100.0 * m.delivered as f64 / (3 * m.sent) as f64,
            m.stats.datagrams_offered() as f64 / d,
            m.stats.bytes_offered() as f64 / d,
            m.stats.to_relay.datagrams_in,
            m.stats.to_client.datagrams_in,
        );
        by_key.insert(((m.loss * 100.0) as u32, m.repair), m.delivered);
    }
    // Sanity: repair delivers everything; without it, loss shows.
    for loss in [0, 5, 20] {
        assert_eq!(by_key[&(loss, true)], 9 * PER_CLIENT, "repair at {loss}%");
    }
    assert!(by_key[&(20, false)] < 9 * PER_CLIENT);
}
