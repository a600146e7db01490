//! The client under test as a child process: its command with the kit's
//! address filled in, a stdin pipe the kit types lines into, its stdout
//! (and stderr, for the evidence when it exits early) captured by
//! threads, and always killed (by its PID) and reaped when the check ends.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// The environment variable that carries the kit's address, `HOST:PORT`.
pub const RELAY_ENV: &str = "UDPCHAT_RELAY";

/// `arg` with `{addr}` (`HOST:PORT`), `{host}` and `{port}` replaced.
pub fn substitute(arg: &str, addr: SocketAddr) -> String {
    let host = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    arg.replace("{addr}", &addr.to_string())
        .replace("{host}", &host)
        .replace("{port}", &addr.port().to_string())
}

/// A running client under test.
pub struct ChildClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Copies everything `from` yields into `into` (at most 1 MiB: a client
/// that prints without end cannot fill the kit's memory).
fn capture(mut from: impl Read + Send + 'static, into: &Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    let into = Arc::clone(into);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut all) = into.lock() {
                if all.len() < 1 << 20 {
                    all.extend_from_slice(&buf[..n]);
                }
            }
        }
    })
}

impl ChildClient {
    /// Starts `command` (program and arguments) for the kit at `addr`.
    pub fn start(command: &[String], addr: SocketAddr) -> std::io::Result<ChildClient> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| std::io::Error::other("no command given"))?;
        let mut child = Command::new(substitute(program, addr))
            .args(args.iter().map(|a| substitute(a, addr)))
            .env(RELAY_ENV, addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        log::debug!("started the client, PID {}", child.id());
        let stdin = child.stdin.take();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(capture(out, &stdout));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(capture(err, &stderr));
        }
        Ok(ChildClient {
            child,
            stdin,
            stdout,
            stderr,
            readers,
        })
    }

    /// Types `line` and a newline into the client's stdin. A client that
    /// stopped reading is not an error here: the check sees its silence.
    pub fn type_line(&mut self, line: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            let mut bytes = line.to_vec();
            bytes.push(b'\n');
            if let Err(e) = stdin.write_all(&bytes).and_then(|()| stdin.flush()) {
                log::debug!("the client's stdin: {e}");
            }
        }
    }

    /// Everything the client printed on stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Whether the client has exited (and with what status, if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// If the client has exited: its status and the last line it wrote
    /// on stderr, as a clause for a failure's evidence (e.g. `; the client
    /// had exited (exit status: 2), saying "..."`).
    pub fn exit_note(&mut self) -> String {
        let Some(status) = self.exited() else {
            return String::new();
        };
        let err = self.stderr.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&err);
        match text.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => format!(
                "; the client had exited ({status}), saying {}",
                crate::probe::show_bytes(last.as_bytes(), 160)
            ),
            None => format!("; the client had exited ({status})"),
        }
    }
}

impl Drop for ChildClient {
    /// Kills the client by its PID and reaps it: no check leaves one behind.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Err(e) = self.child.kill() {
            log::debug!("kill PID {}: {e}", self.child.id());
        }
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            // The pipes close with the client (or with a grandchild that
            // kept them open: then the thread ends when that one does).
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_the_kits_address() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(substitute("--relay={addr}", addr), "--relay=127.0.0.1:4000");
        assert_eq!(substitute("{host} {port}", addr), "127.0.0.1 4000");
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(substitute("{host}:{port}", v6), "[::1]:4000");
        assert_eq!(substitute("plain", addr), "plain");
    }
}
