//! What the user sees: one [`Line`] per thing that happened, rendered to a
//! string by [`render`] (no I/O; the clock reading comes in as a string).

use udpchat_proto::LeaveReason;

use crate::text::{sanitize, width, wrap};

/// Something to show the user. Strings are as received (unsanitized);
/// [`render`] makes them safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A room message. `own` when we sent it; `history` when it was said
    /// before we joined.
    Chat {
        /// Who said it.
        nick: String,
        /// What.
        text: String,
        /// We said it.
        own: bool,
        /// Said before we joined.
        history: bool,
    },
    /// A message from the host (the relay's operator console).
    Host {
        /// What.
        text: String,
        /// Said before we joined.
        history: bool,
    },
    /// A member's action (`/me waves`, shown `* alice waves`).
    Action {
        /// Who.
        nick: String,
        /// What it does.
        text: String,
        /// Before we joined.
        history: bool,
    },
    /// An announcement from the host (highlighted; the session confirms
    /// it with `SEEN`).
    Announce {
        /// What.
        text: String,
        /// Before we joined.
        history: bool,
    },
    /// A member joined.
    Join {
        /// Who.
        nick: String,
        /// Before we joined.
        history: bool,
    },
    /// A member left.
    Leave {
        /// Who.
        nick: String,
        /// Why.
        reason: LeaveReason,
        /// Before we joined.
        history: bool,
    },
    /// A member changed nickname.
    Rename {
        /// Old nickname.
        old: String,
        /// New nickname.
        new: String,
        /// Before we joined.
        history: bool,
    },
    /// A private message for us.
    PrivateFrom {
        /// Sender.
        from: String,
        /// What.
        text: String,
    },
    /// Our private message, confirmed delivered by the relay.
    PrivateTo {
        /// Recipient.
        to: String,
        /// What.
        text: String,
    },
    /// One page of the member list.
    Who {
        /// Members in all.
        count: u32,
        /// This page.
        page: u32,
        /// Pages in all.
        pages: u32,
        /// Nicknames on this page.
        nicks: Vec<String>,
    },
    /// Something the client itself wants to say (connection lost, messages
    /// lost, ...).
    Notice(String),
    /// Something went wrong (a relay error, a bad command).
    Error(String),
    /// The command list.
    Help,
    /// A history line whose time the relay stated: said `ago` before it
    /// was handed to the screen (shown `[history HH:MM]`).
    Said {
        /// How long ago.
        ago: std::time::Duration,
        /// The history line.
        line: Box<Line>,
    },
}

/// How to render: colours, wrapping, the time stamp.
#[derive(Debug, Clone, Default)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
    /// Terminal width to wrap to, if any.
    pub columns: Option<usize>,
    /// Current local time, `HH:MM`, shown before live lines.
    pub time: String,
}

/// The text shown by `/help`.
pub const HELP: &str = "\
commands:
  /who             who is in the room
  /msg NICK text   private message to NICK
  /nick NEW        change your nickname
  /hand [question] raise your hand; the teacher calls on you in turn
  /me TEXT         an action, shown as: * yourname TEXT
  /quit            leave (Ctrl-D and Ctrl-C too)
  /help            this list
  //text           send a message that starts with /
anything else is sent to the room";

const RESET: &str = "\x1b[0m";
const BOLD_GREEN: &str = "\x1b[1;32m";
const BOLD_CYAN: &str = "\x1b[1;36m";
const MAGENTA: &str = "\x1b[35m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[1;31m";
const DIM: &str = "\x1b[2m";
const ANNOUNCE: &str = "\x1b[1;7;33m";

/// Renders `line` as one or more terminal lines joined with `\n` (no
/// trailing newline). Every string from the relay is sanitized here.
pub fn render(line: &Line, style: &Style) -> String {
    render_with(line, style, None)
}

/// Renders a history line said at local time `said` (`HH:MM`):
/// `[history HH:MM] ...`.
pub fn render_said(line: &Line, style: &Style, said: &str) -> String {
    render_with(line, style, Some(said))
}

fn render_with(line: &Line, style: &Style, said: Option<&str>) -> String {
    if let Line::Help = line {
        return HELP.to_owned();
    }
    if let Line::Said { line, .. } = line {
        // Without a clock here: the app turns `ago` into a time.
        return render_with(line, style, said);
    }
    let history = matches!(
        line,
        Line::Chat { history: true, .. }
            | Line::Host { history: true, .. }
            | Line::Action { history: true, .. }
            | Line::Announce { history: true, .. }
            | Line::Join { history: true, .. }
            | Line::Leave { history: true, .. }
            | Line::Rename { history: true, .. }
    );
    // The stamp: time for live lines, a marker for history (whose time we
    // do not know).
    let stamp = if history {
        match said {
            Some(said) => format!("[history {said}] "),
            None => "[history] ".to_owned(),
        }
    } else if style.time.is_empty() {
        String::new()
    } else {
        format!("{} ", style.time)
    };
    // (label, label colour, body, body colour)
    let (label, label_color, body, body_color): (String, &str, String, &str) = match line {
        Line::Chat {
            nick, text, own, ..
        } => {
            if *own {
                (
                    format!("{} (you): ", sanitize(nick)),
                    BOLD_GREEN,
                    text.clone(),
                    "",
                )
            } else {
                (format!("{}: ", sanitize(nick)), BOLD_CYAN, text.clone(), "")
            }
        }
        Line::Host { text, .. } => ("[host] ".to_owned(), RED, text.clone(), ""),
        Line::Action { nick, text, .. } => (
            "* ".into(),
            BOLD_CYAN,
            format!("{} {text}", sanitize(nick)),
            "",
        ),
        Line::Announce { text, .. } => ("[announcement] ".into(), ANNOUNCE, text.clone(), ANNOUNCE),
        Line::Join { nick, .. } => ("* ".into(), YELLOW, format!("{nick} joined"), YELLOW),
        Line::Leave { nick, reason, .. } => {
            let why = match reason {
                LeaveReason::Quit => "left",
                LeaveReason::Timeout => "left (timed out)",
                LeaveReason::Unreachable => "left (unreachable)",
                LeaveReason::Kicked => "was removed by the host",
            };
            ("* ".into(), YELLOW, format!("{nick} {why}"), YELLOW)
        }
        Line::Rename { old, new, .. } => (
            "* ".into(),
            YELLOW,
            format!("{old} is now known as {new}"),
            YELLOW,
        ),
        Line::PrivateFrom { from, text } => (
            format!("[private from {}] ", sanitize(from)),
            MAGENTA,
            text.clone(),
            MAGENTA,
        ),
        Line::PrivateTo { to, text } => (
            format!("[private to {}] ", sanitize(to)),
            MAGENTA,
            text.clone(),
            MAGENTA,
        ),
        Line::Who {
            count,
            page,
            pages,
            nicks,
        } => {
            let head = if *pages > 1 {
                format!("online ({count}, page {page}/{pages}): ")
            } else {
                format!("online ({count}): ")
            };
            (
                "* ".into(),
                YELLOW,
                format!("{head}{}", nicks.join(", ")),
                YELLOW,
            )
        }
        Line::Notice(text) => ("* ".into(), YELLOW, text.clone(), YELLOW),
        Line::Error(text) => ("! ".into(), RED, text.clone(), RED),
        Line::Help | Line::Said { .. } => unreachable!("handled above"),
    };
    let body = sanitize(&body);
    let stamp_color = if history { DIM } else { "" };
    let prefix_width = width(&stamp) + width(&label);
    let pieces = match style.columns {
        Some(cols) if cols > 8 => {
            // Continuation lines align under the text, unless the prefix
            // eats most of the line.
            let indent = if prefix_width * 2 <= cols {
                prefix_width
            } else {
                2
            };
            let mut lines = wrap(&body, cols.saturating_sub(prefix_width), cols - indent);
            for l in lines.iter_mut().skip(1) {
                l.insert_str(0, &" ".repeat(indent));
            }
            lines
        }
        _ => vec![body.into_owned()],
    };
    let paint = |s: &str, color: &str| -> String {
        if style.color && !color.is_empty() && !s.is_empty() {
            format!("{color}{s}{RESET}")
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    out.push_str(&paint(&stamp, stamp_color));
    out.push_str(&paint(&label, label_color));
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&paint(piece, body_color));
    }
    out
}

/// Tab stops of the line editor (rustyline's default), for [`input_rows`].
const EDITOR_TAB_STOP: usize = 8;

/// How many terminal rows the line editor used for `prompt` followed by
/// the accepted `line`, counting the row the cursor moved to when the line
/// was accepted: moving up that many rows and clearing to the end of the
/// screen erases the finished input (see `app.rs`). `columns` is the
/// terminal's width; `width` gives the columns of one grapheme cluster as
/// the editor counts them (rustyline's `GraphemeClusterMode::width`).
///
/// This follows the line editor's own layout (rustyline's
/// `calculate_position`): a line break starts a row, a grapheme that does
/// not fit moves to the next row whole, a row filled to the last column
/// ends there, escape sequences take no column.
pub fn input_rows(
    prompt: &str,
    line: &str,
    columns: usize,
    width: &dyn Fn(&str) -> usize,
) -> usize {
    use unicode_segmentation::UnicodeSegmentation;

    let columns = columns.max(1);
    let advance = |s: &str, mut row: usize, mut col: usize| -> (usize, usize) {
        // 0: text, 1: after ESC, 2: in a CSI sequence.
        let mut escape = 0u8;
        for g in s.graphemes(true) {
            if g == "\n" {
                row += 1;
                col = 0;
                continue;
            }
            let w = match escape {
                1 => {
                    escape = if g == "[" { 2 } else { 0 };
                    0
                }
                2 => {
                    if !(g == ";" || g.starts_with(|c: char| c.is_ascii_digit())) {
                        escape = 0;
                    }
                    0
                }
                _ if g == "\x1b" => {
                    escape = 1;
                    0
                }
                _ if g == "\t" => EDITOR_TAB_STOP - col % EDITOR_TAB_STOP,
                _ => width(g),
            };
            col += w;
            if col > columns {
                row += 1;
                col = w;
            }
        }
        if col == columns {
            row += 1;
            col = 0;
        }
        (row, col)
    };
    let (row, col) = advance(prompt, 0, 0);
    let (row, _) = advance(line, row, col);
    row + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(time: &str) -> Style {
        Style {
            color: false,
            columns: None,
            time: time.into(),
        }
    }

    fn chat(nick: &str, text: &str, own: bool) -> Line {
        Line::Chat {
            nick: nick.into(),
            text: text.into(),
            own,
            history: false,
        }
    }

    #[test]
    fn chat_line_shows_time_nick_and_exact_text() {
        assert_eq!(
            render(&chat("小明", "你好  世界 ", false), &plain("09:05")),
            "09:05 小明: 你好  世界 "
        );
    }

    #[test]
    fn own_private_system_and_history_lines_differ_at_a_glance() {
        let style = plain("09:05");
        assert_eq!(
            render(&chat("me", "hi", true), &style),
            "09:05 me (you): hi"
        );
        assert_eq!(
            render(
                &Line::PrivateFrom {
                    from: "bob".into(),
                    text: "psst".into()
                },
                &style
            ),
            "09:05 [private from bob] psst"
        );
        assert_eq!(
            render(
                &Line::Join {
                    nick: "bob".into(),
                    history: false
                },
                &style
            ),
            "09:05 * bob joined"
        );
        assert_eq!(
            render(
                &Line::Chat {
                    nick: "bob".into(),
                    text: "old".into(),
                    own: false,
                    history: true
                },
                &style
            ),
            "[history] bob: old"
        );
        // With the time the relay stated (the app turns `ago` into HH:MM).
        let old = Line::Chat {
            nick: "bob".into(),
            text: "old".into(),
            own: false,
            history: true,
        };
        assert_eq!(
            render_said(&old, &style, "08:47"),
            "[history 08:47] bob: old"
        );
        let said = Line::Said {
            ago: std::time::Duration::from_secs(60),
            line: Box::new(old),
        };
        assert_eq!(render(&said, &style), "[history] bob: old");
        assert_eq!(render(&Line::Error("no".into()), &style), "09:05 ! no");
    }

    #[test]
    fn control_characters_from_the_relay_never_reach_the_terminal() {
        let line = chat("ev\u{1b}il", "a\u{1b}[2J\u{202e}b\u{9b}", false);
        for color in [false, true] {
            let style = Style {
                color,
                columns: Some(200),
                time: "10:00".into(),
            };
            let out = render(&line, &style);
            assert!(out.contains("\\u{1b}[2J\\u{202e}b\\u{9b}"), "{out:?}");
            // With colours on, the only ESCs are our own colour codes.
            let stripped = out
                .replace(RESET, "")
                .replace(BOLD_CYAN, "")
                .replace(YELLOW, "");
            assert!(!stripped.contains('\u{1b}'), "{stripped:?}");
            assert!(!out.contains('\u{202e}') && !out.contains('\u{9b}'));
        }
    }

    #[test]
    fn colours_only_when_asked() {
        let line = chat("bob", "hi", false);
        assert!(!render(&line, &plain("10:00")).contains('\u{1b}'));
        let style = Style {
            color: true,
            ..plain("10:00")
        };
        assert!(render(&line, &style).contains(BOLD_CYAN));
    }

    #[test]
    fn wrapped_lines_align_under_the_text_by_display_width() {
        let style = Style {
            color: false,
            columns: Some(24),
            time: "10:00".into(),
        };
        // Prefix "10:00 小明: " is 12 columns; 12 left per line = 6 CJK chars.
        let out = render(&chat("小明", "一二三四五六七八九十", false), &style);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, ["10:00 小明: 一二三四五六", "            七八九十"]);
        assert!(lines.iter().all(|l| width(l) <= 24));
    }

    #[test]
    fn accepted_input_rows_follow_the_editor_layout() {
        let input_rows = |prompt: &str, line: &str, columns: usize| {
            input_rows(prompt, line, columns, &|g: &str| width(g))
        };
        assert_eq!(input_rows("alice> ", "hello", 80), 1);
        assert_eq!(input_rows("alice> ", "", 80), 1);
        // Exactly filling the row ends it; one more character starts the next.
        assert_eq!(input_rows("ab> ", &"x".repeat(6), 10), 2);
        assert_eq!(input_rows("ab> ", &"x".repeat(5), 10), 1);
        assert_eq!(input_rows("ab> ", &"x".repeat(7), 10), 2);
        assert_eq!(input_rows("ab> ", &"x".repeat(16), 10), 3);
        // A wide character never straddles the edge.
        assert_eq!(input_rows("ab> ", "xxxxx你", 10), 2);
        // A pasted block keeps its line breaks.
        assert_eq!(input_rows("ab> ", "one\ntwo\nthree\n", 80), 4);
        assert_eq!(input_rows("ab> ", "a\tb", 80), 1);
        // A tab reaches the next tab stop: "ab> " + "x" + tab ends at 8.
        assert_eq!(input_rows("ab> ", "x\tyy", 9), 2);
        // An escape sequence takes no column.
        assert_eq!(input_rows("ab> ", "\u{1b}[1;31mxxxxx", 10), 1);
        // The width of a cluster is the editor's: one emoji with a skin
        // tone counted as 2 columns or as 4 makes a row more or less.
        let line = "xxxx👋🏿";
        assert_eq!(input_rows("ab> ", line, 11), 2);
        let grapheme = |g: &str| if g.chars().count() > 1 { 2 } else { width(g) };
        assert_eq!(super::input_rows("ab> ", line, 11, &grapheme), 1);
    }

    #[test]
    fn who_lists_nicks() {
        let line = Line::Who {
            count: 2,
            page: 1,
            pages: 1,
            nicks: vec!["a".into(), "b".into()],
        };
        assert_eq!(render(&line, &plain("")), "* online (2): a, b");
    }
}
