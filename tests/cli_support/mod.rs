//! Helpers for the client's end-to-end tests: start the real `udpchat` and
//! `udpchat-relay` binaries on loopback, read their output with timeouts,
//! and kill them on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Generous: the machine is slow and shared; waits end early on success.
pub const WAIT: Duration = Duration::from_secs(20);

/// Lines a child printed, collected by a background thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(self, stream: impl std::io::Read + Send + 'static) {
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&raw)
                            .trim_end_matches(['\n', '\r'])
                            .to_owned();
                        self.0.lock().unwrap().push(line);
                    }
                }
            }
        });
    }

    /// Everything so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a line satisfies `pred`; returns it.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.all().into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:#?}",
                self.all()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until some line contains `needle`.
    pub fn wait_contains(&self, needle: &str) -> String {
        self.wait_for(needle, |l| l.contains(needle))
    }
}

/// A running `udpchat-relay`.
pub struct Relay {
    child: Child,
    pub addr: SocketAddr,
    pub stdout: Lines,
    stdin: Option<ChildStdin>,
}

impl Relay {
    /// Starts a relay on 127.0.0.1:0 (or `bind`) and reads its address.
    pub fn start(bind: &str, extra: &[&str]) -> Relay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_udpchat-relay"))
            .arg("--bind")
            .arg(bind)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start udpchat-relay");
        let stdin = child.stdin.take();
        let stdout = Lines::default();
        stdout
            .clone()
            .collect(child.stdout.take().expect("relay stdout"));
        let mut relay = Relay {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            stdout,
            stdin,
        };
        let line = relay.stdout.wait_contains("udpchat-relay listening on ");
        relay.addr = line
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bad address line {line:?}"));
        relay
    }

    /// Kills the relay (no goodbye: like a crash or a pulled plug).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the relay politely (SIGTERM: it says BYE to everyone) and
    /// waits for it to exit.
    #[cfg(unix)]
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "relay ignored SIGTERM");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types a line at the relay's operator console.
    pub fn console(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `udpchat` in piped mode.
pub struct Client {
    child: Child,
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
    pub fn start_with(relay: &str, nick: Option<&str>, extra: &[&str]) -> Client {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_udpchat"));
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
            .expect("start udpchat");
        let stdout = Lines::default();
        stdout.clone().collect(child.stdout.take().unwrap());
        let stderr = Lines::default();
        stderr.clone().collect(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        Client {
            child,
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
        let mut client = Client::start_with(relay, Some(nick), extra);
        let want = format!("* {nick} joined");
        let deadline = Instant::now() + WAIT;
        while !client.stdout.all().iter().any(|l| l.contains(&want)) {
            let exited = client.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{nick} did not join ({exited:?}); stdout {:#?} stderr {:#?}",
                client.stdout.all(),
                client.stderr.all()
            );
            thread::sleep(Duration::from_millis(20));
        }
        client
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
        let deadline = Instant::now() + WAIT;
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
