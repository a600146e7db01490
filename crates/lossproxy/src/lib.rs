//! A loss-injecting UDP proxy for end-to-end tests: clients talk to the
//! proxy, the proxy talks to the relay, and on the way it drops, duplicates
//! and reorders datagrams at configurable rates in each direction.
//!
//! Contract: loopback only (it binds `127.0.0.1:0`), one thread, stops and
//! joins its thread when the [`LossProxy`] is dropped. Every decision comes
//! from a seeded [`SplitMix64`], one generator per direction, so the same
//! seed and the same sequence of datagrams give the same losses.
//!
//! Each client address gets its own upstream socket (connected to the relay),
//! so the relay sees one distinct address per client, as it would without the
//! proxy. Reordering holds a datagram back and releases it right after the
//! next datagram of the same client and direction (or after
//! [`ProxyConfig::max_hold`] if none comes).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

/// The most client addresses the proxy tracks; datagrams from further
/// addresses are counted in [`DirectionStats::refused`] and dropped.
pub const MAX_FLOWS: usize = 4096;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_FLOW: usize = 2;

/// SplitMix64: a tiny, fast, seeded PRNG (Steele, Lea, Flood 2014). Good
/// enough to pick losses; not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator that yields the same sequence for the same seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..n` (`n` > 0; slightly biased for huge `n`,
    /// which does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p` (clamped to `0.0..=1.0`).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits make a uniform f64 in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// What happens to the datagrams of one direction. Each is a probability per
/// datagram, from 0.0 (never) to 1.0 (always), decided in this order: drop;
/// else hold back for reordering; else forward, and maybe forward a copy.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Probability that a datagram is lost.
    pub drop: f64,
    /// Probability that a forwarded datagram is sent twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back and released after the next one.
    pub reorder: f64,
}

impl Impairment {
    /// No loss, no duplicates, no reordering.
    pub const NONE: Impairment = Impairment {
        drop: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
    };

    /// Only loss, at rate `drop`.
    pub fn loss(drop: f64) -> Impairment {
        Impairment {
            drop,
            ..Impairment::NONE
        }
    }
}

/// How a proxy treats traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxyConfig {
    /// Seeds the generators; the same seed gives the same decisions.
    pub seed: u64,
    /// Client to relay.
    pub to_relay: Impairment,
    /// Relay to client.
    pub to_client: Impairment,
    /// The longest a datagram held back for reordering waits for a successor.
    pub max_hold: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            seed: 1,
            to_relay: Impairment::NONE,
            to_client: Impairment::NONE,
            max_hold: Duration::from_millis(50),
        }
    }
}

impl ProxyConfig {
    /// The same impairment in both directions.
    pub fn symmetric(seed: u64, impairment: Impairment) -> ProxyConfig {
        ProxyConfig {
            seed,
            to_relay: impairment,
            to_client: impairment,
            ..ProxyConfig::default()
        }
    }
}

/// Counters for one direction. `*_in` counts what the senders put on the
/// wire; `*_out` what the proxy delivered (copies included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams received by the proxy.
    pub datagrams_in: u64,
    /// Bytes received by the proxy.
    pub bytes_in: u64,
    /// Datagrams sent on by the proxy.
    pub datagrams_out: u64,
    /// Bytes sent on by the proxy.
    pub bytes_out: u64,
    /// Datagrams dropped on purpose.
    pub dropped: u64,
    /// Extra copies sent on purpose.
    pub duplicated: u64,
    /// Datagrams held back and released out of order.
    pub reordered: u64,
    /// Datagrams the proxy could not send (socket buffer full, peer gone) or
    /// refused because it tracks [`MAX_FLOWS`] clients already.
    pub refused: u64,
}

/// Counters for both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client to relay.
    pub to_relay: DirectionStats,
    /// Relay to client.
    pub to_client: DirectionStats,
}

impl ProxyStats {
    /// Datagrams the senders put on the wire, both directions.
    pub fn datagrams_offered(&self) -> u64 {
        self.to_relay.datagrams_in + self.to_client.datagrams_in
    }

    /// Bytes the senders put on the wire, both directions.
    pub fn bytes_offered(&self) -> u64 {
        self.to_relay.bytes_in + self.to_client.bytes_in
    }
}

struct Shared {
    stop: AtomicBool,
    config: Mutex<ProxyConfig>,
    stats: Mutex<ProxyStats>,
    flows: Mutex<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in the proxy thread must not hide the counters from the test.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running proxy. Dropping it stops its thread.
pub struct LossProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl LossProxy {
    /// Binds `127.0.0.1:0` and forwards everything it receives to `relay`.
    pub fn start(relay: SocketAddr, config: ProxyConfig) -> io::Result<LossProxy> {
        let poll = Poll::new()?;
        let mut listener = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            config: Mutex::new(config),
            stats: Mutex::new(ProxyStats::default()),
            flows: Mutex::new(0),
        });
        let worker = Worker {
            poll,
            listener,
            relay,
            flows: Vec::new(),
            by_client: HashMap::new(),
            to_relay_rng: SplitMix64::new(config.seed),
            to_client_rng: SplitMix64::new(config.seed ^ 0x5eed_0fc1_1e47),
            shared: Arc::clone(&shared),
            buf: vec![0; 65536],
        };
        let thread = std::thread::Builder::new()
            .name("lossproxy".into())
            .spawn(move || worker.run())?;
        Ok(LossProxy {
            addr,
            shared,
            waker,
            thread: Some(thread),
        })
    }

    /// The address clients send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProxyStats {
        *lock(&self.shared.stats)
    }

    /// Sets every counter back to zero (e.g. after a lossless join phase).
    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = ProxyStats::default();
    }

    /// Changes the impairments from now on; the generators keep their state.
    pub fn set_impairment(&self, to_relay: Impairment, to_client: Impairment) {
        let mut config = lock(&self.shared.config);
        config.to_relay = to_relay;
        config.to_client = to_client;
    }

    /// How many client addresses the proxy has seen.
    pub fn flows(&self) -> usize {
        *lock(&self.shared.flows)
    }
}

impl Drop for LossProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToRelay,
    ToClient,
}

struct Held {
    bytes: Vec<u8>,
    deadline: Instant,
}

struct Flow {
    client: SocketAddr,
    upstream: UdpSocket,
    held_to_relay: Option<Held>,
    held_to_client: Option<Held>,
}

struct Worker {
    poll: Poll,
    listener: UdpSocket,
    relay: SocketAddr,
    flows: Vec<Flow>,
    by_client: HashMap<SocketAddr, usize>,
    to_relay_rng: SplitMix64,
    to_client_rng: SplitMix64,
    shared: Arc<Shared>,
    buf: Vec<u8>,
}

impl Worker {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        while !self.shared.stop.load(Ordering::SeqCst) {
            let timeout = self.next_deadline().map(|d| {
                d.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            });
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.drain_listener(),
                    WAKER => {}
                    Token(t) => self.drain_flow(t - FIRST_FLOW),
                }
            }
            self.release_expired(Instant::now());
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.flows
            .iter()
            .flat_map(|f| [&f.held_to_relay, &f.held_to_client])
            .flatten()
            .map(|h| h.deadline)
            .min()
    }

    fn drain_listener(&mut self) {
        loop {
            let (len, client) = match self.listener.recv_from(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors and the like: the datagram is gone, go on.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => continue,
            };
            let bytes = self.buf[..len].to_vec();
            let Some(index) = self.flow_for(client) else {
                let mut stats = lock(&self.shared.stats);
                stats.to_relay.datagrams_in += 1;
                stats.to_relay.bytes_in += len as u64;
                stats.to_relay.refused += 1;
                continue;
            };
            self.handle(index, Direction::ToRelay, bytes);
        }
    }

    fn drain_flow(&mut self, index: usize) {
        if index >= self.flows.len() {
            return;
        }
        loop {
            let len = match self.flows[index].upstream.recv(&mut self.buf) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let bytes = self.buf[..len].to_vec();
            self.handle(index, Direction::ToClient, bytes);
        }
    }

    fn flow_for(&mut self, client: SocketAddr) -> Option<usize> {
        if let Some(&index) = self.by_client.get(&client) {
            return Some(index);
        }
        if self.flows.len() >= MAX_FLOWS {
            return None;
        }
        let index = self.flows.len();
        let mut upstream = UdpSocket::bind(upstream_addr(self.relay, index)).ok()?;
        upstream.connect(self.relay).ok()?;
        self.poll
            .registry()
            .register(&mut upstream, Token(FIRST_FLOW + index), Interest::READABLE)
            .ok()?;
        self.flows.push(Flow {
            client,
            upstream,
            held_to_relay: None,
            held_to_client: None,
        });
        self.by_client.insert(client, index);
        *lock(&self.shared.flows) = self.flows.len();
        Some(index)
    }

    fn handle(&mut self, index: usize, direction: Direction, bytes: Vec<u8>) {
        let config = *lock(&self.shared.config);
        let (impairment, rng) = match direction {
            Direction::ToRelay => (config.to_relay, &mut self.to_relay_rng),
            Direction::ToClient => (config.to_client, &mut self.to_client_rng),
        };
        // Draw all three numbers every time so one rate does not shift the
        // decisions of the others between runs with different settings.
        let drop = rng.chance(impairment.drop);
        let hold = rng.chance(impairment.reorder);
        let duplicate = rng.chance(impairment.duplicate);
        {
            let mut stats = lock(&self.shared.stats);
            let s = direction_stats(&mut stats, direction);
            s.datagrams_in += 1;
            s.bytes_in += bytes.len() as u64;
            if drop {
                s.dropped += 1;
            }
        }
        if drop {
            return;
        }
        let flow = &mut self.flows[index];
        let slot = match direction {
            Direction::ToRelay => &mut flow.held_to_relay,
            Direction::ToClient => &mut flow.held_to_client,
        };
        if hold && slot.is_none() {
            *slot = Some(Held {
                bytes,
                deadline: Instant::now() + config.max_hold,
            });
            return;
        }
        let released = slot.take();
        self.send(index, direction, &bytes);
        if duplicate {
            self.send(index, direction, &bytes);
            direction_stats(&mut lock(&self.shared.stats), direction).duplicated += 1;
        }
        if let Some(held) = released {
            self.send(index, direction, &held.bytes);
            direction_stats(&mut lock(&self.shared.stats), direction).reordered += 1;
        }
    }

    fn release_expired(&mut self, now: Instant) {
        for index in 0..self.flows.len() {
            for direction in [Direction::ToRelay, Direction::ToClient] {
                let flow = &mut self.flows[index];
                let slot = match direction {
                    Direction::ToRelay => &mut flow.held_to_relay,
                    Direction::ToClient => &mut flow.held_to_client,
                };
                if slot.as_ref().is_some_and(|h| h.deadline <= now) {
                    if let Some(held) = slot.take() {
                        self.send(index, direction, &held.bytes);
                    }
                }
            }
        }
    }

    fn send(&mut self, index: usize, direction: Direction, bytes: &[u8]) {
        let flow = &self.flows[index];
        let sent = match direction {
            Direction::ToRelay => flow.upstream.send(bytes),
            Direction::ToClient => self.listener.send_to(bytes, flow.client),
        };
        let mut stats = lock(&self.shared.stats);
        let s = direction_stats(&mut stats, direction);
        match sent {
            Ok(_) => {
                s.datagrams_out += 1;
                s.bytes_out += bytes.len() as u64;
            }
            Err(_) => s.refused += 1,
        }
    }
}

fn direction_stats(stats: &mut ProxyStats, direction: Direction) -> &mut DirectionStats {
    match direction {
        Direction::ToRelay => &mut stats.to_relay,
        Direction::ToClient => &mut stats.to_client,
    }
}

/// Where the upstream socket of flow `index` binds: towards a loopback
/// IPv4 relay, its own loopback IP address (127.3.x.y; Linux lets a
/// program bind any of 127.0.0.0/8), so that each client looks like a
/// separate computer to the relay's per-IP limits (`--max-per-ip`, default
/// 4), as it would in a classroom; otherwise 127.0.0.1.
fn upstream_addr(relay: SocketAddr, index: usize) -> SocketAddr {
    match relay {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            let n = index % 65_000;
            SocketAddr::from(([127, 3, (n / 250) as u8, (n % 250 + 1) as u8], 0))
        }
        _ => SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket as StdSocket;

    const WAIT: Duration = Duration::from_secs(10);

    fn socket() -> StdSocket {
        let s = StdSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    }

    /// An echo "relay" on its own thread: answers every datagram with the
    /// same bytes, until it receives `STOP`.
    fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let s = socket();
        let addr = s.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let mut buf = [0u8; 2048];
            while start.elapsed() < Duration::from_secs(60) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    if buf[..n] == msg("STOP")[..] {
                        return;
                    }
                    if buf[..n].starts_with(MAGIC.as_bytes()) {
                        let _ = s.send_to(&buf[..n], from);
                    }
                }
            }
        });
        (addr, t)
    }

    fn stop(server: SocketAddr) {
        socket().send_to(&msg("STOP"), server).unwrap();
    }

    /// Every test datagram starts with this, so that stray datagrams (a
    /// parallel test's relay still sending to a reused loopback port) are
    /// ignored.
    const MAGIC: &str = "lpT";

    fn msg(body: impl std::fmt::Display) -> Vec<u8> {
        format!("{MAGIC}{body}").into_bytes()
    }

    fn body(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes)
            .unwrap()
            .strip_prefix(MAGIC)
            .unwrap()
    }

    /// The next of our datagrams and its source, within [`WAIT`].
    fn recv_ours(s: &StdSocket) -> Option<(Vec<u8>, SocketAddr)> {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 2048];
        while start.elapsed() < WAIT {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                if buf[..n].starts_with(MAGIC.as_bytes()) {
                    return Some((buf[..n].to_vec(), from));
                }
            }
        }
        None
    }

    /// Our datagrams received until `idle` passes without one (at most 20 s).
    fn recv_all(s: &StdSocket, idle: Duration) -> Vec<Vec<u8>> {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let start = Instant::now();
        let mut last = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while last.elapsed() < idle && start.elapsed() < Duration::from_secs(20) {
            if let Ok(n) = s.recv(&mut buf) {
                if buf[..n].starts_with(MAGIC.as_bytes()) {
                    got.push(buf[..n].to_vec());
                    last = Instant::now();
                }
            }
        }
        got
    }

    fn wait_for(proxy: &LossProxy, done: impl Fn(&ProxyStats) -> bool) -> ProxyStats {
        let start = Instant::now();
        loop {
            let stats = proxy.stats();
            if done(&stats) || start.elapsed() > WAIT {
                return stats;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn splitmix_is_deterministic_and_rates_are_roughly_right() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        assert_eq!(
            (0..100).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..100).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
        let mut c = SplitMix64::new(7);
        let hits = (0..100_000).filter(|_| c.chance(0.2)).count();
        assert!((18_000..22_000).contains(&hits), "{hits}");
        assert!(!c.chance(0.0));
        assert!(c.chance(1.0));
    }

    #[test]
    fn lossless_proxy_forwards_both_ways_and_counts() {
        let (server, t) = echo_server();
        let proxy = LossProxy::start(server, ProxyConfig::default()).unwrap();
        let client = socket();
        client.connect(proxy.addr()).unwrap();
        for i in 0..50u32 {
            client.send(&msg(format!("m{i}"))).unwrap();
        }
        let stats = wait_for(&proxy, |s| s.to_client.datagrams_out >= 50);
        let got = recv_all(&client, Duration::from_millis(300));
        let want: Vec<Vec<u8>> = (0..50u32).map(|i| msg(format!("m{i}"))).collect();
        assert_eq!(got, want);
        assert_eq!(stats.to_relay.datagrams_in, 50);
        assert_eq!(stats.to_relay.datagrams_out, 50);
        assert_eq!(stats.to_client.datagrams_out, 50);
        let bytes: u64 = want.iter().map(|m| m.len() as u64).sum();
        assert_eq!(stats.to_relay.bytes_in, bytes);
        assert_eq!(stats.to_client.bytes_out, bytes);
        assert_eq!(proxy.flows(), 1);
        drop(proxy);
        stop(server);
        t.join().unwrap();
    }

    #[test]
    fn each_client_gets_its_own_upstream_address() {
        let relay = socket();
        let proxy = LossProxy::start(relay.local_addr().unwrap(), ProxyConfig::default()).unwrap();
        let (a, b) = (socket(), socket());
        a.send_to(&msg("from a"), proxy.addr()).unwrap();
        b.send_to(&msg("from b"), proxy.addr()).unwrap();
        let (_, from_a) = recv_ours(&relay).unwrap();
        let (_, from_b) = recv_ours(&relay).unwrap();
        assert_ne!(from_a, from_b);
        // Replies go back to the right client.
        relay.send_to(&msg("to first"), from_a).unwrap();
        relay.send_to(&msg("to second"), from_b).unwrap();
        let first = recv_all(&a, Duration::from_millis(300));
        let second = recv_all(&b, Duration::from_millis(300));
        let mut both = [first, second].concat();
        both.sort();
        assert_eq!(both, vec![msg("to first"), msg("to second")]);
        assert_eq!(proxy.flows(), 2);
    }

    #[test]
    fn drop_rate_is_applied_per_direction_and_is_seeded() {
        let run = |seed| {
            let relay = socket();
            let config = ProxyConfig {
                seed,
                to_relay: Impairment::loss(0.3),
                ..ProxyConfig::default()
            };
            let proxy = LossProxy::start(relay.local_addr().unwrap(), config).unwrap();
            // Read while sending: 400 queued datagrams overflow a loopback
            // socket's receive buffer.
            let reader = std::thread::spawn(move || recv_all(&relay, Duration::from_millis(1000)));
            let client = socket();
            for i in 0..400u32 {
                client.send_to(&msg(i), proxy.addr()).unwrap();
                if i % 50 == 49 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let stats = wait_for(&proxy, |s| s.to_relay.datagrams_in >= 400);
            let got = reader.join().unwrap();
            (stats, got)
        };
        let (stats, got) = run(9);
        assert_eq!(stats.to_relay.datagrams_in, 400);
        assert!(
            (80..160).contains(&stats.to_relay.dropped),
            "{}",
            stats.to_relay.dropped
        );
        assert_eq!(got.len() as u64, 400 - stats.to_relay.dropped);
        assert_eq!(stats.to_relay.refused, 0);
        // Order kept (no reordering asked).
        let numbers: Vec<u32> = got.iter().map(|g| body(g).parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]));
        let (again, got_again) = run(9);
        assert_eq!(again.to_relay.dropped, stats.to_relay.dropped);
        assert_eq!(got_again, got);
        let (other, _) = run(10);
        assert_ne!(other.to_relay.dropped, 0);
    }

    #[test]
    fn duplicates_and_reorders_are_counted_and_nothing_is_lost() {
        let relay = socket();
        let config = ProxyConfig {
            seed: 3,
            to_relay: Impairment {
                drop: 0.0,
                duplicate: 0.2,
                reorder: 0.2,
            },
            ..ProxyConfig::default()
        };
        let proxy = LossProxy::start(relay.local_addr().unwrap(), config).unwrap();
        let reader = std::thread::spawn(move || recv_all(&relay, Duration::from_millis(1000)));
        let client = socket();
        for i in 0..200u32 {
            client.send_to(&msg(i), proxy.addr()).unwrap();
        }
        let stats = wait_for(&proxy, |s| {
            s.to_relay.datagrams_out >= 200 + s.to_relay.duplicated
        });
        let got = reader.join().unwrap();
        assert!(stats.to_relay.duplicated > 10, "{stats:?}");
        assert!(stats.to_relay.reordered > 10, "{stats:?}");
        assert_eq!(got.len() as u64, 200 + stats.to_relay.duplicated);
        let numbers: Vec<u32> = got.iter().map(|g| body(g).parse().unwrap()).collect();
        let mut unique = numbers.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique, (0..200).collect::<Vec<_>>());
        assert!(numbers.windows(2).any(|w| w[0] > w[1]), "some reordering");
    }

    #[test]
    fn a_held_datagram_is_released_without_a_successor() {
        let relay = socket();
        let config = ProxyConfig {
            to_relay: Impairment {
                reorder: 1.0,
                ..Impairment::NONE
            },
            ..ProxyConfig::default()
        };
        let proxy = LossProxy::start(relay.local_addr().unwrap(), config).unwrap();
        socket().send_to(&msg("alone"), proxy.addr()).unwrap();
        let (got, _) = recv_ours(&relay).unwrap();
        assert_eq!(got, msg("alone"));
    }

    #[test]
    fn stops_when_dropped() {
        let relay = socket();
        let proxy = LossProxy::start(relay.local_addr().unwrap(), ProxyConfig::default()).unwrap();
        let addr = proxy.addr();
        drop(proxy);
        // The listening socket is closed: nothing reaches the relay.
        let _ = socket().send_to(&msg("late"), addr);
        assert!(recv_all(&relay, Duration::from_millis(300)).is_empty());
    }
}
