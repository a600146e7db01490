//! The real `udpchat` client in piped mode, as a structured victim, and
//! the port its socket is bound to (from /proc, as a spoofer on the LAN
//! would learn it by watching or guessing).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;

/// A running `udpchat --relay R --nick N` with piped stdin; killed on drop.
pub struct RealClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    state_dir: PathBuf,
}

impl RealClient {
    /// Starts the client binary `bin` (its resume state in a fresh
    /// temporary directory).
    pub fn start(bin: &Path, relay: SocketAddr, nick: &str) -> Result<RealClient, Error> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let state_dir = std::env::temp_dir().join(format!(
            "udpchat-hostile-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&state_dir);
        let mut child = Command::new(bin)
            .arg("--relay")
            .arg(relay.to_string())
            .arg("--nick")
            .arg(nick)
            .env("UDPCHAT_STATE_DIR", &state_dir)
            .env_remove("UDPCHAT_RELAY")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("start the udpchat client", e))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        {
            let lines = Arc::clone(&lines);
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().expect("lines lock").push(line);
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(RealClient {
            child,
            stdin,
            lines,
            state_dir,
        })
    }

    /// Everything printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines lock").clone()
    }

    /// Waits up to `timeout` for a printed line containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.lines().iter().any(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types one line.
    pub fn say(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The UDP port of the client's socket (Linux /proc).
    pub fn port(&self) -> Result<u16, Error> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(port) = udp_port_of(self.child.id()) {
                return Ok(port);
            }
            if Instant::now() >= deadline {
                return Err(Error::NoAnswer(
                    "the client's UDP port (in /proc/PID/fd and /proc/net/udp)".to_owned(),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RealClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// The local port of the (first) UDP socket process `pid` holds.
fn udp_port_of(pid: u32) -> Option<u16> {
    let mut inodes = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let Ok(target) = std::fs::read_link(entry.ok()?.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            inodes.push(inode.to_owned());
        }
    }
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && inodes.iter().any(|i| i == fields[9]) {
                let port = fields[1].rsplit(':').next()?;
                return u16::from_str_radix(port, 16).ok();
            }
        }
    }
    None
}
