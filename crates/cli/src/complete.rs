//! Tab completion at the prompt: the members the client has seen (from
//! `/who` lists, joins, leaves, renames and who spoke) and the commands.
//! Plain functions; `app` hands them to the line editor.

use std::collections::BTreeMap;

use udpchat_proto::Nick;

use crate::render::Line;

/// The commands Tab completes, in the order `/help` lists them.
pub const COMMANDS: &[&str] = &[
    "/who", "/msg", "/me", "/nick", "/hand", "/clear", "/quit", "/help",
];

/// The members the client knows of, by nickname key (so `Alice` renamed
/// from `alice` is one member).
#[derive(Debug, Default)]
pub struct Roster {
    members: BTreeMap<String, String>,
}

fn key(nick: &str) -> String {
    Nick::new(nick).map_or_else(|_| nick.to_lowercase(), |n| n.key())
}

impl Roster {
    /// Learns from one line shown.
    pub fn observe(&mut self, line: &Line) {
        match line {
            Line::Who { nicks, .. } => {
                for nick in nicks {
                    self.add(nick);
                }
            }
            Line::Join {
                nick,
                history: false,
            }
            | Line::Chat {
                nick,
                history: false,
                ..
            }
            | Line::PrivateFrom { from: nick, .. } => self.add(nick),
            Line::Leave {
                nick,
                history: false,
                ..
            } => {
                self.members.remove(&key(nick));
            }
            Line::Rename {
                old,
                new,
                history: false,
            } => {
                self.members.remove(&key(old));
                self.add(new);
            }
            _ => {}
        }
    }

    fn add(&mut self, nick: &str) {
        self.members.insert(key(nick), nick.to_owned());
    }

    /// The known nicknames starting with `prefix` (any letter case), in
    /// order.
    pub fn starting_with(&self, prefix: &str) -> Vec<String> {
        let prefix = prefix.to_lowercase();
        let mut found: Vec<String> = self
            .members
            .values()
            .filter(|n| n.to_lowercase().starts_with(&prefix))
            .cloned()
            .collect();
        found.sort();
        found
    }
}

/// What Tab does with `line` when the cursor is at byte `pos`: the byte
/// where the replaced word starts and the candidates to put there (empty:
/// nothing to complete).
///
/// - a word starting with `/` at the start of the line: a command, and a
///   space after it;
/// - any other word: a nickname; at the start of the line followed by
///   `: ` (addressing someone), else by a space.
pub fn complete(line: &str, pos: usize, roster: &Roster) -> (usize, Vec<String>) {
    let pos = pos.min(line.len());
    let before = &line[..pos];
    let start = before.rfind(' ').map_or(0, |i| i + 1);
    let word = &before[start..];
    if word.is_empty() {
        return (pos, Vec::new());
    }
    if start == 0 && word.starts_with('/') {
        let word = word.to_lowercase();
        let found = COMMANDS
            .iter()
            .filter(|c| c.starts_with(&word))
            .map(|c| format!("{c} "))
            .collect();
        return (start, found);
    }
    let tail = if start == 0 { ": " } else { " " };
    let found = roster
        .starting_with(word)
        .into_iter()
        .map(|n| format!("{n}{tail}"))
        .collect();
    (start, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(nicks: &[&str]) -> Roster {
        let mut r = Roster::default();
        r.observe(&Line::Who {
            count: nicks.len() as u32,
            page: 1,
            pages: 1,
            nicks: nicks.iter().map(|n| (*n).to_owned()).collect(),
        });
        r
    }

    #[test]
    fn commands_complete_at_the_start_of_the_line() {
        let r = roster(&[]);
        assert_eq!(complete("/ms", 3, &r), (0, vec!["/msg ".to_owned()]));
        assert_eq!(complete("/CL", 3, &r), (0, vec!["/clear ".to_owned()]));
        assert_eq!(complete("/h", 2, &r).1, ["/hand ", "/help "]);
        assert_eq!(complete("/x", 2, &r).1, Vec::<String>::new());
        // Every command is offered for a lone slash.
        assert_eq!(complete("/", 1, &r).1.len(), COMMANDS.len());
    }

    #[test]
    fn nicknames_complete_anywhere_from_what_was_seen() {
        let mut r = roster(&["alice", "Albert", "bob"]);
        assert_eq!(complete("/msg al", 7, &r).1, ["Albert ", "alice "]);
        assert_eq!(complete("/msg ali", 8, &r), (5, vec!["alice ".to_owned()]));
        assert_eq!(complete("bo", 2, &r), (0, vec!["bob: ".to_owned()]));
        assert_eq!(complete("hi bo and", 5, &r), (3, vec!["bob ".to_owned()]));
        // Nothing to complete after a space.
        assert_eq!(complete("hi ", 3, &r).1, Vec::<String>::new());
        r.observe(&Line::Rename {
            old: "bob".into(),
            new: "rob".into(),
            history: false,
        });
        r.observe(&Line::Join {
            nick: "小明".into(),
            history: false,
        });
        r.observe(&Line::Leave {
            nick: "ALICE".into(),
            reason: udpchat_proto::LeaveReason::Quit,
            history: false,
        });
        assert_eq!(complete("/msg bo", 7, &r).1, Vec::<String>::new());
        assert_eq!(complete("/msg r", 6, &r).1, ["rob "]);
        assert_eq!(complete("/msg al", 7, &r).1, ["Albert "]);
        assert_eq!(complete("/msg 小", "/msg 小".len(), &r).1, ["小明 "]);
        // History lines say nothing about who is here now.
        r.observe(&Line::Join {
            nick: "ghost".into(),
            history: true,
        });
        assert!(r.starting_with("gh").is_empty());
    }
}
