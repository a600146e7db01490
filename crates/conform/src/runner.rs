//! Runs the checks against one relay: first whether anything answers at
//! all, then whether it speaks the structured dialect, then every check
//! with a fresh context, and the wire rules on every datagram received.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use udpchat_proto::{check_relay_datagram, ClientMsg, Nick, RelayMsg, SessionKey, Token};

use crate::check::{CheckReport, Group, NotPassed, Outcome};
use crate::ctx::{Ctx, RunState};
use crate::lossy::{self, FaultSettings};
use crate::probe::{show_bytes, Probe};
use crate::registry;
use crate::report::Report;
use crate::Error;

/// What to run, against what.
#[derive(Debug, Clone)]
pub struct Options {
    /// The relay under test.
    pub target: SocketAddr,
    /// How long to wait for each expected reply.
    pub timeout: Duration,
    /// Run only checks whose id starts with one of these (all if empty).
    pub only: Vec<String>,
}

/// Runs every selected check against `options.target`.
///
/// Errors only when the target does not answer at all (or the kit cannot
/// open a socket): a relay that answers gets a report, however bad.
pub fn run(options: &Options) -> Result<Report, Error> {
    run_with_faults(options, None)
}

/// Like [`run`], with `faults`: the checks of repair run their lossy
/// variants ([`crate::lossy`]) behind a seeded lossy path, and every other
/// check is skipped, saying it is not run under faults.
pub fn run_with_faults(options: &Options, faults: Option<FaultSettings>) -> Result<Report, Error> {
    let started = Instant::now();
    let state = RunState::new(&run_tag());
    preflight(options, &state)?;
    let structured_skip = structured_skip(options, &state)?;
    let mut results = Vec::new();
    let mut group_skips = Vec::new();
    if let Some(why) = &structured_skip {
        group_skips.push((Group::Structured, why.clone()));
    }
    if faults.is_some() {
        // No check of these groups has a lossy variant: one line each.
        group_skips.push((Group::Classic, lossy::NOT_UNDER_FAULTS.to_owned()));
        group_skips.push((Group::Extensions, lossy::NOT_UNDER_FAULTS.to_owned()));
    }
    for check in registry::all() {
        if !options.only.is_empty()
            && !options
                .only
                .iter()
                .any(|p| check.id.starts_with(p.as_str()))
        {
            continue;
        }
        let check_started = Instant::now();
        if let (Group::Structured, Some(why)) = (check.group, &structured_skip) {
            results.push(CheckReport {
                check,
                outcome: Outcome::Skip { why: why.clone() },
                duration: Duration::ZERO,
            });
            continue;
        }
        let mut run_fn = check.run;
        let mut ctx = Ctx::new(options.target, options.timeout, &state);
        if let Some(faults) = faults {
            let Some(lossy) = lossy::variant(check.id) else {
                results.push(CheckReport {
                    check,
                    outcome: Outcome::Skip {
                        why: lossy::NOT_UNDER_FAULTS.to_owned(),
                    },
                    duration: Duration::ZERO,
                });
                continue;
            };
            run_fn = lossy;
            ctx.set_faults(faults, faults.seed ^ id_hash(check.id));
        }
        log::info!("running {}", check.id);
        let result = catch_unwind(AssertUnwindSafe(|| run_fn(&mut ctx))).unwrap_or_else(|_| {
            Err(NotPassed::fail(
                "the check runs to its end",
                "the kit itself failed (a bug in udpchat-conform; please report it)",
            ))
        });
        ctx.clean_up();
        let result = result.and_then(|()| wire_rules(&ctx));
        let transcript = ctx.take_transcript();
        let outcome = match result {
            Ok(()) => Outcome::Pass,
            Err(NotPassed::Skip(why)) => Outcome::Skip { why },
            Err(NotPassed::Fail { expected, problem }) => Outcome::Fail {
                expected,
                problem,
                transcript,
            },
        };
        let word = match outcome {
            Outcome::Pass => "pass",
            Outcome::Fail { .. } => "fail",
            Outcome::Skip { .. } => "skip",
        };
        log::info!("{}: {word}", check.id);
        results.push(CheckReport {
            check,
            outcome,
            duration: check_started.elapsed(),
        });
    }
    Ok(Report {
        target: options.target,
        results,
        group_skips,
        duration: started.elapsed(),
        datagrams_sent: state.sent(),
        faults,
    })
}

/// FNV-1a of a check id: each check's faults differ, and do not depend on
/// which other checks ran.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Section 2 and 12 on every datagram the check received: at most 1024
/// bytes, UTF-8, no control character, the line ending its socket asked for.
fn wire_rules(ctx: &Ctx) -> Result<(), NotPassed> {
    for received in ctx.take_received() {
        if let Err(fault) = check_relay_datagram(&received.bytes, received.ending) {
            return Err(NotPassed::fail(
                "every datagram from the relay is UTF-8, at most 1024 bytes, without control characters, and has the line ending its member joined with (sections 2, 6)",
                format!(
                    "{} received {} ({} bytes): {fault}",
                    received.who,
                    show_bytes(&received.bytes, 60),
                    received.bytes.len()
                ),
            ));
        }
    }
    Ok(())
}

/// A tag that makes this run's nicknames differ from an earlier run's:
/// four base-36 characters from the clock.
fn run_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut n = (nanos / 1000) as u64;
    let mut tag = String::new();
    for _ in 0..4 {
        let digit = (n % 36) as u32;
        tag.push(char::from_digit(digit, 36).unwrap_or('x'));
        n /= 36;
    }
    tag
}

/// Does anything answer? A `PING` (answered by every udpchat relay, member
/// or not), then a classic `N` (a course relay may know nothing else),
/// twice each. No answer at all is an error, not forty failures.
fn preflight(options: &Options, state: &Rc<RunState>) -> Result<(), Error> {
    let mut ctx = Ctx::new(options.target, options.timeout, state);
    let probe = ctx
        .probe("probe")
        .map_err(|e| Error::Socket(format!("{e:?}")))?;
    let nick = ctx.fresh_nick("probe");
    let join = ClientMsg::Join(Nick::new(&nick).expect("valid"), None).encode();
    for _ in 0..2 {
        probe.send(&ClientMsg::Ping(Some(Token::new("conform").expect("valid"))).encode());
        if probe.recv(options.timeout).is_some() {
            return Ok(());
        }
        probe.send(&join);
        if let Some(reply) = probe.recv(options.timeout) {
            if reply.starts_with(b"OK") {
                probe.send(&ClientMsg::Quit(Nick::new(&nick).expect("valid"), None).encode());
            }
            return Ok(());
        }
        if probe.was_refused() {
            return Err(Error::Refused {
                target: options.target,
            });
        }
    }
    Err(Error::NoAnswer {
        target: options.target,
        waited: options.timeout * 4,
    })
}

/// `None` if the relay answers a cookie-less, padded `HELLO` with a
/// `COOKIE` (it speaks the structured dialect), else why the structured
/// group is skipped.
fn structured_skip(options: &Options, state: &Rc<RunState>) -> Result<Option<String>, Error> {
    let ctx = Ctx::new(options.target, options.timeout, state);
    let probe: Rc<Probe> = ctx
        .probe("hello")
        .map_err(|e| Error::Socket(format!("{e:?}")))?;
    let key = SessionKey::from_u64(0x0123_4567_89ab_cdef);
    let bytes = crate::join::hello("conform", None, Some(key));
    for _ in 0..2 {
        probe.send(&bytes);
        if let Some(reply) = probe.recv(options.timeout) {
            if matches!(RelayMsg::parse(&reply), Ok(RelayMsg::Cookie(_))) {
                return Ok(None);
            }
            return Ok(Some(format!(
                "the relay answered a HELLO with {} instead of a COOKIE: it does not speak the structured dialect (section 8)",
                show_bytes(&reply, 60)
            )));
        }
    }
    Ok(Some(format!(
        "no COOKIE answer to a HELLO within {:?}: the relay does not speak the structured dialect (section 8)",
        options.timeout * 2
    )))
}
