//! Recording: what the room reports (its [`Event`]s) goes to the log and
//! the transcript. Warnings about refused input are rate-limited so a flood
//! cannot flood the log; a transcript that cannot be written is reported
//! once per run of failures.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use udpchat_proto::{ErrorCode, Lang};
use udpchat_room::AnnouncementSummary;

use crate::transcript::Transcript;
use crate::{Dialect, Event};

/// The log and the transcript, as the room's events arrive.
pub(crate) struct Recorder {
    transcript: Option<Transcript>,
    transcript_failed: bool,
    refusals: RefusalLog,
}

impl Recorder {
    pub(crate) fn new(transcript: Option<Transcript>, now: Instant) -> Recorder {
        Recorder {
            transcript,
            transcript_failed: false,
            refusals: RefusalLog::new(now),
        }
    }

    /// The relay is listening on `addr`: the transcript's first line of this run.
    pub(crate) fn started(&mut self, addr: SocketAddr) {
        let now = SystemTime::now();
        self.transcribe(|t| t.started(now, addr));
    }

    /// Logs and transcribes one event; `members` is the room's size after it.
    pub(crate) fn record(&mut self, event: &Event, members: usize) {
        let now = SystemTime::now();
        match event {
            Event::Room { seq, event } => {
                log::debug!("event {seq}: {event:?}");
                // A kick's reason has its own line (`Event::Kicked`).
                self.transcribe(|t| t.room_event(now, *seq, event));
            }
            Event::Unannounced { event } => {
                log::debug!("not announced (above --announce-limit): {event:?}");
                self.transcribe(|t| t.room_event_with_reason(now, None, event, None));
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
            Event::Kicked { .. }
            | Event::Banned { .. }
            | Event::Unbanned { .. }
            | Event::Silenced { .. }
            | Event::Unsilenced { .. }
            | Event::Locked(_)
            | Event::CodeSet(_)
            | Event::SlowMode(_) => {
                let line = moderation_line(event);
                log::info!("{line}");
                self.transcribe(|t| t.moderation(now, &line));
            }
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
            Event::Voiced { nick, on } => {
                let line = match on {
                    true => format!("host gave {nick} a voice"),
                    false => format!("host took {nick}'s voice"),
                };
                log::info!("{line}");
                self.transcribe(|t| t.moderation(now, &line));
            }
            Event::Announcement(summary) => {
                let line = announcement_line(summary, Lang::En);
                log::info!("{line}");
                self.transcribe(|t| t.moderation(now, &line));
            }
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

/// The host's moderation, in words, for the log and the transcript (the
/// join code itself is not written).
fn moderation_line(event: &Event) -> String {
    let words =
        |d: &Duration| udpchat_room::duration_words(d.as_millis() as u64, udpchat_proto::Lang::En);
    let because = |reason: &str| match reason.is_empty() {
        true => String::new(),
        false => format!(": {reason}"),
    };
    match event {
        Event::Kicked { addr, nick, reason } => {
            format!("host removed {nick} ({addr}){}", because(reason))
        }
        Event::Banned {
            ip,
            nick,
            reason,
            duration,
        } => {
            let who = nick.as_ref().map_or(String::new(), |n| format!(" ({n})"));
            let how_long = duration
                .as_ref()
                .map_or("until lifted".to_owned(), |d| format!("for {}", words(d)));
            format!("host banned {ip}{who} {how_long}{}", because(reason))
        }
        Event::Unbanned { ip } => format!("host lifted the ban of {ip}"),
        Event::Silenced { nick, duration } => {
            let how_long = duration
                .as_ref()
                .map_or("until unmuted".to_owned(), |d| format!("for {}", words(d)));
            format!("host muted {nick} {how_long}")
        }
        Event::Unsilenced { nick } => format!("host unmuted {nick}"),
        Event::Locked(true) => "host locked the room".to_owned(),
        Event::Locked(false) => "host unlocked the room".to_owned(),
        Event::CodeSet(Some(_)) => "host set a join code".to_owned(),
        Event::CodeSet(None) => "host removed the join code".to_owned(),
        Event::SlowMode(d) if d.is_zero() => "host turned slow mode off".to_owned(),
        Event::SlowMode(d) => format!("host set slow mode: one message every {}", words(d)),
        _ => String::new(),
    }
}

/// Who has seen an announcement, for the console, the log and the
/// transcript: `announcement #12 seen by 23 of 25; 2 classic members
/// cannot confirm` (and who left before confirming, if anyone did).
pub(crate) fn announcement_line(s: &AnnouncementSummary, lang: Lang) -> String {
    let mut line = match lang {
        Lang::En => format!(
            "announcement #{} seen by {} of {}",
            s.seq, s.seen, s.members
        ),
        Lang::Zh => format!("通知 #{}：{} 人中 {} 人已确认", s.seq, s.members, s.seen),
    };
    match (lang, s.classic) {
        (_, 0) => {}
        (Lang::En, 1) => line.push_str("; 1 classic member cannot confirm"),
        (Lang::En, n) => line.push_str(&format!("; {n} classic members cannot confirm")),
        (Lang::Zh, n) => line.push_str(&format!("；{n} 名经典客户端成员无法确认")),
    }
    match (lang, s.left) {
        (_, 0) => {}
        (Lang::En, n) => line.push_str(&format!("; {n} left before confirming")),
        (Lang::Zh, n) => line.push_str(&format!("；{n} 人未确认就离开了")),
    }
    line
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
    fn moderation_is_written_in_words_with_its_reasons() {
        let nick = udpchat_proto::Nick::new("bob").unwrap();
        let addr: SocketAddr = "10.0.0.7:4000".parse().unwrap();
        assert_eq!(
            moderation_line(&Event::Kicked {
                addr,
                nick: nick.clone(),
                reason: "be nice".into()
            }),
            "host removed bob (10.0.0.7:4000): be nice"
        );
        assert_eq!(
            moderation_line(&Event::Banned {
                ip: addr.ip(),
                nick: Some(nick.clone()),
                reason: "spam".into(),
                duration: Some(Duration::from_secs(600)),
            }),
            "host banned 10.0.0.7 (bob) for 10 minutes: spam"
        );
        assert_eq!(
            moderation_line(&Event::Silenced {
                nick,
                duration: None
            }),
            "host muted bob until unmuted"
        );
        // The code itself is not written down.
        let code = udpchat_proto::JoinCode::new("maple7").unwrap();
        assert_eq!(
            moderation_line(&Event::CodeSet(Some(code))),
            "host set a join code"
        );
    }

    #[test]
    fn announcement_summaries_read_in_both_languages() {
        let mut s = AnnouncementSummary {
            seq: 12,
            seen: 23,
            members: 25,
            classic: 2,
            left: 0,
            complete: true,
        };
        assert_eq!(
            announcement_line(&s, Lang::En),
            "announcement #12 seen by 23 of 25; 2 classic members cannot confirm"
        );
        assert_eq!(
            announcement_line(&s, Lang::Zh),
            "通知 #12：25 人中 23 人已确认；2 名经典客户端成员无法确认"
        );
        s.classic = 1;
        s.left = 1;
        assert_eq!(
            announcement_line(&s, Lang::En),
            "announcement #12 seen by 23 of 25; 1 classic member cannot confirm; \
             1 left before confirming"
        );
        s.classic = 0;
        s.left = 0;
        assert_eq!(
            announcement_line(&s, Lang::En),
            "announcement #12 seen by 23 of 25"
        );
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
}
