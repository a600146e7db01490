//! The operator console: lines typed on the relay's standard input, parsed
//! into [`Command`]s. On a terminal the line editor reads them
//! (`editor.rs`); from a pipe or a file (scripts, tests), or a terminal
//! whose output is redirected, the plain reader here does.
//!
//! A thread reads stdin (a blocking read that mio cannot poll portably) and
//! hands each parsed line to the event loop through a channel, then calls a
//! wake-up function so the loop notices at once. End of input only ends the
//! thread: a relay run under systemd has stdin closed from the start and must
//! keep running.
//!
//! Background safety: the shell (`run`) starts this thread only when
//! standard input is not a terminal (a pipe or a file: scripts, tests,
//! systemd) or is a terminal whose foreground process group is the relay's.
//! A relay started with `&` therefore never reads its terminal, and says
//! so. For a relay moved to the background later (Ctrl-Z, `bg`), SIGTTIN
//! and SIGTTOU are ignored ([`udpchat_udp::ignore_terminal_stops`]), so a
//! read fails with `EIO` instead of stopping the process: the thread then
//! waits, checking every half second, until the relay is in the foreground
//! again (`fg`), and reads on.

use std::io::{self, BufRead};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

use crate::cli::{parse_duration, parse_duration_or_zero};
use udpchat_udp::StdinTerminal;

/// How often a console paused in the background checks for `fg`.
const BACKGROUND_CHECK: Duration = Duration::from_millis(500);

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A plain line: say it to the room as the host.
    Host(String),
    /// `/who`: list the members on stdout.
    Who,
    /// `/kick NICK [reason]`.
    Kick {
        /// The member to remove.
        nick: String,
        /// Why, shown to the member (the shell has a default).
        reason: Option<String>,
    },
    /// `/ban NICK|IP [DURATION] [reason]`.
    Ban {
        /// A member's nickname or an IP address.
        target: String,
        /// How long; `None`: until lifted.
        duration: Option<Duration>,
        /// Why (may be empty).
        reason: String,
    },
    /// `/unban IP|NICK`.
    Unban(String),
    /// `/bans`: list the bans.
    Bans,
    /// `/mute NICK [DURATION]`.
    Mute {
        /// The member.
        nick: String,
        /// How long; `None`: until unmuted.
        duration: Option<Duration>,
    },
    /// `/unmute NICK`.
    Unmute(String),
    /// `/lock`.
    Lock,
    /// `/unlock`.
    Unlock,
    /// `/code`: show the join code; `/code off`: none; `/code CODE`: set it.
    Code(Option<String>),
    /// `/slow SECONDS` (0 or `off`: off).
    Slow(Duration),
    /// `/rename NICK NEW`.
    Rename {
        /// The member.
        nick: String,
        /// Its new nickname.
        new: String,
    },
    /// `/moderated on|off`.
    Moderated(bool),
    /// `/voice NICK`: the member may speak in moderated mode.
    Voice(String),
    /// `/devoice NICK`: takes the voice back.
    Devoice(String),
    /// `/announce TEXT`: an announcement members confirm; `/announce`
    /// alone: who has seen the latest one.
    Announce(Option<String>),
    /// `/hands`: the raised hands, first in line first.
    Hands,
    /// `/next`: call on the first hand in line.
    Next,
    /// `/attendance [save]`: who is present, late, absent; with `save`,
    /// also write the `--attendance` CSV now.
    Attendance {
        /// Write the CSV too.
        save: bool,
    },
    /// `/quit [reason]`: shut the relay down gracefully.
    Quit(Option<String>),
    /// Ctrl-C on the line editor's empty prompt: shut down as `/quit`
    /// does, with the default reason (the transcript says `Ctrl-C`).
    Interrupted,
    /// `/help`.
    Help,
    /// A `/command` that is not one of the above.
    Unknown(String),
    /// An empty line: nothing to do.
    Nothing,
}

/// What `/help` prints in English (`answers::help` has the Chinese list
/// beside it: a new command adds a line to both).
pub const HELP: &str = "\
operator commands:
  <text>               say <text> to the room as the host (start with // to say something beginning with /)
  /who                 list the members: address, dialect, joined at, idle
  /hands               list the raised hands, first in line first
  /next                call on the first hand in line (the student is told)
  /attendance [save]   who is present, late, absent; save writes the --attendance CSV now
  /kick NICK [reason]  remove a member
  /ban NICK|IP [DURATION] [reason]
                       keep an IP address out (a nickname: its member's address; it is removed);
                       DURATION e.g. 10m, 2h, 1d (none: until /unban)
  /unban IP|NICK       lift a ban         /bans   list the bans
  /mute NICK [DURATION]  refuse the member's messages (only it is told)   /unmute NICK
  /lock, /unlock       no new members (members stay)
  /code [CODE|off]     show, set or remove the join code (students type: N name CODE, or udpchat --code CODE)
  /slow SECONDS        least time between one member's messages (0: off)
  /rename NICK NEW     rename a member
  /moderated on|off    only the host and members with a voice speak (the others: private messages, /hand)
  /voice NICK, /devoice NICK   give a member the word in moderated mode, or take it back
  /announce TEXT       an announcement; the console then says how many have seen it
  /announce            how many have seen the latest announcement
  /quit [reason]       tell every member the relay is closing, then exit
  /help                this list";

impl Command {
    /// Parses one console line (without its line ending).
    pub fn parse(line: &str) -> Command {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Command::Nothing;
        }
        if let Some(text) = line.strip_prefix("//") {
            return Command::Host(format!("/{text}"));
        }
        let Some(command) = line.strip_prefix('/') else {
            return Command::Host(line.to_owned());
        };
        let (word, rest) = match command.split_once(char::is_whitespace) {
            Some((word, rest)) => (word, rest.trim()),
            None => (command, ""),
        };
        match word {
            "who" => Command::Who,
            "hands" if rest.is_empty() => Command::Hands,
            "next" if rest.is_empty() => Command::Next,
            "attendance" if rest.is_empty() => Command::Attendance { save: false },
            "attendance" if rest == "save" => Command::Attendance { save: true },
            "help" | "?" => Command::Help,
            "quit" | "exit" => Command::Quit(non_empty(rest)),
            "ban" if !rest.is_empty() => {
                let (target, rest) = first_word(rest);
                let (duration, reason) = match first_word(rest) {
                    // A zero is no duration (a ban "for 0" would be
                    // one for ever): it starts the reason.
                    (word, after) if !word.is_empty() => match parse_duration(word) {
                        Ok(d) => (Some(d), after),
                        Err(_) => (None, rest),
                    },
                    _ => (None, rest),
                };
                Command::Ban {
                    target: target.to_owned(),
                    duration,
                    reason: reason.to_owned(),
                }
            }
            "unban" if !rest.is_empty() => Command::Unban(first_word(rest).0.to_owned()),
            "bans" => Command::Bans,
            "mute" if !rest.is_empty() => {
                let (nick, rest) = first_word(rest);
                match rest {
                    "" => Command::Mute {
                        nick: nick.to_owned(),
                        duration: None,
                    },
                    d => match parse_duration(d) {
                        Ok(d) => Command::Mute {
                            nick: nick.to_owned(),
                            duration: Some(d),
                        },
                        Err(_) => Command::Unknown(line.to_owned()),
                    },
                }
            }
            "unmute" if !rest.is_empty() => Command::Unmute(first_word(rest).0.to_owned()),
            "lock" => Command::Lock,
            "unlock" => Command::Unlock,
            "code" => Command::Code(non_empty(rest)),
            "moderated" => match rest {
                "on" => Command::Moderated(true),
                "off" => Command::Moderated(false),
                _ => Command::Unknown(line.to_owned()),
            },
            "voice" if !rest.is_empty() && !rest.contains(' ') => Command::Voice(rest.to_owned()),
            "devoice" if !rest.is_empty() && !rest.contains(' ') => {
                Command::Devoice(rest.to_owned())
            }
            "announce" => Command::Announce(non_empty(rest)),
            "slow" => match rest {
                "off" => Command::Slow(Duration::ZERO),
                s => match parse_duration_or_zero(s) {
                    Ok(d) => Command::Slow(d),
                    Err(_) => Command::Unknown(line.to_owned()),
                },
            },
            "rename" => match first_word(rest) {
                (nick, new) if !nick.is_empty() && !new.is_empty() && !new.contains(' ') => {
                    Command::Rename {
                        nick: nick.to_owned(),
                        new: new.to_owned(),
                    }
                }
                _ => Command::Unknown(line.to_owned()),
            },
            "kick" if !rest.is_empty() => {
                let (nick, reason) = match rest.split_once(char::is_whitespace) {
                    Some((nick, reason)) => (nick, reason.trim()),
                    None => (rest, ""),
                };
                Command::Kick {
                    nick: nick.to_owned(),
                    reason: non_empty(reason),
                }
            }
            _ => Command::Unknown(line.to_owned()),
        }
    }
}

/// The first word of `s` and the rest, trimmed.
fn first_word(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (s, ""),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Starts the console thread. Each line becomes a [`Command`] on the
/// returned channel, followed by a call to `wake`.
pub fn spawn(wake: Box<dyn Fn() + Send>) -> io::Result<Receiver<Command>> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("console".into())
        .spawn(move || read_lines(io::stdin().lock(), &tx, &*wake))?;
    Ok(rx)
}

fn read_lines(mut input: impl BufRead, tx: &Sender<Command>, wake: &dyn Fn()) {
    let mut buf = Vec::new();
    let mut paused = false;
    loop {
        // Cleared after each line, not before each read: what was read of
        // a line before a failed read (EIO in the background) is kept.
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => {
                log::info!(
                    "console: end of input; the relay keeps running (stop it with SIGINT/SIGTERM)"
                );
                return;
            }
            Ok(_) => {
                if paused {
                    log::info!("console: back in the foreground");
                    paused = false;
                }
                let command = Command::parse(&String::from_utf8_lossy(&buf));
                buf.clear();
                if command == Command::Nothing {
                    continue;
                }
                if tx.send(command).is_err() {
                    return; // the event loop is gone
                }
                wake();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) if udpchat_udp::stdin_terminal() == StdinTerminal::Background => {
                // Moved to the background (Ctrl-Z, bg): wait for fg.
                if !paused {
                    log::info!(
                        "console: the relay runs in the background now and keeps relaying; fg brings the console back"
                    );
                    paused = true;
                }
                thread::sleep(BACKGROUND_CHECK);
                continue;
            }
            Err(e) => {
                log::warn!("console: cannot read standard input ({e}); console disabled");
                return;
            }
        }
    }
}

/// The goodbye reason when the operator gives none.
pub fn default_quit_reason(lang: udpchat_proto::Lang) -> &'static str {
    match lang {
        udpchat_proto::Lang::En => "goodbye",
        udpchat_proto::Lang::Zh => "再见",
    }
}

/// The kick reason when the operator gives none.
pub fn default_kick_reason(lang: udpchat_proto::Lang) -> &'static str {
    match lang {
        udpchat_proto::Lang::En => "no reason given",
        udpchat_proto::Lang::Zh => "未说明原因",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_host_messages() {
        assert_eq!(
            Command::parse("hello class\n"),
            Command::Host("hello class".into())
        );
        assert_eq!(Command::parse("//who\r\n"), Command::Host("/who".into()));
        assert_eq!(Command::parse("   \n"), Command::Nothing);
    }

    #[test]
    fn slash_commands_parse() {
        assert_eq!(Command::parse("/who"), Command::Who);
        assert_eq!(Command::parse("/help"), Command::Help);
        assert_eq!(
            Command::parse("/kick bob stop spamming please"),
            Command::Kick {
                nick: "bob".into(),
                reason: Some("stop spamming please".into())
            }
        );
        assert_eq!(
            Command::parse("/kick bob"),
            Command::Kick {
                nick: "bob".into(),
                reason: None
            }
        );
        assert_eq!(Command::parse("/kick"), Command::Unknown("/kick".into()));
        assert_eq!(Command::parse("/quit"), Command::Quit(None));
        assert_eq!(
            Command::parse("/quit see you"),
            Command::Quit(Some("see you".into()))
        );
        assert_eq!(Command::parse("/frob"), Command::Unknown("/frob".into()));
    }

    #[test]
    fn moderation_commands_parse() {
        assert_eq!(
            Command::parse("/ban alice 10m shouting in class"),
            Command::Ban {
                target: "alice".into(),
                duration: Some(Duration::from_secs(600)),
                reason: "shouting in class".into()
            }
        );
        assert_eq!(
            Command::parse("/ban 10.0.0.9 other class"),
            Command::Ban {
                target: "10.0.0.9".into(),
                duration: None,
                reason: "other class".into()
            }
        );
        assert_eq!(
            Command::parse("/unban alice"),
            Command::Unban("alice".into())
        );
        assert_eq!(Command::parse("/bans"), Command::Bans);
        assert_eq!(
            Command::parse("/mute bob 5m"),
            Command::Mute {
                nick: "bob".into(),
                duration: Some(Duration::from_secs(300))
            }
        );
        assert_eq!(
            Command::parse("/mute bob"),
            Command::Mute {
                nick: "bob".into(),
                duration: None
            }
        );
        assert_eq!(Command::parse("/unmute bob"), Command::Unmute("bob".into()));
        assert_eq!(Command::parse("/lock"), Command::Lock);
        assert_eq!(Command::parse("/unlock"), Command::Unlock);
        assert_eq!(Command::parse("/code"), Command::Code(None));
        assert_eq!(
            Command::parse("/code off"),
            Command::Code(Some("off".into()))
        );
        assert_eq!(
            Command::parse("/slow 30"),
            Command::Slow(Duration::from_secs(30))
        );
        assert_eq!(Command::parse("/slow off"), Command::Slow(Duration::ZERO));
        assert_eq!(
            Command::parse("/rename bob robert"),
            Command::Rename {
                nick: "bob".into(),
                new: "robert".into()
            }
        );
        assert_eq!(
            Command::parse("/rename bob"),
            Command::Unknown("/rename bob".into())
        );
    }

    #[test]
    fn moderated_voice_and_announce_commands_parse() {
        assert_eq!(Command::parse("/moderated on"), Command::Moderated(true));
        assert_eq!(
            Command::parse("/moderated off\n"),
            Command::Moderated(false)
        );
        assert_eq!(
            Command::parse("/moderated"),
            Command::Unknown("/moderated".into())
        );
        assert_eq!(
            Command::parse("/moderated yes"),
            Command::Unknown("/moderated yes".into())
        );
        assert_eq!(
            Command::parse("/voice alice"),
            Command::Voice("alice".into())
        );
        assert_eq!(
            Command::parse("/devoice alice"),
            Command::Devoice("alice".into())
        );
        assert_eq!(Command::parse("/voice"), Command::Unknown("/voice".into()));
        assert_eq!(
            Command::parse("/voice a b"),
            Command::Unknown("/voice a b".into())
        );
        assert_eq!(
            Command::parse("/announce test on  Friday"),
            Command::Announce(Some("test on  Friday".into()))
        );
        assert_eq!(Command::parse("/announce"), Command::Announce(None));
        assert_eq!(Command::parse("/announce   "), Command::Announce(None));
    }

    #[test]
    fn hand_and_attendance_commands_parse() {
        assert_eq!(Command::parse("/hands"), Command::Hands);
        assert_eq!(Command::parse("/next\n"), Command::Next);
        assert_eq!(
            Command::parse("/attendance"),
            Command::Attendance { save: false }
        );
        assert_eq!(
            Command::parse("/attendance save"),
            Command::Attendance { save: true }
        );
        assert_eq!(
            Command::parse("/attendance frob"),
            Command::Unknown("/attendance frob".into())
        );
        assert_eq!(
            Command::parse("/next bob"),
            Command::Unknown("/next bob".into())
        );
    }

    #[test]
    fn reader_sends_commands_and_stops_at_eof() {
        let (tx, rx) = mpsc::channel();
        let wakes = std::cell::Cell::new(0);
        read_lines(&b"hi\n\n/who\n/quit"[..], &tx, &|| {
            wakes.set(wakes.get() + 1)
        });
        let got: Vec<Command> = rx.try_iter().collect();
        assert_eq!(
            got,
            [
                Command::Host("hi".into()),
                Command::Who,
                Command::Quit(None)
            ]
        );
        assert_eq!(wakes.get(), 3);
    }
}
