//! The transcript: every room event as one timestamped line appended to a
//! file, for the teacher to keep.
//!
//! Each line is built in memory and handed to the kernel with a single
//! `write` on an unbuffered, append-mode file, so a relay killed with
//! `kill -9` leaves only complete lines behind, and nothing that was
//! announced to the room is missing from the file.
//!
//! Hygiene (issue 13):
//! - The file is created with mode 0600 and never opened through a symbolic
//!   link (`O_NOFOLLOW`, see [`udpchat_udp::open_private_append`]). An
//!   existing file that others may read is tightened to 0600, and the log
//!   says so: it holds students' words (and, with `--transcript-private`,
//!   their private messages); whoever wants to share it makes a copy.
//! - Numbering continues after a restart: at open, the last `#N` is read
//!   from the end of the file, and room event `seq` is written as `#N+seq`.
//! - The relay's start and stop are lines of their own, marked `relay`
//!   instead of a number: `... relay started on 0.0.0.0:10024`,
//!   `... relay stopped (SIGTERM): goodbye`.
//! - `--local-time` writes RFC 3339 with the local offset
//!   (`2026-11-22T08:31:47.123+08:00`) instead of UTC (`...Z`).
//!
//! Line formats, after the timestamp: `#N text` (a room event), `- text`
//! (a join or leave above `--announce-limit`), `private a -> b: text`,
//! `relay text`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
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
    /// The last event number already in the file: room event `seq` is
    /// written as `#base+seq`.
    base: u64,
    /// Write the local time with its offset instead of UTC.
    local_time: bool,
}

impl Transcript {
    /// Opens (creating if needed, mode 0600, never through a symbolic link)
    /// `path` for appending, and finds the last event number in it.
    /// `private` says whether private messages are written too.
    pub fn open(path: &Path, lang: Lang, private: bool) -> io::Result<Transcript> {
        let opened = udpchat_udp::open_private_append(path)?;
        if let Some(mode) = opened.tightened_from {
            log::warn!(
                "transcript {} could be read by others (mode {mode:o}); it is now readable by you only (0600)",
                path.display()
            );
        }
        let mut file = opened.file;
        let (base, torn) = last_number(&mut file)?;
        if torn {
            // A line cut short (a full disk): end it, so the next line is whole.
            file.write_all(b"\n")?;
        }
        Ok(Transcript {
            file,
            path: path.to_owned(),
            lang,
            private,
            line: String::with_capacity(1100),
            base,
            local_time: false,
        })
    }

    /// Writes local time with its UTC offset (RFC 3339) instead of UTC.
    /// Where the local offset is not known, UTC is kept and the log says so.
    pub fn with_local_time(mut self, local_time: bool) -> Transcript {
        if local_time {
            match udpchat_udp::local_offset_seconds(unix_secs(SystemTime::now())) {
                Ok(_) => self.local_time = true,
                Err(e) => log::warn!(
                    "transcript: the local time zone is not known ({e}); writing UTC times"
                ),
            }
        }
        self
    }

    /// The last event number that was in the file when it was opened (0
    /// for a new file): numbering goes on from there.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Appends the relay's start, e.g.
    /// `2026-11-22T00:31:47.123Z relay started on 0.0.0.0:10024; numbering continues after #41`.
    pub fn started(&mut self, now: SystemTime, addr: SocketAddr) -> io::Result<()> {
        let text = match (self.lang, self.base) {
            (Lang::En, 0) => format!("relay started on {addr}"),
            (Lang::En, n) => format!("relay started on {addr}; numbering continues after #{n}"),
            (Lang::Zh, 0) => format!("relay 中继已启动，监听 {addr}"),
            (Lang::Zh, n) => format!("relay 中继已启动，监听 {addr}；编号接着 #{n} 往下"),
        };
        self.marked_line(now, &text)
    }

    /// Appends the relay's stop: `cause` is what stopped it (`SIGTERM`,
    /// `/quit`), `reason` the goodbye members were sent, e.g.
    /// `2026-11-22T00:31:47.123Z relay stopped (SIGTERM): goodbye`.
    pub fn stopped(&mut self, now: SystemTime, cause: &str, reason: &str) -> io::Result<()> {
        let text = match self.lang {
            Lang::En => format!("relay stopped ({cause}): {reason}"),
            Lang::Zh => format!("relay 中继已停止（{cause}）：{reason}"),
        };
        self.marked_line(now, &text)
    }

    fn marked_line(&mut self, now: SystemTime, text: &str) -> io::Result<()> {
        self.line.clear();
        self.push_now(now);
        self.line.push(' ');
        push_escaped(&mut self.line, text);
        self.write_line()
    }

    fn push_now(&mut self, now: SystemTime) {
        let offset = if self.local_time {
            udpchat_udp::local_offset_seconds(unix_secs(now)).ok()
        } else {
            None
        };
        match offset {
            Some(offset) => push_local_timestamp(&mut self.line, now, offset),
            None => push_timestamp(&mut self.line, now),
        }
    }

    /// The file's path, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a numbered room event, e.g.
    /// `2026-11-22T00:31:47.123Z #12 alice: hi`.
    pub fn room_event(&mut self, now: SystemTime, seq: u64, event: &RoomEvent) -> io::Result<()> {
        self.event_line(now, Some(seq), event, None)
    }

    /// Like [`Transcript::room_event`] (or, without `seq`,
    /// [`Transcript::unannounced_event`]), with the reason the host gave if
    /// any (a kick), e.g.
    /// `... #12 * bob was removed by the host (reason: too noisy)`.
    pub fn room_event_with_reason(
        &mut self,
        now: SystemTime,
        seq: Option<u64>,
        event: &RoomEvent,
        reason: Option<&str>,
    ) -> io::Result<()> {
        self.event_line(now, seq, event, reason)
    }

    /// Appends a join or leave the room was not told about (it was above
    /// `--announce-limit`), with `-` for the sequence number it does not
    /// have, e.g. `2026-11-22T00:31:47.123Z - * alice joined`.
    pub fn unannounced_event(&mut self, now: SystemTime, event: &RoomEvent) -> io::Result<()> {
        self.event_line(now, None, event, None)
    }

    fn event_line(
        &mut self,
        now: SystemTime,
        seq: Option<u64>,
        event: &RoomEvent,
        reason: Option<&str>,
    ) -> io::Result<()> {
        let msg = RelayMsg::Event {
            seq: seq.unwrap_or(0),
            origin: Origin::Live,
            ago: None,
            event: event.clone(),
        };
        let text = classic::render(&msg, self.lang).unwrap_or_default();
        self.line.clear();
        self.push_now(now);
        match seq {
            Some(seq) => {
                let _ = write!(self.line, " #{} ", self.base.saturating_add(seq));
            }
            None => self.line.push_str(" - "),
        }
        push_escaped(&mut self.line, &text);
        if let Some(reason) = reason {
            let (open, close) = match self.lang {
                Lang::En => (" (reason: ", ")"),
                Lang::Zh => ("（原因：", "）"),
            };
            self.line.push_str(open);
            push_escaped(&mut self.line, reason);
            self.line.push_str(close);
        }
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
        self.push_now(now);
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
        self.push_now(now);
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

/// Reads back from the end of `file` to the last line numbered `#N`;
/// returns N (0 if there is none) and whether the file ends in a torn line
/// (no final line break). Reads 8 KiB at a time from the end, so the cost
/// does not grow with the file unless it holds no numbered line near its
/// end (a transcript of only unnumbered lines is read whole, once).
fn last_number(file: &mut File) -> io::Result<(u64, bool)> {
    const CHUNK: u64 = 8 * 1024;
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, false));
    }
    let mut end = len;
    // The start of a line cut by the previous chunk's boundary.
    let mut carry: Vec<u8> = Vec::new();
    let mut torn = false;
    let mut first = true;
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let mut buf = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        if first {
            torn = buf.last() != Some(&b'\n');
            first = false;
        }
        buf.extend_from_slice(&carry);
        // Before the first line break: maybe the end of an earlier line.
        let split = if start == 0 {
            0
        } else {
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => buf.len(),
            }
        };
        if let Some(n) = buf[split..]
            .split(|&b| b == b'\n')
            .rev()
            .find_map(line_number)
        {
            return Ok((n, torn));
        }
        carry = buf[..split].to_vec();
        end = start;
    }
    Ok((0, torn))
}

/// The event number of one transcript line (`TIMESTAMP #N text`), if it
/// has one.
fn line_number(line: &[u8]) -> Option<u64> {
    let mut words = line.splitn(3, |&b| b == b' ');
    let _timestamp = words.next()?;
    let number = words.next()?.strip_prefix(b"#")?;
    words.next()?;
    if number.is_empty() || number.len() > 19 || !number.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

fn unix_secs(now: SystemTime) -> i64 {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
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

/// Appends `now` as RFC 3339 local time with milliseconds and the UTC
/// offset `offset` (seconds east), e.g. `2026-11-22T08:31:47.123+08:00`
/// for UTC+8. A zero offset is written `+00:00` (local time that happens
/// to be UTC), never `Z`.
pub fn push_local_timestamp(out: &mut String, now: SystemTime, offset: i32) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let millis = since_epoch.subsec_millis();
    let local =
        i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX - 86_400) + i64::from(offset);
    let (year, month, day) = civil_from_days(local.div_euclid(86_400));
    let rem = local.rem_euclid(86_400);
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}{sign}{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        abs / 3600,
        abs / 60 % 60
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

    fn local(t: SystemTime, offset: i32) -> String {
        let mut s = String::new();
        push_local_timestamp(&mut s, t, offset);
        s
    }

    #[test]
    fn local_timestamps_are_rfc_3339_with_the_offset() {
        let t = at(1_795_307_507, 123); // 2026-11-22T00:31:47.123Z
        assert_eq!(local(t, 8 * 3600), "2026-11-22T08:31:47.123+08:00");
        assert_eq!(local(t, 0), "2026-11-22T00:31:47.123+00:00");
        // West of Greenwich the date is still the day before.
        assert_eq!(
            local(t, -(3 * 3600 + 1800)),
            "2026-11-21T21:01:47.123-03:30"
        );
        assert_eq!(
            local(t, 5 * 3600 + 45 * 60),
            "2026-11-22T06:16:47.123+05:45"
        );
        assert_eq!(local(at(0, 0), -3600), "1969-12-31T23:00:00.000-01:00");
    }

    fn temp(name: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("udpchat-transcript-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn numbering_continues_across_runs_with_start_and_stop_lines() {
        let path = temp("runs");
        let alice = Nick::new("alice").unwrap();
        let addr: SocketAddr = "0.0.0.0:10024".parse().unwrap();
        for run in 0..2 {
            let mut t = Transcript::open(&path, Lang::En, false).unwrap();
            assert_eq!(t.base(), run * 2);
            t.started(at(10 * run, 0), addr).unwrap();
            t.room_event(at(10 * run + 1, 0), 1, &RoomEvent::Join(alice.clone()))
                .unwrap();
            t.room_event_with_reason(
                at(10 * run + 2, 0),
                Some(2),
                &RoomEvent::Leave {
                    nick: alice.clone(),
                    reason: udpchat_proto::LeaveReason::Kicked,
                },
                Some("too noisy\nfake line"),
            )
            .unwrap();
            t.unannounced_event(at(10 * run + 3, 0), &RoomEvent::Join(alice.clone()))
                .unwrap();
            t.stopped(at(10 * run + 4, 0), "SIGTERM", "goodbye")
                .unwrap();
        }
        let got = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            got,
            "1970-01-01T00:00:00.000Z relay started on 0.0.0.0:10024\n\
             1970-01-01T00:00:01.000Z #1 * alice joined\n\
             1970-01-01T00:00:02.000Z #2 * alice was removed by the host (reason: too noisy\\u{a}fake line)\n\
             1970-01-01T00:00:03.000Z - * alice joined\n\
             1970-01-01T00:00:04.000Z relay stopped (SIGTERM): goodbye\n\
             1970-01-01T00:00:10.000Z relay started on 0.0.0.0:10024; numbering continues after #2\n\
             1970-01-01T00:00:11.000Z #3 * alice joined\n\
             1970-01-01T00:00:12.000Z #4 * alice was removed by the host (reason: too noisy\\u{a}fake line)\n\
             1970-01-01T00:00:13.000Z - * alice joined\n\
             1970-01-01T00:00:14.000Z relay stopped (SIGTERM): goodbye\n"
        );
    }

    #[test]
    fn the_last_number_is_found_far_back_and_a_torn_line_is_ended() {
        let path = temp("far");
        let mut text = String::from("2026-11-22T00:31:47.123Z #41 bob: hi #99 \n");
        for _ in 0..2000 {
            text.push_str("2026-11-22T00:31:47.123Z private a -> b: #7 x\n");
        }
        text.push_str("2026-11-22T00:31:47.123Z #5"); // torn: no text, no line break
        std::fs::write(&path, &text).unwrap();
        let mut t = Transcript::open(&path, Lang::Zh, false).unwrap();
        assert_eq!(t.base(), 41);
        t.started(at(0, 0), "[::]:7".parse().unwrap()).unwrap();
        let got = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            got.ends_with(
                "#5\n1970-01-01T00:00:00.000Z relay 中继已启动，监听 [::]:7；编号接着 #41 往下\n"
            ),
            "{}",
            &got[got.len() - 200..]
        );
    }

    #[test]
    fn line_numbers_parse_only_in_their_place() {
        assert_eq!(line_number(b"T #12 alice: hi"), Some(12));
        assert_eq!(line_number(b"T - * alice joined"), None);
        assert_eq!(line_number(b"T relay started #3 x"), None);
        assert_eq!(line_number(b"T #12"), None);
        assert_eq!(line_number(b"T #1x2 a"), None);
        assert_eq!(line_number(b"T # a"), None);
        assert_eq!(line_number(b""), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_0600_and_a_symlink_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = temp("mode");
        drop(Transcript::open(&path, Lang::En, true).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let link = temp("mode-link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(Transcript::open(&link, Lang::En, true).is_err());
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn local_time_lines_carry_an_offset() {
        let path = temp("local");
        let mut t = Transcript::open(&path, Lang::En, false)
            .unwrap()
            .with_local_time(true);
        t.started(SystemTime::now(), "127.0.0.1:1".parse().unwrap())
            .unwrap();
        let got = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let stamp = got.split(' ').next().unwrap();
        if cfg!(unix) {
            // 2026-11-22T08:31:47.123+08:00
            assert_eq!(stamp.len(), 29, "{stamp}");
            let sign = stamp.as_bytes()[23];
            assert!(sign == b'+' || sign == b'-', "{stamp}");
            assert_eq!(&stamp[26..27], ":", "{stamp}");
        }
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
            // A second run: its first event is #3.
            t.room_event(
                at(3, 0),
                1,
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
