//! The mio event loop: the only place with a clock and signals, and the
//! owner of the room. Each turn it waits for the socket, the console, a
//! signal or the next deadline; feeds what arrived to the [`Room`]; and
//! hands what the room says to the data path (datagrams) and the recorder
//! (log, transcript), and flood blocks to the kernel.
//!
//! One non-blocking UDP socket ([`DataPath`]) with a large receive buffer
//! (`--recv-buffer`, 8 MiB by default), so a flood cannot crowd honest
//! datagrams out of it before the room's rate limit sees them. Every
//! readiness event drains the socket until `WouldBlock` (in batches with
//! `recvmmsg` on Linux) and feeds each datagram to the room; whatever the
//! room says to send is sent after each batch. Timers come from
//! [`Room::poll_timeout`], the recorder and the statistics interval.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Poll, Token, Waker};
use udpchat_proto::Lang;

use crate::answers::{self, Answer};
use crate::attendance;
use crate::console::{self, Command};
use crate::datapath::{DataPath, DataStats, SetupError};
use crate::recording::Recorder;
use crate::screen::Screen;
use crate::transcript::Transcript;
use crate::view;
use crate::{Config, Event, Outputs, Room};

const SOCKET: Token = Token(0);
const CONSOLE: Token = Token(1);
#[cfg(unix)]
const SIGNALS: Token = Token(2);

/// Datagrams read per loop iteration. Under a flood the socket may never run
/// dry; stopping here lets timers, the console and signals have their turn
/// (the loop comes straight back, without waiting, for the rest).
const RECV_PER_TURN: usize = 4096;

/// Datagrams the room may queue in [`Outputs`] before they are sent, even in
/// the middle of a batch: every join or chat queues one per member, so a
/// batch of them in a room of 10,000 would otherwise queue hundreds of
/// thousands (48 bytes each) and keep that capacity.
const DISPATCH_AT: usize = 1024;

/// Capacity kept by the output buffers once sent: beyond it they are
/// shrunk, so one burst does not hold its peak memory forever.
const KEEP_CAPACITY: usize = 4096;

/// How long shutdown waits for a full send buffer to drain before giving up.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

// The room never asks for more blocks than the kernel filter holds.
const _: () = assert!(udpchat_room::MAX_BLOCKED <= udpchat_udp::MAX_BLOCKED);

/// Settings of the shell itself (the room has its own [`Config`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most datagrams held while the send buffer is full.
    pub send_queue: usize,
    /// How often to log statistics, if at all.
    pub stats_interval: Option<Duration>,
    /// Receive buffer to ask the kernel for, bytes (0 = keep the system's default).
    pub recv_buffer: usize,
    /// `--ban-file`: where the bans are written after every change.
    pub ban_file: Option<std::path::PathBuf>,
    /// Where `/attendance save` and shutdown write the attendance CSV.
    pub attendance: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            send_queue: 4096,
            stats_interval: None,
            recv_buffer: DEFAULT_RECV_BUFFER,
            ban_file: None,
            attendance: None,
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

/// Counters kept by the event loop (the data path and the room keep their own).
#[derive(Debug, Default, Clone)]
pub struct LoopStats {
    /// Times an address was blocked in the kernel for flooding.
    pub kernel_blocks: u64,
    /// Most datagrams the room had queued at one dispatch (memory: 48
    /// bytes each; bounded by [`DISPATCH_AT`] plus one fan-out).
    pub peak_outputs: usize,
}

/// A bound relay, ready to [`run`](Server::run).
pub struct Server {
    poll: Poll,
    net: DataPath,
    local_addr: SocketAddr,
    room: Room,
    lang: Lang,
    out: Outputs,
    waker: Arc<Waker>,
    console: Option<Receiver<Command>>,
    #[cfg(unix)]
    signals: signal_hook_mio::v1_0::Signals,
    recorder: Recorder,
    stats: LoopStats,
    stats_interval: Option<Duration>,
    next_stats: Option<Instant>,
    /// The goodbye reason, once the relay is to stop.
    shutdown: Option<String>,
    /// What asked it to stop (`SIGTERM`, `/quit`), for the transcript.
    stop_cause: &'static str,
    ban_file: Option<std::path::PathBuf>,
    /// The wall-clock time the room's clock started at (attendance times).
    started: SystemTime,
    /// `--attendance FILE`.
    attendance: Option<PathBuf>,
    /// Where console lines go.
    screen: Screen,
    /// `--transcript-private`: the console shows private messages' text.
    private_text: bool,
}

impl Server {
    /// Binds `addr` and prepares the loop. Nothing is read until [`Server::run`].
    pub fn bind(
        addr: SocketAddr,
        config: Config,
        settings: Settings,
        transcript: Option<Transcript>,
    ) -> Result<Server, ServerError> {
        let poll = Poll::new().map_err(io_error("creating the event loop"))?;
        let net = DataPath::bind(
            addr,
            settings.recv_buffer,
            settings.send_queue,
            poll.registry(),
            SOCKET,
        )
        .map_err(|e| match e {
            SetupError::Bind(source) => ServerError::Bind { addr, source },
            SetupError::Register(source) => ServerError::Io {
                what: "registering the socket",
                source,
            },
        })?;
        let local_addr = net
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let waker = Arc::new(
            Waker::new(poll.registry(), CONSOLE).map_err(io_error("creating the console waker"))?,
        );

        #[cfg(unix)]
        let signals = {
            use signal_hook::consts::{SIGINT, SIGTERM};
            let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])
                .map_err(io_error("installing the SIGINT/SIGTERM handlers"))?;
            poll.registry()
                .register(&mut signals, SIGNALS, mio::Interest::READABLE)
                .map_err(io_error("registering the signal handlers"))?;
            signals
        };

        let lang = config.lang;
        let now = Instant::now();
        let mut recorder = Recorder::new(transcript, now);
        recorder.started(local_addr);
        Ok(Server {
            poll,
            net,
            local_addr,
            room: Room::new(config, random_key(), now),
            lang,
            out: Outputs::default(),
            waker,
            console: None,
            #[cfg(unix)]
            signals,
            recorder,
            stats: LoopStats::default(),
            stats_interval: settings.stats_interval,
            next_stats: settings.stats_interval.map(|i| now + i),
            shutdown: None,
            stop_cause: "",
            ban_file: settings.ban_file,
            started: SystemTime::now(),
            attendance: settings.attendance,
            screen: Screen::default(),
            private_text: false,
        })
    }

    /// Puts the bans of the ban file (read at start) back in force.
    pub fn restore_bans(&mut self, bans: Vec<crate::banfile::SavedBan>) {
        let now = Instant::now();
        for ban in bans {
            self.room
                .restore_ban(now, ban.ip, ban.nick, &ban.reason, ban.left);
        }
    }

    /// Writes the bans to `--ban-file` after a change.
    fn save_bans(&self) {
        let Some(path) = &self.ban_file else {
            return;
        };
        let bans = self.room.bans(Instant::now());
        if let Err(e) = crate::banfile::save(path, &bans, SystemTime::now()) {
            log::error!("cannot write ban file {}: {e}", path.display());
            self.show(
                &Answer::BansNotSaved {
                    path: path.display().to_string(),
                    why: e.to_string(),
                }
                .text(self.lang),
            );
        }
    }

    /// The address actually bound (the port is known even for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the socket is IPv6-only (a relay bound to `[::]` that is not
    /// reachable at IPv4 addresses); `false` for IPv4.
    pub fn ipv6_only(&self) -> bool {
        self.local_addr.is_ipv6() && self.net.ipv6_only()
    }

    /// Starts reading operator commands from standard input.
    pub fn start_console(&mut self) -> io::Result<()> {
        let waker = Arc::clone(&self.waker);
        let wake = Box::new(move || {
            let _ = waker.wake();
        });
        self.console = Some(console::spawn(wake)?);
        Ok(())
    }

    /// Starts the line-editor console on the terminal: commands from it,
    /// the room view and the answers above its prompt (through `screen`,
    /// which the log shares). `private_text`: show private messages' text.
    pub(crate) fn start_editor(
        &mut self,
        screen: Screen,
        editing: crate::editor::Editing,
        private_text: bool,
    ) -> io::Result<()> {
        let waker = Arc::clone(&self.waker);
        let wake = Box::new(move || {
            let _ = waker.wake();
        });
        let (tx, rx) = std::sync::mpsc::channel();
        crate::editor::spawn(tx, wake, screen.clone(), self.lang, editing)?;
        self.screen = screen;
        self.private_text = private_text;
        self.console = Some(rx);
        Ok(())
    }

    /// Runs until SIGINT, SIGTERM or `/quit`, then says goodbye to every
    /// member and returns.
    pub fn run(mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(64);
        while self.shutdown.is_none() {
            let timeout = if self.net.readable {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.recorder.finish("error", &e.to_string());
                    return Err(ServerError::Io {
                        what: "waiting for events",
                        source: e,
                    });
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SOCKET => {
                        if event.is_error() || event.is_readable() {
                            self.net.drain_error_queue();
                        }
                        if event.is_readable() {
                            self.net.readable = true;
                        }
                        if event.is_writable() {
                            self.net.flush_queue();
                        }
                    }
                    CONSOLE => self.console_commands(now),
                    #[cfg(unix)]
                    SIGNALS => self.signals(),
                    _ => {}
                }
            }
            if self.net.readable {
                self.receive();
            }
            self.timers(Instant::now());
            self.handle_unreachable(Instant::now());
        }
        let reason = self.shutdown.take().unwrap_or_default();
        self.finish(&reason);
        Ok(())
    }

    #[cfg(unix)]
    fn signals(&mut self) {
        for signal in self.signals.pending() {
            let name = match signal {
                signal_hook::consts::SIGINT => "SIGINT",
                signal_hook::consts::SIGTERM => "SIGTERM",
                _ => "signal",
            };
            log::info!("{name} received; saying goodbye to every member");
            if self.shutdown.is_none() {
                self.shutdown = Some(console::default_quit_reason(self.lang).to_owned());
                self.stop_cause = name;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.room.poll_timeout(),
            self.next_stats,
            self.recorder.deadline(),
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
        self.recorder.tick(now);
        self.net.update_kernel_blocks();
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
                    self.net.readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ConnectionReset (Windows) or, with IP_RECVERR, the
                    // pending ICMP error of an earlier send (Linux): not this
                    // socket's fault; read the error queue and go on.
                    log::debug!("receive: {e}");
                    self.net.drain_error_queue();
                    // A closed-port report (WSAECONNRESET) uses up one
                    // report per departed peer and never repeats by itself:
                    // read on (at most RECV_PER_TURN), since on Windows mio
                    // re-arms readiness only after a read says WouldBlock.
                    if cfg!(windows)
                        && udpchat_udp::classify_receive_error(&e)
                            == udpchat_udp::ReceiveError::PeerUnreachable
                    {
                        total += 1;
                        continue;
                    }
                    errors += 1;
                    if errors > 16 {
                        // Wait for the next datagram's event rather than spin:
                        // every arrival is a new edge.
                        log::warn!("receive keeps failing ({e}); waiting for the next datagram");
                        self.net.readable = false;
                        break;
                    }
                }
            }
        }
        // Past RECV_PER_TURN `readable` stays set: the loop comes back at
        // once, after timers, the console and signals had their turn.
        self.dispatch();
        self.net.update_kernel_blocks();
    }

    /// Reads one batch of datagrams and hands each to the room. Returns how
    /// many were read, or the error of the first read.
    fn receive_batch(&mut self) -> io::Result<usize> {
        let n = self.net.receive()?;
        let now = Instant::now();
        for i in 0..n {
            if let Some((from, bytes)) = self.net.datagram(i) {
                self.room.handle_datagram(now, from, bytes, &mut self.out);
            }
            if self.out.transmits.len() >= DISPATCH_AT {
                self.dispatch();
            }
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
            self.command(now, command);
        }
    }

    /// Carries out one operator command and answers on the console.
    fn command(&mut self, now: Instant, command: Command) {
        let answer = match command {
            Command::Host(text) => self
                .room
                .host_message(now, &text, &mut self.out)
                .err()
                .map(|e| Answer::NotSent(e.to_string())),
            Command::Who => {
                self.show(&attendance::who_text(
                    &self.room.who(now),
                    self.started,
                    self.lang,
                ));
                None
            }
            Command::Hands => {
                self.show(&attendance::hands_text(&self.room.hands(), self.lang));
                None
            }
            Command::Next => {
                let hand = self.room.next_hand(now, &mut self.out);
                let left = self.room.hands().len();
                self.show(&attendance::called_text(hand.as_ref(), left, self.lang));
                None
            }
            Command::Attendance { save } => {
                let records = self.room.attendance(now);
                self.show(&attendance::attendance_text(
                    &records,
                    self.started,
                    self.lang,
                ));
                match (save, &self.attendance) {
                    (false, _) => None,
                    (true, Some(_)) => {
                        self.save_attendance(now);
                        None
                    }
                    (true, None) => Some(Answer::AttendanceNotSaved),
                }
            }
            Command::Kick { nick, reason } => {
                let reason =
                    reason.unwrap_or_else(|| console::default_kick_reason(self.lang).to_owned());
                Some(match self.room.kick(now, &nick, &reason, &mut self.out) {
                    Ok(()) => Answer::Kicked(nick),
                    Err(code) => Answer::CannotKick {
                        nick,
                        why: code.reason(self.lang).to_string(),
                    },
                })
            }
            Command::Ban {
                target,
                duration,
                reason,
            } => Some(
                match self
                    .room
                    .ban(now, &target, duration, &reason, &mut self.out)
                {
                    Ok((ip, kicked)) => {
                        self.save_bans();
                        Answer::Banned {
                            ip,
                            duration,
                            removed: kicked.iter().map(ToString::to_string).collect(),
                        }
                    }
                    Err(e) => Answer::CannotBan {
                        target,
                        why: e.to_string(),
                    },
                },
            ),
            Command::Unban(target) => Some(match self.room.unban(now, &target, &mut self.out) {
                Ok(ip) => {
                    self.save_bans();
                    Answer::Unbanned(ip)
                }
                Err(e) => Answer::CannotUnban(e.to_string()),
            }),
            Command::Bans => {
                self.show(&answers::ban_list(&self.room.bans(now), self.lang));
                None
            }
            Command::Mute { nick, duration } => {
                Some(match self.room.mute(now, &nick, duration, &mut self.out) {
                    Ok(nick) => Answer::Muted(nick.to_string()),
                    Err(e) => Answer::CannotMute(e.to_string()),
                })
            }
            Command::Unmute(nick) => Some(match self.room.unmute(now, &nick, &mut self.out) {
                Ok(()) => Answer::Unmuted(nick),
                Err(e) => Answer::CannotUnmute(e.to_string()),
            }),
            Command::Lock => {
                self.room.lock(&mut self.out);
                Some(Answer::Locked)
            }
            Command::Unlock => {
                self.room.unlock(&mut self.out);
                Some(Answer::Unlocked)
            }
            Command::Code(None) => Some(Answer::Code(
                self.room.code().map(|c| c.as_str().to_owned()),
            )),
            Command::Code(Some(code)) if code == "off" => {
                self.room.set_code(None, &mut self.out);
                Some(Answer::CodeRemoved)
            }
            Command::Code(Some(code)) => Some(match udpchat_proto::JoinCode::new(&code) {
                Ok(code) => {
                    let said = Answer::CodeSet(code.as_str().to_owned());
                    self.room.set_code(Some(code), &mut self.out);
                    said
                }
                Err(e) => Answer::CodeNotSet(e.to_string()),
            }),
            Command::Slow(every) => {
                self.room.slow(every, &mut self.out);
                Some(Answer::Slow(every))
            }
            Command::Rename { nick, new } => {
                Some(match self.room.rename(now, &nick, &new, &mut self.out) {
                    Ok(()) => Answer::Renamed { nick, new },
                    Err(e) => Answer::CannotRename(e.to_string()),
                })
            }
            Command::Moderated(on) => Some(Answer::Moderated {
                on,
                changed: self.room.set_moderated(now, on, &mut self.out),
            }),
            Command::Voice(nick) => Some(match self.room.voice(now, &nick, &mut self.out) {
                Ok(nick) => Answer::Voiced(nick.to_string()),
                Err(e) => Answer::CannotVoice(e.to_string()),
            }),
            Command::Devoice(nick) => Some(match self.room.devoice(now, &nick, &mut self.out) {
                Ok(nick) => Answer::Devoiced(nick.to_string()),
                Err(e) => Answer::CannotDevoice(e.to_string()),
            }),
            Command::Announce(Some(text)) => self
                .room
                .announce(now, &text, &mut self.out)
                .err()
                .map(|e| Answer::NotAnnounced(e.to_string())),
            Command::Announce(None) => Some(Answer::Announcement(self.room.announcement())),
            Command::Quit(reason) => {
                self.stop_cause = "/quit";
                self.shutdown = Some(
                    reason.unwrap_or_else(|| console::default_quit_reason(self.lang).to_owned()),
                );
                None
            }
            Command::Interrupted => {
                log::info!("Ctrl-C on the console; saying goodbye to every member");
                self.stop_cause = "Ctrl-C";
                self.shutdown = Some(console::default_quit_reason(self.lang).to_owned());
                None
            }
            Command::Help => {
                self.show(answers::help(self.lang));
                None
            }
            Command::Unknown(line) => Some(Answer::Unknown(line)),
            Command::Nothing => None,
        };
        if let Some(answer) = answer {
            self.show(&answer.text(self.lang));
        }
        self.dispatch();
    }

    /// One console line: above the editor's prompt, or on stdout.
    fn show(&self, text: &str) {
        self.screen.line(text);
    }

    /// Records the room's events and applies its flood blocks, then sends
    /// its datagrams.
    fn dispatch(&mut self) {
        // Taken out so the handlers below may borrow `self`; put back with
        // its capacity so the buffers are reused, not reallocated (unless
        // a burst left them oversized).
        let mut out = std::mem::take(&mut self.out);
        self.stats.peak_outputs = self.stats.peak_outputs.max(out.transmits.len());
        let members = self.room.member_count();
        for event in out.events.drain(..) {
            self.recorder.record(&event, members);
            self.view(&event);
            match event {
                Event::Block { addr, .. } => {
                    self.stats.kernel_blocks += 1;
                    self.net.block(addr);
                }
                Event::Unblock { addr } => self.net.unblock(addr),
                _ => {}
            }
        }
        self.net.send_all(&mut out.transmits);
        out.clear();
        out.transmits.shrink_to(KEEP_CAPACITY);
        out.events.shrink_to(KEEP_CAPACITY);
        self.out = out;
    }

    /// Tells the room about unreachable addresses. Done outside `dispatch`
    /// because the room's answer (LEAVE notices) needs dispatching itself.
    fn handle_unreachable(&mut self, now: Instant) {
        // Each round can only find new unreachable addresses among the
        // datagrams it sent; bounded anyway.
        for _ in 0..16 {
            let addrs = self.net.take_unreachable();
            if addrs.is_empty() {
                return;
            }
            for addr in &addrs {
                log::debug!("ICMP port unreachable from {addr} itself");
                self.room.handle_unreachable(now, *addr, &mut self.out);
                if self.out.transmits.len() >= DISPATCH_AT {
                    self.dispatch();
                }
            }
            self.dispatch();
        }
    }

    fn log_stats(&self) {
        let room = self.room.stats();
        let DataStats {
            sent,
            queue_drops,
            send_errors,
            unreachable_reports,
            unreachable_ignored,
        } = self.net.stats;
        log::info!(
            "stats: {} members; datagrams in {} out {}; refused {}, rate-limited {}, stranger replies dropped {}, replies over budget {}; \
             sent {sent}, send errors {send_errors}, send-queue drops {queue_drops} (queued {}, peak batch {}); unreachable reports {unreachable_reports} (ignored, not from the member's address: {unreachable_ignored}); flooders blocked {}; \
             without session key {}",
            self.room.member_count(),
            room.datagrams_in,
            room.datagrams_out,
            room.refused,
            room.rate_limited,
            room.stranger_replies_dropped,
            room.replies_over_budget,
            self.net.queued(),
            self.stats.peak_outputs,
            self.stats.kernel_blocks,
            room.unauthenticated,
        );
    }

    /// Goodbye to every member, then make sure it is sent and recorded.
    fn finish(&mut self, reason: &str) {
        let now = Instant::now();
        self.room.shutdown(now, reason, &mut self.out);
        self.dispatch();
        let deadline = now + SHUTDOWN_FLUSH;
        let mut events = Events::with_capacity(8);
        while self.net.queued() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!(
                    "{} goodbye datagrams not sent: the send buffer stayed full",
                    self.net.queued()
                );
                break;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(left)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            self.net.flush_queue();
        }
        let cause = if self.stop_cause.is_empty() {
            "?"
        } else {
            self.stop_cause
        };
        self.recorder.finish(cause, reason);
        self.save_attendance(now);
        self.log_stats();
        log::info!("relay stopped");
    }
}

impl Server {
    /// Writes the attendance CSV to `--attendance FILE`, if given, and
    /// says so on the console and in the log.
    fn save_attendance(&mut self, now: Instant) {
        let Some(path) = &self.attendance else {
            return;
        };
        let records = self.room.attendance(now);
        let csv = attendance::csv(&records, self.started);
        let answer = match attendance::save_csv(path, &csv) {
            Ok(()) => Answer::AttendanceSaved {
                path: path.display().to_string(),
                names: records.len(),
            },
            Err(e) => Answer::AttendanceFailed {
                path: path.display().to_string(),
                why: e.to_string(),
            },
        };
        // The log in English; the console in the operator's language (a
        // console that is a pipe shows the log's line already).
        match &answer {
            Answer::AttendanceSaved { .. } => log::info!("{}", answer.text(Lang::En)),
            _ => log::warn!("{}", answer.text(Lang::En)),
        }
        if self.console.is_some() {
            self.show(&answer.text(self.lang));
        }
    }

    /// Shows `event` on the console, if it is part of the room view.
    fn view(&self, event: &Event) {
        if self.console.is_some() {
            if let Some(line) =
                view::console_line(event, &self.screen, self.lang, self.private_text)
            {
                self.show(&line);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        server.net.readable = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.net.readable && Instant::now() < deadline {
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
        // One loopback IP address each (127.0.1.x): the default
        // --max-per-ip is 4.
        let members: Vec<std::net::UdpSocket> = (0..MEMBERS)
            .map(|i| std::net::UdpSocket::bind(format!("127.0.1.{}:0", i + 1)).unwrap())
            .collect();
        let drain = |server: &mut Server| {
            server.net.readable = true;
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.net.readable && Instant::now() < deadline {
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
        let before = server.net.stats.sent;
        for (i, m) in members.iter().take(64).enumerate() {
            m.send_to(format!("M m{i} hello").as_bytes(), relay)
                .unwrap();
        }
        drain(&mut server);
        assert_eq!(server.net.stats.sent - before, 64 * MEMBERS as u64);
        assert!(
            server.stats.peak_outputs < DISPATCH_AT + MEMBERS + 8,
            "{} datagrams queued at once",
            server.stats.peak_outputs
        );
        assert!(server.out.transmits.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn a_flooder_is_blocked_in_the_kernel_and_members_still_chat() {
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, Config::default(), Settings::default(), None).unwrap();
        let relay = server.local_addr();
        let drain = |server: &mut Server| {
            server.net.readable = true;
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.net.readable && Instant::now() < deadline {
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
}
