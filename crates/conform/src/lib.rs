//! udpchat-conform: a conformance kit for udpchat relays (and, later,
//! clients and whole classes of student programs), in the manner of
//! h2spec and irctest: every check has a stable id, names the PROTOCOL.md
//! section it tests and its level, and ends pass, fail with evidence, or
//! skip with a reason.
//!
//! Contract: every byte the kit sends or checks is built or read by
//! `udpchat-proto` (deliberately broken datagrams, which proto cannot
//! build, are written out as bytes next to the check that sends them);
//! every wait has a deadline; the kit sends at most 125 datagrams a second
//! ([`probe::SEND_GAP`]) and makes every member it joined quit, so it is
//! safe to point at any relay.
//!
//! Layout: [`check`] (what a check is), [`registry`] (every check),
//! [`checks`] (the check functions, by group), [`ctx`], [`member`] and [`probe`]
//! (the kit's sockets, members, joins and waits), [`lines`] (the expected classic
//! lines), [`runner`] (one run), [`report`] (console, JSON, JUnit, the
//! class's HTML page), [`class`] (class mode), [`lossy`] (repair under
//! seeded faults), [`cli`] and [`words`] (the command line and the
//! report's two languages).

pub mod check;
pub mod checks;
pub mod class;
pub mod cli;
pub mod client;
pub mod ctx;
pub mod join;
pub mod lines;
pub mod lossy;
pub mod member;
pub mod probe;
pub mod registry;
pub mod report;
pub mod runner;
pub mod words;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use thiserror::Error;

pub use check::{Check, Group, Level, Outcome};
pub use report::Report;
pub use runner::{run, Options};

/// Why a run could not produce a report. The message is what the user reads.
#[derive(Debug, Error)]
pub enum Error {
    /// Nothing answered a `PING` or an `N`.
    #[error(
        "no answer from {target} within {waited:?}: is the relay running, and is this its address and port? (check the relay's first line: \"udpchat-relay listening on ...\")"
    )]
    NoAnswer {
        /// The address tried.
        target: SocketAddr,
        /// How long the kit waited in all.
        waited: Duration,
    },
    /// The relay's host answered "port unreachable".
    #[error(
        "nothing listens on {target}: its computer answered \"port unreachable\"; is the relay running, and is this its port? (check the relay's first line: \"udpchat-relay listening on ...\")"
    )]
    Refused {
        /// The address tried.
        target: SocketAddr,
    },
    /// The kit could not open a UDP socket.
    #[error("cannot open a UDP socket: {0}")]
    Socket(String),
    /// A report file could not be written.
    #[error("cannot write the report to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The binary's `main`: parses the flags, runs, prints, writes the files,
/// and turns the result into the exit status (0: no MUST check failed;
/// 1: a MUST check failed; 2: usage error, no answer, unwritable file).
pub fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("bad arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("udpchat-conform: {first}; see udpchat-conform --help");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let relay = match args.command {
        cli::Command::Relay(relay) => relay,
        cli::Command::Class(class_args) => return class::main(&class_args),
        cli::Command::Client(client) => return client::main(&client),
    };
    let target = match cli::resolve(&relay.target) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("udpchat-conform: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(prefix) = relay
        .only
        .iter()
        .find(|p| !registry::all().iter().any(|c| c.id.starts_with(p.as_str())))
    {
        eprintln!(
            "udpchat-conform: no check id starts with {prefix:?}; the ids are listed in PROTOCOL.md, section Conformance checks (e.g. classic.join, ext.who, struct.)"
        );
        return ExitCode::from(2);
    }
    let options = Options {
        target,
        timeout: relay.timeout,
        only: relay.only.clone(),
    };
    let report = match runner::run_with_faults(&options, relay.faults()) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("udpchat-conform: {e}");
            return ExitCode::from(2);
        }
    };
    report::finish(
        &report,
        relay.lang.into(),
        relay.json.as_deref(),
        relay.junit.as_deref(),
    )
}
