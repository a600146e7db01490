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

mod banfile;
pub mod cli;
mod console;
mod datapath;
mod recording;
mod server;
mod transcript;

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
    /// `--ban-file FILE` could not be read.
    #[error(transparent)]
    BanFile(#[from] banfile::BanFileError),
    /// `--transcript FILE` could not be opened for appending.
    #[error("cannot open transcript {}: {source}; check the path and its permissions", path.display())]
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
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("bad arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("udpchat-relay: {first}; see udpchat-relay --help");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udpchat-relay: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a relay with these flags until it is told to stop.
pub fn run(args: &cli::Args) -> Result<(), Error> {
    let mut server = start(args)?;
    {
        // Tests and scripts wait for this exact line to learn the port.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "udpchat-relay listening on {}", server.local_addr());
        let _ = stdout.flush();
    }
    if let Err(e) = server.start_console() {
        log::warn!("no operator console: {e}");
    }
    server.run()?;
    Ok(())
}

/// Binds the socket and opens the transcript that these flags ask for: a
/// relay ready to [`Server::run`], without a console. The benchmark's smoke
/// test runs one in a thread this way.
pub fn start(args: &cli::Args) -> Result<Server, Error> {
    let config = args.room_config();
    let transcript = args
        .transcript
        .as_deref()
        .map(|path| {
            Transcript::open(path, config.lang, args.transcript_private).map_err(|source| {
                Error::Transcript {
                    path: path.to_owned(),
                    source,
                }
            })
        })
        .transpose()?;
    let settings = Settings {
        send_queue: args.send_queue as usize,
        stats_interval: args.stats_interval(),
        recv_buffer: args.recv_buffer as usize,
        ban_file: args.ban_file.clone(),
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
