//! The client in a real terminal, under tmux: incoming lines must never
//! clobber the half-typed line.

use crate::support::{Client, Relay, WAIT};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// A private tmux server (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `udpchat ARGS` in a new detached tmux server of its own.
    fn start(name: &str, args: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("udpchat-test-{name}-{}", std::process::id()),
        };
        // Resume state in the temp directory, not the real home.
        let state =
            std::env::temp_dir().join(format!("udpchat-test-{}-tmux-state", std::process::id()));
        let command = format!(
            "env NO_COLOR=1 LANG=C.UTF-8 UDPCHAT_STATE_DIR={} {} {args}",
            state.display(),
            env!("CARGO_BIN_EXE_udpchat")
        );
        let started = tmux.run(&[
            "-u",
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            "100",
            "-y",
            "20",
            &command,
        ]);
        assert!(started.status.success(), "tmux: {started:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "chat"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_text(&self, text: &str) {
        assert!(self
            .run(&["send-keys", "-t", "chat", "-l", text])
            .status
            .success());
    }

    fn press_enter(&self) {
        assert!(self
            .run(&["send-keys", "-t", "chat", "Enter"])
            .status
            .success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The last non-empty line of the screen (where the prompt is).
fn prompt_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end()
}

#[test]
fn incoming_message_does_not_clobber_the_half_typed_line() {
    if !tmux_available() {
        eprintln!("SKIPPED incoming_message_does_not_clobber_the_half_typed_line: tmux is not installed (apt-get install tmux)");
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let tmux = Tmux::start("clobber", &format!("--relay {addr} --nick alice"));
    tmux.wait_screen("the prompt", |s| prompt_line(s) == "alice>");

    let mut bob = Client::joined(&addr, "bob");
    let half = "half typed 你好 line";
    tmux.type_text(half);
    tmux.wait_screen("the half-typed line", |s| {
        prompt_line(s) == format!("alice> {half}")
    });

    bob.say("incoming 世界 message");
    let screen = tmux.wait_screen("the incoming message above the prompt", |s| {
        s.contains(" bob: incoming 世界 message")
    });
    // The incoming line is whole on its own line, and the prompt with the
    // half-typed line is intact below it.
    assert!(
        screen
            .lines()
            .any(|l| l.ends_with(" bob: incoming 世界 message") && !l.contains("alice>")),
        "{screen}"
    );
    assert_eq!(prompt_line(&screen), format!("alice> {half}"), "{screen}");

    tmux.type_text(" finished");
    tmux.press_enter();
    bob.stdout
        .wait_contains(&format!(" alice: {half} finished"));
    tmux.wait_screen("own message echoed", |s| {
        s.contains(&format!("alice (you): {half} finished"))
    });
}

#[test]
fn refused_nickname_is_explained_and_asked_again() {
    if !tmux_available() {
        eprintln!("SKIPPED refused_nickname_is_explained_and_asked_again: tmux is not installed (apt-get install tmux)");
        return;
    }
    let relay = Relay::start_with_console(&[]);
    let addr = relay.addr.to_string();
    let _bob = Client::joined(&addr, "bob");
    let tmux = Tmux::start("nick", &format!("--relay {addr}"));
    tmux.wait_screen("the nickname question", |s| prompt_line(s) == "nickname:");
    tmux.type_text("no spaces");
    tmux.press_enter();
    tmux.wait_screen("the local nickname check", |s| {
        s.contains("invalid nickname") && prompt_line(s) == "nickname:"
    });
    tmux.type_text("BOB");
    tmux.press_enter();
    tmux.wait_screen("the relay's reason and the question again", |s| {
        s.contains("refused the nickname BOB: nickname is taken") && prompt_line(s) == "nickname:"
    });
    tmux.type_text("carol");
    tmux.press_enter();
    tmux.wait_screen("the join", |s| {
        s.contains("as carol") && prompt_line(s) == "carol>"
    });
}
