//! Process and file helpers: signals (with the `kill` utility, so no extra
//! crate), memory, temporary files, polling.

use std::net::UdpSocket;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::WAIT;

/// Sends signal `name` (`"TERM"`, `"INT"`, `"KILL"`) to `pid`, without
/// waiting for it to act. Unix only.
pub fn send_signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// `SIGKILL` to `pid`: a crash, no goodbye.
pub fn kill_9(pid: u32) {
    send_signal(pid, "KILL");
}

/// `SIGTERM` to `pid`, without waiting.
pub fn kill_term(pid: u32) {
    send_signal(pid, "TERM");
}

/// The resident set size of process `pid` in KiB (Linux /proc), if known.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Whether this machine can use IPv6 loopback (`::1`).
pub fn ipv6_loopback_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// Waits until `cond` holds or [`WAIT`] passes; returns whether it held.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A fresh path in the system temp directory for a test file; removed on drop.
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    /// A path unique to this process, this call and `name` (tests run in
    /// parallel threads of one process).
    pub fn new(name: &str) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let path = std::env::temp_dir().join(format!("udpchat-test-{pid}-{n}-{name}"));
        let _ = std::fs::remove_file(&path);
        TempFile(path)
    }

    /// The path as a &str for command lines.
    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh, empty directory for one client's resume state (`--state-dir`,
/// `UDPCHAT_STATE_DIR`), so no test touches the real home's data directory.
/// Removed (with what is in it) on drop.
pub fn fresh_state_dir(name: &str) -> TempDir {
    let dir = TempDir(TempFile::new(name).0.clone());
    let _ = std::fs::remove_dir_all(&dir.0);
    dir
}

/// A temporary directory, removed with its contents on drop.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
