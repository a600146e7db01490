//! Recording: what the room reports (its [`Event`]s) goes to the log and
//! the transcript. Warnings about refused input are rate-limited so a flood
//! cannot flood the log; a transcript that cannot be written is reported
//! once per run of failures.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use udpchat_proto::{ErrorCode, LeaveReason, RoomEvent};

use crate::transcript::Transcript;
use crate::{Dialect, Event};

/// The log and the transcript, as the room's events arrive.
pub(crate) struct Recorder {
    transcript: Option<Transcript>,
    transcript_failed: bool,
    refusals: RefusalLog,
    /// The reason the host gave for the kick being carried out: written
    /// with the kicked member's leave line, then forgotten.
    kick_reason: Option<String>,
}

impl Recorder {
    pub(crate) fn new(transcript: Option<Transcript>, now: Instant) -> Recorder {
        Recorder {
            transcript,
            transcript_failed: false,
            refusals: RefusalLog::new(now),
            kick_reason: None,
        }
    }

    /// The relay is listening on `addr`: the transcript's first line of this run.
    pub(crate) fn started(&mut self, addr: SocketAddr) {
        let now = SystemTime::now();
        self.transcribe(|t| t.started(now, addr));
    }

    /// The host is kicking a member for `reason`: the next leave as kicked
    /// carries it in the transcript. The room's kick event has no reason;
    /// the shell, which asked for the kick, knows it, and dispatches the
    /// room's answer at once, so that leave is this kick's; then it calls
    /// [`Recorder::kick_done`].
    pub(crate) fn kicking(&mut self, reason: String) {
        self.kick_reason = Some(reason);
    }

    /// Forgets the reason of [`Recorder::kicking`] (used or not).
    pub(crate) fn kick_done(&mut self) {
        self.kick_reason = None;
    }

    /// Logs and transcribes one event; `members` is the room's size after it.
    pub(crate) fn record(&mut self, event: &Event, members: usize) {
        let now = SystemTime::now();
        match event {
            Event::Room { seq, event } => {
                log::debug!("event {seq}: {event:?}");
                let reason = self.take_kick_reason(event);
                self.transcribe(|t| {
                    t.room_event_with_reason(now, Some(*seq), event, reason.as_deref())
                });
            }
            Event::Unannounced { event } => {
                log::debug!("not announced (above --announce-limit): {event:?}");
                let reason = self.take_kick_reason(event);
                self.transcribe(|t| t.room_event_with_reason(now, None, event, reason.as_deref()));
            }
            Event::Private { from, to, text } => {
                log::debug!("private {from} -> {to}");
                self.transcribe(|t| t.private(now, from, to, text));
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
                log::info!("{nick} joined from {addr} ({dialect}); {members} members");
            }
            Event::Left { addr, nick, reason } => {
                log::info!(
                    "{nick} left ({}) from {addr}; {members} members",
                    reason.as_str()
                );
            }
            Event::Refused { addr, code, detail } => {
                self.refusals.refused(Instant::now(), *addr, *code, detail);
            }
            Event::Muted { addr, nick } => {
                log::info!(
                    "{nick} at {addr}: port reported unreachable; nothing is sent to it until it speaks again"
                );
            }
            Event::Restored { addr, nick } => {
                log::info!(
                    "{nick} at {addr} spoke again after a port unreachable; sending to it again"
                );
            }
            Event::Dropped { addr, why } => {
                log::debug!("dropped a datagram from {addr}: {why}");
            }
            Event::Block { addr, duration } => {
                log::debug!(
                    "{addr} floods: its datagrams are dropped in the kernel for {} ms",
                    duration.as_millis()
                );
            }
            Event::Unblock { addr } => log::debug!("{addr} is no longer blocked"),
            Event::Hand {
                addr,
                nick,
                position,
                again,
                ..
            } => {
                let what = if *again {
                    "asks again"
                } else {
                    "raises a hand"
                };
                log::info!("{nick} at {addr} {what}; {position} in line");
            }
            Event::Called { addr, nick } => log::info!("the host calls on {nick} at {addr}"),
        }
    }

    /// The host's reason if `event` is the leave of the member being kicked.
    fn take_kick_reason(&mut self, event: &RoomEvent) -> Option<String> {
        match event {
            RoomEvent::Leave {
                reason: LeaveReason::Kicked,
                ..
            } => self.kick_reason.take(),
            _ => None,
        }
    }

    fn transcribe(&mut self, write: impl FnOnce(&mut Transcript) -> io::Result<()>) {
        if let Some(t) = &mut self.transcript {
            let result = write(t);
            transcript_result(t, result, &mut self.transcript_failed);
        }
    }

    /// When a summary of suppressed warnings is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.refusals.deadline()
    }

    pub(crate) fn tick(&mut self, now: Instant) {
        self.refusals.tick(now);
    }

    /// Last words: the suppressed-warning summary, the stop line (`cause`:
    /// what stopped the relay; `reason`: the goodbye), the transcript on disk.
    pub(crate) fn finish(&mut self, cause: &str, reason: &str) {
        self.refusals.flush();
        let now = SystemTime::now();
        self.transcribe(|t| t.stopped(now, cause, reason));
        if let Some(t) = &mut self.transcript {
            if let Err(e) = t.sync() {
                log::error!("transcript {}: {e}", t.path().display());
            }
        }
    }
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
}
