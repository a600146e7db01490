//! Attendance and hands at the console: reading `--roster FILE`, the
//! `/attendance`, `/hands` and `/who` answers, and the attendance CSV
//! (`--attendance FILE`, RFC 4180) written at shutdown and on
//! `/attendance save`. The room keeps the numbers on its own clock; here
//! they become wall-clock times: the room started at `started`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use udpchat_proto::{Lang, Nick};
use udpchat_room::{AttendanceRecord, Dialect, Presence, RaisedHand, WhoEntry};

use crate::transcript::push_timestamp;

/// Why `--roster FILE` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// The file could not be read.
    #[error("cannot read roster {}: {source}; check the path", path.display())]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A line is not a nickname a student could use.
    #[error("roster {} line {line}: {name:?} is not a nickname: {reason}", path.display())]
    BadName {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What the line says.
        name: String,
        /// What is wrong with it.
        reason: udpchat_proto::ParseError,
    },
}

/// Reads a roster: one expected nickname a line; blank lines and lines
/// starting with `#` are skipped, spaces around a name are ignored.
pub fn read_roster(path: &Path) -> Result<Vec<Nick>, RosterError> {
    let text = std::fs::read_to_string(path).map_err(|source| RosterError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_roster(&text).map_err(|(line, name, reason)| RosterError::BadName {
        path: path.to_owned(),
        line,
        name,
        reason,
    })
}

fn parse_roster(text: &str) -> Result<Vec<Nick>, (usize, String, udpchat_proto::ParseError)> {
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim().trim_start_matches('\u{feff}');
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        let nick = Nick::new(name).map_err(|e| (i + 1, name.to_owned(), e))?;
        names.push(nick);
    }
    Ok(names)
}

/// The wall-clock time of `at` on the room clock, ISO 8601 UTC.
fn wall(started: SystemTime, at: Duration) -> String {
    let mut s = String::new();
    push_timestamp(&mut s, started + at);
    s
}

/// One CSV field, quoted as RFC 4180 says when it has to be (a comma, a
/// double quote, a line break, or spaces at either end).
fn field(s: &str) -> String {
    let needs = s.contains([',', '"', '\r', '\n']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The CSV header line.
pub const CSV_HEADER: &str =
    "nick,address,first_join,last_leave,minutes_present,messages_sent,on_roster,status";

/// The attendance as CSV (RFC 4180: CRLF line ends, a header line).
/// Addresses are separated by spaces in one field; `last_leave` is empty
/// for a student still here (or who never came), `first_join` for one who
/// never came; `on_roster` is `yes` or `no`; `status` is `present`, `late`
/// or `absent`.
pub fn csv(records: &[AttendanceRecord], started: SystemTime) -> String {
    let mut out = String::new();
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for r in records {
        let addresses: Vec<String> = r.addresses.iter().map(|a| a.to_string()).collect();
        let cells = [
            field(r.nick.as_str()),
            field(&addresses.join(" ")),
            r.first_join.map(|t| wall(started, t)).unwrap_or_default(),
            r.last_leave
                .filter(|_| !r.here)
                .map(|t| wall(started, t))
                .unwrap_or_default(),
            r.minutes().to_string(),
            r.messages.to_string(),
            (if r.on_roster { "yes" } else { "no" }).to_owned(),
            r.status.as_str().to_owned(),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Writes the CSV to `path`, replacing it, readable by the owner only
/// (it holds addresses). A symbolic link is refused.
pub fn save_csv(path: &Path, csv: &str) -> io::Result<()> {
    use std::io::Write as _;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::other(
            "it is a symbolic link; the relay never writes through one",
        ));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(csv.as_bytes())?;
    file.sync_all()
}

/// `/attendance`: present, late and absent, with minutes and messages.
pub fn attendance_text(records: &[AttendanceRecord], started: SystemTime, lang: Lang) -> String {
    let zh = lang == Lang::Zh;
    let count = |p: Presence| records.iter().filter(|r| r.status == p).count();
    let (present, late, absent) = (
        count(Presence::Present),
        count(Presence::Late),
        count(Presence::Absent),
    );
    let mut s = match zh {
        false => format!("attendance: {present} present, {late} late, {absent} absent"),
        true => format!("考勤：{present} 人在场，{late} 人迟到，{absent} 人缺席"),
    };
    for status in [Presence::Present, Presence::Late, Presence::Absent] {
        for r in records.iter().filter(|r| r.status == status) {
            match zh {
                false => {
                    let _ = write!(s, "\n  {:<7} {}", status.as_str(), r.nick);
                }
                true => {
                    let word = match status {
                        Presence::Present => "在场",
                        Presence::Late => "迟到",
                        Presence::Absent => "缺席",
                    };
                    let _ = write!(s, "\n  {word} {}", r.nick);
                }
            }
            let Some(first) = r.first_join else {
                continue;
            };
            let first = wall(started, first);
            let (minutes, messages) = (r.minutes(), r.messages);
            if zh {
                let _ = write!(
                    s,
                    " 首次加入 {first}，{minutes} 分钟，{messages} 条消息，{}{}",
                    if r.here { "仍在" } else { "已离开" },
                    if r.on_roster {
                        ""
                    } else {
                        "（不在名单上）"
                    },
                );
            } else {
                let _ = write!(
                    s,
                    " first joined {first}, {minutes} min, {messages} message{}{}{}",
                    if messages == 1 { "" } else { "s" },
                    if r.here { ", here now" } else { ", gone" },
                    if r.on_roster {
                        ""
                    } else {
                        " (not on the roster)"
                    },
                );
            }
        }
    }
    s
}

/// `/hands`: the queue, first in line first.
pub fn hands_text(hands: &[RaisedHand], lang: Lang) -> String {
    let n = hands.len();
    let mut s = match (n, lang) {
        (0, Lang::En) => return "no hands up".to_owned(),
        (0, Lang::Zh) => return "没有人举手".to_owned(),
        (1, Lang::En) => "1 hand up".to_owned(),
        (_, Lang::En) => format!("{n} hands up"),
        (_, Lang::Zh) => format!("{n} 人举手"),
    };
    for (i, hand) in hands.iter().enumerate() {
        let _ = write!(s, "\n  {}. {} ({})", i + 1, hand.nick, hand.addr);
        if let Some(q) = &hand.question {
            let _ = write!(s, ": {q}");
        }
    }
    s
}

/// `/next`'s answer.
pub fn called_text(hand: Option<&RaisedHand>, left: usize, lang: Lang) -> String {
    let Some(hand) = hand else {
        return hands_text(&[], lang);
    };
    let question = hand
        .question
        .as_ref()
        .map(|q| format!(": {q}"))
        .unwrap_or_default();
    match lang {
        Lang::En => format!("calling on {}{question} ({left} still waiting)", hand.nick),
        Lang::Zh => format!("请 {} 发言{question}（还有 {left} 人在等）", hand.nick),
    }
}

/// `/who`: nickname, address, dialect, joined at, idle.
pub fn who_text(members: &[WhoEntry], started: SystemTime, lang: Lang) -> String {
    let n = members.len();
    let mut s = match (n, lang) {
        (1, Lang::En) => "1 member".to_owned(),
        (_, Lang::En) => format!("{n} members"),
        (_, Lang::Zh) => format!("{n} 名成员"),
    };
    for m in members {
        let dialect = match (m.dialect, lang) {
            (Dialect::Classic(_), Lang::En) => "classic",
            (Dialect::Structured, Lang::En) => "structured",
            (Dialect::Classic(_), Lang::Zh) => "经典",
            (Dialect::Structured, Lang::Zh) => "结构化",
        };
        let (joined, idle) = (wall(started, m.joined_at), m.idle.as_secs());
        let _ = match lang {
            Lang::En => write!(
                s,
                "\n  {} {} {dialect} joined {joined} idle {idle}s",
                m.nick, m.addr
            ),
            Lang::Zh => write!(
                s,
                "\n  {} {} {dialect} 加入于 {joined} 空闲 {idle} 秒",
                m.nick, m.addr
            ),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    fn record(name: &str) -> AttendanceRecord {
        AttendanceRecord {
            nick: nick(name),
            status: Presence::Present,
            on_roster: true,
            here: false,
            addresses: vec!["127.0.0.1:5000".parse().unwrap()],
            first_join: Some(Duration::from_secs(60)),
            last_leave: Some(Duration::from_secs(60 + 45 * 60)),
            present: Duration::from_secs(45 * 60 + 59),
            messages: 3,
        }
    }

    #[test]
    fn csv_has_a_header_crlf_lines_and_wall_clock_times() {
        let started = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let mut here = record("小明");
        here.here = true;
        here.status = Presence::Late;
        here.on_roster = false;
        here.addresses.push("[::1]:7".parse().unwrap());
        let mut absent = record("carol");
        absent.status = Presence::Absent;
        absent.addresses.clear();
        absent.first_join = None;
        absent.last_leave = None;
        absent.present = Duration::ZERO;
        absent.messages = 0;
        let csv = csv(&[record("alice"), here, absent], started);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "alice,127.0.0.1:5000,2026-11-30T00:54:20.000Z,2026-11-30T01:39:20.000Z,45,3,yes,present"
        );
        assert_eq!(
            lines[2],
            "小明,127.0.0.1:5000 [::1]:7,2026-11-30T00:54:20.000Z,,45,3,no,late"
        );
        assert_eq!(lines[3], "carol,,,,0,0,yes,absent");
        assert_eq!(lines[4], "");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn csv_fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\r\nlines"), "\"two\r\nlines\"");
        assert_eq!(field(" padded"), "\" padded\"");
    }

    #[test]
    fn roster_skips_blanks_and_comments_and_names_a_bad_line() {
        let names = parse_roster("# class 3B\nalice\n\n  Bob  \r\n小明\n").unwrap();
        let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["alice", "Bob", "小明"]);
        let err = parse_roster("alice\nbob smith\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert_eq!(err.1, "bob smith");
    }

    #[test]
    fn csv_is_saved_private_and_replaced() {
        let dir = std::env::temp_dir().join(format!("udpchat-att-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("att.csv");
        save_csv(&path, "long first version\r\n").unwrap();
        save_csv(&path, "short\r\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short\r\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        #[cfg(unix)]
        {
            let link = dir.join("link.csv");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&path, &link).unwrap();
            assert!(save_csv(&link, "x").is_err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn console_texts_name_everyone() {
        let started = UNIX_EPOCH;
        let mut late = record("bob");
        late.status = Presence::Late;
        let text = attendance_text(&[record("alice"), late.clone()], started, Lang::En);
        assert!(
            text.starts_with("attendance: 1 present, 1 late, 0 absent"),
            "{text}"
        );
        assert!(text.contains("present alice first joined 1970-01-01T00:01:00.000Z, 45 min"));
        assert!(text.contains("late    bob"));
        let hand = RaisedHand {
            nick: nick("alice"),
            addr: "127.0.0.1:9".parse().unwrap(),
            question: Some(udpchat_proto::Text::new("why?").unwrap()),
            raised_at: Duration::ZERO,
        };
        assert_eq!(hands_text(&[], Lang::En), "no hands up");
        assert_eq!(hands_text(&[], Lang::Zh), "没有人举手");
        assert_eq!(
            hands_text(std::slice::from_ref(&hand), Lang::En),
            "1 hand up\n  1. alice (127.0.0.1:9): why?"
        );
        assert_eq!(
            called_text(Some(&hand), 2, Lang::En),
            "calling on alice: why? (2 still waiting)"
        );
        assert_eq!(
            called_text(Some(&hand), 2, Lang::Zh),
            "请 alice 发言: why?（还有 2 人在等）"
        );
        let zh = attendance_text(&[record("alice"), late], started, Lang::Zh);
        assert!(zh.starts_with("考勤：1 人在场，1 人迟到，0 人缺席"), "{zh}");
        assert!(zh.contains("迟到 bob 首次加入"), "{zh}");
    }
}
