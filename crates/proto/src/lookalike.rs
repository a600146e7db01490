//! Text that could pass for a relay line on a classic terminal.
//!
//! A classic client (`nc -u`) prints a chat as `nick: text`, and the
//! terminal wraps a long line softly: at some width, any part of a long text
//! starts a screen row of its own, where nothing tells it from a line the
//! relay sent. Padding does it (spaces, or letters just as well), so the
//! rule is about content, at every position in the text:
//!
//! - no run of more than [`MAX_SPACE_RUN`] spaces (of any kind): invisible
//!   padding; indented code stays fine;
//! - nothing that reads as the start of a relay notice of
//!   [`crate::classic`]: the openers `[host]`, `[主持人]`, `[private from `,
//!   `[private to `, `[私信`; `* ` then a nickname-like word then a notice
//!   ending (`joined`, `left`, `reconnected`, `is now known as`, `was
//!   removed by the host`, or a Chinese one); the relay's own `* ` lines
//!   (`* online (`, `* you were removed by the host`, `* you were
//!   disconnected`, `* the relay is shutting down`, `* your hand is up`,
//!   `* the teacher calls on you`, `* the host turned moderated mode ...`,
//!   `* you can speak now`, `* you can no longer speak`, and their Chinese
//!   forms); `[announcement]`, `[通知]`; an error line `ERROR <code>:` /
//!   `错误 <code>:` with a real code.
//!
//! An action (`/me waves` from alice, shown `* alice waves`) is checked as
//! the whole line it becomes ([`check_action`]): `/me left` is refused.
//!
//! English words compare case-insensitively, and spaces between words count
//! as one however many there are. Ordinary text stays allowed: `2 * 3 = 6`,
//! `a*b`, `[hostname]`, `* note`, `I left early`.

use crate::{ErrorCode, ParseError};

/// The most spaces text may have in a row (code indented by up to 16 stays
/// fine; longer runs are padding that pushes text to the start of a row).
pub const MAX_SPACE_RUN: usize = 16;

/// Openers of relay lines in brackets (compared lowercased).
const BRACKET_OPENERS: &[&str] = &[
    "[host]",
    "[主持人]",
    "[private from ",
    "[private to ",
    "[私信",
    "[announcement]",
    "[通知]",
];

/// What follows `* ` in the relay's own star lines (lowercased).
const STAR_LINES: &[&str] = &[
    "online (",
    "在线 (",
    "you were removed by the host",
    "you were disconnected",
    "the relay is shutting down",
    "你已被主持人移出",
    "你已断开连接",
    "服务器即将关闭",
    "your hand is up",
    "the teacher calls on you",
    "你已举手",
    "老师点到你了",
    "the host turned moderated mode",
    "主持人开启了发言管理模式",
    "主持人关闭了发言管理模式",
    "you can speak now",
    "you can no longer speak",
    "你现在可以发言了",
    "你不能再发言了",
];

/// What follows `* <nick> ` in a membership notice, English (a whole word
/// or phrase: not followed by a letter or digit).
const ENDINGS_EN: &[&str] = &[
    "joined",
    "left",
    "reconnected",
    "is now known as",
    "was removed by the host",
];

/// The same in Chinese (no word boundary needed; a Chinese nickname may
/// run into it without a space).
const ENDINGS_ZH: &[&str] = &[
    "加入了聊天室",
    "重新连接了",
    "离开了聊天室",
    "被主持人移出聊天室",
    "改名为",
];

/// Refuses an action (`/me <text>` from `nick`) whose classic line,
/// `* <nick> <text>`, would read as a relay notice: `/me joined` from
/// alice is `* alice joined`, which only the relay may say. The same rule
/// as for any text, applied to the whole line the action becomes.
pub fn check_action(nick: &str, text: &str) -> Result<(), ParseError> {
    check_text_content(&format!("* {nick} {text}"))
}

/// Refuses text with a long run of spaces or a look-alike of a relay line.
pub fn check_text_content(s: &str) -> Result<(), ParseError> {
    let mut run = 0;
    for c in s.chars() {
        if c.is_whitespace() {
            run += 1;
            if run > MAX_SPACE_RUN {
                return Err(ParseError::SpaceRun);
            }
        } else {
            run = 0;
        }
    }
    match find_notice(s) {
        Some(snippet) => Err(ParseError::LooksLikeNotice(snippet)),
        None => Ok(()),
    }
}

/// The start of the first relay-line look-alike in `s` (lowercased, spaces
/// folded, at most 40 characters), if any.
fn find_notice(s: &str) -> Option<String> {
    // Cheap exit: every pattern has one of these characters.
    if !s.contains(['*', '[', ':', '：']) {
        return None;
    }
    let folded = fold(s);
    let at = bracket_opener(&folded)
        .into_iter()
        .chain(star_notice(&folded))
        .chain(error_line(&folded))
        .min()?;
    Some(folded[at..].chars().take(40).collect())
}

/// `s` lowercased, each run of whitespace one space.
fn fold(s: &str) -> String {
    let mut folded = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !space {
                folded.push(' ');
            }
            space = true;
        } else {
            folded.extend(c.to_lowercase());
            space = false;
        }
    }
    folded
}

fn bracket_opener(folded: &str) -> Option<usize> {
    BRACKET_OPENERS.iter().filter_map(|o| folded.find(o)).min()
}

/// Where a `* ` notice starts: the relay's own star lines, or `* <word>
/// <ending>`.
fn star_notice(folded: &str) -> Option<usize> {
    folded.match_indices("* ").map(|(i, _)| i).find(|&i| {
        let rest = &folded[i + 2..];
        if STAR_LINES.iter().any(|l| rest.starts_with(l)) {
            return true;
        }
        let word_end = rest.find(|c: char| !is_nick_char(c)).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_end);
        if word.is_empty() {
            return false;
        }
        // A Chinese nickname may run into a Chinese ending.
        if ENDINGS_ZH
            .iter()
            .any(|e| word.len() > e.len() && word.ends_with(e))
        {
            return true;
        }
        let Some(after) = after.strip_prefix(' ') else {
            return false;
        };
        ENDINGS_ZH.iter().any(|e| after.starts_with(e))
            || ENDINGS_EN.iter().any(|e| {
                after
                    .strip_prefix(e)
                    .is_some_and(|tail| !tail.starts_with(char::is_alphanumeric))
            })
    })
}

/// Where an `ERROR <code>:` or `错误 <code>:` line starts.
fn error_line(folded: &str) -> Option<usize> {
    ["error ", "错误 "]
        .iter()
        .flat_map(|word| folded.match_indices(word))
        .map(|(i, word)| (i, &folded[i + word.len()..]))
        .filter(|(_, rest)| {
            ErrorCode::ALL.iter().any(|code| {
                rest.strip_prefix(code.as_str())
                    .is_some_and(|tail| tail.starts_with([':', '：']) || tail.starts_with(" :"))
            })
        })
        .map(|(i, _)| i)
        .min()
}

/// A character a nickname may have (the look-alike needs a nickname).
fn is_nick_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classic::render;
    use crate::{ByeCode, HandNotice, Lang, LeaveReason, Nick, Origin, RelayMsg, RoomEvent, Text};

    fn refused(s: &str) -> bool {
        check_text_content(s).is_err()
    }

    #[test]
    fn ordinary_text_stays_allowed() {
        for s in [
            "2 * 3 = 6",
            "a*b",
            "[hostname]",
            "* note",
            "* note: left side of the board",
            "I left early",
            "bob left",
            "error: file not found",
            "ERROR 404: not found",
            "[private]",
            "[host name]",
            "* bob leftover",
            "* bob",
            "see [1] and [2]",
            "**bold** text",
            "我离开了聊天室",
            "    indented by four",
            &" ".repeat(MAX_SPACE_RUN),
        ] {
            assert_eq!(check_text_content(s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn every_notice_form_is_refused_anywhere_in_the_text() {
        for s in [
            "* teacher left",
            "* teacher left (timed out)",
            "* Teacher LEFT",
            "* bob joined",
            "* bob reconnected",
            "* bob is now known as alice",
            "* bob was removed by the host",
            "* bob 加入了聊天室",
            "* bob 离开了聊天室（超时）",
            "* 小明离开了聊天室",
            "* bob 重新连接了",
            "* bob 被主持人移出聊天室",
            "* bob 改名为 alice",
            "[host] class is over",
            "[HOST] class is over",
            "[主持人] 下课了",
            "[private from teacher] send me your password",
            "[private to bob] hi",
            "[私信 来自 老师] 你好",
            "* online (3): a, b, c",
            "* 在线 (3): a",
            "* you were removed by the host: bye",
            "* you were disconnected: no message",
            "* the relay is shutting down: bye",
            "* 服务器即将关闭：再见",
            "* 你已被主持人移出：再见",
            "* 你已断开连接：超时",
            "* your hand is up; 1st in line",
            "* The teacher calls on you",
            "* 你已举手，排第 1 位",
            "* 老师点到你了",
            "ERROR not-joined: you have not joined",
            "错误 not-joined: 你尚未加入",
            "*   bob    left",
            "* the host turned moderated mode on: only members with a voice can speak",
            "* The host turned moderated mode off",
            "* you can speak now",
            "* You can no longer speak",
            "* 你现在可以发言了",
            "* 你不能再发言了",
            "* 主持人开启了发言管理模式：只有获准发言的成员可以发言",
            "[announcement] no class tomorrow",
            "[Announcement] no class tomorrow",
            "[通知] 明天不上课",
        ] {
            assert!(refused(s), "{s:?} was allowed");
            // Wrapped to the start of a row by letters or by spaces.
            assert!(refused(&format!("{} {s}", "x".repeat(70))), "{s:?}");
            assert!(refused(&format!("hello{}{s}", " ".repeat(16))), "{s:?}");
        }
    }

    #[test]
    fn every_classic_line_with_a_nick_or_text_in_it_is_refused_as_text() {
        // Whatever the relay prints to a classic client about someone, a
        // member cannot type (except the chat line itself, `nick: text`).
        let nick = Nick::new("bob").unwrap();
        let text = Text::new("hi").unwrap();
        let mut msgs = vec![
            RoomEvent::Join(nick.clone()),
            RoomEvent::Reconnect(nick.clone()),
            RoomEvent::Rename {
                old: nick.clone(),
                new: Nick::new("al").unwrap(),
            },
            RoomEvent::Host(text.clone()),
            RoomEvent::Moderated(true),
            RoomEvent::Moderated(false),
            RoomEvent::Announce(text.clone()),
        ]
        .into_iter()
        .chain(
            [
                LeaveReason::Quit,
                LeaveReason::Timeout,
                LeaveReason::Unreachable,
                LeaveReason::Kicked,
            ]
            .map(|reason| RoomEvent::Leave {
                nick: nick.clone(),
                reason,
            }),
        )
        .map(|event| RelayMsg::Event {
            seq: 1,
            origin: Origin::Live,
            ago: None,
            event,
        })
        .collect::<Vec<_>>();
        msgs.push(RelayMsg::Private {
            pid: 1,
            from: nick.clone(),
            text: text.clone(),
        });
        msgs.push(RelayMsg::Sent {
            id: None,
            to: nick.clone(),
            text: text.clone(),
        });
        msgs.extend(RelayMsg::who_pages(std::slice::from_ref(&nick)));
        msgs.push(RelayMsg::Hand(HandNotice::Up { position: 3 }));
        msgs.push(RelayMsg::Hand(HandNotice::Called));
        msgs.push(RelayMsg::Voice(true));
        msgs.push(RelayMsg::Voice(false));
        for code in [ByeCode::Shutdown, ByeCode::Kicked, ByeCode::Timeout] {
            msgs.push(RelayMsg::Bye {
                code,
                reason: text.clone(),
            });
        }
        for code in ErrorCode::ALL {
            msgs.push(RelayMsg::Error {
                code: *code,
                reason: text.clone(),
            });
        }
        for msg in &msgs {
            for lang in [Lang::En, Lang::Zh] {
                let line = render(msg, lang).unwrap();
                assert!(refused(&line), "{line:?} is allowed as text");
            }
        }
    }

    #[test]
    fn the_relays_own_texts_pass() {
        for code in ErrorCode::ALL {
            for lang in [Lang::En, Lang::Zh] {
                let reason = code.reason(lang);
                assert_eq!(check_text_content(reason), Ok(()), "{reason:?}");
            }
        }
    }

    #[test]
    fn actions_that_read_as_notices_are_refused() {
        for (nick, text) in [
            ("alice", "joined"),
            ("alice", "left"),
            ("alice", "left (timed out)"),
            ("alice", "was removed by the host"),
            ("alice", "is now known as bob"),
            ("alice", "reconnected"),
            ("alice", "加入了聊天室"),
            ("alice", "离开了聊天室"),
            ("alice", "被主持人移出聊天室"),
            ("alice", "改名为 bob"),
            ("you", "can speak now"),
            ("the", "host turned moderated mode on"),
            ("alice", "waves [host] class is over"),
            // A notice ending followed by more words still reads as one.
            ("alice", "left the room early, sorry"),
        ] {
            assert!(check_action(nick, text).is_err(), "{nick} {text}");
        }
        for (nick, text) in [
            ("alice", "waves"),
            ("alice", "leaves early"),
            ("alice", "joins in"),
            ("小明", "挥手"),
            ("alice", "is now happy"),
        ] {
            assert_eq!(check_action(nick, text), Ok(()), "{nick} {text}");
        }
    }

    #[test]
    fn long_space_runs_are_refused() {
        assert_eq!(
            check_text_content(&" ".repeat(17)),
            Err(ParseError::SpaceRun)
        );
        assert!(refused(&format!("a{}b", " ".repeat(17))));
        // Other spaces pad as well.
        assert!(refused(&format!("a{}b", "\u{3000}".repeat(17))));
        assert!(refused(&format!("a{}b", " \u{a0}".repeat(9))));
    }
}
