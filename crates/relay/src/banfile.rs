//! `--ban-file FILE`: the host's bans kept across restarts. The room's
//! clock is relative, so the file holds absolute end times (seconds since
//! the Unix epoch) and this module converts both ways.
//!
//! Format: one ban per line, fields separated by one space; `#` starts a
//! comment line:
//!
//! ```text
//! # ip end nick reason
//! 192.168.1.23 1796553600 alice shouting in class
//! 192.168.1.40 - -
//! ```
//!
//! `end` is `-` for a ban until lifted, `nick` is `-` for a ban made by
//! address; the reason runs to the end of the line (may be empty). The file
//! is rewritten whole (to a temporary file, then renamed) after every
//! change, and read once at start; bans that have ended are dropped.

use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use udpchat_proto::Nick;
use udpchat_room::BanInfo;

/// One ban read from the file, with the time it has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBan {
    /// The banned address.
    pub ip: IpAddr,
    /// The nickname it was made for, if any.
    pub nick: Option<Nick>,
    /// The host's reason.
    pub reason: String,
    /// Time left; `None`: until lifted.
    pub left: Option<Duration>,
}

/// Why the ban file could not be read. The text is what the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum BanFileError {
    /// The file exists but cannot be read.
    #[error("cannot read ban file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A line is not `IP END NICK REASON`.
    #[error("ban file {}, line {line}: expected \"IP END NICK [REASON]\" (END: seconds since 1970 or -, NICK: a nickname or -)", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Its line number (from 1).
        line: usize,
    },
}

/// Reads the bans still in force at `now` from `path`; a missing file has
/// none.
pub fn load(path: &Path, now: SystemTime) -> Result<Vec<SavedBan>, BanFileError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(BanFileError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    parse(&text, now).map_err(|line| BanFileError::Syntax {
        path: path.to_owned(),
        line,
    })
}

/// Parses the file's text; `Err(line number)` for a bad line.
fn parse(text: &str, now: SystemTime) -> Result<Vec<SavedBan>, usize> {
    let now_secs = unix_secs(now);
    let mut bans = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(4, ' ');
        let (Some(ip), Some(end), Some(nick)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(i + 1);
        };
        let reason = fields.next().unwrap_or("").trim().to_owned();
        let ip: IpAddr = ip.parse().map_err(|_| i + 1)?;
        let left = match end {
            "-" => None,
            secs => {
                let end: u64 = secs.parse().map_err(|_| i + 1)?;
                if end <= now_secs {
                    continue; // over
                }
                Some(Duration::from_secs(end - now_secs))
            }
        };
        let nick = match nick {
            "-" => None,
            nick => Some(Nick::new(nick).map_err(|_| i + 1)?),
        };
        bans.push(SavedBan {
            ip,
            nick,
            reason,
            left,
        });
    }
    Ok(bans)
}

/// The file's text for `bans` as listed at `now`.
fn render(bans: &[BanInfo], now: SystemTime) -> String {
    let now_secs = unix_secs(now);
    let mut text =
        String::from("# udpchat-relay bans: ip end(unix seconds or -) nick(or -) reason\n");
    for ban in bans {
        let end = match ban.left {
            // Rounded up: a ban never ends early by a restart.
            Some(left) => (now_secs + left.as_millis().div_ceil(1000) as u64).to_string(),
            None => "-".to_owned(),
        };
        let nick = ban.nick.as_ref().map_or("-", Nick::as_str);
        let reason: String = ban.reason.chars().filter(|c| !c.is_control()).collect();
        text.push_str(&format!("{} {end} {nick} {reason}\n", ban.ip));
    }
    text
}

/// Writes `bans` to `path` (a temporary file renamed over it, so a crash
/// leaves the old file or the new one, never half of one).
pub fn save(path: &Path, bans: &[BanInfo], now: SystemTime) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(render(bans, now).as_bytes())?;
        file.sync_data()?;
    }
    fs::rename(&tmp, path)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_round_trip_with_absolute_end_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let bans = vec![
            BanInfo {
                ip: "10.0.0.1".parse().unwrap(),
                nick: Some(Nick::new("alice").unwrap()),
                reason: "shouting in class".into(),
                left: Some(Duration::from_secs(600)),
            },
            BanInfo {
                ip: "::1".parse().unwrap(),
                nick: None,
                reason: String::new(),
                left: None,
            },
        ];
        let text = render(&bans, now);
        assert!(
            text.contains("\n10.0.0.1 1000600 alice shouting in class\n"),
            "{text}"
        );
        // Read back 100 s later: 500 s left.
        let later = now + Duration::from_secs(100);
        let read = parse(&text, later).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].left, Some(Duration::from_secs(500)));
        assert_eq!(read[0].reason, "shouting in class");
        assert_eq!(read[1].left, None);
        assert_eq!(read[1].nick, None);
        // After the end the ban is gone.
        let read = parse(&text, now + Duration::from_secs(601)).unwrap();
        assert_eq!(read.len(), 1);
    }

    #[test]
    fn bad_lines_name_their_number() {
        let now = UNIX_EPOCH;
        assert_eq!(parse("# c\n10.0.0.1 - -\nnonsense\n", now), Err(3));
        assert_eq!(parse("10.0.0.1 soon - x\n", now), Err(1));
    }
}
