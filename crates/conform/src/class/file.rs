//! The class file: one target a line, `NAME relay HOST:PORT` or
//! `NAME client COMMAND...`; `#` starts a comment, blank lines are allowed.

use std::net::SocketAddr;

use thiserror::Error;

use crate::cli;

/// What one line of the class file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A relay at an address (`NAME relay HOST:PORT`).
    Relay {
        /// As written in the file.
        written: String,
        /// Resolved.
        addr: SocketAddr,
    },
    /// A client started by a command (`NAME client COMMAND...`), its words.
    Client(Vec<String>),
}

/// One student's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The student's name as written (no spaces).
    pub name: String,
    /// What to check.
    pub kind: TargetKind,
    /// Its line in the file (from 1).
    pub line: usize,
}

/// A line of the class file that cannot be read. The message names the
/// line and says how to write it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FileError {
    /// A line without a kind or address.
    #[error("line {line}: {found:?} is not a target; write NAME relay HOST:PORT (e.g. alice relay 127.0.0.1:10024) or NAME client COMMAND...")]
    Incomplete {
        /// The line number.
        line: usize,
        /// The line.
        found: String,
    },
    /// The second word is neither `relay` nor `client`.
    #[error("line {line}: {kind:?} is not a kind of target; the second word is relay or client")]
    UnknownKind {
        /// The line number.
        line: usize,
        /// The word found.
        kind: String,
    },
    /// More words after the address of a relay.
    #[error("line {line}: a relay line has three words (NAME relay HOST:PORT); {extra:?} is one too many")]
    Extra {
        /// The line number.
        line: usize,
        /// The first extra word.
        extra: String,
    },
    /// The address cannot be resolved.
    #[error("line {line}: {why}")]
    Address {
        /// The line number.
        line: usize,
        /// Why.
        why: String,
    },
    /// A name with a control character.
    #[error(
        "line {line}: the name {name:?} has a control character; use letters, digits, '-' or '_'"
    )]
    BadName {
        /// The line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// The same name twice.
    #[error("line {line}: the name {name:?} is already used on line {first}; every student needs a different name")]
    Duplicate {
        /// The line number.
        line: usize,
        /// The name.
        name: String,
        /// Where it was first.
        first: usize,
    },
    /// No target at all.
    #[error("the class file names no target; write one line per student: NAME relay HOST:PORT")]
    Empty,
}

/// Reads the class file's text.
pub fn parse(text: &str) -> Result<Vec<Target>, FileError> {
    let mut targets: Vec<Target> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let words: Vec<&str> = content.split_whitespace().collect();
        if words.len() < 3 {
            return Err(FileError::Incomplete {
                line,
                found: content.to_owned(),
            });
        }
        let name = words[0];
        if name.chars().any(char::is_control) {
            return Err(FileError::BadName {
                line,
                name: name.to_owned(),
            });
        }
        if let Some(first) = targets.iter().find(|t| t.name == name) {
            return Err(FileError::Duplicate {
                line,
                name: name.to_owned(),
                first: first.line,
            });
        }
        let kind = match words[1] {
            "relay" => {
                if let Some(extra) = words.get(3) {
                    return Err(FileError::Extra {
                        line,
                        extra: (*extra).to_owned(),
                    });
                }
                let addr =
                    cli::resolve(words[2]).map_err(|why| FileError::Address { line, why })?;
                TargetKind::Relay {
                    written: words[2].to_owned(),
                    addr,
                }
            }
            "client" => TargetKind::Client(words[2..].iter().map(|w| (*w).to_owned()).collect()),
            other => {
                return Err(FileError::UnknownKind {
                    line,
                    kind: other.to_owned(),
                })
            }
        };
        targets.push(Target {
            name: name.to_owned(),
            kind,
            line,
        });
    }
    if targets.is_empty() {
        return Err(FileError::Empty);
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_clients_comments_and_blank_lines() {
        let text = "# class 3b\n\nalice relay 127.0.0.1:4000  # her laptop\n  bob client python3 chat.py {addr}\n";
        let targets = parse(text).expect("valid");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].name, "alice");
        assert_eq!(targets[0].line, 3);
        assert!(matches!(&targets[0].kind, TargetKind::Relay { addr, .. } if addr.port() == 4000));
        assert_eq!(
            targets[1].kind,
            TargetKind::Client(vec!["python3".into(), "chat.py".into(), "{addr}".into()])
        );
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        assert_eq!(
            parse("a relay 127.0.0.1:1\nb relay\n"),
            Err(FileError::Incomplete {
                line: 2,
                found: "b relay".into()
            })
        );
        let e = parse("a server 127.0.0.1:1").unwrap_err();
        assert!(e.to_string().starts_with("line 1: \"server\""), "{e}");
        let e = parse("a relay 127.0.0.1:1 x").unwrap_err();
        assert!(matches!(e, FileError::Extra { line: 1, .. }), "{e}");
        let e = parse("a relay 127.0.0.1:1\n\na relay 127.0.0.1:2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: the name \"a\" is already used on line 1; every student needs a different name"
        );
        assert_eq!(parse("# nobody\n\n"), Err(FileError::Empty));
    }
}
