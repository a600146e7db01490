//! The real `udpchat-relay` as a child process.

use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::process::send_signal;
use super::{Lines, WAIT};

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
    /// Everything the relay printed on stdout (the `listening` line first).
    pub stdout: Lines,
    /// Its log.
    pub stderr: Lines,
    /// How far [`Relay::expect_stdout`] has read.
    read: Cell<usize>,
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
        Self::start_with_env(args, console, &[])
    }

    /// Like [`Relay::start`] (or, with `console`, [`Relay::start_with_console`])
    /// with these environment variables set too (e.g. `TZ`).
    pub fn start_with_env(args: &[&str], console: bool, env: &[(&str, &str)]) -> Relay {
        let mut all: Vec<&str> = Vec::new();
        if !args.contains(&"--bind") {
            all.extend(["--bind", "127.0.0.1:0"]);
        }
        all.extend(args);
        let mut child = Command::new(RELAY_BIN)
            .args(&all)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
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
        let stdout = Lines::read(child.stdout.take().expect("stdout is piped"));
        let stderr = Lines::read(child.stderr.take().expect("stderr is piped"));
        let mut relay = Relay {
            child,
            // Replaced below once the relay says where it listens.
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdin,
            stdout,
            stderr,
            read: Cell::new(0),
        };
        let deadline = Instant::now() + WAIT;
        while relay.stdout.len() == 0 {
            assert!(
                Instant::now() < deadline && relay.is_running(),
                "relay printed no address within {WAIT:?} (args {all:?}); stderr:\n{}",
                relay.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
        let first = relay.stdout.all().remove(0);
        relay.read.set(1);
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
    /// is true; returns it. Panics after [`WAIT`], listing the lines seen.
    /// Lines before the last one found are not searched again.
    pub fn expect_stdout(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let (i, line) = self.stdout.wait_from(self.read.get(), what, want);
        self.read.set(i + 1);
        line
    }

    /// Everything the relay wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits up to [`WAIT`] for stderr to contain `needle`; returns all of stderr.
    pub fn expect_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() > deadline {
                panic!("stderr never contained {needle:?} within {WAIT:?}; stderr:\n{log}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the relay (no goodbye: like a crash or a pulled plug).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    /// and waits up to [`WAIT`] for the exit status. Unix only.
    #[cfg(unix)]
    pub fn signal(&mut self, name: &str) -> ExitStatus {
        send_signal(self.child.id(), name);
        self.wait_exit(WAIT).unwrap_or_else(|| {
            panic!(
                "relay did not exit within {WAIT:?} of SIG{name}; stderr:\n{}",
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
        self.kill();
    }
}

/// Runs the relay with `args` (nothing added), expecting it to exit by
/// itself within [`WAIT`]; returns (status, stdout, stderr).
pub fn run_relay_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(RELAY_BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start udpchat-relay");
    let stdout = Lines::read(child.stdout.take().expect("piped"));
    let stderr = Lines::read(child.stderr.take().expect("piped"));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("relay {args:?} did not exit within {WAIT:?}");
            }
        }
    };
    // The reader threads finish at end of file, right after exit.
    thread::sleep(Duration::from_millis(100));
    (status, stdout.text(), stderr.text())
}
