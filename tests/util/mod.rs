//! Shared helpers for the end-to-end tests in `tests/`: start the real
//! `udpchat-relay` binary and talk to it over loopback UDP.
//!
//! Use from a test file with `mod util; use util::*;`. Not every test file
//! uses every helper, hence the `dead_code` allowance.
//!
//! Rules these helpers enforce, so tests cannot hang or leak processes:
//! - every wait has a deadline ([`TIMEOUT`] unless said otherwise) and panics
//!   with what was seen instead of hanging;
//! - a started relay is killed when its [`Relay`] is dropped (also when the
//!   test panics);
//! - traffic goes only to loopback addresses.
//!
//! Typical use:
//! ```ignore
//! let relay = Relay::start(&[]);                  // --bind 127.0.0.1:0 is added
//! let alice = Client::new(relay.addr);
//! alice.send("N alice");
//! assert_eq!(alice.recv_text(), "OK");
//! ```
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, Nick, RelayMsg, Token, MAX_DATAGRAM, VERSION};

/// The default deadline for anything a test waits for. Generous: the
/// machine may be slow and busy; a passing test never waits this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The path of the relay binary cargo built for these tests.
pub const RELAY_BIN: &str = env!("CARGO_BIN_EXE_udpchat-relay");

/// The exact first line the relay prints on stdout, before the address.
pub const LISTENING_PREFIX: &str = "udpchat-relay listening on ";

/// A running `udpchat-relay` child process. Killed on drop.
pub struct Relay {
    child: Child,
    /// The address the relay bound (parsed from its first stdout line).
    pub addr: SocketAddr,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Relay {
    /// Starts the relay on `127.0.0.1:0` (unless `args` has a `--bind`) with
    /// `args` added, stdin closed (as under systemd) and `RUST_LOG=info`.
    pub fn start(args: &[&str]) -> Relay {
        Self::start_with(args, false)
    }

    /// Like [`Relay::start`], but with stdin a pipe for the operator console:
    /// see [`Relay::console`] and [`Relay::close_stdin`].
    pub fn start_with_console(args: &[&str]) -> Relay {
        Self::start_with(args, true)
    }

    fn start_with(args: &[&str], console: bool) -> Relay {
        let mut all: Vec<&str> = Vec::new();
        if !args.contains(&"--bind") {
            all.extend(["--bind", "127.0.0.1:0"]);
        }
        all.extend(args);
        let mut child = Command::new(RELAY_BIN)
            .args(&all)
            .env("RUST_LOG", "info")
            .stdin(if console {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start udpchat-relay");
        let stdin = child.stdin.take();
        let stdout = lines_of(child.stdout.take().expect("stdout is piped"));
        let stderr = collect(child.stderr.take().expect("stderr is piped"));
        let mut relay = Relay {
            child,
            // Replaced below once the relay says where it listens.
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdin,
            stdout,
            stderr,
        };
        let first = match relay.stdout.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(_) => panic!(
                "relay printed no address within {TIMEOUT:?} (args {all:?}); stderr:\n{}",
                relay.stderr()
            ),
        };
        let addr = first.strip_prefix(LISTENING_PREFIX).unwrap_or_else(|| {
            panic!("first stdout line is {first:?}, expected {LISTENING_PREFIX:?}ADDR")
        });
        relay.addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad address in {first:?}: {e}"));
        relay
    }

    /// The operator console (the relay's stdin). Panics if the relay was
    /// not started with [`Relay::start_with_console`] or stdin was closed.
    pub fn console(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("relay has no console pipe");
        writeln!(stdin, "{line}").expect("cannot write to the relay's stdin");
        stdin.flush().expect("cannot flush the relay's stdin");
    }

    /// Closes the relay's stdin (end of input on the console).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a stdout line (after the `listening` line) for which `want`
    /// is true; returns it. Panics after [`TIMEOUT`], listing the lines seen.
    pub fn expect_stdout(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "no stdout line {what} within {TIMEOUT:?}; saw {seen:?}; stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// Everything the relay wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits up to [`TIMEOUT`] for stderr to contain `needle`; returns all of stderr.
    pub fn expect_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() > deadline {
                panic!("stderr never contained {needle:?} within {TIMEOUT:?}; stderr:\n{log}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (with the `kill` utility, to need no extra crate) and
    /// waits for the exit status. Unix only.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM")
    }

    /// Sends the signal `name` (e.g. `"INT"`, `"TERM"`) with `kill -NAME`
    /// and waits up to [`TIMEOUT`] for the exit status. Unix only.
    #[cfg(unix)]
    pub fn signal(&mut self, name: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{name} failed");
        self.wait_exit(TIMEOUT).unwrap_or_else(|| {
            panic!(
                "relay did not exit within {TIMEOUT:?} of SIG{name}; stderr:\n{}",
                self.stderr()
            )
        })
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the relay with `args` (nothing added), expecting it to exit by
/// itself within [`TIMEOUT`]; returns (status, stdout, stderr).
pub fn run_relay_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(RELAY_BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start udpchat-relay");
    let stdout = collect(child.stdout.take().expect("piped"));
    let stderr = collect(child.stderr.take().expect("piped"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("relay {args:?} did not exit within {TIMEOUT:?}");
            }
        }
    };
    // The reader threads finish at end of file, right after exit.
    thread::sleep(Duration::from_millis(100));
    let out = stdout.lock().map(|s| s.clone()).unwrap_or_default();
    let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
    (status, out, err)
}

fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }
        }
    });
    text
}

/// A UDP client on loopback talking to one relay.
pub struct Client {
    /// The client's socket (public for tests that need raw access).
    pub socket: UdpSocket,
    /// The relay's address.
    pub relay: SocketAddr,
}

impl Client {
    /// A client on a fresh port of the loopback address of `relay`'s family.
    pub fn new(relay: SocketAddr) -> Client {
        let local: SocketAddr = if relay.is_ipv6() {
            "[::1]:0".parse().expect("valid")
        } else {
            "127.0.0.1:0".parse().expect("valid")
        };
        let socket = UdpSocket::bind(local).expect("cannot bind a client socket");
        Client { socket, relay }
    }

    /// This client's address, as the relay sees it.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound")
    }

    /// Sends one datagram to the relay.
    pub fn send(&self, bytes: impl AsRef<[u8]>) {
        self.socket
            .send_to(bytes.as_ref(), self.relay)
            .expect("send to relay");
    }

    /// Receives one datagram from the relay within `timeout`, reading with a
    /// 1024-byte buffer as classic clients do. Datagrams from other
    /// addresses are ignored. Panics if one is longer than 1024 bytes.
    pub fn try_recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        // One byte more than allowed, to notice (not silently cut) an
        // over-long datagram.
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket
                .set_read_timeout(Some(left))
                .expect("set timeout");
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) if from == self.relay => {
                    assert!(
                        n <= MAX_DATAGRAM,
                        "relay sent a datagram over {MAX_DATAGRAM} bytes"
                    );
                    return Some(buf[..n].to_vec());
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // An ICMP error from an earlier send (e.g. the relay exited).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    /// Receives one datagram within [`TIMEOUT`] or panics.
    pub fn recv(&self) -> Vec<u8> {
        self.try_recv(TIMEOUT)
            .unwrap_or_else(|| panic!("{} received nothing within {TIMEOUT:?}", self.addr()))
    }

    /// Receives one datagram as text (must be valid UTF-8), exactly as sent
    /// (a trailing newline is kept).
    pub fn recv_text(&self) -> String {
        String::from_utf8(self.recv()).expect("relay sent invalid UTF-8")
    }

    /// Receives datagrams until one, as text, satisfies `want`; returns it.
    /// Panics after [`TIMEOUT`], listing what was skipped.
    pub fn recv_until(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_recv(left) {
                Some(bytes) => {
                    let text = String::from_utf8(bytes).expect("relay sent invalid UTF-8");
                    if want(&text) {
                        return text;
                    }
                    seen.push(text);
                }
                None => panic!(
                    "{} never received {what} within {TIMEOUT:?}; saw {seen:?}",
                    self.addr()
                ),
            }
        }
    }

    /// Sends `nudge` once a second until `line` arrives (within three
    /// times [`TIMEOUT`]).
    ///
    /// For waiting on an ICMP port-unreachable report: Linux rate-limits the
    /// ICMP errors it sends to one host (here every test shares 127.0.0.1),
    /// so the first send to a closed port may draw no error at all. Each
    /// nudge makes the relay send to the dead port again.
    pub fn nudge_until(&self, nudge: &str, line: &str) {
        let deadline = Instant::now() + 3 * TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            self.send(nudge);
            let until = Instant::now() + Duration::from_secs(1);
            while let Some(bytes) = self.try_recv(until.saturating_duration_since(Instant::now())) {
                let text = String::from_utf8(bytes).expect("relay sent invalid UTF-8");
                if text == line {
                    return;
                }
                seen.push(text);
            }
        }
        panic!("{} never received {line:?}; saw {seen:?}", self.addr());
    }

    /// Receives datagrams until one equals `line` exactly.
    pub fn expect(&self, line: &str) -> String {
        self.recv_until(&format!("{line:?}"), |t| t == line)
    }

    /// Asserts that nothing arrives for `quiet` (use short, e.g. 300 ms:
    /// this can only prove absence over that window).
    pub fn expect_silence(&self, quiet: Duration) {
        if let Some(bytes) = self.try_recv(quiet) {
            panic!(
                "expected silence, got {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    /// Receives one structured datagram and parses it.
    pub fn recv_msg(&self) -> RelayMsg {
        let bytes = self.recv();
        RelayMsg::parse(&bytes)
            .unwrap_or_else(|e| panic!("unparsable {:?}: {e}", String::from_utf8_lossy(&bytes)))
    }

    /// Receives structured datagrams until one satisfies `want`.
    pub fn recv_msg_until(&self, what: &str, want: impl Fn(&RelayMsg) -> bool) -> RelayMsg {
        let text = self.recv_until(what, |t| {
            RelayMsg::parse(t.as_bytes()).is_ok_and(|m| want(&m))
        });
        RelayMsg::parse(text.as_bytes()).expect("parsed above")
    }

    /// Classic join: sends `N nick` (bare) and expects exactly `OK`.
    pub fn join_classic(&self, nick: &str) {
        self.send(format!("N {nick}"));
        assert_eq!(self.recv_text(), "OK", "classic join of {nick}");
    }

    /// Structured join: the cookie round trip (`HELLO ... -` padded, `COOKIE`,
    /// `HELLO ... <cookie>`), returning the `WELCOME`. Datagrams after the
    /// WELCOME (history, the JOIN event) are left for the caller.
    pub fn join_structured(&self, nick: &str) -> RelayMsg {
        let nick = Nick::new(nick).expect("valid test nick");
        let version = Token::new(VERSION).expect("valid");
        let hello = ClientMsg::Hello {
            version: version.clone(),
            nick: nick.clone(),
            cookie: None,
        };
        self.send(hello.encode());
        let cookie = match self.recv_msg() {
            RelayMsg::Cookie(cookie) => cookie,
            other => panic!("expected COOKIE, got {other:?}"),
        };
        self.send(
            ClientMsg::Hello {
                version,
                nick,
                cookie: Some(cookie),
            }
            .encode(),
        );
        match self.recv_msg() {
            welcome @ RelayMsg::Welcome { .. } => welcome,
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }
}

/// Whether this machine can use IPv6 loopback (`::1`).
pub fn ipv6_loopback_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// Waits until `cond` holds or [`TIMEOUT`] passes; returns whether it held.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
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
    /// A path unique to this process and `name`.
    pub fn new(name: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("udpchat-test-{}-{name}", std::process::id()));
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
