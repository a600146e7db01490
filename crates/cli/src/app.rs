//! The I/O shell: the socket, the reader thread (socket -> screen) and the
//! writer (keyboard -> socket). Decisions are the session's; this file only
//! moves bytes and lines.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustyline::completion::Completer;
use rustyline::config::{CompletionType, Config, Configurer};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, ExternalPrinter, GraphemeClusterMode, Helper};
use time::{OffsetDateTime, UtcOffset};
use udpchat_proto::{Nick, SessionKey, DEFAULT_PORT};
use udpchat_udp::{classify_receive_error, ReceiveError};

use crate::catalog::{lang_from_env, Lang, Msg, Reason};
use crate::command::{parse_input, refusal, split_long_line, typed_messages, Input};
use crate::complete::{complete, Roster};
use crate::render::{input_rows, is_for_me, render, render_said, Line, Style};
use crate::session::{Action, Session, Shortfall};
use crate::state::{data_dir, StateFile};
use crate::text::sanitize;
use crate::{Args, CliError, ColorChoice};

/// The longest one socket read waits. The reader sleeps until the session's
/// next deadline ([`Session::poll_timeout`]), but input is handled on the
/// other thread, straight into the session, and can make an earlier one
/// (a message waiting for the budget, a private message to retransmit, a
/// rename hold). A blocking `recv` cannot be woken from another thread
/// short of a datagram, and our socket is connected to the relay, so only
/// the relay can send us one: rather than a wake-up channel, the reader
/// never sleeps longer than this, which bounds how late such a deadline is
/// met. Nothing the user typed waits for it: what can go goes at once.
const READ_WAIT_MAX: Duration = Duration::from_millis(100);
/// The shortest: a zero read timeout is refused (it would mean "block
/// forever"), and a deadline still due after the timers ran (more to send
/// than one call sends) then runs after at most this long.
const READ_WAIT_MIN: Duration = Duration::from_millis(1);
/// Pause after an unexpected receive error, so a persistent one does not
/// spin.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long the prompt waits for the relay to confirm a `/nick`.
const RENAME_WAIT: Duration = Duration::from_millis(300);
/// After end of input in piped mode: the most time to wait for our
/// messages to be confirmed and the room's to arrive before leaving...
const GRACE_MAX: Duration = Duration::from_secs(60);
/// ... and how long to keep waiting when repair makes no progress.
const GRACE_STALL: Duration = Duration::from_secs(5);
/// ... or, before the relay has said how many events there are (repair has
/// no goal yet, and the question is repeated meanwhile), this long.
const GRACE_UNANSWERED: Duration = Duration::from_secs(15);

/// The language of the client's lines: `--lang`, else on a terminal the
/// environment's; piped, English (scripts read it).
pub fn lang(args: &Args) -> Lang {
    match args.lang {
        Some(lang) => lang,
        None if io::stdin().is_terminal() => lang_from_env(),
        None => Lang::En,
    }
}

/// Whether to colour: `--color`, and for `auto` a terminal without
/// `NO_COLOR` (any value but empty, as no-color.org says).
fn use_color(choice: ColorChoice, stdout_tty: bool, no_color: Option<std::ffi::OsString>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_tty && no_color.is_none_or(|v| v.is_empty()),
    }
}

/// Runs the client; returns the exit code.
pub fn run(args: Args, offset: Option<UtcOffset>) -> Result<u8, CliError> {
    let (addr, label) = resolve(&args.relay)?;
    let socket = open_socket(addr, &label)?;
    let interactive = io::stdin().is_terminal();
    let stdout_tty = io::stdout().is_terminal();
    let color = use_color(args.color, stdout_tty, std::env::var_os("NO_COLOR"));
    let printer = Printer {
        screen: Mutex::new(None),
        editing: Mutex::new(false),
        color,
        wrap: stdout_tty,
        offset,
        piped: !interactive,
        lang: lang(&args),
        // The bell is for a person at a terminal, never in a transcript.
        bell: interactive && stdout_tty && !args.no_bell,
        me: Mutex::new(None),
        roster: Arc::new(Mutex::new(Roster::default())),
    };
    if interactive {
        run_terminal(args, socket, printer, label)
    } else {
        run_piped(args, socket, printer, label)
    }
}

/// Resolves `HOST:PORT` (or a bare host, with the default port) to one
/// address; also returns the label used in messages.
fn resolve(relay: &str) -> Result<(SocketAddr, String), CliError> {
    let relay = relay.trim();
    let with_port = if relay.parse::<SocketAddr>().is_ok()
        || (relay.starts_with('[') && relay.contains("]:"))
        || (!relay.starts_with('[') && relay.matches(':').count() == 1)
    {
        relay.to_owned()
    } else if relay.starts_with('[') || relay.contains(':') {
        // A bare IPv6 address, with or without brackets.
        format!("[{}]:{DEFAULT_PORT}", relay.trim_matches(['[', ']']))
    } else {
        format!("{relay}:{DEFAULT_PORT}")
    };
    let mut addrs = with_port
        .to_socket_addrs()
        .map_err(|source| CliError::Resolve {
            addr: relay.to_owned(),
            source,
        })?;
    // Prefer IPv4 when a name has both (localhost often resolves to ::1
    // first): the relay binds 0.0.0.0 unless told otherwise.
    let all: Vec<SocketAddr> = addrs.by_ref().collect();
    let addr = all
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| all.first())
        .copied()
        .ok_or_else(|| CliError::NoAddress(relay.to_owned()))?;
    Ok((addr, with_port))
}

/// A socket connected to the relay: the OS then drops datagrams from
/// anyone else, so only the relay can talk to us.
fn open_socket(addr: SocketAddr, label: &str) -> Result<UdpSocket, CliError> {
    let err = |source| CliError::Socket {
        addr: label.to_owned(),
        source,
    };
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(err)?;
    socket.connect(addr).map_err(err)?;
    socket.set_read_timeout(Some(READ_WAIT_MAX)).map_err(err)?;
    // Windows: no WSAECONNRESET on receive after the relay's port was
    // closed (handled in `receive` anyway; this spares the failed reads).
    if let Err(e) = udpchat_udp::ignore_connection_resets(&socket) {
        log::debug!("SIO_UDP_CONNRESET: {e}");
    }
    Ok(socket)
}

/// Receives one datagram, or `None` when nothing came within `wait`
/// (clamped to [`READ_WAIT_MIN`], [`READ_WAIT_MAX`]).
fn receive(socket: &UdpSocket, buf: &mut [u8], wait: Duration) -> Option<usize> {
    let wait = wait.clamp(READ_WAIT_MIN, READ_WAIT_MAX);
    if let Err(e) = socket.set_read_timeout(Some(wait)) {
        log::debug!("set_read_timeout: {e}");
    }
    match socket.recv(buf) {
        Ok(n) => Some(n),
        Err(e) => match classify_receive_error(&e) {
            // Read timeouts (WouldBlock on Unix, TimedOut on Windows and
            // wine) and ICMP reports that the relay's port is closed
            // (ConnectionRefused on Linux, WSAECONNRESET on Windows: the
            // relay is restarting) all mean "nothing yet": keepalive and
            // rejoining decide what to do, never this error.
            ReceiveError::NothingYet | ReceiveError::PeerUnreachable => None,
            ReceiveError::Unexpected => {
                log::debug!("recv: {e}");
                thread::sleep(RECEIVE_ERROR_PAUSE);
                None
            }
        },
    }
}

/// Where lines go: rustyline's external printer while the prompt is up (so
/// incoming lines never clobber the half-typed line), else stdout.
///
/// The external printer hands a line to the editor through a channel of one
/// slot, which the editor empties only while it waits for a key: while it
/// works through typed-ahead or pasted keys, or between two `readline`
/// calls, a second line blocks the printing thread. So no lock the main
/// thread needs is ever held while printing through it: the main thread
/// says when it is in `readline` ([`Printer::editing`]); outside it, lines
/// are written straight to stdout under that lock (the main thread's own
/// complaints, and the reader's lines meanwhile), and the accepted input is
/// erased under it too ([`Printer::end_editing`]).
struct Printer {
    screen: Mutex<Option<Box<dyn ExternalPrinter + Send>>>,
    /// True while the main thread is in `readline`. Held for every direct
    /// write to stdout, so direct writes and erasing never interleave.
    editing: Mutex<bool>,
    color: bool,
    wrap: bool,
    offset: Option<UtcOffset>,
    piped: bool,
    /// The language of the client's own words.
    lang: Lang,
    /// Ring the terminal bell for a line for us ([`is_for_me`]).
    bell: bool,
    /// Our nickname now, for mentions.
    me: Mutex<Option<Nick>>,
    /// Who is in the room, for Tab.
    roster: Arc<Mutex<Roster>>,
}

impl Printer {
    fn style(&self) -> Style {
        let now = OffsetDateTime::now_utc();
        let local = self.offset.map_or(now, |o| now.to_offset(o));
        let columns = if self.wrap {
            terminal_size::terminal_size().map(|(w, _)| usize::from(w.0))
        } else {
            None
        };
        Style {
            color: self.color,
            columns,
            time: format!("{:02}:{:02}", local.hour(), local.minute()),
            lang: self.lang,
            me: lock(&self.me).clone(),
        }
    }

    fn show(&self, line: &Line) {
        lock(&self.roster).observe(line);
        let mut text = match line {
            Line::Said { ago, line } => {
                let said = OffsetDateTime::now_utc() - *ago;
                let said = self.offset.map_or(said, |o| said.to_offset(o));
                let hhmm = format!("{:02}:{:02}", said.hour(), said.minute());
                render_said(line, &self.style(), &hhmm)
            }
            _ => render(line, &self.style()),
        };
        if self.bell && is_for_me(line, lock(&self.me).as_ref()) {
            text.insert(0, '\x07');
        }
        let editing = lock(&self.editing);
        if *editing {
            // Not under `editing`: this may block until the editor reads
            // the line, and the main thread needs that lock on its way out
            // of `readline`.
            drop(editing);
            if let Some(printer) = lock(&self.screen).as_mut() {
                if printer.print(format!("{text}\n")).is_ok() {
                    return;
                }
            }
            let _editing = lock(&self.editing);
            Self::write_out(&text);
        } else {
            Self::write_out(&text);
        }
    }

    /// One locked write per line so lines never interleave.
    fn write_out(text: &str) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// The main thread is about to call `readline`.
    fn start_editing(&self) {
        *lock(&self.editing) = true;
    }

    /// The main thread is back from `readline`; `accepted` is the prompt
    /// and the line if one was entered. Erases the prompt and that line,
    /// so that a message is shown once, when the room echoes it (`12:00
    /// alice (you): hi`), and not also as the finished input line above
    /// the echo.
    ///
    /// rustyline cannot do this itself: on Enter it redraws the whole
    /// input, leaves it on screen and moves to the next row, and gives no
    /// hook between accepting the line and leaving the terminal's raw mode.
    /// So right after `readline` returns, the rows it used (the prompt and
    /// the line as the editor laid them out, see [`input_rows`]) are
    /// cleared with two ANSI sequences: up that many rows, then clear to
    /// the end of the screen; the next prompt is drawn where the old one
    /// was. (A line printed by the reader in the instant between rustyline
    /// leaving raw mode and this lock can still land on the accepted row;
    /// it is then erased with it. rustyline offers no way to close that
    /// window.)
    ///
    /// Only on Unix terminals (Linux, macOS): a Windows console interprets
    /// these sequences only while virtual terminal processing is on, which
    /// rustyline switches on for editing and restores to the console's own
    /// setting (often off) when `readline` returns; there the finished
    /// line stays, as before, rather than risk printing escape codes.
    fn end_editing(&self, accepted: Option<(&str, &str)>, clusters: GraphemeClusterMode) {
        let mut editing = lock(&self.editing);
        *editing = false;
        let Some((prompt, line)) = accepted else {
            return;
        };
        if cfg!(windows) || !self.wrap {
            return;
        }
        let Some((columns, _)) = terminal_size::terminal_size() else {
            return;
        };
        let width = |g: &str| usize::from(clusters.width(g));
        let rows = input_rows(prompt, line, usize::from(columns.0), &width);
        let mut out = io::stdout().lock();
        let _ = write!(out, "\x1b[{rows}A\r\x1b[J");
        let _ = out.flush();
    }

    /// A problem with what the user typed: on stderr when piped, so the
    /// stdout transcript stays one event per line.
    fn complain(&self, msg: Msg) {
        if self.piped {
            eprintln!("udpchat: {}", sanitize(&msg.text(self.lang)));
        } else {
            self.show(&Line::Error(msg));
        }
    }

    /// `/clear`: the screen empty, the prompt at the top (outside
    /// `readline`, so straight to stdout).
    fn clear_screen(&self) {
        if self.piped {
            return;
        }
        let _editing = lock(&self.editing);
        let mut out = io::stdout().lock();
        let _ = write!(out, "\x1b[H\x1b[2J\x1b[3J");
        let _ = out.flush();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// State shared by the reader thread and the writer.
struct Shared {
    socket: UdpSocket,
    session: Mutex<Session>,
    printer: Printer,
    stop: AtomicBool,
    /// Set when the session ended on the relay's side (kicked).
    ended: Mutex<Option<u8>>,
    /// Where the resume token is kept for a new process, if anywhere.
    state: Mutex<Option<StateFile>>,
}

/// What the handshake ended with.
enum JoinOutcome {
    Joined,
    Refused {
        code: udpchat_proto::ErrorCode,
        reason: String,
    },
    NoRelay,
    Ended(u8),
}

impl Shared {
    /// Carries out actions; returns the join outcome if one is among them.
    fn perform(&self, actions: Vec<Action>) -> Option<JoinOutcome> {
        let mut outcome = None;
        for action in actions {
            match action {
                Action::Send(bytes) => {
                    if let Err(e) = self.socket.send(&bytes) {
                        log::debug!("send: {e}");
                    }
                }
                Action::Show(line) => {
                    *lock(&self.printer.me) = Some(self.session().nick().clone());
                    self.printer.show(&line);
                }
                Action::Joined { .. } => outcome = Some(JoinOutcome::Joined),
                Action::Refused { code, reason } => {
                    outcome = Some(JoinOutcome::Refused { code, reason })
                }
                Action::NoRelay => outcome = Some(JoinOutcome::NoRelay),
                Action::End { code } => {
                    *lock(&self.ended) = Some(code);
                    outcome = Some(JoinOutcome::Ended(code));
                    if self.printer.piped {
                        let _ = io::stdout().flush();
                        std::process::exit(i32::from(code));
                    } else {
                        self.printer.show(&Line::Notice(Msg::PressEnterToLeave));
                    }
                }
            }
        }
        self.save_state();
        outcome
    }

    /// Saves the resume token and the last event shown, when they changed.
    fn save_state(&self) {
        let mut state = lock(&self.state);
        let Some(file) = state.as_mut() else {
            return;
        };
        if let Some(resume) = self.session().resume_state() {
            file.save(Instant::now(), &resume);
        }
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        lock(&self.session)
    }

    /// Runs the session's timers if one is due. Returns what they did and
    /// how long until the next deadline (`None`: no deadline, the session
    /// is over).
    fn handle_timers(&self) -> (Vec<Action>, Option<Duration>) {
        let now = Instant::now();
        let mut session = self.session();
        let actions = if session.poll_timeout().is_some_and(|t| t <= now) {
            session.handle_timeout(now)
        } else {
            Vec::new()
        };
        let wait = session
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()));
        (actions, wait)
    }

    /// Runs the handshake on the calling thread until it completes.
    fn join(&self) -> JoinOutcome {
        let mut buf = vec![0u8; 4096];
        loop {
            let (actions, wait) = self.handle_timers();
            if let Some(outcome) = self.perform(actions) {
                return outcome;
            }
            let wait = wait.unwrap_or(READ_WAIT_MAX);
            if let Some(n) = receive(&self.socket, &mut buf, wait) {
                let actions = self.session().handle_datagram(Instant::now(), &buf[..n]);
                if let Some(outcome) = self.perform(actions) {
                    return outcome;
                }
            }
        }
    }

    /// The reader thread: socket -> session -> screen, and the session's
    /// timers, sleeping in between until a datagram comes or the next
    /// deadline (at most [`READ_WAIT_MAX`]).
    fn read_loop(&self) {
        let mut buf = vec![0u8; 4096];
        while !self.stop.load(Ordering::Relaxed) {
            let (actions, wait) = self.handle_timers();
            self.perform(actions);
            let wait = wait.unwrap_or(READ_WAIT_MAX);
            if let Some(n) = receive(&self.socket, &mut buf, wait) {
                let actions = self.session().handle_datagram(Instant::now(), &buf[..n]);
                self.perform(actions);
            }
        }
    }

    fn input(&self, input: Input) {
        let actions = self.session().handle_input(Instant::now(), input);
        self.perform(actions);
    }

    fn quit(&self) {
        let actions = self.session().quit(Instant::now());
        self.perform(actions);
    }
}

/// On Ctrl-C (SIGINT, or the console's Ctrl-C event on Windows) outside
/// the line editor, which handles it itself: leave properly (`Q`), so the
/// nickname is free at once rather than after the idle timeout.
fn leave_on_interrupt(shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    if let Err(e) = ctrlc::set_handler(move || {
        shared.quit();
        let _ = io::stdout().flush();
        std::process::exit(130);
    }) {
        log::debug!("cannot catch Ctrl-C: {e}");
    }
}

/// The session, resuming the membership a previous process saved (if
/// any), and the file to save ours to.
fn new_session(
    nick: Nick,
    no_repair: bool,
    code: Option<udpchat_proto::JoinCode>,
    state_dir: Option<&Path>,
    relay: &str,
) -> (Session, Option<StateFile>) {
    let mut session = Session::new(
        nick.clone(),
        Instant::now(),
        private_id_seed(),
        random_session_key(),
    );
    if no_repair {
        session = session.without_repair();
    }
    if let Some(code) = code {
        session = session.with_code(code);
    }
    let mut state = data_dir(state_dir).map(|dir| StateFile::new(&dir, relay, &nick));
    if let Some(saved) = state.as_mut().and_then(StateFile::load) {
        session = session.with_resume(saved);
    }
    (session, state)
}

/// This run's session key: 64 bits no one else can guess. std's
/// `RandomState` keys its SipHash with random bits from the operating
/// system (getrandom on Linux, ProcessPrng on Windows, the system CSPRNG on
/// macOS) the first time a thread uses it, so hashing anything with a fresh
/// one gives unpredictable bits without another dependency; the relay makes
/// its secret the same way. The time and process id only make two runs
/// differ even if a platform had no such source.
fn random_session_key() -> SessionKey {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    SessionKey::from_u64(RandomState::new().hash_one((std::process::id(), SystemTime::now())))
}

fn private_id_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64 % 1_000_000_000_000)
}

fn check_nick(nick: &str) -> Result<Nick, CliError> {
    Nick::new(nick.trim()).map_err(|source| CliError::BadNick {
        nick: nick.to_owned(),
        source,
    })
}

fn run_piped(
    args: Args,
    socket: UdpSocket,
    printer: Printer,
    label: String,
) -> Result<u8, CliError> {
    let no_repair = args.no_repair;
    let nick = check_nick(&args.nick.ok_or(CliError::NickRequired)?)?;
    let (session, state) = new_session(
        nick.clone(),
        no_repair,
        args.code.clone(),
        args.state_dir.as_deref(),
        &label,
    );
    let shared = Arc::new(Shared {
        socket,
        session: Mutex::new(session),
        printer,
        stop: AtomicBool::new(false),
        ended: Mutex::new(None),
        state: Mutex::new(state),
    });
    leave_on_interrupt(&shared);
    match shared.join() {
        JoinOutcome::Joined => {}
        JoinOutcome::Refused { reason, .. } => {
            return Err(CliError::Refused {
                nick: nick.to_string(),
                reason: sanitize(&reason).into_owned(),
            })
        }
        JoinOutcome::NoRelay => return Err(CliError::NoRelay(label)),
        JoinOutcome::Ended(code) => return Ok(code),
    }
    let reader = {
        let shared = Arc::clone(&shared);
        thread::spawn(move || shared.read_loop())
    };

    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let mut raw = Vec::new();
    'lines: loop {
        raw.clear();
        let n = stdin.read_until(b'\n', &mut raw).map_err(CliError::Stdin)?;
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&raw);
        for piece in split_long_line(&line) {
            match parse_input(piece) {
                Ok(Input::Quit) => break 'lines,
                Ok(input) => shared.input(input),
                Err(e) => shared.printer.complain(e.msg()),
            }
        }
    }

    // End of input: leave once our messages are confirmed and we have
    // every room event up to the relay's newest as of now, or when repair
    // stops making progress (mirrored in crates/netsim/src/client.rs).
    let start = Instant::now();
    shared.session().end_of_input(start);
    let mut last_progress = start;
    let mut progress = shared.session().progress();
    loop {
        // The reader may sleep until a deadline set before the end of
        // input: run what is due from here too.
        let (actions, _) = shared.handle_timers();
        let _ = shared.perform(actions);
        let now = Instant::now();
        let (caught_up, now_progress, answered) = {
            let session = shared.session();
            let answered = session.shortfall().missing.is_some();
            (session.is_caught_up(), session.progress(), answered)
        };
        if now_progress != progress {
            progress = now_progress;
            last_progress = now;
        }
        let stall = if answered {
            GRACE_STALL
        } else {
            GRACE_UNANSWERED
        };
        let stalled = now.saturating_duration_since(last_progress) >= stall;
        if caught_up || stalled || now >= start + GRACE_MAX {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let shortfall = shared.session().shortfall();
    for line in shortfall_lines(&shortfall) {
        eprintln!("udpchat: {}", line.text(shared.printer.lang));
    }
    shared.quit();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    Ok(if shortfall.anything_lost() { 1 } else { 0 })
}

/// What piped mode says on stderr when it leaves without everything.
fn shortfall_lines(s: &Shortfall) -> Vec<Msg> {
    let mut lines = Vec::new();
    if s.unconfirmed > 0 {
        lines.push(Msg::ShortUnconfirmed {
            count: s.unconfirmed,
        });
    }
    match s.missing {
        None => lines.push(Msg::ShortUnanswered),
        Some(0) => {}
        Some(n) => lines.push(Msg::ShortMissing { count: n }),
    }
    if s.lost > 0 {
        lines.push(Msg::ShortLost { count: s.lost });
    }
    lines
}

fn run_terminal(
    args: Args,
    socket: UdpSocket,
    printer: Printer,
    label: String,
) -> Result<u8, CliError> {
    let no_repair = args.no_repair;
    let lang = printer.lang;
    let mut editor = new_editor(Arc::clone(&printer.roster))?;
    let mut nick = match args.nick.as_deref().map(check_nick) {
        Some(Ok(nick)) => nick,
        Some(Err(e)) => {
            println!("{}", e.text(lang));
            ask_nick(&mut editor, lang)?
        }
        None => ask_nick(&mut editor, lang)?,
    };
    let (session, state) = new_session(
        nick.clone(),
        no_repair,
        args.code.clone(),
        args.state_dir.as_deref(),
        &label,
    );
    let shared = Arc::new(Shared {
        socket,
        session: Mutex::new(session),
        printer,
        stop: AtomicBool::new(false),
        ended: Mutex::new(None),
        state: Mutex::new(state),
    });
    leave_on_interrupt(&shared);
    if shared.printer.offset.is_none() {
        shared.printer.show(&Line::Notice(Msg::TimesAreUtc));
    }
    loop {
        match shared.join() {
            JoinOutcome::Joined => break,
            JoinOutcome::Refused { code, reason } => {
                shared.printer.show(&Line::Error(Msg::NickRefused {
                    nick: nick.to_string(),
                    reason: Reason::coded(code, reason),
                }));
                nick = ask_nick(&mut editor, lang)?;
                // The resume file (and any token in it) is per nickname.
                let (fresh, state) = new_session(
                    nick.clone(),
                    no_repair,
                    args.code.clone(),
                    args.state_dir.as_deref(),
                    &label,
                );
                *lock(&shared.state) = state;
                *shared.session() = fresh;
            }
            JoinOutcome::NoRelay => return Err(CliError::NoRelay(label)),
            JoinOutcome::Ended(code) => return Ok(code),
        }
    }
    log::debug!("joined {label} as {nick} (terminal mode)");
    shared.printer.show(&Line::Notice(Msg::Joined {
        relay: label.clone(),
        nick: nick.to_string(),
    }));
    // From here on, lines go above the prompt through rustyline's external
    // printer; direct writes would land in the middle of the typed line.
    if let Ok(external) = editor.create_external_printer() {
        *lock(&shared.printer.screen) = Some(Box::new(external));
    }
    let reader = {
        let shared = Arc::clone(&shared);
        thread::spawn(move || shared.read_loop())
    };
    let result = 'prompt: loop {
        let prompt = format!("{}> ", shared.session().nick());
        if let Some(helper) = editor.helper() {
            lock(&helper.typed).clear();
        }
        shared.printer.start_editing();
        let read = editor.readline(&prompt);
        // Ctrl-C with something typed: rustyline gives up the line; it is
        // erased like an accepted one, and the prompt comes back empty.
        let cleared = match (&read, editor.helper()) {
            (Err(ReadlineError::Interrupted), Some(helper)) => {
                Some(lock(&helper.typed).clone()).filter(|typed| !typed.is_empty())
            }
            _ => None,
        };
        let shown = read.as_ref().ok().or(cleared.as_ref());
        shared.printer.end_editing(
            shown.map(|line| (prompt.as_str(), line.as_str())),
            editor.config_mut().grapheme_cluster_mode(),
        );
        if cleared.is_some() {
            log::debug!("Ctrl-C cleared the typed line");
            continue;
        }
        match read {
            Ok(line) => {
                if let Some(code) = *lock(&shared.ended) {
                    break Ok(code);
                }
                // A bracketed paste of several lines comes back as one
                // string with line breaks (the terminal marks it as a paste,
                // rustyline inserts it whole and Enter sends it): each line
                // goes out as its own message, in order, and a paragraph
                // too long for one message as several. Without bracketed
                // paste every pasted line ends with Enter and comes back on
                // its own; the lines after it wait in rustyline's input
                // buffer, which the `buffer-redux` feature keeps from one
                // `readline` to the next (without it they were dropped).
                for typed in line.split(['\n', '\r']) {
                    if !typed.trim().is_empty() {
                        let _ = editor.add_history_entry(typed);
                    }
                }
                let pieces = typed_messages(&line);
                for (i, &piece) in pieces.iter().enumerate() {
                    match parse_input(piece) {
                        Ok(Input::Quit) => {
                            // Pasted lines after a /quit are not sent: say so.
                            let rest = pieces[i + 1..]
                                .iter()
                                .filter(|p| !p.trim().is_empty())
                                .count();
                            if rest > 0 {
                                shared.printer.complain(Msg::LinesAfterQuit { count: rest });
                            }
                            break 'prompt Ok(0);
                        }
                        Ok(input @ Input::Rename(_)) => {
                            // Give the relay a moment to confirm, so the next
                            // prompt already shows the new nickname.
                            let old = shared.session().nick().clone();
                            shared.input(input);
                            let deadline = Instant::now() + RENAME_WAIT;
                            while Instant::now() < deadline && *shared.session().nick() == old {
                                thread::sleep(Duration::from_millis(10));
                            }
                        }
                        Ok(Input::Clear) => shared.printer.clear_screen(),
                        Ok(input) => shared.input(input),
                        Err(e) => shared.printer.complain(refusal(piece, &e)),
                    }
                }
            }
            // Ctrl-C on an empty line (on a typed one it clears it, see
            // `ChatHelper`), or Ctrl-D on an empty line.
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break Ok(0),
            Err(e) => break Err(CliError::from(e)),
        }
    };
    log::debug!("leaving the room");
    shared.quit();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    *lock(&shared.printer.screen) = None;
    result
}

/// The line editor at the prompt.
type LineEditor = Editor<ChatHelper, DefaultHistory>;

/// What rustyline does with keys besides its own editing, which already
/// keeps every other key out of the text: arrows, Home, End, PageUp, F-keys
/// and unknown escape sequences move the cursor, recall history or do
/// nothing, and only printable characters are inserted (and a control
/// character inserted on purpose with Ctrl-V is refused with a reason when
/// the line is sent, see `command::refusal_text`).
///
/// Tab completes a command or a nickname ([`complete`]). Where there is
/// nothing to complete it inserts the four spaces a tab in a message
/// becomes anyway (`command::parse_input`), as a tab typed or pasted
/// without bracketed paste (where it arrives as the Tab key) did before
/// completion.
///
/// It also keeps the line as typed so far: rustyline asks the hinter for a
/// hint after every change, and returns Ctrl-C as `Interrupted` without
/// the line, which the client needs to tell "clear this line" from "leave".
struct ChatHelper {
    roster: Arc<Mutex<Roster>>,
    typed: Mutex<String>,
}

impl Completer for ChatHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let (start, found) = complete(line, pos, &lock(&self.roster));
        if found.is_empty() {
            // One candidate, inserted at the cursor (with
            // `CompletionType::List` a single candidate is taken at once).
            return Ok((pos, vec!["    ".to_owned()]));
        }
        Ok((start, found))
    }
}

impl Hinter for ChatHelper {
    type Hint = String;

    fn hint(&self, line: &str, _pos: usize, _ctx: &rustyline::Context<'_>) -> Option<String> {
        let mut typed = lock(&self.typed);
        typed.clear();
        typed.push_str(line);
        None
    }
}

impl Highlighter for ChatHelper {}

impl Validator for ChatHelper {}

impl Helper for ChatHelper {}

fn new_editor(roster: Arc<Mutex<Roster>>) -> Result<LineEditor, CliError> {
    // History stays in memory: nothing typed is ever written to disk.
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .max_history_size(1000)?
        .history_ignore_dups(true)?
        .build();
    let mut editor = LineEditor::with_config(config)?;
    editor.set_helper(Some(ChatHelper {
        roster,
        typed: Mutex::new(String::new()),
    }));
    Ok(editor)
}

/// Asks for a nickname until a valid one is typed.
fn ask_nick(editor: &mut LineEditor, lang: Lang) -> Result<Nick, CliError> {
    loop {
        let typed = match editor.readline(&Msg::NickPrompt.text(lang)) {
            Ok(typed) => typed,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => {
                return Err(CliError::Cancelled)
            }
            Err(e) => return Err(e.into()),
        };
        match check_nick(&typed) {
            Ok(nick) => return Ok(nick),
            Err(e) => println!("{}", e.text(lang)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses_resolve_with_and_without_port() {
        let (addr, label) = resolve("127.0.0.1:4000").unwrap();
        assert_eq!(addr, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(label, "127.0.0.1:4000");
        let (addr, _) = resolve("127.0.0.1").unwrap();
        assert_eq!(addr.port(), DEFAULT_PORT);
        let (addr, _) = resolve("[::1]:4000").unwrap();
        assert_eq!(addr, "[::1]:4000".parse().unwrap());
        let (addr, _) = resolve("::1").unwrap();
        assert_eq!(addr, "[::1]:10024".parse().unwrap());
        let (addr, _) = resolve("localhost:4000").unwrap();
        assert!(addr.ip().is_loopback());
    }

    #[test]
    fn colour_follows_the_flag_then_the_terminal_and_no_color() {
        use std::ffi::OsString;
        let set = || Some(OsString::from("1"));
        assert!(use_color(ColorChoice::Auto, true, None));
        assert!(use_color(ColorChoice::Auto, true, Some(OsString::new())));
        assert!(!use_color(ColorChoice::Auto, true, set()));
        assert!(!use_color(ColorChoice::Auto, false, None));
        assert!(use_color(ColorChoice::Always, false, set()));
        assert!(!use_color(ColorChoice::Never, true, None));
    }

    #[test]
    fn unresolvable_relay_says_what_to_give() {
        let e = resolve("no such host:99999").unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
    }
}
