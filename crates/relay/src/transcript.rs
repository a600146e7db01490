//! The transcript: every room event as one timestamped line appended to a
//! file, for the teacher to keep.
//!
//! Each line is built in memory and handed to the kernel with a single
//! `write` on an unbuffered, append-mode file, so a relay killed with
//! `kill -9` leaves only complete lines behind, and nothing that was
//! announced to the room is missing from the file.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use udpchat_proto::{classic, Lang, Nick, Origin, RelayMsg, RoomEvent, Text};

/// An open transcript file.
#[derive(Debug)]
pub struct Transcript {
    file: File,
    path: PathBuf,
    lang: Lang,
    private: bool,
    line: String,
}

impl Transcript {
    /// Opens (creating if needed) `path` for appending. `private` says whether
    /// private messages are written too.
    pub fn open(path: &Path, lang: Lang, private: bool) -> io::Result<Transcript> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Transcript {
            file,
            path: path.to_owned(),
            lang,
            private,
            line: String::with_capacity(1100),
        })
    }

    /// The file's path, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a numbered room event, e.g.
    /// `2026-11-22T00:31:47.123Z #12 alice: hi`.
    pub fn room_event(&mut self, now: SystemTime, seq: u64, event: &RoomEvent) -> io::Result<()> {
        self.event_line(now, Some(seq), event)
    }

    /// Appends a join or leave the room was not told about (it was above
    /// `--announce-limit`), with `-` for the sequence number it does not
    /// have, e.g. `2026-11-22T00:31:47.123Z - * alice joined`.
    pub fn unannounced_event(&mut self, now: SystemTime, event: &RoomEvent) -> io::Result<()> {
        self.event_line(now, None, event)
    }

    fn event_line(
        &mut self,
        now: SystemTime,
        seq: Option<u64>,
        event: &RoomEvent,
    ) -> io::Result<()> {
        let msg = RelayMsg::Event {
            seq: seq.unwrap_or(0),
            origin: Origin::Live,
            ago: None,
            event: event.clone(),
        };
        let text = classic::render(&msg, self.lang).unwrap_or_default();
        self.line.clear();
        push_timestamp(&mut self.line, now);
        match seq {
            Some(seq) => {
                let _ = write!(self.line, " #{seq} ");
            }
            None => self.line.push_str(" - "),
        }
        push_escaped(&mut self.line, &text);
        self.write_line()
    }

    /// Appends a private message if the transcript was opened with `private`;
    /// e.g. `2026-11-22T00:31:47.123Z private alice -> bob: hi`.
    pub fn private(
        &mut self,
        now: SystemTime,
        from: &Nick,
        to: &Nick,
        text: &Text,
    ) -> io::Result<()> {
        if !self.private {
            return Ok(());
        }
        self.line.clear();
        push_timestamp(&mut self.line, now);
        self.line.push_str(" private ");
        push_escaped(&mut self.line, from.as_str());
        self.line.push_str(" -> ");
        push_escaped(&mut self.line, to.as_str());
        self.line.push_str(": ");
        push_escaped(&mut self.line, text.as_str());
        self.write_line()
    }

    /// Appends the host's moderation (kicks, bans, mutes and their
    /// reasons, the lock, the join code, slow mode), e.g.
    /// `2026-11-22T00:31:47.123Z ! host banned 10.0.0.7 (bob) for 10 minutes: spam`.
    pub fn moderation(&mut self, now: SystemTime, line: &str) -> io::Result<()> {
        self.line.clear();
        push_timestamp(&mut self.line, now);
        self.line.push_str(" ! ");
        push_escaped(&mut self.line, line);
        self.write_line()
    }

    /// Makes sure everything written is on disk (used at shutdown).
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn write_line(&mut self) -> io::Result<()> {
        self.line.push('\n');
        // One write call for the whole line: File is unbuffered, so this is
        // also the flush.
        self.file.write_all(self.line.as_bytes())
    }
}

/// Appends `s`, replacing anything that could break the one-line-per-event
/// format (control characters, line separators, bidi overrides) with a
/// visible `\u{..}` escape. The core already refuses such text; this is the
/// belt to its braces, so a transcript can never be forged by a message.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if c == '\\' || udpchat_proto::check_text_char(c).is_err() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
}

/// Appends `now` as an ISO-8601 UTC timestamp with milliseconds,
/// e.g. `2026-11-22T00:31:47.123Z`.
pub fn push_timestamp(out: &mut String, now: SystemTime) {
    // A clock before 1970 is written as the epoch rather than failing.
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use udpchat_proto::LeaveReason;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    fn stamp(t: SystemTime) -> String {
        let mut s = String::new();
        push_timestamp(&mut s, t);
        s
    }

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(stamp(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(stamp(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(stamp(at(1_795_307_507, 123)), "2026-11-22T00:31:47.123Z");
        assert_eq!(stamp(at(4_102_444_799, 999)), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn escaping_keeps_one_line_per_event() {
        let mut s = String::new();
        push_escaped(&mut s, "a\nb\u{1b}[31m\u{202e}c\\ 你好");
        assert_eq!(s, "a\\u{a}b\\u{1b}[31m\\u{202e}c\\\\ 你好");
    }

    #[test]
    fn lines_are_appended_whole() {
        let dir = std::env::temp_dir().join(format!("udpchat-transcript-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let nick = Nick::new("alice").unwrap();
        let bob = Nick::new("bob").unwrap();
        let text = Text::new("hi there").unwrap();
        {
            let mut t = Transcript::open(&dir, Lang::En, false).unwrap();
            t.room_event(at(0, 0), 1, &RoomEvent::Join(nick.clone()))
                .unwrap();
            t.private(at(0, 0), &nick, &bob, &text).unwrap();
            t.room_event(
                at(1, 0),
                2,
                &RoomEvent::Chat {
                    nick: nick.clone(),
                    text: text.clone(),
                },
            )
            .unwrap();
        }
        {
            let mut t = Transcript::open(&dir, Lang::En, true).unwrap();
            t.private(at(2, 0), &nick, &bob, &text).unwrap();
            t.unannounced_event(at(2, 500), &RoomEvent::Join(bob.clone()))
                .unwrap();
            t.room_event(
                at(3, 0),
                3,
                &RoomEvent::Leave {
                    nick,
                    reason: LeaveReason::Quit,
                },
            )
            .unwrap();
        }
        let got = std::fs::read_to_string(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(
            got,
            "1970-01-01T00:00:00.000Z #1 * alice joined\n\
             1970-01-01T00:00:01.000Z #2 alice: hi there\n\
             1970-01-01T00:00:02.000Z private alice -> bob: hi there\n\
             1970-01-01T00:00:02.500Z - * bob joined\n\
             1970-01-01T00:00:03.000Z #3 * alice left\n"
        );
    }
}
