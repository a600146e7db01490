//! The real `udpchat` client as a child process, in piped mode (stdin a
//! pipe, every line printed collected).

use std::io::Write;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Lines, WAIT};

/// The path of the client binary cargo built for these tests.
pub const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_udpchat");

/// A running `udpchat` in piped mode.
pub struct Client {
    child: Child,
    /// The resume-state directory this client owns (removed on drop).
    owned_state: Option<super::process::TempDir>,
    pub stdout: Lines,
    pub stderr: Lines,
    stdin: Option<ChildStdin>,
}

impl Client {
    /// Starts `udpchat --relay addr --nick nick` with piped stdin.
    pub fn start(relay: &str, nick: Option<&str>) -> Client {
        Client::start_with(relay, nick, &[])
    }

    /// Starts `udpchat --relay addr --nick nick EXTRA...` with piped stdin.
    /// Its resume state goes to a temporary directory of its own.
    pub fn start_with(relay: &str, nick: Option<&str>, extra: &[&str]) -> Client {
        let dir = super::process::fresh_state_dir("state");
        let mut client = Client::start_in(relay, nick, extra, &dir.0);
        client.owned_state = Some(dir);
        client
    }

    /// Like [`Client::start_with`], keeping its resume state in `state_dir`
    /// (a restarted client given the same one resumes its membership).
    pub fn start_in(
        relay: &str,
        nick: Option<&str>,
        extra: &[&str],
        state_dir: &std::path::Path,
    ) -> Client {
        let mut cmd = Command::new(CLIENT_BIN);
        cmd.env("UDPCHAT_STATE_DIR", state_dir);
        Client::spawn(cmd, relay, nick, extra)
    }

    /// Starts `cmd` (a client program, possibly behind a runner such as
    /// wine, its environment already set) with `--relay relay [--nick
    /// nick] EXTRA...` and piped stdin.
    pub fn spawn(mut cmd: Command, relay: &str, nick: Option<&str>, extra: &[&str]) -> Client {
        cmd.arg("--relay").arg(relay).args(extra);
        if let Some(nick) = nick {
            cmd.arg("--nick").arg(nick);
        }
        let mut child = cmd
            .env_remove("UDPCHAT_RELAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = Lines::read(child.stdout.take().expect("stdout is piped"));
        let stderr = Lines::read(child.stderr.take().expect("stderr is piped"));
        let stdin = child.stdin.take();
        Client {
            child,
            owned_state: None,
            stdout,
            stderr,
            stdin,
        }
    }

    /// Starts a client and waits until it has joined (its own JOIN shows).
    pub fn joined(relay: &str, nick: &str) -> Client {
        Client::joined_with(relay, nick, &[])
    }

    /// Like [`Client::joined`], with extra arguments.
    pub fn joined_with(relay: &str, nick: &str, extra: &[&str]) -> Client {
        let client = Client::start_with(relay, Some(nick), extra);
        client.until_shown(&format!("* {nick} joined"))
    }

    /// Waits until a line containing `want` shows (panics if the client
    /// exits first or [`WAIT`] passes).
    pub fn until_shown(mut self, want: &str) -> Client {
        let nick = want;
        let deadline = Instant::now() + WAIT;
        while !self.stdout.all().iter().any(|l| l.contains(want)) {
            let exited = self.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{nick:?} did not show ({exited:?}); stdout {:#?} stderr {:#?}",
                self.stdout.all(),
                self.stderr.all()
            );
            thread::sleep(Duration::from_millis(20));
        }
        self
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types one line.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to udpchat");
        stdin.flush().expect("flush to udpchat");
    }

    /// Closes stdin (end of input).
    pub fn close(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(WAIT)
    }

    /// Waits up to `wait` for the process to exit (panics after).
    pub fn wait_exit_within(&mut self, wait: Duration) -> ExitStatus {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "udpchat did not exit; stdout {:#?} stderr {:#?}",
                self.stdout.all(),
                self.stderr.all()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
