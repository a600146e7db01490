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
}
