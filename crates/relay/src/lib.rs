//! The udpchat relay: one chat room on one UDP socket.
//!
//! The sans-IO core is the `udpchat-room` crate (no sockets, no clock: time
//! is passed in), re-exported here as [`room`]; this crate is the shell
//! around it: the flags ([`cli`]), the mio loop (`server`), the operator
//! console, the transcript and the process entry point [`main`].
//! The system calls std and mio lack live in `udpchat-udp`; this crate has
//! no `unsafe` code.
#![forbid(unsafe_code)]

pub use udpchat_room as room;
pub use udpchat_room::{Config, Dialect, Event, Outputs, Refusal, Room, Stats, Transmit};

mod addresses;
mod answers;
mod attendance;
mod banfile;
pub mod cli;
mod console;
mod datapath;
mod editor;
mod recording;
mod screen;
mod server;
mod transcript;
mod view;

pub use attendance::RosterError;
pub use server::{Server, ServerError, Settings};
pub use transcript::Transcript;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser as _;

/// Why the relay could not run. The message is what the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket or event loop failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// `--roster FILE` could not be read, or names a nickname nobody
    /// could use.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// `--transcript FILE` is a symbolic link: refused, so nobody can
    /// point the transcript at another file.
    #[error("transcript {} is a symbolic link; the relay never writes a transcript through one: give the path of a real file", path.display())]
    TranscriptSymlink {
        /// The file asked for.
        path: PathBuf,
    },
    /// `--ban-file FILE` could not be read.
    #[error(transparent)]
    BanFile(#[from] banfile::BanFileError),
    /// `--transcript FILE` could not be opened for appending.
    #[error("cannot open transcript {}: {source}; check the path and its permissions (it must be a file you own)", path.display())]
    Transcript {
        /// The file asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

impl Error {
    /// Start-up problems the operator can fix with flags exit with 2; a
    /// failure of the running loop with 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Server(ServerError::Bind { .. })
            | Error::Transcript { .. }
            | Error::Roster(_)
            | Error::TranscriptSymlink { .. }
            | Error::BanFile(_) => 2,
            Error::Server(ServerError::Io { .. }) => 1,
        }
    }
}

/// Entry point of the `udpchat-relay` binary: parses the flags, runs the
/// relay, and turns any error into one line on stderr and an exit code
/// (2 for bad flags, an address in use or an unopenable transcript).
pub fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message spans several lines (tips, usage); the first
            // says what is wrong.
            let first = first_line_of_usage_error(&e.to_string());
            eprintln!("udpchat-relay: {first}; see udpchat-relay --help");
            return ExitCode::from(2);
        }
    };
    let console = ConsoleChoice::for_this_process(args.no_console);
    let screen = screen::Screen::default();
    if console == ConsoleChoice::Edit {
        // Log lines go above the editor's prompt, never into the typed
        // line. By default only warnings: the room view shows joins and
        // leaves already (RUST_LOG=info shows the full log).
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
            .target(env_logger::Target::Pipe(Box::new(screen::LogPipe::new(
                screen.clone(),
            ))))
            .write_style(env_logger::WriteStyle::Never)
            // The editor's own debug lines would be printed through the
            // editor, which logs that it prints them, and so on.
            .filter_module("rustyline", log::LevelFilter::Off)
            .init();
    } else {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    }
    match run_with(&args, console, screen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udpchat-relay: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a relay with these flags until it is told to stop.
pub fn run(args: &cli::Args) -> Result<(), Error> {
    let console = ConsoleChoice::for_this_process(args.no_console);
    run_with(args, console, screen::Screen::default())
}

/// [`run`] with the console already chosen, and the screen the log shares.
fn run_with(args: &cli::Args, console: ConsoleChoice, screen: screen::Screen) -> Result<(), Error> {
    // Before anything can read the terminal: a relay moved to the
    // background later (Ctrl-Z, bg) must not be stopped by SIGTTIN/SIGTTOU.
    if let Err(e) = udpchat_udp::ignore_terminal_stops() {
        log::warn!("cannot ignore SIGTTIN/SIGTTOU ({e}); do not move the relay to the background");
    }
    let mut server = start(args)?;
    let lang: udpchat_proto::Lang = args.lang.into();
    {
        // Tests and scripts wait for this exact first line to learn the port.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "udpchat-relay listening on {}", server.local_addr());
        let _ = writeln!(
            stdout,
            "{}",
            addresses::where_to_join(
                server.local_addr(),
                server.ipv6_only(),
                args.join_code.as_ref().map(|c| c.as_str()),
                lang
            )
        );
        if let Some(why) = console.without(lang, std::process::id()) {
            let _ = writeln!(stdout, "{why}");
        }
        let _ = stdout.flush();
    }
    let terminal = match console {
        ConsoleChoice::Edit => start_editor(&mut server, &screen, args, lang),
        ConsoleChoice::Plain => {
            start_plain(&mut server, lang);
            None
        }
        ConsoleChoice::Refused | ConsoleChoice::Background => None,
    };
    let result = server.run();
    if let Some((mode, editing)) = terminal {
        leave_editor(&screen, &mode, &editing);
    }
    result?;
    Ok(())
}

/// Starts the line editor: the greeting, then the prompt. Returns what
/// [`leave_editor`] needs; falls back to the plain reader if the terminal
/// cannot edit (`TERM=dumb`, ...).
fn start_editor(
    server: &mut Server,
    screen: &screen::Screen,
    args: &cli::Args,
    lang: udpchat_proto::Lang,
) -> Option<(Option<udpchat_udp::TerminalMode>, editor::Editing)> {
    let mode = udpchat_udp::save_terminal_mode();
    let editing = editor::Editing::default();
    console_line(answers::greeting(lang));
    match server.start_editor(screen.clone(), editing.clone(), args.transcript_private) {
        Ok(()) => {
            #[cfg(unix)]
            if let Some(mode) = &mode {
                if let Err(e) =
                    editor::restore_after_fg(mode.clone(), editing.clone(), screen.clone(), lang)
                {
                    log::warn!(
                        "console: Ctrl-Z then fg may leave the prompt without editing ({e})"
                    );
                }
            }
            Some((mode, editing))
        }
        Err(e) => {
            log::warn!("no line editor on this terminal ({e}); reading commands line by line");
            start_plain(server, lang);
            None
        }
    }
}

fn start_plain(server: &mut Server, lang: udpchat_proto::Lang) {
    let stdin_is_terminal =
        udpchat_udp::stdin_terminal() != udpchat_udp::StdinTerminal::NotTerminal;
    console_line(answers::plain_console(lang, stdin_is_terminal));
    if let Err(e) = server.start_console() {
        log::warn!("no operator console: {e}");
    }
}

/// After the relay stopped: the last lines drawn above the prompt, then
/// the terminal as it was before the editor (the console thread may be in
/// the middle of reading a line, its terminal in raw mode). Only in the
/// foreground: in the background the terminal is the shell's.
fn leave_editor(
    screen: &screen::Screen,
    mode: &Option<udpchat_udp::TerminalMode>,
    editing: &editor::Editing,
) {
    screen.detach();
    if udpchat_udp::stdin_terminal() != udpchat_udp::StdinTerminal::Foreground {
        return;
    }
    if let Some(mode) = mode {
        let _ = mode.restore();
    }
    if editing.load(std::sync::atomic::Ordering::SeqCst) {
        // Off the prompt's row, so the shell's prompt starts a line.
        console_line("");
    }
}

/// One line on stdout, flushed.
fn console_line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// Whether and how the relay reads operator commands from standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsoleChoice {
    /// The line editor: standard input and output are the terminal and
    /// the relay is in its foreground.
    Edit,
    /// A plain line reader: standard input is a pipe or a file (scripts
    /// and tests; reading one never stops the relay), or a terminal in
    /// the foreground while standard output is redirected.
    Plain,
    /// No: `--no-console`.
    Refused,
    /// No: standard input is a terminal and the relay is not in its
    /// foreground process group (`udpchat-relay &`); reading it would stop
    /// the relay (SIGTTIN).
    Background,
}

fn console_choice(
    no_console: bool,
    stdin: udpchat_udp::StdinTerminal,
    stdout_is_terminal: bool,
) -> ConsoleChoice {
    use udpchat_udp::StdinTerminal;
    match (no_console, stdin) {
        (true, _) => ConsoleChoice::Refused,
        (false, StdinTerminal::Background) => ConsoleChoice::Background,
        (false, StdinTerminal::Foreground) if stdout_is_terminal => ConsoleChoice::Edit,
        (false, StdinTerminal::Foreground | StdinTerminal::NotTerminal) => ConsoleChoice::Plain,
    }
}

impl ConsoleChoice {
    /// The choice for this process's standard input and output now.
    fn for_this_process(no_console: bool) -> ConsoleChoice {
        use std::io::IsTerminal as _;
        console_choice(
            no_console,
            udpchat_udp::stdin_terminal(),
            std::io::stdout().is_terminal(),
        )
    }

    /// The one line that says the relay runs without a console, if it does.
    fn without(self, lang: udpchat_proto::Lang, pid: u32) -> Option<String> {
        use udpchat_proto::Lang;
        Some(match (self, lang) {
            (ConsoleChoice::Edit | ConsoleChoice::Plain, _) => return None,
            (ConsoleChoice::Refused, Lang::En) => format!(
                "no console (--no-console): the relay keeps relaying; stop it with Ctrl-C or kill {pid}"
            ),
            (ConsoleChoice::Refused, Lang::Zh) => format!(
                "没有控制台（--no-console）：中继照常转发消息；按 Ctrl-C 或用 kill {pid} 停止它"
            ),
            (ConsoleChoice::Background, Lang::En) => format!(
                "no console: the relay runs in the background and keeps relaying; stop it with kill {pid}"
            ),
            (ConsoleChoice::Background, Lang::Zh) => format!(
                "没有控制台：中继在后台运行，照常转发消息；用 kill {pid} 停止它"
            ),
        })
    }
}

/// Binds the socket and opens the transcript that these flags ask for: a
/// relay ready to [`Server::run`], without a console. The benchmark's smoke
/// test runs one in a thread this way.
pub fn start(args: &cli::Args) -> Result<Server, Error> {
    let mut config = args.room_config();
    if let Some(path) = &args.roster {
        config.roster = attendance::read_roster(path)?;
        log::info!("roster {}: {} names", path.display(), config.roster.len());
    }
    let transcript = args
        .transcript
        .as_deref()
        .map(|path| {
            Transcript::open(path, config.lang, args.transcript_private)
                .map(|t| t.with_local_time(args.local_time))
                .map_err(|source| {
                    // O_NOFOLLOW's error (ELOOP on Linux) says little; the
                    // path says what it was.
                    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                        Error::TranscriptSymlink {
                            path: path.to_owned(),
                        }
                    } else {
                        Error::Transcript {
                            path: path.to_owned(),
                            source,
                        }
                    }
                })
        })
        .transpose()?;
    let settings = Settings {
        send_queue: args.send_queue as usize,
        stats_interval: args.stats_interval(),
        recv_buffer: args.recv_buffer as usize,
        ban_file: args.ban_file.clone(),
        attendance: args.attendance.clone(),
    };
    let bans = match &args.ban_file {
        Some(path) => banfile::load(path, std::time::SystemTime::now())?,
        None => Vec::new(),
    };
    let mut server = Server::bind(args.bind, config, settings, transcript)?;
    if !bans.is_empty() {
        log::info!("{} ban(s) in force from the ban file", bans.len());
    }
    server.restore_bans(bans);
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_proto::Lang;
    use udpchat_udp::StdinTerminal;

    #[test]
    fn the_console_is_read_only_in_the_foreground_or_from_a_pipe() {
        assert_eq!(
            console_choice(false, StdinTerminal::Foreground, true),
            ConsoleChoice::Edit
        );
        // Output redirected (`> out.log`): no editor drawing into the file.
        assert_eq!(
            console_choice(false, StdinTerminal::Foreground, false),
            ConsoleChoice::Plain
        );
        for stdout in [true, false] {
            assert_eq!(
                console_choice(false, StdinTerminal::NotTerminal, stdout),
                ConsoleChoice::Plain
            );
            assert_eq!(
                console_choice(false, StdinTerminal::Background, stdout),
                ConsoleChoice::Background
            );
        }
        for stdin in [
            StdinTerminal::Foreground,
            StdinTerminal::Background,
            StdinTerminal::NotTerminal,
        ] {
            assert_eq!(console_choice(true, stdin, true), ConsoleChoice::Refused);
        }
    }

    #[test]
    fn running_without_a_console_is_said_once_in_both_languages() {
        assert_eq!(ConsoleChoice::Edit.without(Lang::En, 7), None);
        assert_eq!(ConsoleChoice::Plain.without(Lang::En, 7), None);
        let bg = ConsoleChoice::Background.without(Lang::En, 7).unwrap();
        assert!(
            bg.starts_with("no console: ") && bg.contains("kill 7"),
            "{bg}"
        );
        let zh = ConsoleChoice::Refused.without(Lang::Zh, 7).unwrap();
        assert!(
            zh.starts_with("没有控制台") && zh.contains("kill 7"),
            "{zh}"
        );
    }
}

/// The line of a clap usage error that says what is wrong. When it ends
/// with a colon, the indented lines after it name what it means
/// (`the following required arguments were not provided: --transcript <FILE>`).
fn first_line_of_usage_error(text: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next().unwrap_or("bad arguments");
    let mut first = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    if first.ends_with(':') {
        let named: Vec<&str> = lines
            .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        if !named.is_empty() {
            first = format!("{first} {}", named.join(", "));
        }
    }
    first
}

#[cfg(test)]
mod usage_error_tests {
    use super::first_line_of_usage_error;

    #[test]
    fn a_missing_argument_is_named_on_the_one_line() {
        let clap = "error: the following required arguments were not provided:\n  \
                    --transcript <FILE>\n\nUsage: udpchat-relay --transcript <FILE> --transcript-private\n\n\
                    For more information, try '--help'.\n";
        assert_eq!(
            first_line_of_usage_error(clap),
            "the following required arguments were not provided: --transcript <FILE>"
        );
        assert_eq!(
            first_line_of_usage_error(
                "error: unexpected argument '--listen' found\n\n  tip: ...\n"
            ),
            "unexpected argument '--listen' found"
        );
    }
}
