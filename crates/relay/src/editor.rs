//! The operator console as a line editor (rustyline, as in the client):
//! used when standard input and output are the terminal and the relay is
//! in its foreground. History (Up/Down), editing and arrow keys work, and
//! no escape byte ever reaches a message. Everything else the console
//! prints goes above the prompt ([`Screen`]).
//!
//! Keys: Enter sends the line (a plain line to the room as the host, a
//! `/command` to the relay). Ctrl-C clears a half-typed line; on an empty
//! line it stops the relay, as Ctrl-C always did (every member is told).
//! Ctrl-D on an empty line only says how to stop: a stray Ctrl-D must not
//! end a class.
//!
//! Job control: the terminal keeps its signal keys while editing
//! (`enable_signals`), so Ctrl-Z stops the relay the way the shell
//! expects, and the shell puts its own terminal settings back. After
//! `bg`, the next read fails (`EIO`: SIGTTIN is ignored, see
//! [`udpchat_udp::ignore_terminal_stops`]); the thread then waits, checking
//! twice a second, until the relay is in the foreground again (`fg`), and
//! starts a fresh prompt.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustyline::completion::Completer;
use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};
use udpchat_proto::Lang;
use udpchat_udp::StdinTerminal;

use crate::answers;
use crate::console::Command;
use crate::screen::Screen;

/// How often a console paused in the background checks for `fg`.
const BACKGROUND_CHECK: Duration = Duration::from_millis(500);

/// The prompt.
const PROMPT: &str = "> ";

/// Whether the editor is reading a line now (its prompt is on the screen).
pub type Editing = Arc<AtomicBool>;

/// Starts the line-editor console on its own thread. Commands go to `tx`,
/// followed by a call to `wake`. Returns once the editor is up (its
/// printer attached to `screen`), or with the reason it could not start.
pub fn spawn(
    tx: Sender<Command>,
    wake: Box<dyn Fn() + Send>,
    screen: Screen,
    lang: Lang,
    editing: Editing,
) -> io::Result<()> {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let mut editor = match new_editor() {
                Ok(editor) => editor,
                Err(e) => {
                    let _ = ready_tx.send(Err(io::Error::other(e.to_string())));
                    return;
                }
            };
            let attached = editor
                .create_external_printer()
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|printer| screen.attach(Box::new(printer)));
            let failed = attached.is_err();
            let _ = ready_tx.send(attached);
            if failed {
                return;
            }
            read_lines(&mut editor, &tx, &*wake, &screen, lang, &editing);
        })?;
    ready
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the console thread ended")))
}

/// Puts the editor's terminal mode back after Ctrl-Z and `fg`.
///
/// Ctrl-Z stops the relay in the middle of reading a line, its terminal in
/// raw mode; the shell then puts its own settings back (echo, line mode).
/// `fg` continues the relay where it stopped, inside rustyline's read,
/// which would now get whole echoed lines and arrow keys as `^[[D`. So on
/// SIGCONT, if the prompt is up and the relay is in the foreground, this
/// thread sets the editor's mode again (`mode`: the terminal's settings
/// before the editor, see [`udpchat_udp::TerminalMode::for_line_editor`])
/// and prints a line, which makes the editor redraw its prompt and line.
#[cfg(unix)]
pub fn restore_after_fg(
    mode: udpchat_udp::TerminalMode,
    editing: Editing,
    screen: Screen,
    lang: Lang,
) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGCONT])?;
    let raw = mode.for_line_editor();
    thread::Builder::new()
        .name("console-fg".into())
        .spawn(move || {
            for _ in signals.forever() {
                if !editing.load(Ordering::SeqCst) {
                    continue; // the editor thread sees for itself
                }
                match udpchat_udp::stdin_terminal() {
                    StdinTerminal::Foreground => {
                        if let Err(e) = raw.restore() {
                            log::warn!("console: cannot set the terminal for editing again ({e})");
                        }
                        screen.set_paused(false);
                        // Also makes the editor draw its prompt again.
                        screen.line(answers::resumed(lang));
                    }
                    // bg: the editor learns it at its next read (EIO);
                    // the teacher learns it now.
                    StdinTerminal::Background => pause(&screen, lang),
                    StdinTerminal::NotTerminal => {}
                }
            }
        })?;
    Ok(())
}

type LineEditor = Editor<Tracker, DefaultHistory>;

fn new_editor() -> rustyline::Result<LineEditor> {
    let config = Config::builder()
        .enable_signals(true)
        .auto_add_history(false)
        .max_history_size(500)?
        .build();
    let mut editor = LineEditor::with_config(config)?;
    editor.set_helper(Some(Tracker::default()));
    Ok(editor)
}

fn read_lines(
    editor: &mut LineEditor,
    tx: &Sender<Command>,
    wake: &dyn Fn(),
    screen: &Screen,
    lang: Lang,
    editing: &AtomicBool,
) {
    loop {
        if udpchat_udp::stdin_terminal() == StdinTerminal::Background {
            pause(screen, lang);
            thread::sleep(BACKGROUND_CHECK);
            continue;
        }
        if screen.set_paused(false) {
            screen.line(answers::resumed(lang));
        }
        if let Some(helper) = editor.helper() {
            helper.clear();
        }
        editing.store(true, Ordering::SeqCst);
        let read = editor.readline(PROMPT);
        editing.store(false, Ordering::SeqCst);
        let typed = editor.helper().map(Tracker::typed).unwrap_or_default();
        match read {
            Ok(text) => {
                // A pasted block comes back as one string with line breaks:
                // each line is its own command or message, in order.
                for line in text.split(['\n', '\r']) {
                    let command = Command::parse(line);
                    if command == Command::Nothing {
                        continue;
                    }
                    let _ = editor.add_history_entry(line);
                    let last = matches!(command, Command::Quit(_));
                    if tx.send(command).is_err() {
                        return; // the event loop is gone
                    }
                    wake();
                    if last {
                        return; // no prompt while the relay stops
                    }
                }
            }
            // Ctrl-C (or SIGINT) while in the background: not a key.
            Err(_) if udpchat_udp::stdin_terminal() == StdinTerminal::Background => {}
            Err(ReadlineError::Interrupted) if !typed.is_empty() => {
                // The half-typed line is gone; a fresh prompt follows.
            }
            Err(ReadlineError::Interrupted) => {
                if tx.send(Command::Interrupted).is_ok() {
                    wake();
                }
                return;
            }
            Err(ReadlineError::Eof) => screen.line(answers::eof_hint(lang)),
            Err(e) => {
                log::warn!("console: cannot read the terminal ({e}); console disabled, the relay keeps relaying");
                return;
            }
        }
    }
}

/// The console waits in the background: said once, and no room view
/// meanwhile (on the screen, not only in the log: by default the log shows
/// only warnings while the editor is up).
fn pause(screen: &Screen, lang: Lang) {
    if screen.set_paused(true) {
        screen.line(answers::paused(lang));
    }
}

/// The editor's helper: no completion, hints or colours; it only notes
/// the line as it is edited, so Ctrl-C can tell a half-typed line from an
/// empty one (rustyline does not say).
#[derive(Default)]
struct Tracker {
    line: Mutex<String>,
}

impl Tracker {
    fn clear(&self) {
        self.line.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn typed(&self) -> String {
        self.line.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Completer for Tracker {
    type Candidate = String;
}

impl Hinter for Tracker {
    type Hint = String;

    fn hint(&self, line: &str, _pos: usize, _ctx: &rustyline::Context<'_>) -> Option<String> {
        let mut seen = self.line.lock().unwrap_or_else(|p| p.into_inner());
        seen.clear();
        seen.push_str(line);
        None
    }
}

impl Highlighter for Tracker {}

impl Validator for Tracker {}

impl Helper for Tracker {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_remembers_the_line_being_edited() {
        let tracker = Tracker::default();
        let history = DefaultHistory::new();
        let ctx = rustyline::Context::new(&history);
        assert_eq!(tracker.hint("/mute al", 8, &ctx), None);
        assert_eq!(tracker.typed(), "/mute al");
        assert_eq!(tracker.hint("", 0, &ctx), None);
        assert_eq!(tracker.typed(), "");
        tracker.hint("x", 1, &ctx);
        tracker.clear();
        assert_eq!(tracker.typed(), "");
    }
}
