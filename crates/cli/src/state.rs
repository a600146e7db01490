//! The resume state file: the relay's resume token and the last room event
//! shown, saved so that a new process (after `kill -9`, a closed terminal, a
//! crash) takes its nickname back at once and gets only what it missed.
//!
//! One small file per relay address and nickname, in the user's data
//! directory: `--state-dir`/`UDPCHAT_STATE_DIR` if given, else
//! `$XDG_DATA_HOME/udpchat` or `~/.local/share/udpchat` (Linux and other
//! Unix), `~/Library/Application Support/udpchat` (macOS),
//! `%APPDATA%\udpchat` (Windows). Found with `std` only: the rules are three
//! environment variables, not worth a dependency. On Unix the directory is
//! 0700 and the file 0600 (the token lets its holder take the nickname).
//! Nothing here may stop the client: a missing, unreadable or unwritable
//! directory only means no resume.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use udpchat_proto::{Nick, Token};

use crate::session::ResumeState;

/// Least time between two writes that only advance `since`.
const WRITE_EVERY: Duration = Duration::from_millis(200);

const MAGIC: &str = "udpchat-resume 1";

/// The platform's data directory for udpchat, if one can be named.
pub fn data_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return Some(dir.to_owned());
    }
    let env_dir = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = if cfg!(windows) {
        env_dir("APPDATA")
    } else if cfg!(target_os = "macos") {
        env_dir("HOME").map(|h| h.join("Library").join("Application Support"))
    } else {
        env_dir("XDG_DATA_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".local").join("share")))
    };
    Some(base?.join("udpchat"))
}

/// The resume file of one relay and nickname.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    relay: String,
    nick: String,
    saved: Option<ResumeState>,
    written: Option<Instant>,
}

impl StateFile {
    pub fn new(dir: &Path, relay: &str, nick: &Nick) -> StateFile {
        let nick = nick.key();
        let name = format!(
            "resume-{:016x}",
            fnv1a(&[relay.as_bytes(), b"\0", nick.as_bytes()])
        );
        StateFile {
            path: dir.join(name),
            relay: relay.to_owned(),
            nick,
            saved: None,
            written: None,
        }
    }

    /// The saved state, if the file is there, readable, and for this relay
    /// and nickname.
    pub fn load(&mut self) -> Option<ResumeState> {
        let text = fs::read_to_string(&self.path).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MAGIC || lines.next()? != self.relay || lines.next()? != self.nick {
            return None;
        }
        let (token, since) = lines.next()?.split_once(' ')?;
        let state = ResumeState {
            token: Token::new(token).ok()?,
            since: match since {
                "-" => None,
                n => Some(n.parse().ok()?),
            },
        };
        self.saved = Some(state.clone());
        Some(state)
    }

    /// Saves `state` if it changed: at once for a new token, at most every
    /// [`WRITE_EVERY`] for a newer `since`. Failures are logged only.
    pub fn save(&mut self, now: Instant, state: &ResumeState) {
        if self.saved.as_ref() == Some(state) {
            return;
        }
        let new_token = self.saved.as_ref().map(|s| &s.token) != Some(&state.token);
        if !new_token && self.written.is_some_and(|t| now < t + WRITE_EVERY) {
            return;
        }
        match self.write(state) {
            Ok(()) => {
                self.saved = Some(state.clone());
                self.written = Some(now);
            }
            Err(e) => {
                log::debug!("cannot save {}: {e}", self.path.display());
                // Do not try again for every datagram.
                self.saved = Some(state.clone());
                self.written = Some(now);
            }
        }
    }

    fn write(&self, state: &ResumeState) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let since = state
            .since
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        let text = format!(
            "{MAGIC}\n{}\n{}\n{} {since}\n",
            self.relay, self.nick, state.token
        );
        // Write a temporary file, then rename: a crash never leaves half a file.
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        {
            let mut file = open_private(&tmp)?;
            file.write_all(text.as_bytes())?;
        }
        fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

fn open_private(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// FNV-1a, 64 bits: a file name that stays the same across Rust versions.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(since: Option<u64>) -> ResumeState {
        ResumeState {
            token: Token::new("0123456789abcdef0123456789abcdef").unwrap(),
            since,
        }
    }

    #[test]
    fn saves_and_loads_per_relay_and_nick_privately() {
        let dir = std::env::temp_dir().join(format!("udpchat-state-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let nick = Nick::new("Alice").unwrap();
        let mut file = StateFile::new(&dir, "127.0.0.1:10024", &nick);
        assert_eq!(file.load(), None);
        let now = Instant::now();
        file.save(now, &state(Some(7)));
        let mut again = StateFile::new(&dir, "127.0.0.1:10024", &Nick::new("alice").unwrap());
        assert_eq!(again.load(), Some(state(Some(7))));
        // Another relay or nickname has its own file.
        assert_eq!(StateFile::new(&dir, "127.0.0.1:10025", &nick).load(), None);
        assert_eq!(
            StateFile::new(&dir, "127.0.0.1:10024", &Nick::new("bob").unwrap()).load(),
            None
        );
        // A newer `since` waits a moment; then it is written.
        file.save(now, &state(Some(8)));
        assert_eq!(again.load(), Some(state(Some(7))));
        file.save(now + WRITE_EVERY, &state(Some(9)));
        assert_eq!(again.load(), Some(state(Some(9))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&file.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    #[cfg(target_os = "linux")] // /proc cannot hold a new directory
    fn an_unwritable_directory_is_not_an_error() {
        let mut file = StateFile::new(
            Path::new("/proc/udpchat-cannot-exist"),
            "r",
            &Nick::new("a").unwrap(),
        );
        file.save(Instant::now(), &state(None));
        assert_eq!(file.load(), None);
    }
}
