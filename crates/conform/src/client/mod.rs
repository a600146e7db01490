//! `udpchat-conform client -- COMMAND ...`: the kit plays the relay for a
//! client under test. For every check it binds a UDP socket on 127.0.0.1,
//! starts the command with that address (`{addr}`, `{host}`, `{port}` in
//! its arguments, and `UDPCHAT_RELAY`), types lines into its stdin, answers
//! as a relay would, checks what the client sends and prints, and kills the
//! client (by its PID) at the end of the check.
//!
//! Layout: [`child`] (the process), [`kit`] (the relay side: join,
//! serving, restart), [`checks`] (the checks and their table).

pub mod checks;
pub mod child;
pub mod kit;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::check::{CheckReport, Group, NotPassed, Outcome};
use crate::report::Report;
use crate::Error;

pub use checks::{ClientCheck, CHECKS, CLASSIC_SKIP};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The client's command and arguments (placeholders not yet filled).
    pub command: Vec<String>,
    /// How long to wait for what the client owes (at least 3 s is used
    /// where the protocol allows a client retransmission delays).
    pub timeout: Duration,
    /// For a course client that asks for a name first: the line the kit
    /// types before anything else.
    pub name: Option<String>,
    /// Run only checks whose id starts with one of these (all if empty).
    pub only: Vec<String>,
}

/// Runs every selected client check, each with a fresh client process.
pub fn run(options: &Options) -> Result<Report, Error> {
    if options.command.is_empty() {
        return Err(Error::Socket("no client command given".to_owned()));
    }
    let started = Instant::now();
    let mut results = Vec::new();
    let mut target = None;
    let mut sent = 0u64;
    // Learnt from the first check whose client joined: `Some(false)` for
    // a client that joins with N, whose structured checks are then skipped
    // without starting it again.
    let mut structured: Option<bool> = None;
    for entry in CHECKS {
        let check = &entry.check;
        if !options.only.is_empty()
            && !options
                .only
                .iter()
                .any(|p| check.id.starts_with(p.as_str()))
        {
            continue;
        }
        let check_started = Instant::now();
        if check.group == Group::ClientStructured && structured == Some(false) {
            results.push(CheckReport {
                check,
                outcome: Outcome::Skip {
                    why: CLASSIC_SKIP.to_owned(),
                },
                duration: std::time::Duration::ZERO,
            });
            continue;
        }
        log::info!("running {}", check.id);
        let (result, transcript) =
            match kit::Kit::start(&options.command, options.timeout, options.name.as_deref()) {
                Ok(mut kit) => {
                    target.get_or_insert(kit.addr);
                    let result = catch_unwind(AssertUnwindSafe(|| (entry.run)(&mut kit)))
                        .unwrap_or_else(|_| {
                            Err(NotPassed::fail(
                            "the check runs to its end",
                            "the kit itself failed (a bug in udpchat-conform; please report it)",
                        ))
                        });
                    if let Some(joined) = &kit.joined {
                        structured.get_or_insert(matches!(
                            joined.dialect,
                            kit::Dialect::Structured { .. }
                        ));
                    }
                    sent += kit
                        .transcript
                        .iter()
                        .filter(|l| l.direction == crate::probe::Direction::Received)
                        .count() as u64;
                    (result, std::mem::take(&mut kit.transcript))
                    // `kit` drops here: the client is killed and reaped.
                }
                Err(not_passed) => (Err(not_passed), Vec::new()),
            };
        let outcome = match result {
            Ok(()) => Outcome::Pass,
            Err(NotPassed::Skip(why)) => Outcome::Skip { why },
            Err(NotPassed::Fail { expected, problem }) => Outcome::Fail {
                expected,
                problem,
                transcript,
            },
        };
        log::info!("{}: {:?}", check.id, outcome_word(&outcome));
        results.push(CheckReport {
            check,
            outcome,
            duration: check_started.elapsed(),
        });
    }
    let group_skipped = results
        .iter()
        .filter(|r| r.check.group == Group::ClientStructured)
        .map(|r| matches!(&r.outcome, Outcome::Skip { why } if why == CLASSIC_SKIP))
        .collect::<Vec<_>>();
    let mut group_skips = Vec::new();
    if !group_skipped.is_empty() && group_skipped.iter().all(|s| *s) {
        group_skips.push((Group::ClientStructured, CLASSIC_SKIP.to_owned()));
    }
    Ok(Report {
        target: target.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        results,
        group_skips,
        duration: started.elapsed(),
        datagrams_sent: sent,
        // The kit plays the relay here, on loopback: no lossy path.
        faults: None,
    })
}

fn outcome_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::Fail { .. } => "fail",
        Outcome::Skip { .. } => "skip",
    }
}

/// `udpchat-conform client`: runs, prints, writes the files; the exit
/// status is 0 exactly when no MUST check failed.
pub fn main(args: &crate::cli::ClientArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    if let Some(prefix) = args
        .only
        .iter()
        .find(|p| !CHECKS.iter().any(|c| c.check.id.starts_with(p.as_str())))
    {
        eprintln!(
            "udpchat-conform: no client check id starts with {prefix:?}; the ids are listed in PROTOCOL.md, section Conformance checks (e.g. client.join, client.show)"
        );
        return ExitCode::from(2);
    }
    let options = Options {
        command: args.command.clone(),
        timeout: args.timeout,
        name: args.name.clone(),
        only: args.only.clone(),
    };
    let report = match run(&options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("udpchat-conform: {e}");
            return ExitCode::from(2);
        }
    };
    crate::report::finish(
        &report,
        args.lang.into(),
        args.json.as_deref(),
        args.junit.as_deref(),
    )
}
