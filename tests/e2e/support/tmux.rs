//! A program in a real terminal: a private tmux server (its own socket, so
//! tests running in parallel never meet) with one window, driven by
//! send-keys and paste-buffer and read by capture-pane. Killed on drop.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::WAIT;

/// The window every test session has.
const WINDOW: &str = "main";

/// A private tmux server running one command in a window of a fixed size.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` (a shell command line) in a new detached tmux
    /// server of its own, in a window `width` × `height`; `name` keeps the
    /// servers of tests running in parallel apart.
    pub fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("udpchat-test-{name}-{}", std::process::id()),
        };
        let (width, height) = (width.to_string(), height.to_string());
        let started = tmux.run(&[
            "-u",
            "new-session",
            "-d",
            "-s",
            WINDOW,
            "-x",
            &width,
            "-y",
            &height,
            command,
        ]);
        assert!(started.status.success(), "tmux: {started:?}");
        tmux
    }

    /// Whether tmux can be run here (tests skip, saying so, if not).
    pub fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Runs a tmux command against this server.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// What the window shows now.
    pub fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", WINDOW]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the window shows now with its colours and attributes, as
    /// tmux's own escape sequences (`capture-pane -e`).
    pub fn screen_escaped(&self) -> String {
        let out = self.run(&["capture-pane", "-e", "-p", "-t", WINDOW]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Appends every byte the program writes from now on to `path`
    /// (`pipe-pane -o`), escape sequences and bells included.
    pub fn record_output(&self, path: &str) {
        let command = format!("cat >> '{path}'");
        assert!(self
            .run(&["pipe-pane", "-o", "-t", WINDOW, &command])
            .status
            .success());
    }

    /// Waits until the screen satisfies `pred`, and returns it; panics
    /// after [`WAIT`] with `what` and the screen.
    pub fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
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

    /// Types `text` literally (no key names).
    pub fn type_text(&self, text: &str) {
        assert!(self
            .run(&["send-keys", "-t", WINDOW, "-l", text])
            .status
            .success());
    }

    /// Presses keys by their tmux names (`Enter`, `Up`, `Home`, `DC`,
    /// `C-z`, ...).
    pub fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", WINDOW];
        args.extend(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    /// Presses Enter.
    pub fn press_enter(&self) {
        self.press(&["Enter"]);
    }

    /// Types `line` and presses Enter.
    pub fn type_line(&self, line: &str) {
        self.type_text(line);
        self.press_enter();
    }

    /// Pastes `text` into the window as a terminal does: with `bracketed`,
    /// marked as a paste (if the program asked for that), else as if typed
    /// very fast. tmux turns each line break into a carriage return (Enter).
    pub fn paste(&self, text: &str, bracketed: bool) {
        let mut load = Command::new("tmux")
            .args(["-L", &self.socket, "load-buffer", "-b", "paste", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run tmux load-buffer");
        load.stdin
            .take()
            .expect("stdin is piped")
            .write_all(text.as_bytes())
            .expect("write to tmux");
        assert!(load.wait().expect("tmux load-buffer").success());
        let mut args = vec!["paste-buffer", "-d", "-b", "paste", "-t", WINDOW];
        if bracketed {
            args.push("-p");
        }
        assert!(self.run(&args).status.success(), "paste-buffer");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
