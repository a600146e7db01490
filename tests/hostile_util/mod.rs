//! Helpers shared by the hardening tests (hostile_*, flood_*, transcript_*,
//! loss_*), on top of `tests/util`: a recorder that keeps everything an
//! honest client receives so the test can check it afterwards, the checks
//! every received datagram must pass, and the relay's resident memory.
//!
//! Use with `mod util; mod hostile_util;`.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How an honest client expects its datagrams to end (bare, or one `\n`).
pub use udpchat_proto::LineEnding as Ending;

/// Why a datagram an honest client received is unacceptable, if it is:
/// [`udpchat_proto::check_relay_datagram`], with the datagram quoted.
pub fn check_datagram(bytes: &[u8], ending: Ending) -> Result<(), String> {
    udpchat_proto::check_relay_datagram(bytes, ending)
        .map_err(|fault| format!("{fault}: {:?}", String::from_utf8_lossy(bytes)))
}

/// Everything one socket receives from `relay`, collected by a thread
/// until the recorder is dropped (or [`Recorder::stop`]).
pub struct Recorder {
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Datagrams that came from another address than the relay.
    strangers: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts recording on a clone of `socket`. The caller keeps sending
    /// with its own handle; it must not read from it any more.
    pub fn start(socket: &UdpSocket, relay: SocketAddr) -> Recorder {
        let socket = socket.try_clone().expect("clone socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set timeout");
        let got = Arc::new(Mutex::new(Vec::new()));
        let strangers = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s, st) = (Arc::clone(&got), Arc::clone(&strangers), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            // Bigger than allowed, to see an over-long datagram whole.
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::SeqCst) {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == relay => {
                        g.lock().expect("recorder lock").push(buf[..n].to_vec())
                    }
                    Ok(_) => *s.lock().expect("recorder lock") += 1,
                    Err(_) => {}
                }
            }
        });
        Recorder {
            got,
            strangers,
            stop,
            thread: Some(thread),
        }
    }

    /// A copy of everything received so far, in order.
    pub fn all(&self) -> Vec<Vec<u8>> {
        self.got.lock().expect("recorder lock").clone()
    }

    /// Everything received so far as (lossy) text.
    pub fn texts(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// How many datagrams came from somewhere other than the relay.
    pub fn stray_datagrams(&self) -> u64 {
        *self.strangers.lock().expect("recorder lock")
    }

    /// Waits up to `timeout` until some received datagram, as text,
    /// satisfies `want`.
    pub fn wait_for(&self, timeout: Duration, want: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.texts().iter().any(|t| want(t)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` until `count` datagrams satisfy `want`.
    pub fn wait_count(
        &self,
        timeout: Duration,
        count: usize,
        want: impl Fn(&str) -> bool,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.texts().iter().filter(|t| want(t)).count();
            if n >= count || Instant::now() > deadline {
                return n;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the thread; the recorded datagrams stay readable.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Asserts every datagram received passes [`check_datagram`].
    pub fn assert_clean(&self, who: &str, ending: Ending) {
        for bytes in self.all() {
            if let Err(why) = check_datagram(&bytes, ending) {
                panic!("{who} received a bad datagram: {why}");
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The resident set size of process `pid` in KiB (Linux /proc), if known.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Sends `SIGKILL` to `pid` with the `kill` utility (no extra crate).
pub fn kill_9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -KILL {pid} failed");
}

/// Sends `SIGTERM` to `pid` without waiting.
pub fn kill_term(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// A loopback UDP socket on a fresh port.
pub fn loopback_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}
