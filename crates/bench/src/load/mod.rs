//! A load run against a relay: join C clients, send, receive on all of them,
//! count.
//!
//! One thread does the joining, the measured sending (closed loop or fixed
//! rate) and all the receiving, through one mio readiness set: on a two-core machine
//! the relay needs the other core, and a sender that waits for deliveries
//! cannot outrun the receiver. Flooding runs in its own thread, because a
//! flood that waited for the receiver would not be one.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::hist::Histogram;
use crate::net::{self, Readiness, RecvBatch};
use crate::procfs;
use crate::report::{FloodReport, JoinReport, Loss, ProcessReport, Report};
use crate::wire::{self, TAG_FLOOD, TAG_MEASURED};

mod flood;
mod members;

use flood::flood;
use members::{Client, JoinState, State, KEEPALIVE};

/// How the measured senders send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// At most `window` messages in flight; a new one as soon as one is
    /// delivered to every member (or times out).
    Closed,
    /// A fixed aggregate rate, whatever happens to earlier messages.
    Rate,
    /// As fast as one thread can, bounded by time and count.
    Flood,
}

/// The dialect the clients join with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// `N nick` -> `OK`; deliveries are `nick: text` lines.
    Classic,
    /// `HELLO` with the cookie round trip; deliveries are `EVENT` lines.
    Structured,
}

/// Everything a load run needs to know.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The relay (loopback, checked by the caller).
    pub relay: SocketAddr,
    /// The relay's pid, to read its memory and CPU time.
    pub relay_pid: Option<u32>,
    /// Receiving members.
    pub clients: usize,
    /// How many of them send measured messages.
    pub senders: usize,
    /// How they send.
    pub mode: Mode,
    /// Closed loop: messages in flight at most.
    pub window: usize,
    /// Fixed rate: aggregate messages per second.
    pub rate: f64,
    /// Length of the sending phase; zero = join only.
    pub duration: Duration,
    /// Join dialect.
    pub dialect: Dialect,
    /// Extra members flooding as fast as they can during the sending phase.
    pub flooders: usize,
    /// Size of the classic line a measured message becomes, bytes.
    pub payload: usize,
    /// Joins outstanding at once.
    pub join_window: usize,
    /// First wait before a join is sent again (doubles, up to 8x).
    pub join_timeout: Duration,
    /// Give up joining after this long.
    pub join_deadline: Duration,
    /// A message not delivered to every member after this long counts as
    /// settled (lost copies) and frees its closed-loop slot.
    pub msg_timeout: Duration,
    /// Longest wait for stragglers after the sending phase.
    pub drain: Duration,
    /// Most measured messages per run (bounds memory and time).
    pub max_messages: u64,
    /// Receive buffer per client socket, bytes.
    pub rcvbuf: usize,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// Send `Q nick` from every client at the end.
    pub quit: bool,
    /// Sending phases after the one join, each measured on its own.
    pub rounds: usize,
    /// Nickname prefix, unique per run.
    pub nick_prefix: String,
}

struct Run {
    opts: LoadOptions,
    readiness: Readiness,
    batch: RecvBatch,
    ready: Vec<usize>,
    st: State,
    sent: u64,
    next_sender: usize,
    flight: VecDeque<(u64, Instant)>,
    retries: u64,
    last_progress: Instant,
    last_keepalive: Instant,
    rcvbuf: usize,
    /// A measured message behind its sender's relay key.
    scratch: Vec<u8>,
}

/// Runs one load benchmark and returns its report.
pub fn run(opts: LoadOptions) -> Result<Report, BenchError> {
    validate(&opts)?;
    let epoch = Instant::now();
    // Session keys differ from run to run (the relay may still hold a
    // previous run's members).
    let epoch_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let total = opts.clients + opts.flooders;
    let readiness = Readiness::new(1024).map_err(BenchError::io("creating the readiness set"))?;
    let mut clients = Vec::with_capacity(total);
    let mut rcvbuf = 0;
    for index in 0..total {
        let (socket, granted) = net::member_socket(opts.relay, opts.rcvbuf, index)
            .map_err(|source| BenchError::Socket { index, source })?;
        if index == 0 {
            rcvbuf = granted;
        }
        readiness
            .add(&socket, index)
            .map_err(BenchError::io("watching a socket"))?;
        clients.push(Client {
            socket,
            nick: format!("{}{index}", opts.nick_prefix),
            state: JoinState::New,
            attempts: 0,
            next_retry: epoch,
            last_send: epoch,
            key: members::client_key(epoch_seed, index),
            relay_key: None,
        });
    }
    let flood_bits = if opts.flooders > 0 {
        (opts.max_messages as usize).div_ceil(64)
    } else {
        0
    };
    let run = Run {
        readiness,
        batch: net::recv_batch(),
        ready: Vec::with_capacity(1024),
        st: State::new(epoch, opts.dialect, clients, flood_bits),
        sent: 0,
        next_sender: 0,
        flight: VecDeque::new(),
        retries: 0,
        last_progress: epoch,
        last_keepalive: epoch,
        rcvbuf,
        scratch: Vec::with_capacity(1024),
        opts,
    };
    run.execute()
}

fn validate(opts: &LoadOptions) -> Result<(), BenchError> {
    let usage = |m: &str| Err(BenchError::Usage(m.to_owned()));
    if opts.clients == 0 {
        return usage("--clients must be at least 1");
    }
    if opts.senders == 0 || opts.senders > opts.clients {
        return usage("--senders must be between 1 and --clients");
    }
    if opts.mode == Mode::Closed && opts.window == 0 {
        return usage("--window must be at least 1");
    }
    if opts.mode == Mode::Rate && !(opts.rate > 0.0 && opts.rate <= 1e7) {
        return usage("--rate must be between 0 and 10,000,000 messages per second");
    }
    if opts.duration > Duration::from_secs(3600) {
        return usage("--duration is at most 3600 s");
    }
    if opts.rounds == 0 || opts.rounds > 100 {
        return usage("--rounds must be between 1 and 100");
    }
    if opts.rounds > 1 && (opts.mode == Mode::Flood || opts.duration.is_zero()) {
        return usage("--rounds needs --mode closed or rate and a --duration");
    }
    if opts.join_window == 0 {
        return usage("--join-window must be at least 1");
    }
    Ok(())
}

fn nanos_since(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_nanos() as u64
}

impl Run {
    fn execute(mut self) -> Result<Report, BenchError> {
        let cpu_start = self.relay_cpu()?;
        let join = self.join()?;
        let cpu_joined = self.relay_cpu()?;
        let mut rounds = Vec::with_capacity(self.opts.rounds);
        for _ in 0..self.opts.rounds {
            let cpu_round = self.relay_cpu()?;
            let flood = if self.opts.duration.is_zero() {
                None
            } else {
                self.load()?
            };
            let cpu_end = self.relay_cpu()?;
            rounds.push(self.report(&join, flood, [cpu_start, cpu_joined, cpu_round, cpu_end]));
            self.next_round();
        }
        if self.opts.progress {
            eprintln!();
        }
        if self.opts.quit {
            let mut scratch = Vec::new();
            for client in &self.st.clients {
                let quit = format!("Q {}", client.nick);
                let _ = client
                    .socket
                    .send(client.sealed(quit.as_bytes(), &mut scratch));
            }
        }
        let mut first = rounds.remove(0);
        if !rounds.is_empty() {
            rounds.insert(0, first.clone());
            first.rounds = rounds;
        }
        Ok(first)
    }

    /// Clears what one round measured; message ids go on from where they were.
    fn next_round(&mut self) {
        // Whatever is still in flight belongs to the round that ended.
        for (id, _) in self.flight.drain(..) {
            self.st.settled[id as usize] = true;
        }
        let st = &mut self.st;
        st.in_flight = 0;
        st.round_base = self.sent;
        st.delivered = 0;
        st.duplicates = 0;
        st.hist = Histogram::new();
        st.first_send = None;
        st.last_delivery = None;
        st.flood_seen.iter_mut().for_each(|w| *w = 0);
        st.flood_accepted = 0;
        st.errors.clear();
        st.datagrams = 0;
        st.refused = 0;
    }

    fn relay_cpu(&self) -> Result<Option<procfs::Usage>, BenchError> {
        match self.opts.relay_pid {
            None => Ok(None),
            Some(pid) => procfs::read(pid)
                .map(Some)
                .map_err(|source| BenchError::Proc { pid, source }),
        }
    }

    /// Receives whatever is waiting, blocking up to `timeout_ms` for the first.
    fn poll(&mut self, timeout_ms: u64) -> Result<(), BenchError> {
        self.ready.clear();
        self.ready.extend(
            self.readiness
                .wait(Duration::from_millis(timeout_ms))
                .map_err(BenchError::io("waiting for readiness"))?,
        );
        for k in 0..self.ready.len() {
            let index = self.ready[k];
            // Edge-triggered: read until the socket is empty.
            loop {
                match self.batch.receive(&self.st.clients[index].socket) {
                    Ok(n) => {
                        let now = Instant::now();
                        let now_ns = nanos_since(self.st.epoch, now);
                        for i in 0..n {
                            let bytes = self.batch.bytes(i).unwrap_or_default();
                            self.st.handle(index, bytes, now, now_ns);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // ICMP port unreachable: the relay is not (or no longer)
                    // there. The error is consumed; read on.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => self.st.refused += 1,
                    Err(e) => {
                        return Err(BenchError::Io {
                            context: "receiving",
                            source: e,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    fn send_join(&mut self, index: usize, now: Instant) {
        let client = &mut self.st.clients[index];
        let msg = match self.opts.dialect {
            Dialect::Classic => format!("N {}", client.nick).into_bytes(),
            Dialect::Structured => {
                let mut s = format!(
                    "HELLO {} {} - key={} ",
                    udpchat_proto::VERSION,
                    client.nick,
                    client.key
                );
                while s.len() < udpchat_proto::MIN_HELLO_LEN {
                    s.push('=');
                }
                s.into_bytes()
            }
        };
        let backoff = 1u32 << client.attempts.min(3);
        client.attempts += 1;
        client.state = JoinState::Waiting;
        client.next_retry = now + self.opts.join_timeout * backoff;
        client.last_send = now;
        if let Err(e) = client.socket.send(&msg) {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                self.st.refused += 1;
            }
        }
    }

    fn join(&mut self) -> Result<JoinReport, BenchError> {
        let total = self.st.clients.len();
        let start = Instant::now();
        let deadline = start + self.opts.join_deadline;
        let mut waiting: Vec<usize> = Vec::with_capacity(self.opts.join_window);
        let mut next = 0;
        loop {
            let now = Instant::now();
            waiting.retain(|&i| self.st.clients[i].state == JoinState::Waiting);
            for &i in &waiting {
                if self.st.clients[i].next_retry <= now {
                    self.retries += 1;
                    self.send_join(i, now);
                }
            }
            while waiting.len() < self.opts.join_window && next < total {
                self.send_join(next, now);
                waiting.push(next);
                next += 1;
            }
            if self.st.joined == total {
                break;
            }
            if let Some((nick, code)) = self.st.join_refused.take() {
                return Err(BenchError::JoinRefused { nick, code });
            }
            if now >= deadline {
                let hint = if self.st.refused > 0 {
                    format!(
                        " ({} ICMP port-unreachable errors: nothing listens there)",
                        self.st.refused
                    )
                } else {
                    String::new()
                };
                return Err(BenchError::JoinTimeout {
                    missing: total - self.st.joined,
                    total,
                    secs: (now - start).as_secs_f64(),
                    retries: self.retries,
                    relay: self.opts.relay.to_string(),
                    hint,
                });
            }
            self.progress(now, "joining");
            self.poll(10)?;
        }
        let end = self.st.last_join.unwrap_or(start);
        let secs = (end - start).as_secs_f64();
        Ok(JoinReport {
            clients: total,
            secs,
            per_sec: if secs > 0.0 { total as f64 / secs } else { 0.0 },
            retries: self.retries,
            events_received: self.st.other,
        })
    }

    /// Sends one measured message from the next sender. Returns false if the
    /// socket would block (try again later).
    fn send_measured(&mut self) -> Result<bool, BenchError> {
        let sender = self.next_sender;
        self.next_sender = (self.next_sender + 1) % self.opts.senders;
        let now = Instant::now();
        let id = self.sent;
        let client = &mut self.st.clients[sender];
        wire::chat(
            &mut self.st.buf,
            &client.nick,
            TAG_MEASURED,
            id,
            nanos_since(self.st.epoch, now),
            self.opts.payload,
        );
        let mut sealed = std::mem::take(&mut self.scratch);
        let sent = client.socket.send(client.sealed(&self.st.buf, &mut sealed));
        self.scratch = sealed;
        match sent {
            Ok(_) => {
                client.last_send = now;
                self.st.copies.push(0);
                self.st.settled.push(false);
                self.st.in_flight += 1;
                self.flight.push_back((id, now));
                self.sent += 1;
                self.st.first_send.get_or_insert(now);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.st.refused += 1;
                Ok(false)
            }
            Err(source) => Err(BenchError::Io {
                context: "sending a message",
                source,
            }),
        }
    }

    /// Settles messages older than the message timeout; returns when the
    /// oldest unsettled one expires.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        while let Some(&(id, at)) = self.flight.front() {
            let settled = &mut self.st.settled[id as usize];
            if *settled {
                self.flight.pop_front();
                continue;
            }
            let expires = at + self.opts.msg_timeout;
            if expires > now {
                return Some(expires);
            }
            *settled = true;
            self.st.in_flight -= 1;
            self.flight.pop_front();
        }
        None
    }

    fn keepalive(&mut self, now: Instant) {
        if self.opts.dialect != Dialect::Structured
            || now - self.last_keepalive < Duration::from_secs(1)
        {
            return;
        }
        self.last_keepalive = now;
        let mut scratch = Vec::new();
        for client in &mut self.st.clients {
            if now - client.last_send >= KEEPALIVE {
                client.last_send = now;
                let _ = client.socket.send(client.sealed(b"PING", &mut scratch));
            }
        }
    }

    fn spawn_flood(
        &self,
        range: std::ops::Range<usize>,
        tag: u8,
        end: Instant,
    ) -> Result<thread::JoinHandle<(u64, f64)>, BenchError> {
        let mut sockets = Vec::new();
        for client in &self.st.clients[range] {
            let socket = client
                .socket
                .try_clone()
                .map_err(BenchError::io("duplicating a flooder socket"))?;
            sockets.push((socket, client.nick.clone(), client.relay_key));
        }
        let epoch = self.st.epoch;
        let max = self.opts.max_messages;
        let payload = self.opts.payload;
        thread::Builder::new()
            .name("flood".into())
            .spawn(move || {
                // A flood competes for every core, whatever --cpu pinned the
                // main thread to.
                let _ = udpchat_udp::host::pin_current_thread(None);
                flood(&sockets, tag, max, epoch, end, payload)
            })
            .map_err(BenchError::io("starting the flood thread"))
    }

    fn load(&mut self) -> Result<Option<FloodReport>, BenchError> {
        let start = Instant::now();
        let end = start + self.opts.duration;
        let members = self.st.clients.len();
        let flooders = if self.opts.flooders > 0 {
            Some(self.spawn_flood(self.opts.clients..members, TAG_FLOOD, end)?)
        } else {
            None
        };
        let measured_flood = if self.opts.mode == Mode::Flood {
            self.st.copies = vec![0; self.opts.max_messages as usize];
            self.st.first_send = Some(start);
            Some(self.spawn_flood(0..self.opts.senders, TAG_MEASURED, end)?)
        } else {
            None
        };
        let interval = Duration::from_secs_f64(1.0 / self.opts.rate.max(1e-6));
        let mut next_at = start;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            match self.opts.mode {
                Mode::Closed => {
                    while self.st.in_flight < self.opts.window
                        && self.sent < self.opts.max_messages
                        && self.send_measured()?
                    {}
                }
                Mode::Rate => {
                    while next_at <= now && self.sent < self.opts.max_messages {
                        if !self.send_measured()? {
                            break;
                        }
                        next_at += interval;
                    }
                }
                Mode::Flood => {}
            }
            let expiry = self.expire(now);
            let mut wake = end.min(now + Duration::from_millis(10));
            if self.opts.mode == Mode::Rate {
                wake = wake.min(next_at);
            }
            if let Some(expiry) = expiry {
                wake = wake.min(expiry);
            }
            let closed_has_room = self.opts.mode == Mode::Closed
                && self.st.in_flight < self.opts.window
                && self.sent < self.opts.max_messages;
            let timeout_ms = if closed_has_room {
                0
            } else {
                wake.saturating_duration_since(now)
                    .as_micros()
                    .div_ceil(1000) as u64
            };
            self.poll(timeout_ms)?;
            self.keepalive(now);
            self.progress(now, "sending");
        }
        let send_end = Instant::now();
        let flood_result = flooders.map(|h| h.join().unwrap_or((0, 0.0)));
        if let Some(h) = measured_flood {
            let (sent, _) = h.join().unwrap_or((0, 0.0));
            self.sent = sent;
            self.st.copies.truncate(sent as usize);
        }
        self.drain(send_end)?;
        Ok(flood_result.map(|(sent, secs)| FloodReport {
            sent,
            sent_per_sec: per_sec(sent as f64, secs),
            accepted: self.st.flood_accepted,
            accepted_per_sec: per_sec(self.st.flood_accepted as f64, secs),
            secs,
        }))
    }

    /// Waits for stragglers: until every message is settled, or nothing has
    /// arrived for a while, or the drain time is up.
    fn drain(&mut self, from: Instant) -> Result<(), BenchError> {
        let deadline = from + self.opts.drain;
        let quiet = Duration::from_millis(300);
        let tracked = self.opts.mode != Mode::Flood;
        loop {
            let now = Instant::now();
            self.expire(now);
            if tracked && self.st.in_flight == 0 && self.opts.flooders == 0 {
                break;
            }
            if now >= deadline || now - self.st.last_datagram.max(from) >= quiet {
                break;
            }
            self.poll(5)?;
            self.progress(now, "draining");
        }
        Ok(())
    }

    fn progress(&mut self, now: Instant, phase: &str) {
        if !self.opts.progress || now - self.last_progress < Duration::from_secs(1) {
            return;
        }
        self.last_progress = now;
        let elapsed = (now - self.st.epoch).as_secs_f64();
        let rate = match (self.st.first_send, self.st.delivered) {
            (Some(first), d) if now > first => d as f64 / (now - first).as_secs_f64(),
            _ => 0.0,
        };
        eprint!(
            "\r{elapsed:7.1} s  {phase:<8} joined {}/{}  sent {}  delivered {} ({rate:.0}/s)  in flight {}   ",
            self.st.joined,
            self.st.clients.len(),
            self.sent,
            self.st.delivered,
            self.st.in_flight,
        );
    }

    /// The report of the round that just ended. `cpu` = relay usage at the
    /// start, after the join, at the start of the round, at its end.
    fn report(
        &mut self,
        join: &JoinReport,
        flood: Option<FloodReport>,
        cpu: [Option<procfs::Usage>; 4],
    ) -> Report {
        let members = self.st.members;
        let mut never = 0;
        let mut missing = 0;
        let base = self.st.round_base as usize;
        for &c in &self.st.copies[base.min(self.st.copies.len())..] {
            if c == 0 {
                never += 1;
            } else if c < members {
                missing += u64::from(members - c);
            }
        }
        let sent = self.sent - self.st.round_base;
        let expected = sent * u64::from(members);
        let elapsed = match (self.st.first_send, self.st.last_delivery) {
            (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        let tick = procfs::ticks_per_sec();
        let relay_process = match (self.opts.relay_pid, cpu) {
            (Some(pid), [Some(a), Some(b), Some(r), Some(c)]) => {
                let cpu_load_s = c.cpu_ticks.saturating_sub(r.cpu_ticks) as f64 / tick;
                Some(ProcessReport {
                    pid,
                    peak_rss_kib: c.peak_rss_kib,
                    rss_kib: c.rss_kib,
                    peak_rss_joined_kib: b.peak_rss_kib,
                    cpu_join_s: b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / tick,
                    cpu_load_s,
                    cpu_load_share: per_sec(cpu_load_s, elapsed),
                })
            }
            _ => None,
        };
        if self.st.refused > 0 {
            self.st
                .errors
                .insert("icmp-port-unreachable".into(), self.st.refused);
        }
        let mode = if self.opts.duration.is_zero() {
            "join"
        } else {
            match self.opts.mode {
                Mode::Closed => "closed",
                Mode::Rate => "rate",
                Mode::Flood => "flood",
            }
        };
        Report {
            mode: mode.into(),
            target: self.opts.relay.to_string(),
            dialect: Some(
                match self.opts.dialect {
                    Dialect::Classic => "classic",
                    Dialect::Structured => "structured",
                }
                .into(),
            ),
            clients: self.opts.clients,
            senders: self.opts.senders,
            flooders: self.opts.flooders,
            window: (self.opts.mode == Mode::Closed).then_some(self.opts.window),
            rate_per_sec: (self.opts.mode == Mode::Rate).then_some(self.opts.rate),
            duration_s: self.opts.duration.as_secs_f64(),
            elapsed_s: elapsed,
            join: Some(join.clone()),
            sent,
            delivered: self.st.delivered,
            expected,
            deliveries_per_sec: per_sec(self.st.delivered as f64, elapsed),
            messages_per_sec: per_sec(sent as f64, self.opts.duration.as_secs_f64()),
            loss: Loss {
                never_fanned_out: never,
                missing_copies: missing,
                duplicate_copies: self.st.duplicates,
                delivery_share: if expected > 0 {
                    self.st.delivered as f64 / expected as f64
                } else {
                    1.0
                },
            },
            latency: Some(self.st.hist.quantiles()),
            flood,
            send_call: None,
            relay_process,
            errors: self.st.errors.clone(),
            datagrams_received: self.st.datagrams,
            rcvbuf_bytes: self.rcvbuf,
            rounds: Vec::new(),
        }
    }
}

fn per_sec(n: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        n / secs
    } else {
        0.0
    }
}
