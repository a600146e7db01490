//! The loopback limit: how fast this machine's kernel moves datagrams from
//! one sending thread to C receiving sockets, with the benchmark's own
//! receiver. A relay fans out from one thread too, so it cannot beat this;
//! the limit is the denominator of every throughput ratio.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::net::{self, Readiness, RecvBatch, SendBatch};
use crate::report::{Loss, Report};
use crate::wire;

/// The system call the limit sender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendCall {
    /// One `sendto` per datagram, as a simple relay does.
    Sendto,
    /// `sendmmsg`, 64 datagrams per call.
    Sendmmsg,
}

/// Options of a limit run.
#[derive(Debug, Clone)]
pub struct LimitOptions {
    /// Receiving sockets.
    pub clients: usize,
    /// How long the sender sends.
    pub duration: Duration,
    /// How it sends.
    pub send_call: SendCall,
    /// Receive buffer per socket, bytes.
    pub rcvbuf: usize,
    /// Most datagrams sent (bounds the run).
    pub max_datagrams: u64,
    /// Longest wait for stragglers after sending stops.
    pub drain: Duration,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// Pin the sending thread to this CPU.
    pub sender_cpu: Option<usize>,
    /// 0: send as fast as the kernel takes datagrams. W > 0: like a relay
    /// driven in closed loop, at most W rounds of C datagrams not yet
    /// received (the sender waits for the receiver).
    pub window: u64,
}

/// The fixed datagram: 64 bytes, as long as the relay's measured lines.
const DATAGRAM: &[u8; 64] = b"limit: loopback ceiling of this machine, 64 bytes xxxxxxxxxxxxxx";

/// Measures the limit.
pub fn run(opts: LimitOptions) -> Result<Report, BenchError> {
    if opts.clients == 0 {
        return Err(BenchError::Usage("--clients must be at least 1".into()));
    }
    let sender = UdpSocket::bind("127.0.0.1:0").map_err(BenchError::io("binding the sender"))?;
    // Large send buffer so the sender is bounded by the kernel's work, not by
    // waiting for buffer space.
    let _ = udpchat_udp::set_send_buffer(&sender, 4 << 20);
    let from: SocketAddr = sender
        .local_addr()
        .map_err(BenchError::io("reading the sender's address"))?;
    let readiness = Readiness::new(1024).map_err(BenchError::io("creating the readiness set"))?;
    let mut receivers = Vec::with_capacity(opts.clients);
    let mut dests = Vec::with_capacity(opts.clients);
    let mut rcvbuf = 0;
    for index in 0..opts.clients {
        let (socket, granted) = net::client_socket(from, opts.rcvbuf)
            .map_err(|source| BenchError::Socket { index, source })?;
        if index == 0 {
            rcvbuf = granted;
        }
        readiness
            .add(&socket, index)
            .map_err(BenchError::io("watching a socket"))?;
        dests.push(
            socket
                .local_addr()
                .map_err(BenchError::io("reading a receiver's address"))?,
        );
        receivers.push(socket);
    }
    let start = Instant::now();
    let end = start + opts.duration;
    let (max, call, cpu) = (opts.max_datagrams, opts.send_call, opts.sender_cpu);
    let received = Arc::new(AtomicU64::new(0));
    let flow = Flow {
        received: Arc::clone(&received),
        budget: opts.window.saturating_mul(opts.clients as u64),
    };
    let sender_thread = thread::Builder::new()
        .name("limit-sender".into())
        .spawn(move || {
            if cpu.is_some() {
                udpchat_udp::host::pin_current_thread(cpu)?;
            }
            send(&sender, &dests, call, max, end, &flow)
        })
        .map_err(BenchError::io("starting the sender thread"))?;

    let mut receiver = Receiver {
        readiness,
        batch: net::recv_batch(),
        ready: Vec::with_capacity(1024),
        delivered: 0,
        last: start,
        unexpected: 0,
        received,
    };
    let mut last_progress = start;
    while Instant::now() < end {
        receiver.poll(&receivers, 10)?;
        let now = Instant::now();
        if opts.progress && now - last_progress >= Duration::from_secs(1) {
            last_progress = now;
            eprint!(
                "\r{:7.1} s  limit  delivered {}   ",
                (now - start).as_secs_f64(),
                receiver.delivered
            );
        }
    }
    let (sent, send_secs) = sender_thread
        .join()
        .map_err(|_| BenchError::Usage("the limit sender thread panicked".into()))?
        .map_err(BenchError::io("sending"))?;
    let drain_end = Instant::now() + opts.drain;
    loop {
        let now = Instant::now();
        if now >= drain_end || (receiver.delivered >= sent) {
            break;
        }
        if now - receiver.last.max(start + opts.duration) >= Duration::from_millis(200) {
            break;
        }
        receiver.poll(&receivers, 5)?;
    }
    if opts.progress {
        eprintln!();
    }
    let elapsed = (receiver.last - start).as_secs_f64();
    let per = |n: f64, s: f64| if s > 0.0 { n / s } else { 0.0 };
    let mut errors = std::collections::BTreeMap::new();
    if receiver.unexpected > 0 {
        errors.insert("unexpected-datagram".to_owned(), receiver.unexpected);
    }
    Ok(Report {
        mode: "limit".into(),
        target: from.to_string(),
        dialect: None,
        clients: opts.clients,
        senders: 1,
        flooders: 0,
        window: (opts.window > 0).then_some(opts.window as usize),
        rate_per_sec: None,
        duration_s: opts.duration.as_secs_f64(),
        elapsed_s: elapsed,
        join: None,
        sent,
        delivered: receiver.delivered,
        expected: sent,
        deliveries_per_sec: per(receiver.delivered as f64, elapsed),
        messages_per_sec: per(sent as f64, send_secs),
        loss: Loss {
            never_fanned_out: 0,
            missing_copies: sent.saturating_sub(receiver.delivered),
            duplicate_copies: 0,
            delivery_share: per(receiver.delivered as f64, sent as f64),
        },
        latency: None,
        flood: None,
        send_call: Some(
            match opts.send_call {
                SendCall::Sendto => "sendto",
                SendCall::Sendmmsg => "sendmmsg",
            }
            .into(),
        ),
        relay_process: None,
        errors,
        datagrams_received: receiver.delivered + receiver.unexpected,
        rcvbuf_bytes: rcvbuf,
        rounds: Vec::new(),
    })
}

struct Receiver {
    readiness: Readiness,
    batch: RecvBatch,
    ready: Vec<usize>,
    delivered: u64,
    last: Instant,
    unexpected: u64,
    received: Arc<AtomicU64>,
}

impl Receiver {
    fn poll(&mut self, sockets: &[UdpSocket], timeout_ms: u64) -> Result<(), BenchError> {
        self.ready.clear();
        self.ready.extend(
            self.readiness
                .wait(Duration::from_millis(timeout_ms))
                .map_err(BenchError::io("waiting for readiness"))?,
        );
        for &index in &self.ready {
            // Edge-triggered: read until the socket is empty.
            loop {
                let n = match self.batch.receive(&sockets[index]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(BenchError::io("receiving")(e)),
                };
                self.last = Instant::now();
                for i in 0..n {
                    // The same per-datagram work as a relay run's receiver.
                    match wire::classify(self.batch.bytes(i).unwrap_or_default()) {
                        wire::Incoming::Other => self.delivered += 1,
                        _ => self.unexpected += 1,
                    }
                }
                self.received.store(self.delivered, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// Closed-loop flow control of the limit sender.
struct Flow {
    /// Datagrams the receiver has counted so far.
    received: Arc<AtomicU64>,
    /// Datagrams allowed on their way (0 = no limit).
    budget: u64,
}

impl Flow {
    /// Waits until `n` more datagrams may be sent after `sent`; false if
    /// `end` passed first.
    fn wait(&self, sent: u64, n: u64, end: Instant) -> bool {
        if self.budget == 0 {
            return true;
        }
        let mut spins = 0u32;
        while sent + n > self.received.load(Ordering::Relaxed) + self.budget {
            spins += 1;
            if spins.is_multiple_of(64) {
                if Instant::now() >= end {
                    return false;
                }
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        true
    }
}

/// The sender thread: round robin over `dests` until `end` or `max`.
fn send(
    socket: &UdpSocket,
    dests: &[SocketAddr],
    call: SendCall,
    max: u64,
    end: Instant,
    flow: &Flow,
) -> std::io::Result<(u64, f64)> {
    use std::io::ErrorKind::{Interrupted, WouldBlock};
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut next = 0usize;
    let mut batch = SendBatch::default();
    'outer: while sent < max {
        if Instant::now() >= end {
            break;
        }
        match call {
            SendCall::Sendto => {
                for _ in 0..net::BATCH {
                    if !flow.wait(sent, 1, end) {
                        break 'outer;
                    }
                    match socket.send_to(DATAGRAM, dests[next]) {
                        Ok(_) => {
                            sent += 1;
                            next = (next + 1) % dests.len();
                        }
                        Err(e) if matches!(e.kind(), WouldBlock | Interrupted) => {}
                        Err(e) => return Err(e),
                    }
                    if sent >= max {
                        break 'outer;
                    }
                }
            }
            SendCall::Sendmmsg => {
                let n = (max - sent).min(net::BATCH as u64) as usize;
                if !flow.wait(sent, n as u64, end) {
                    break 'outer;
                }
                let to = (0..n).map(|i| (dests[(next + i) % dests.len()], DATAGRAM.as_slice()));
                let k = match batch.send(socket, to) {
                    Ok(k) => k,
                    Err(e) if matches!(e.kind(), WouldBlock | Interrupted) => 0,
                    Err(e) => return Err(e),
                };
                sent += k as u64;
                next = (next + k) % dests.len();
            }
        }
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}
