//! The mio event loop: the only place with a socket, a clock and signals.
//!
//! One non-blocking UDP socket with a large receive buffer (`--recv-buffer`,
//! 8 MiB by default), so a flood cannot crowd honest datagrams out of it
//! before the room's rate limit sees them. Every readiness event drains the
//! socket until `WouldBlock` (in batches with `recvmmsg` on Linux) and feeds
//! each datagram to the [`Room`]; whatever the room says to send is sent
//! after each batch. If the kernel's send buffer is full, the
//! rest waits in a bounded queue until the socket is writable again (we ask
//! for `WRITABLE` only while something waits, so an idle relay never spins);
//! what the bound forces out is counted and logged, never lost silently.
//! Timers come from [`Room::poll_timeout`] and the statistics interval.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use udpchat_proto::{ErrorCode, Lang};

use crate::console::{self, Command};
use crate::transcript::Transcript;
use crate::{Config, Dialect, Event, Outputs, Room, Transmit};

const SOCKET: Token = Token(0);
const CONSOLE: Token = Token(1);
#[cfg(unix)]
const SIGNALS: Token = Token(2);

/// Datagrams read per `recvmmsg` (one `recv_from` each where there is none);
/// the outputs are sent after each batch.
const RECV_BATCH: usize = 32;

/// Bytes kept of each received datagram: twice the protocol's largest, so a
/// longer one arrives cut to this size and is refused as too long exactly as
/// the whole one would be, and the buffers stay small.
const RECV_SLOT: usize = 2 * udpchat_proto::MAX_DATAGRAM;

/// Datagrams read per loop iteration. Under a flood the socket may never run
/// dry; stopping here lets timers, the console and signals have their turn
/// (the loop comes straight back, without waiting, for the rest).
const RECV_PER_TURN: usize = 4096;

/// Datagrams the room may queue in [`Outputs`] before they are sent, even in
/// the middle of a batch: every join or chat queues one per member, so a
/// batch of them in a room of 10,000 would otherwise queue hundreds of
/// thousands (48 bytes each) and keep that capacity.
const DISPATCH_AT: usize = 1024;

/// Capacity kept by the output and send-queue buffers once sent: beyond it
/// they are shrunk, so one burst does not hold its peak memory forever.
const KEEP_CAPACITY: usize = 4096;

/// How long shutdown waits for a full send buffer to drain before giving up.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// Settings of the shell itself (the room has its own [`Config`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most datagrams held while the send buffer is full.
    pub send_queue: usize,
    /// How often to log statistics, if at all.
    pub stats_interval: Option<Duration>,
    /// Receive buffer to ask the kernel for, bytes (0 = keep the system's default).
    pub recv_buffer: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            send_queue: 4096,
            stats_interval: None,
            recv_buffer: DEFAULT_RECV_BUFFER,
        }
    }
}

/// The receive buffer asked for by default: 8 MiB, some ten thousand small
/// datagrams, so a flood cannot fill it while the relay is descheduled for
/// a few milliseconds (see [`udpchat_udp::set_receive_buffer`]).
pub const DEFAULT_RECV_BUFFER: usize = 8 * 1024 * 1024;

/// Why the event loop could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another relay running there? choose another address or port with --bind")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// The event loop's own machinery failed (poll, waker, signals).
    #[error("{what} failed: {source}")]
    Io {
        /// What was being set up or run.
        what: &'static str,
        /// What the operating system said.
        source: io::Error,
    },
}

fn io_error(what: &'static str) -> impl FnOnce(io::Error) -> ServerError {
    move |source| ServerError::Io { what, source }
}

/// Counters kept by the shell (the room keeps its own [`crate::Stats`]).
#[derive(Debug, Default, Clone)]
pub struct ShellStats {
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Datagrams dropped because the send queue was full.
    pub queue_drops: u64,
    /// Sends that failed for a reason other than a full buffer.
    pub send_errors: u64,
    /// ICMP port-unreachable reports read from the error queue.
    pub unreachable_reports: u64,
    /// Times an address was blocked in the kernel for flooding.
    pub kernel_blocks: u64,
    /// Most datagrams the room had queued at one dispatch (memory: 48
    /// bytes each; bounded by [`DISPATCH_AT`] plus one fan-out).
    pub peak_outputs: usize,
}

/// A bound relay, ready to [`run`](Server::run).
pub struct Server {
    poll: Poll,
    socket: UdpSocket,
    local_addr: SocketAddr,
    room: Room,
    lang: Lang,
    out: Outputs,
    inbox: udpchat_udp::RecvBatch,
    queue: VecDeque<Transmit>,
    queue_limit: usize,
    writable_interest: bool,
    /// The socket may hold unread datagrams (readable and not yet drained to
    /// `WouldBlock`): mio is edge-triggered, so no new event would say so.
    readable: bool,
    unreachable: Vec<SocketAddr>,
    batch: udpchat_udp::SendBatch,
    waker: Arc<Waker>,
    console: Option<Receiver<Command>>,
    #[cfg(unix)]
    signals: signal_hook_mio::v1_0::Signals,
    transcript: Option<Transcript>,
    transcript_failed: bool,
    refusals: RefusalLog,
    flooders: Flooders,
    stats: ShellStats,
    stats_interval: Option<Duration>,
    next_stats: Option<Instant>,
    shutdown: Option<String>,
}

impl Server {
    /// Binds `addr` and prepares the loop. Nothing is read until [`Server::run`].
    pub fn bind(
        addr: SocketAddr,
        config: Config,
        settings: Settings,
        transcript: Option<Transcript>,
    ) -> Result<Server, ServerError> {
        let mut socket =
            UdpSocket::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        if let Err(e) = udpchat_udp::enable_unreachable_reports(&socket, local_addr.is_ipv6()) {
            log::warn!("cannot enable ICMP error reports ({e}); closed clients leave only at their idle timeout");
        }
        if settings.recv_buffer > 0 {
            match udpchat_udp::set_receive_buffer(&socket, settings.recv_buffer) {
                Ok(got) if got.bytes >= settings.recv_buffer => {
                    log::info!("receive buffer: {} bytes", got.bytes)
                }
                Ok(got) => log::warn!(
                    "receive buffer: {} bytes of the {} asked for{}; a flood may crowd out honest datagrams",
                    got.bytes,
                    settings.recv_buffer,
                    if got.forced {
                        ""
                    } else {
                        " (capped by net.core.rmem_max; run as root or raise it with sysctl)"
                    }
                ),
                Err(e) => log::warn!("cannot set the receive buffer ({e}); the system's default stays"),
            }
        }
        let poll = Poll::new().map_err(io_error("creating the event loop"))?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)
            .map_err(io_error("registering the socket"))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), CONSOLE).map_err(io_error("creating the console waker"))?,
        );

        #[cfg(unix)]
        let signals = {
            use signal_hook::consts::{SIGINT, SIGTERM};
            let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])
                .map_err(io_error("installing the SIGINT/SIGTERM handlers"))?;
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)
                .map_err(io_error("registering the signal handlers"))?;
            signals
        };

        let lang = config.lang;
        let config_rate = (config.rate_burst, config.rate_per_sec);
        let now = Instant::now();
        Ok(Server {
            poll,
            socket,
            local_addr,
            room: Room::new(config, random_key(), now),
            lang,
            out: Outputs::default(),
            inbox: udpchat_udp::RecvBatch::new(RECV_BATCH, RECV_SLOT),
            queue: VecDeque::new(),
            queue_limit: settings.send_queue.max(1),
            writable_interest: false,
            readable: false,
            unreachable: Vec::new(),
            batch: udpchat_udp::SendBatch::default(),
            waker,
            console: None,
            #[cfg(unix)]
            signals,
            transcript,
            transcript_failed: false,
            refusals: RefusalLog::new(now),
            flooders: Flooders::new(now, &config_rate),
            stats: ShellStats::default(),
            stats_interval: settings.stats_interval,
            next_stats: settings.stats_interval.map(|i| now + i),
            shutdown: None,
        })
    }

    /// The address actually bound (the port is known even for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts reading operator commands from standard input.
    pub fn start_console(&mut self) -> io::Result<()> {
        let waker = Arc::clone(&self.waker);
        let rx = console::spawn(Box::new(move || {
            // If waking fails the loop still sees the command at its next wake-up.
            let _ = waker.wake();
        }))?;
        self.console = Some(rx);
        Ok(())
    }

    /// Runs until SIGINT, SIGTERM or `/quit`, then says goodbye to every
    /// member and returns.
    pub fn run(mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(64);
        while self.shutdown.is_none() {
            let timeout = if self.readable {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ServerError::Io {
                        what: "waiting for events",
                        source: e,
                    })
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SOCKET => {
                        if event.is_error() || event.is_readable() {
                            self.drain_error_queue();
                        }
                        if event.is_readable() {
                            self.readable = true;
                        }
                        if event.is_writable() {
                            self.flush_queue();
                        }
                    }
                    CONSOLE => self.console_commands(now),
                    #[cfg(unix)]
                    SIGNALS => {
                        for signal in self.signals.pending() {
                            let name = match signal {
                                signal_hook::consts::SIGINT => "SIGINT",
                                signal_hook::consts::SIGTERM => "SIGTERM",
                                _ => "signal",
                            };
                            log::info!("{name} received; saying goodbye to every member");
                            self.shutdown
                                .get_or_insert_with(|| default_quit_reason(self.lang).to_owned());
                        }
                    }
                    _ => {}
                }
            }
            if self.readable {
                self.receive();
            }
            self.timers(Instant::now());
            self.handle_unreachable(Instant::now());
        }
        let reason = self.shutdown.take().unwrap_or_default();
        self.finish(&reason);
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.room.poll_timeout(),
            self.next_stats,
            self.refusals.deadline(),
            self.flooders.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn timers(&mut self, now: Instant) {
        if self.room.poll_timeout().is_some_and(|t| t <= now) {
            self.room.handle_timeout(now, &mut self.out);
            self.dispatch();
        }
        self.refusals.tick(now);
        self.flooders.expire(now);
        self.update_kernel_blocks();
        if let (Some(next), Some(interval)) = (self.next_stats, self.stats_interval) {
            if next <= now {
                self.log_stats();
                self.next_stats = Some(now + interval);
            }
        }
    }

    /// Reads until `WouldBlock` (or [`RECV_PER_TURN`] datagrams), feeding
    /// the room and sending its answers after every batch.
    fn receive(&mut self) {
        let mut total = 0;
        // Consecutive errors with nothing read in between: bounded so a
        // socket in a persistent error state cannot spin the loop.
        let mut errors = 0;
        while total < RECV_PER_TURN {
            match self.receive_batch() {
                Ok(n) => {
                    errors = 0;
                    total += n;
                    self.dispatch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ConnectionReset (Windows) or, with IP_RECVERR, the
                    // pending ICMP error of an earlier send (Linux): not this
                    // socket's fault; read the error queue and go on.
                    log::debug!("receive: {e}");
                    self.drain_error_queue();
                    errors += 1;
                    if errors > 16 {
                        // Wait for the next datagram's event rather than spin:
                        // every arrival is a new edge.
                        log::warn!("receive keeps failing ({e}); waiting for the next datagram");
                        self.readable = false;
                        break;
                    }
                }
            }
        }
        // Past RECV_PER_TURN `readable` stays set: the loop comes back at
        // once, after timers, the console and signals had their turn.
        self.dispatch();
        self.update_kernel_blocks();
    }

    /// Reads one batch of datagrams (one `recvmmsg` on Linux) and hands
    /// each to the room. Returns how many were read, or the error of the
    /// first read.
    fn receive_batch(&mut self) -> io::Result<usize> {
        let n = self.inbox.receive(&self.socket)?;
        let now = Instant::now();
        for i in 0..n {
            if let Some((from, bytes)) = self.inbox.datagram(i) {
                self.room.handle_datagram(now, from, bytes, &mut self.out);
            }
            self.dispatch_if_large();
        }
        Ok(n)
    }

    fn console_commands(&mut self, now: Instant) {
        loop {
            let command = match self.console.as_ref().map(Receiver::try_recv) {
                Some(Ok(command)) => command,
                Some(Err(TryRecvError::Disconnected)) => {
                    // End of stdin: the relay keeps running without a console.
                    self.console = None;
                    return;
                }
                Some(Err(TryRecvError::Empty)) | None => return,
            };
            match command {
                Command::Host(text) => {
                    if let Err(e) = self.room.host_message(now, &text, &mut self.out) {
                        console_print(&format!("not sent: {e}"));
                    }
                    self.dispatch();
                }
                Command::Who => console_print(&who_list(&self.room.members())),
                Command::Kick { nick, reason } => {
                    let reason =
                        reason.unwrap_or_else(|| default_kick_reason(self.lang).to_owned());
                    match self.room.kick(now, &nick, &reason, &mut self.out) {
                        Ok(()) => console_print(&format!("kicked {nick}")),
                        Err(code) => {
                            console_print(&format!("cannot kick {nick}: {}", code.reason(Lang::En)))
                        }
                    }
                    self.dispatch();
                }
                Command::Quit(reason) => {
                    self.shutdown =
                        Some(reason.unwrap_or_else(|| default_quit_reason(self.lang).to_owned()));
                }
                Command::Help => console_print(console::HELP),
                Command::Unknown(line) => console_print(&format!(
                    "unknown command {line:?}; /help lists the commands"
                )),
                Command::Nothing => {}
            }
        }
    }

    /// Dispatches now if the room has queued [`DISPATCH_AT`] datagrams.
    fn dispatch_if_large(&mut self) {
        if self.out.transmits.len() >= DISPATCH_AT {
            self.dispatch();
        }
    }

    /// Logs and records the room's events, then sends its datagrams.
    fn dispatch(&mut self) {
        // Taken out so the handlers below may borrow `self`; put back with
        // its capacity so the buffers are reused, not reallocated (unless
        // a burst left them oversized).
        let mut out = std::mem::take(&mut self.out);
        self.stats.peak_outputs = self.stats.peak_outputs.max(out.transmits.len());
        for event in out.events.drain(..) {
            self.record(event);
        }
        self.send_all(&mut out.transmits);
        out.clear();
        out.transmits.shrink_to(KEEP_CAPACITY);
        out.events.shrink_to(KEEP_CAPACITY);
        self.out = out;
        if !self.queue.is_empty() && !self.writable_interest {
            self.set_writable_interest(true);
        }
    }

    fn record(&mut self, event: Event) {
        match event {
            Event::Room { seq, event } => {
                log::debug!("event {seq}: {event:?}");
                if let Some(t) = &mut self.transcript {
                    let result = t.room_event(SystemTime::now(), seq, &event);
                    transcript_result(t, result, &mut self.transcript_failed);
                }
            }
            Event::Unannounced { event } => {
                log::debug!("not announced (above --announce-limit): {event:?}");
                if let Some(t) = &mut self.transcript {
                    let result = t.unannounced_event(SystemTime::now(), &event);
                    transcript_result(t, result, &mut self.transcript_failed);
                }
            }
            Event::Private { from, to, text } => {
                log::debug!("private {from} -> {to}");
                if let Some(t) = &mut self.transcript {
                    let result = t.private(SystemTime::now(), &from, &to, &text);
                    transcript_result(t, result, &mut self.transcript_failed);
                }
            }
            Event::Joined {
                addr,
                nick,
                dialect,
            } => {
                let dialect = match dialect {
                    Dialect::Classic(_) => "classic",
                    Dialect::Structured => "structured",
                };
                log::info!(
                    "{nick} joined from {addr} ({dialect}); {} members",
                    self.room.member_count()
                );
            }
            Event::Left { addr, nick, reason } => {
                log::info!(
                    "{nick} left ({}) from {addr}; {} members",
                    reason.as_str(),
                    self.room.member_count()
                );
            }
            Event::Refused { addr, code, detail } => {
                self.refusals.refused(Instant::now(), addr, code, &detail);
            }
            Event::Dropped { addr, why } => {
                log::debug!("dropped a datagram from {addr}: {why}");
                if why == crate::room::OVER_RATE_LIMIT
                    && self.flooders.over_limit(Instant::now(), addr)
                {
                    self.stats.kernel_blocks += 1;
                    log::debug!(
                        "{addr} floods: its datagrams are dropped in the kernel for a while"
                    );
                }
            }
        }
    }

    /// Hands the kernel the current list of blocked flooders, if it changed.
    fn update_kernel_blocks(&mut self) {
        if !std::mem::take(&mut self.flooders.changed) {
            return;
        }
        let blocked: Vec<SocketAddr> = self.flooders.blocked.iter().map(|(a, _)| *a).collect();
        if let Err(e) = udpchat_udp::set_blocked_sources(&self.socket, &blocked) {
            // Not fatal: the room's rate limit still drops their excess.
            log::warn!("cannot filter flooders in the kernel ({e}); the rate limit still applies");
        }
    }

    /// Sends (or queues) every datagram of `transmits`, in order, and
    /// empties it.
    fn send_all(&mut self, transmits: &mut Vec<Transmit>) {
        let mut next = 0;
        // If earlier datagrams are still queued, these go behind them.
        while self.queue.is_empty() && next < transmits.len() {
            match self.send_some(&transmits[next..]) {
                Some(sent) => next += sent,
                None => break, // the send buffer is full
            }
        }
        for transmit in transmits.drain(next..) {
            self.enqueue(transmit);
        }
        transmits.clear();
    }

    /// Sends at least the first of `transmits` (maybe more, with one
    /// `sendmmsg` on Linux); returns how many are done, or `None` if the
    /// send buffer is full.
    fn send_some(&mut self, transmits: &[Transmit]) -> Option<usize> {
        if transmits.len() > 1 {
            let batch = transmits.iter().map(|t| (t.to, &t.bytes[..]));
            match self.batch.send(&self.socket, batch) {
                Ok(sent) if sent > 0 => {
                    self.stats.sent += sent as u64;
                    return Some(sent);
                }
                Ok(_) => return None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                // The first datagram failed (e.g. a pending ICMP error):
                // send it alone, which reads the error queue and retries.
                Err(_) => {}
            }
        }
        self.send_one(&transmits[0])
    }

    fn send_one(&mut self, transmit: &Transmit) -> Option<usize> {
        match self.try_send(transmit) {
            SendOutcome::Done => Some(1),
            SendOutcome::WouldBlock => None,
        }
    }

    fn try_send(&mut self, transmit: &Transmit) -> SendOutcome {
        // A send can fail with the pending ICMP error of an earlier datagram
        // (Linux, IP_RECVERR) without sending this one: read the error queue
        // and try again, a bounded number of times.
        for _ in 0..4 {
            match self.socket.send_to(&transmit.bytes, transmit.to) {
                Ok(_) => {
                    self.stats.sent += 1;
                    return SendOutcome::Done;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return SendOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("send to {}: {e}", transmit.to);
                    if self.drain_error_queue() == 0 {
                        // Not a queued ICMP error: this datagram itself failed.
                        self.stats.send_errors += 1;
                        return SendOutcome::Done;
                    }
                }
            }
        }
        self.stats.send_errors += 1;
        SendOutcome::Done
    }

    fn enqueue(&mut self, transmit: Transmit) {
        if self.queue.len() >= self.queue_limit {
            // Drop the newest: the queued datagrams are older and already
            // promised in order. Counted, and logged at most once per stats line.
            if self.stats.queue_drops == 0 || self.stats.queue_drops.is_power_of_two() {
                log::warn!(
                    "send queue full ({} datagrams); dropped {} so far (raise --send-queue?)",
                    self.queue.len(),
                    self.stats.queue_drops + 1
                );
            }
            self.stats.queue_drops += 1;
            return;
        }
        self.queue.push_back(transmit);
    }

    /// Sends queued datagrams until the queue is empty or the socket is full.
    fn flush_queue(&mut self) {
        while let Some(transmit) = self.queue.pop_front() {
            if let SendOutcome::WouldBlock = self.try_send(&transmit) {
                self.queue.push_front(transmit);
                return;
            }
        }
        self.queue.shrink_to(KEEP_CAPACITY);
        if self.writable_interest {
            self.set_writable_interest(false);
        }
    }

    fn set_writable_interest(&mut self, writable: bool) {
        let interest = if writable {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match self
            .poll
            .registry()
            .reregister(&mut self.socket, SOCKET, interest)
        {
            Ok(()) => self.writable_interest = writable,
            Err(e) => log::error!("cannot change socket interest: {e}"),
        }
    }

    /// Reads the socket's error queue; remembers unreachable members for
    /// [`Server::handle_unreachable`]. Returns how many errors were read.
    fn drain_error_queue(&mut self) -> usize {
        let unreachable = &mut self.unreachable;
        let stats = &mut self.stats;
        udpchat_udp::drain_error_queue(&self.socket, |addr| {
            stats.unreachable_reports += 1;
            if !unreachable.contains(&addr) {
                unreachable.push(addr);
            }
        })
    }

    /// Tells the room about unreachable addresses. Done outside `dispatch`
    /// because the room's answer (LEAVE notices) needs dispatching itself.
    fn handle_unreachable(&mut self, now: Instant) {
        // Each round can only find new unreachable addresses among the
        // datagrams it sent; bounded anyway.
        for _ in 0..16 {
            if self.unreachable.is_empty() {
                return;
            }
            let addrs = std::mem::take(&mut self.unreachable);
            for addr in &addrs {
                log::debug!("ICMP port unreachable from {addr}");
                self.room.handle_unreachable(now, *addr, &mut self.out);
                self.dispatch_if_large();
            }
            self.dispatch();
        }
    }

    fn log_stats(&self) {
        let room = self.room.stats();
        log::info!(
            "stats: {} members; datagrams in {} out {}; refused {}, rate-limited {}, stranger replies dropped {}; \
             sent {}, send errors {}, send-queue drops {} (queued {}, peak batch {}); unreachable reports {}; flooders blocked {}",
            self.room.member_count(),
            room.datagrams_in,
            room.datagrams_out,
            room.refused,
            room.rate_limited,
            room.stranger_replies_dropped,
            self.stats.sent,
            self.stats.send_errors,
            self.stats.queue_drops,
            self.queue.len(),
            self.stats.peak_outputs,
            self.stats.unreachable_reports,
            self.stats.kernel_blocks,
        );
    }

    /// Goodbye to every member, then make sure it is sent and recorded.
    fn finish(&mut self, reason: &str) {
        let now = Instant::now();
        self.room.shutdown(now, reason, &mut self.out);
        self.dispatch();
        let deadline = now + SHUTDOWN_FLUSH;
        let mut events = Events::with_capacity(8);
        while !self.queue.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!(
                    "{} goodbye datagrams not sent: the send buffer stayed full",
                    self.queue.len()
                );
                break;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(left)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            self.flush_queue();
        }
        self.refusals.flush();
        if let Some(t) = &mut self.transcript {
            if let Err(e) = t.sync() {
                log::error!("transcript {}: {e}", t.path().display());
            }
        }
        self.log_stats();
        log::info!("relay stopped");
    }
}

enum SendOutcome {
    /// Sent, or failed for good (counted).
    Done,
    /// The send buffer is full: try again when writable.
    WouldBlock,
}

fn transcript_result(t: &Transcript, result: io::Result<()>, failed: &mut bool) {
    match result {
        Ok(()) => *failed = false,
        Err(e) if !*failed => {
            // Logged once per run of failures: a full disk must not flood the log.
            log::error!(
                "cannot write transcript {}: {e}; events are missing from it",
                t.path().display()
            );
            *failed = true;
        }
        Err(_) => {}
    }
}

/// The `/who` listing.
fn who_list(members: &[(udpchat_proto::Nick, SocketAddr, Dialect)]) -> String {
    let mut s = format!(
        "{} member{}",
        members.len(),
        if members.len() == 1 { "" } else { "s" }
    );
    for (nick, addr, dialect) in members {
        let dialect = match dialect {
            Dialect::Classic(_) => "classic",
            Dialect::Structured => "structured",
        };
        s.push_str(&format!("\n  {nick} {addr} {dialect}"));
    }
    s
}

/// Prints one console answer in one locked write, so it never interleaves
/// with the `listening` line or other output.
fn console_print(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

fn default_quit_reason(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "goodbye",
        Lang::Zh => "再见",
    }
}

fn default_kick_reason(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "no reason given",
        Lang::Zh => "未说明原因",
    }
}

/// 16 random bytes for the cookie key, from std's per-process random
/// SipHash keys (no extra crate for one key per run).
fn random_key() -> [u8; 16] {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    let a = RandomState::new().hash_one((std::process::id(), SystemTime::now()));
    let b = RandomState::new().hash_one(a);
    let mut key = [0; 16];
    key[..8].copy_from_slice(&a.to_le_bytes());
    key[8..].copy_from_slice(&b.to_le_bytes());
    key
}

/// Addresses that send far past their rate limit, and for how long the
/// kernel drops their datagrams ([`udpchat_udp::set_blocked_sources`]).
///
/// The room drops a flooder's excess anyway, but each datagram costs the
/// relay a wake-up and a copy first: at a few hundred thousand a second,
/// half a core that honest fan-out needs. An address with [`Self::TRIGGER`]
/// datagrams over its limit within [`Self::WINDOW`] (a member never comes
/// close: the default limit is 5 a second) is blocked for as long as its
/// bucket takes to refill completely, at most [`Self::MAX_BLOCK`]. Its
/// bucket refills meanwhile, so the datagrams it gets accepted per second
/// stay what the rate limit allows; only the ones that would be dropped are
/// dropped earlier.
#[derive(Debug)]
struct Flooders {
    window_start: Instant,
    excess: HashMap<SocketAddr, u32>,
    blocked: Vec<(SocketAddr, Instant)>,
    block_for: Duration,
    changed: bool,
}

impl Flooders {
    const TRIGGER: u32 = 100;
    const WINDOW: Duration = Duration::from_millis(100);
    const MAX_BLOCK: Duration = Duration::from_secs(1);
    /// Addresses counted per window at most (a spoofed flood from many
    /// addresses cannot grow the table).
    const MAX_COUNTED: usize = 1024;

    fn new(now: Instant, &(burst, per_sec): &(u32, u32)) -> Flooders {
        let refill = Duration::from_secs_f64(f64::from(burst) / f64::from(per_sec.max(1)));
        Flooders {
            window_start: now,
            excess: HashMap::new(),
            blocked: Vec::new(),
            block_for: refill.min(Self::MAX_BLOCK),
            changed: false,
        }
    }

    /// Counts one datagram from `addr` dropped by the rate limit; true if
    /// that makes `addr` blocked.
    fn over_limit(&mut self, now: Instant, addr: SocketAddr) -> bool {
        if now.saturating_duration_since(self.window_start) >= Self::WINDOW {
            self.window_start = now;
            self.excess.clear();
            self.excess.shrink_to(Self::MAX_COUNTED);
        }
        if self.excess.len() >= Self::MAX_COUNTED && !self.excess.contains_key(&addr) {
            return false;
        }
        let count = self.excess.entry(addr).or_insert(0);
        *count += 1;
        if *count != Self::TRIGGER
            || self.block_for.is_zero()
            || self.blocked.len() >= udpchat_udp::MAX_BLOCKED
            || self.blocked.iter().any(|(a, _)| *a == addr)
        {
            return false;
        }
        self.blocked.push((addr, now + self.block_for));
        self.changed = true;
        true
    }

    /// When the next block ends.
    fn deadline(&self) -> Option<Instant> {
        self.blocked.iter().map(|(_, until)| *until).min()
    }

    fn expire(&mut self, now: Instant) {
        let before = self.blocked.len();
        self.blocked.retain(|(_, until)| *until > now);
        self.changed |= self.blocked.len() != before;
    }
}

/// Warnings for refused input, at most [`RefusalLog::PER_SECOND`] a second;
/// the rest are counted and summarised, so a flood cannot flood the log.
#[derive(Debug)]
struct RefusalLog {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl RefusalLog {
    const PER_SECOND: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(1);

    fn new(now: Instant) -> RefusalLog {
        RefusalLog {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Returns whether this refusal was logged.
    fn refused(&mut self, now: Instant, addr: SocketAddr, code: ErrorCode, detail: &str) -> bool {
        self.tick(now);
        if now.saturating_duration_since(self.window_start) >= Self::WINDOW {
            self.window_start = now;
            self.logged = 0;
        }
        if self.logged < Self::PER_SECOND {
            self.logged += 1;
            if detail.is_empty() {
                log::warn!("refused {addr}: {code}");
            } else {
                log::warn!("refused {addr}: {code} ({detail})");
            }
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// When a summary of suppressed warnings is due.
    fn deadline(&self) -> Option<Instant> {
        (self.suppressed > 0).then(|| self.window_start + Self::WINDOW)
    }

    fn tick(&mut self, now: Instant) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.flush();
            self.window_start = now;
            self.logged = 0;
        }
    }

    fn flush(&mut self) {
        if self.suppressed > 0 {
            log::warn!("{} more refusals suppressed", self.suppressed);
            self.suppressed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn transmit(to: SocketAddr, i: u8) -> Transmit {
        Transmit {
            to,
            bytes: Rc::from(vec![b'a' + i].into_boxed_slice()),
        }
    }

    #[test]
    fn full_send_queue_drops_the_newest_counts_them_and_flushes_in_order() {
        let settings = Settings {
            send_queue: 3,
            ..Settings::default()
        };
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, Config::default(), settings, None).unwrap();
        let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = target.local_addr().unwrap();
        // As if the send buffer had been full: one datagram already waits,
        // so new ones must queue behind it, and the bound of 3 drops two.
        server.queue.push_back(transmit(to, 0));
        let mut batch: Vec<Transmit> = (1..5).map(|i| transmit(to, i)).collect();
        server.send_all(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(server.queue.len(), 3);
        assert_eq!(server.stats.queue_drops, 2);
        assert_eq!(server.stats.sent, 0);

        server.set_writable_interest(true);
        server.flush_queue();
        assert!(server.queue.is_empty());
        assert!(!server.writable_interest);
        assert_eq!(server.stats.sent, 3);
        target
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        for want in [b'a', b'b', b'c'] {
            let n = target.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[want]);
        }
    }

    #[test]
    fn a_burst_far_beyond_the_default_receive_buffer_is_read_whole() {
        // 3,000 datagrams queued before the relay reads any: the system's
        // default buffer (about 208 KiB) holds a few hundred of them; the
        // relay's must hold them all, and the honest join behind them.
        const BURST: usize = 3_000;
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, Config::default(), Settings::default(), None).unwrap();
        let relay = server.local_addr();
        let flooder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..BURST {
            flooder
                .send_to(format!("M nobody flood {i}").as_bytes(), relay)
                .unwrap();
        }
        let honest = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        honest.send_to(b"N alice", relay).unwrap();
        server.readable = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.readable && Instant::now() < deadline {
            server.receive();
        }
        assert_eq!(server.room.stats().datagrams_in, BURST as u64 + 1);
        assert_eq!(server.room.member_count(), 1);
        honest
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = honest.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"OK");
    }

    #[test]
    fn a_burst_of_chats_is_sent_in_bounded_pieces() {
        // 64 chats queued at once in a room of 150: 9,600 datagrams to send.
        // They must leave in pieces of about DISPATCH_AT, not pile up.
        const MEMBERS: usize = 150;
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, Config::default(), Settings::default(), None).unwrap();
        let relay = server.local_addr();
        let members: Vec<std::net::UdpSocket> = (0..MEMBERS)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let drain = |server: &mut Server| {
            server.readable = true;
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.readable && Instant::now() < deadline {
                server.receive();
            }
        };
        for (i, m) in members.iter().enumerate() {
            m.send_to(format!("N m{i}").as_bytes(), relay).unwrap();
            if i % 16 == 15 {
                drain(&mut server);
            }
        }
        drain(&mut server);
        assert_eq!(server.room.member_count(), MEMBERS);
        let before = server.stats.sent;
        for (i, m) in members.iter().take(64).enumerate() {
            m.send_to(format!("M m{i} hello").as_bytes(), relay)
                .unwrap();
        }
        drain(&mut server);
        assert_eq!(server.stats.sent - before, 64 * MEMBERS as u64);
        assert!(
            server.stats.peak_outputs < DISPATCH_AT + MEMBERS + 8,
            "{} datagrams queued at once",
            server.stats.peak_outputs
        );
        assert!(server.out.transmits.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn an_address_far_over_its_limit_is_blocked_until_its_bucket_refills() {
        let t0 = Instant::now();
        let flooder: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
        // Default limit: burst 20 at 5/s refills in 4 s; blocks last 1 s.
        let mut f = Flooders::new(t0, &(20, 5));
        for _ in 1..Flooders::TRIGGER {
            assert!(!f.over_limit(t0, flooder));
        }
        assert!(!f.over_limit(t0, other));
        assert!(f.over_limit(t0, flooder));
        assert!(std::mem::take(&mut f.changed));
        assert_eq!(f.blocked, [(flooder, t0 + Duration::from_secs(1))]);
        assert!(!f.over_limit(t0, flooder), "blocked once");
        assert_eq!(f.deadline(), Some(t0 + Duration::from_secs(1)));
        f.expire(t0 + Duration::from_millis(999));
        assert!(!f.changed);
        f.expire(t0 + Duration::from_secs(1));
        assert!(f.changed && f.blocked.is_empty() && f.deadline().is_none());
    }

    #[test]
    fn excess_spread_over_windows_does_not_block() {
        let t0 = Instant::now();
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut f = Flooders::new(t0, &(20, 5));
        // 99 excess datagrams per window, window after window.
        for w in 0..10u32 {
            let now = t0 + Flooders::WINDOW * w;
            for _ in 1..Flooders::TRIGGER {
                assert!(!f.over_limit(now, addr));
            }
        }
        assert!(f.blocked.is_empty());
        // A limit that refills quickly blocks only that long.
        let f = Flooders::new(t0, &(1, 1000));
        assert_eq!(f.block_for, Duration::from_millis(1));
    }

    #[test]
    fn a_flooder_is_blocked_in_the_kernel_and_members_still_chat() {
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, Config::default(), Settings::default(), None).unwrap();
        let relay = server.local_addr();
        let drain = |server: &mut Server| {
            server.readable = true;
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.readable && Instant::now() < deadline {
                server.receive();
            }
        };
        let flooder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let honest = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        honest.send_to(b"N alice", relay).unwrap();
        for i in 0..500 {
            flooder
                .send_to(format!("PING {i}").as_bytes(), relay)
                .unwrap();
        }
        drain(&mut server);
        let seen = server.room.stats().datagrams_in;
        assert_eq!(seen, 501);
        assert_eq!(server.stats.kernel_blocks, 1);
        // Blocked: the kernel drops the flooder's datagrams; alice's pass.
        for i in 0..500 {
            flooder
                .send_to(format!("PING {i}").as_bytes(), relay)
                .unwrap();
        }
        honest.send_to(b"M alice hi", relay).unwrap();
        drain(&mut server);
        assert_eq!(server.room.stats().datagrams_in, seen + 1);
        honest
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        let mut lines = Vec::new();
        while lines.len() < 3 {
            let n = honest.recv(&mut buf).unwrap();
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(lines, ["OK", "* alice joined", "alice: hi"]);
        // Once the block ends, the flooder is heard again.
        server.timers(Instant::now() + Duration::from_secs(2));
        flooder.send_to(b"PING", relay).unwrap();
        drain(&mut server);
        assert_eq!(server.room.stats().datagrams_in, seen + 2);
    }

    #[test]
    fn refusal_warnings_are_rate_limited_and_summarised() {
        let t0 = Instant::now();
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut log = RefusalLog::new(t0);
        let logged = (0..100)
            .filter(|_| log.refused(t0, addr, ErrorCode::NotJoined, ""))
            .count();
        assert_eq!(logged, RefusalLog::PER_SECOND as usize);
        assert_eq!(log.suppressed, 90);
        assert_eq!(log.deadline(), Some(t0 + RefusalLog::WINDOW));
        log.tick(t0 + RefusalLog::WINDOW);
        assert_eq!(log.suppressed, 0);
        assert_eq!(log.deadline(), None);
        assert!(log.refused(t0 + RefusalLog::WINDOW, addr, ErrorCode::NotJoined, ""));
    }

    #[test]
    fn who_list_names_every_member() {
        let members = vec![
            (
                udpchat_proto::Nick::new("alice").unwrap(),
                "127.0.0.1:5".parse().unwrap(),
                Dialect::Structured,
            ),
            (
                udpchat_proto::Nick::new("bob").unwrap(),
                "[::1]:6".parse().unwrap(),
                Dialect::Classic(udpchat_proto::LineEnding::Bare),
            ),
        ];
        assert_eq!(
            who_list(&members),
            "2 members\n  alice 127.0.0.1:5 structured\n  bob [::1]:6 classic"
        );
        assert_eq!(who_list(&[]), "0 members");
    }
}
