//! The relay in a real terminal, under tmux: `udpchat-relay &` typed into
//! an interactive shell must keep running and relaying. It used to read
//! the terminal from the background, and the kernel stopped it (SIGTTIN):
//! `jobs` said "Stopped" and joins timed out.
#![cfg(unix)]

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::process::send_signal;
use crate::support::relay::RELAY_BIN;
use crate::support::{Client, Member, TempFile, Tmux, LISTENING_PREFIX, WAIT};

/// An interactive bash (job control on) in a terminal of its own; killed
/// on drop, with the relay it started.
pub(crate) struct Shell {
    tmux: Tmux,
    pub(crate) relay_pid: Option<u32>,
}

impl Shell {
    /// `name` keeps the tmux servers of tests running in parallel apart.
    pub(crate) fn start(name: &str) -> Shell {
        Shell::start_sized(name, 30)
    }

    /// A shell in a window 120 columns wide and `height` rows high.
    pub(crate) fn start_sized(name: &str, height: u16) -> Shell {
        let tmux = Tmux::start(
            &format!("relay-{name}"),
            120,
            height,
            "env PS1='$ ' HISTFILE=/dev/null RUST_LOG=info bash --norc --noprofile -i",
        );
        Shell {
            tmux,
            relay_pid: None,
        }
    }
}

impl std::ops::Deref for Shell {
    type Target = Tmux;
    fn deref(&self) -> &Tmux {
        &self.tmux
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if let Some(pid) = self.relay_pid {
            if alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

pub(crate) fn tmux_available() -> bool {
    Tmux::available()
        && Command::new("bash")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Whether process `pid` exists (`kill -0`).
pub(crate) fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The process state letter from /proc (Linux): `T` is stopped.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

pub(crate) fn wait_file(path: &std::path::Path, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} in {}; it has:\n{text}",
            path.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn relay_started_with_ampersand_keeps_running_and_relaying() {
    if !tmux_available() {
        eprintln!("skipped: tmux or bash is not installed");
        return;
    }
    let out = TempFile::new("bg-relay-out");
    let pid_file = TempFile::new("bg-relay-pid");
    let mut shell = Shell::start("ampersand");
    // capture-pane drops the prompt's trailing space.
    shell.wait_screen("the shell prompt", |s| {
        s.lines().any(|l| l.trim_end() == "$")
    });
    // stdin stays the terminal: that is the point.
    shell.type_line(&format!(
        "{RELAY_BIN} --bind 127.0.0.1:0 > {} 2>&1 & echo $! > {}",
        out.as_str(),
        pid_file.as_str()
    ));
    let pid: u32 = wait_file(&pid_file.0, "the relay's pid", |t| t.ends_with('\n'))
        .trim()
        .parse()
        .expect("a pid");
    shell.relay_pid = Some(pid);
    let text = wait_file(&out.0, "the listening line", |t| {
        t.lines().any(|l| l.starts_with(LISTENING_PREFIX))
    });
    let addr: std::net::SocketAddr = text
        .lines()
        .find_map(|l| l.strip_prefix(LISTENING_PREFIX))
        .expect("the listening line")
        .parse()
        .expect("an address");

    // The shell goes on reading the terminal; the relay must not be stopped.
    shell.type_line("echo typed-in-the-shell");
    shell.wait_screen("the shell's echo", |s| {
        s.lines().any(|l| l.trim_end() == "typed-in-the-shell")
    });
    thread::sleep(Duration::from_millis(300));
    shell.type_line("jobs");
    let screen = shell.wait_screen("the jobs listing", |s| {
        s.contains("Running") || s.contains("Stopped")
    });
    assert!(
        !screen.contains("Stopped"),
        "the relay was stopped:\n{screen}"
    );
    if let Some(state) = state(pid) {
        assert_ne!(state, 'T', "the relay is stopped");
    }

    // It relays: a raw member and the real client chat through it.
    let alice = Member::new(addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let mut bob = Client::joined(&addr.to_string(), "bob");
    alice.expect("* bob joined");
    bob.say("hello from bob");
    alice.recv_until("bob's message", |l| l == "bob: hello from bob");
    alice.send("M alice hi bob");
    bob.stdout.wait_contains(" alice: hi bob");

    // It said, once, that it has no console.
    let text = std::fs::read_to_string(&out.0).unwrap_or_default();
    let said = text.lines().filter(|l| l.starts_with("no console")).count();
    assert_eq!(said, 1, "{text}");
    assert!(
        text.contains("no console: the relay runs in the background and keeps relaying"),
        "{text}"
    );

    // And it still stops cleanly on SIGTERM.
    send_signal(pid, "TERM");
    let deadline = Instant::now() + WAIT;
    while alive(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "the relay did not exit on SIGTERM");
    shell.relay_pid = None;
    wait_file(&out.0, "the relay's last log line", |t| {
        t.contains("relay stopped")
    });
}

/// The pid of the process whose command line contains `needle` (Linux /proc).
#[cfg(target_os = "linux")]
pub(crate) fn pid_with_arg(needle: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"udpchat-relay"))
            && args.contains(&needle.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

#[cfg(target_os = "linux")]
#[test]
fn relay_moved_to_the_background_with_ctrl_z_and_bg_keeps_relaying_and_fg_brings_the_console_back()
{
    if !tmux_available() {
        eprintln!("skipped: tmux or bash is not installed");
        return;
    }
    let out = TempFile::new("fg-relay-out");
    let transcript = TempFile::new("fg-relay-transcript");
    let mut shell = Shell::start("ctrl-z");
    shell.wait_screen("the shell prompt", |s| {
        s.lines().any(|l| l.trim_end() == "$")
    });
    // In the foreground, stdin the terminal: the relay has its console.
    shell.type_line(&format!(
        "{RELAY_BIN} --bind 127.0.0.1:0 --transcript {} > {} 2>&1",
        transcript.as_str(),
        out.as_str()
    ));
    let text = wait_file(&out.0, "the listening line", |t| {
        t.lines().any(|l| l.starts_with(LISTENING_PREFIX))
    });
    let addr: std::net::SocketAddr = text
        .lines()
        .find_map(|l| l.strip_prefix(LISTENING_PREFIX))
        .expect("the listening line")
        .parse()
        .expect("an address");
    assert!(!text.contains("no console"), "{text}");
    let mut pid = None;
    assert!(
        crate::support::eventually(|| {
            pid = pid_with_arg(transcript.as_str());
            pid.is_some()
        }),
        "relay process not found"
    );
    shell.relay_pid = pid;
    shell.type_line("/who");
    wait_file(&out.0, "the console's answer", |t| {
        t.lines().any(|l| l == "0 members")
    });

    // Ctrl-Z, then bg: the console's next read would stop it (SIGTTIN).
    shell.press(&["C-z"]);
    shell.wait_screen("the job stopped by Ctrl-Z", |s| s.contains("Stopped"));
    shell.type_line("bg");
    wait_file(&out.0, "the console pausing in the background", |t| {
        t.contains("console: the relay runs in the background now")
    });
    shell.type_line("jobs");
    // The last job line (after Ctrl-Z's "Stopped" and bg's "&") says Running.
    let last_job_line = |s: &str| {
        s.lines()
            .rfind(|l| l.starts_with("[1]"))
            .unwrap_or("")
            .to_owned()
    };
    shell.wait_screen("the jobs listing", |s| last_job_line(s).contains("Running"));
    let alice = Member::new(addr);
    alice.join_classic("alice");
    alice.expect("* alice joined");
    let bob = Member::new(addr);
    bob.join_classic("bob");
    alice.expect("* bob joined");
    bob.send("M bob while in the background");
    alice.recv_until("bob's message", |l| l == "bob: while in the background");

    // fg: the console reads again.
    shell.type_line("fg");
    thread::sleep(Duration::from_millis(700)); // the console checks twice a second
    shell.type_line("/who");
    wait_file(&out.0, "the console's answer after fg", |t| {
        t.lines().any(|l| l == "2 members")
    });
    shell.type_line("/quit class is over");
    alice.recv_until("the goodbye", |l| {
        l.starts_with("* the relay is shutting down")
    });
    let deadline = Instant::now() + WAIT;
    while pid.is_some_and(alive) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(!pid.is_some_and(alive), "the relay did not exit on /quit");
    shell.relay_pid = None;
    let record = std::fs::read_to_string(&transcript.0).expect("transcript");
    assert!(
        record.contains("relay stopped (/quit): class is over"),
        "{record}"
    );
}
