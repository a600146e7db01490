//! Is the relay's standard input a terminal it may read? A process reading
//! its controlling terminal from a background process group gets SIGTTIN,
//! whose default action stops it: `udpchat-relay &` used to stop at once
//! and relay nothing. These are the two calls the relay needs to avoid
//! that: where stdin stands ([`stdin_terminal`]), and ignoring the
//! terminal's stop signals ([`ignore_terminal_stops`]).

use std::io::{self, IsTerminal as _};

/// What standard input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinTerminal {
    /// Not a terminal: a pipe, a file, `/dev/null`, closed.
    NotTerminal,
    /// A terminal whose foreground process group is this process's
    /// (`tcgetpgrp(0) == getpgrp()`): reading it is safe.
    Foreground,
    /// A terminal, but this process is in the background (`cmd &`, or
    /// `bg` after Ctrl-Z), or the terminal is not its controlling one:
    /// reading it would stop the process (SIGTTIN) or fail.
    Background,
}

/// Where standard input stands now. Job control can change it at any time
/// (`fg`, `bg`), so a reader checks again when a read fails.
pub fn stdin_terminal() -> StdinTerminal {
    if !io::stdin().is_terminal() {
        return StdinTerminal::NotTerminal;
    }
    if imp::stdin_in_foreground() {
        StdinTerminal::Foreground
    } else {
        StdinTerminal::Background
    }
}

/// Ignores SIGTTIN and SIGTTOU for the whole process (Unix; elsewhere it
/// does nothing). Then a read of the terminal from the background fails
/// with `EIO` instead of stopping the process, and writes (the log, with
/// `stty tostop`) go through: a relay moved to the background with Ctrl-Z
/// and `bg` keeps relaying.
pub fn ignore_terminal_stops() -> io::Result<()> {
    imp::ignore_terminal_stops()
}

/// The settings of the terminal on standard input (echo, line mode, ...),
/// saved so they can be put back: a line editor switches them to raw
/// mode while it reads, and a process that exits meanwhile (SIGTERM, or
/// `/quit` typed while another thread edits) would leave the shell's
/// terminal raw. `None` if standard input is not a terminal.
pub fn save_terminal_mode() -> Option<TerminalMode> {
    imp::save_terminal_mode()
}

/// Terminal settings saved by [`save_terminal_mode`].
#[derive(Clone)]
pub struct TerminalMode(imp::Mode);

impl std::fmt::Debug for TerminalMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminalMode")
    }
}

impl TerminalMode {
    /// Puts these settings back on standard input's terminal, once output
    /// written so far is sent (`TCSADRAIN`). Call it only in the
    /// foreground: from the background (SIGTTOU ignored) it would change
    /// the terminal under the shell that owns it now.
    pub fn restore(&self) -> io::Result<()> {
        imp::restore_terminal_mode(&self.0)
    }

    /// These settings as a line editor reading key by key wants them (what
    /// rustyline sets with `enable_signals`): no echo, no line mode, no
    /// CR-to-NL or flow control, one byte at a time; the signal keys
    /// (Ctrl-C, Ctrl-Z) kept. For putting the editor's mode back after
    /// the shell changed it (Ctrl-Z, then `fg`).
    pub fn for_line_editor(&self) -> TerminalMode {
        TerminalMode(imp::line_editor_mode(&self.0))
    }
}

#[cfg(unix)]
mod imp {
    use super::*;

    pub(super) fn stdin_in_foreground() -> bool {
        // SAFETY: tcgetpgrp and getpgrp only read process state; fd 0 may
        // be anything, tcgetpgrp then fails with -1.
        let (terminal, own) = unsafe { (libc::tcgetpgrp(0), libc::getpgrp()) };
        terminal != -1 && terminal == own
    }

    pub(super) fn ignore_terminal_stops() -> io::Result<()> {
        for signal in [libc::SIGTTIN, libc::SIGTTOU] {
            // SAFETY: SIG_IGN installs no handler code; these signals have no
            // other handler in this process (signal-hook handles only
            // SIGINT and SIGTERM).
            if unsafe { libc::signal(signal, libc::SIG_IGN) } == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    #[derive(Clone)]
    pub(super) struct Mode(libc::termios);

    pub(super) fn save_terminal_mode() -> Option<super::TerminalMode> {
        // SAFETY: an all-zero termios is a valid value of this plain C
        // struct; tcgetattr only writes it, and fails (-1) if fd 0 is not
        // a terminal.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a live local that tcgetattr writes.
        let ok = unsafe { libc::tcgetattr(0, &mut t) } == 0;
        ok.then_some(super::TerminalMode(Mode(t)))
    }

    pub(super) fn line_editor_mode(mode: &Mode) -> Mode {
        let mut t = mode.0;
        t.c_iflag &= !(libc::BRKINT | libc::ICRNL | libc::INPCK | libc::ISTRIP | libc::IXON);
        t.c_cflag |= libc::CS8;
        t.c_lflag &= !(libc::ECHO | libc::ICANON | libc::IEXTEN);
        t.c_lflag |= libc::ISIG;
        t.c_cc[libc::VMIN] = 1;
        t.c_cc[libc::VTIME] = 0;
        Mode(t)
    }

    pub(super) fn restore_terminal_mode(mode: &Mode) -> io::Result<()> {
        // SAFETY: `mode.0` is a termios that tcgetattr filled; tcsetattr
        // only reads it.
        if unsafe { libc::tcsetattr(0, libc::TCSADRAIN, &mode.0) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::*;

    // No job control: a terminal is always the process's own.
    pub(super) fn stdin_in_foreground() -> bool {
        true
    }

    pub(super) fn ignore_terminal_stops() -> io::Result<()> {
        Ok(())
    }

    #[derive(Clone)]
    pub(super) struct Mode;

    // Console modes are the line editor's business there.
    pub(super) fn save_terminal_mode() -> Option<super::TerminalMode> {
        None
    }

    pub(super) fn restore_terminal_mode(_: &Mode) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn line_editor_mode(_: &Mode) -> Mode {
        Mode
    }
}
