//! What the user sees: one [`Line`] per thing that happened, rendered to a
//! string by [`render`] (no I/O; the clock reading comes in as a string).

use udpchat_proto::{LeaveReason, Nick};

use crate::catalog::{Lang, Msg};
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
    Notice(Msg),
    /// Something went wrong (a relay error, a bad command).
    Error(Msg),
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

/// How to render: colours, wrapping, the time stamp, the language.
#[derive(Debug, Clone, Default)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
    /// Terminal width to wrap to, if any.
    pub columns: Option<usize>,
    /// Current local time, `HH:MM`, shown before live lines.
    pub time: String,
    /// The language of the client's own words.
    pub lang: Lang,
    /// Our nickname, for highlighting messages that mention it.
    pub me: Option<Nick>,
}

const RESET: &str = "\x1b[0m";
const MAGENTA: &str = "\x1b[35m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[1;31m";
const DIM: &str = "\x1b[2m";
/// A message for us (a mention, a private message): bold, reversed.
pub const HIGHLIGHT: &str = "\x1b[1;7m";

/// Nickname colours (xterm 256-colour numbers): middle tones that read on a
/// dark and on a light background alike; no white, black, grey or yellow,
/// and no pure red (errors and the host are red).
pub const NICK_COLORS: [u8; 12] = [28, 31, 33, 37, 62, 64, 97, 127, 130, 133, 166, 168];

/// The colour of a nickname: the same for every spelling with the same key
/// (`Alice` and `alice`), in every run and on every machine (FNV-1a of the
/// key, not a randomly seeded hash).
pub fn nick_color(nick: &str) -> u8 {
    let key = Nick::new(nick).map_or_else(|_| nick.to_lowercase(), |n| n.key());
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    NICK_COLORS[(h % NICK_COLORS.len() as u32) as usize]
}

/// The escape sequence that paints a nickname; bold for our own.
fn nick_sgr(nick: &str, own: bool) -> String {
    let bold = if own { "1;" } else { "" };
    format!("\x1b[{bold}38;5;{}m", nick_color(nick))
}

/// Whether `text` mentions `me`: one of its words (a run of the characters
/// a nickname may have) is `me` by the nickname rules (any letter case, a
/// look-alike spelling), also with a trailing `.`, `-` or `_` (end of a
/// sentence). A nickname in a script written without spaces (Chinese,
/// Japanese) counts anywhere in a word.
pub fn mentions(text: &str, me: &Nick) -> bool {
    let key = me.key();
    let nick_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    let wide = me
        .as_str()
        .chars()
        .any(|c| width(c.encode_utf8(&mut [0; 4])) == 2);
    text.split(|c: char| !nick_char(c))
        .filter(|w| !w.is_empty())
        .any(|word| {
            let same = |w: &str| Nick::new(w).is_ok_and(|n| n.key() == key);
            same(word)
                || same(word.trim_end_matches(['.', '-', '_']))
                || (wide && word.contains(me.as_str()))
        })
}

/// Whether `line` is for us in particular: a private message, or a live
/// room message of someone else that mentions `me`. Such a line is
/// highlighted and rings the terminal bell.
pub fn is_for_me(line: &Line, me: Option<&Nick>) -> bool {
    match line {
        Line::PrivateFrom { .. } => true,
        Line::Chat {
            text,
            own: false,
            history: false,
            ..
        } => me.is_some_and(|me| mentions(text, me)),
        _ => false,
    }
}
/// An announcement of the host: bold, reversed, yellow.
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
    let lang = style.lang;
    if let Line::Help = line {
        return Msg::Help.text(lang);
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
        let at = said.map(str::to_owned);
        format!("{} ", Msg::History { at }.text(lang))
    } else if style.time.is_empty() {
        String::new()
    } else {
        format!("{} ", style.time)
    };
    let for_me = is_for_me(line, style.me.as_ref());
    let highlight = if for_me { HIGHLIGHT } else { "" };
    // The label in pieces (text, colour), the body and its colour.
    let (label, body, body_color): (Vec<(String, String)>, String, &str) = match line {
        Line::Chat {
            nick, text, own, ..
        } => {
            let nick = sanitize(nick).into_owned();
            let sgr = nick_sgr(&nick, *own);
            let mut label = vec![(nick, sgr)];
            if *own {
                label.push((Msg::You.text(lang), String::new()));
            }
            label.push((": ".into(), String::new()));
            (label, text.clone(), highlight)
        }
        Line::Host { text, .. } => (
            vec![(format!("{} ", Msg::HostLabel.text(lang)), RED.into())],
            text.clone(),
            "",
        ),
        Line::Action { nick, text, .. } => {
            let nick = sanitize(nick).into_owned();
            let sgr = nick_sgr(&nick, false);
            (
                vec![
                    ("* ".into(), String::new()),
                    (nick, sgr),
                    (" ".into(), String::new()),
                ],
                text.clone(),
                "",
            )
        }
        Line::Announce { text, .. } => (
            vec![(
                format!("{} ", Msg::AnnouncementLabel.text(lang)),
                ANNOUNCE.into(),
            )],
            text.clone(),
            ANNOUNCE,
        ),
        Line::Join { nick, .. } => (
            vec![("* ".into(), YELLOW.into())],
            Msg::JoinedRoom { nick: nick.clone() }.text(lang),
            YELLOW,
        ),
        Line::Leave { nick, reason, .. } => (
            vec![("* ".into(), YELLOW.into())],
            Msg::Left {
                nick: nick.clone(),
                reason: *reason,
            }
            .text(lang),
            YELLOW,
        ),
        Line::Rename { old, new, .. } => (
            vec![("* ".into(), YELLOW.into())],
            Msg::Renamed {
                old: old.clone(),
                new: new.clone(),
            }
            .text(lang),
            YELLOW,
        ),
        Line::PrivateFrom { from, text } => (
            vec![(
                format!(
                    "{} ",
                    Msg::PrivateFrom {
                        nick: sanitize(from).into_owned()
                    }
                    .text(lang)
                ),
                MAGENTA.into(),
            )],
            text.clone(),
            HIGHLIGHT,
        ),
        Line::PrivateTo { to, text } => (
            vec![(
                format!(
                    "{} ",
                    Msg::PrivateTo {
                        nick: sanitize(to).into_owned()
                    }
                    .text(lang)
                ),
                MAGENTA.into(),
            )],
            text.clone(),
            MAGENTA,
        ),
        Line::Who {
            count,
            page,
            pages,
            nicks,
        } => {
            let head = Msg::Online {
                count: *count,
                page: *page,
                pages: *pages,
            }
            .text(lang);
            (
                vec![("* ".into(), YELLOW.into())],
                format!("{head}{}", nicks.join(", ")),
                YELLOW,
            )
        }
        Line::Notice(msg) => (vec![("* ".into(), YELLOW.into())], msg.text(lang), YELLOW),
        Line::Error(msg) => (vec![("! ".into(), RED.into())], msg.text(lang), RED),
        Line::Help | Line::Said { .. } => unreachable!("handled above"),
    };
    let body = sanitize(&body);
    let stamp_color = if history { DIM } else { "" };
    let label_width: usize = label.iter().map(|(text, _)| width(text)).sum();
    let prefix_width = width(&stamp) + label_width;
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
    for (text, color) in &label {
        out.push_str(&paint(text, color));
    }
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if i > 0 && style.color && !body_color.is_empty() {
            // The indent stays unpainted.
            let text = piece.trim_start_matches(' ');
            out.push_str(&piece[..piece.len() - text.len()]);
            out.push_str(&paint(text, body_color));
        } else {
            out.push_str(&paint(piece, body_color));
        }
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
            time: time.into(),
            ..Style::default()
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
        assert_eq!(
            render(&Line::Error(Msg::ConnectionLost), &style),
            "09:05 ! connection lost, rejoining…"
        );
    }

    #[test]
    fn control_characters_from_the_relay_never_reach_the_terminal() {
        let line = chat("ev\u{1b}il", "a\u{1b}[2J\u{202e}b\u{9b}", false);
        for color in [false, true] {
            let style = Style {
                color,
                columns: Some(200),
                time: "10:00".into(),
                ..Style::default()
            };
            let out = render(&line, &style);
            assert!(out.contains("\\u{1b}[2J\\u{202e}b\\u{9b}"), "{out:?}");
            // With colours on, the only ESCs are our own colour codes.
            let stripped = out
                .replace(RESET, "")
                .replace(&nick_sgr("ev\u{1b}il", false), "")
                .replace(&nick_sgr("ev\\u{1b}il", false), "")
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
        assert!(render(&line, &style).contains(&nick_sgr("bob", false)));
    }

    #[test]
    fn wrapped_lines_align_under_the_text_by_display_width() {
        let style = Style {
            columns: Some(24),
            time: "10:00".into(),
            ..Style::default()
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

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    #[test]
    fn a_nickname_keeps_its_colour_whatever_its_case_and_names_spread_over_the_palette() {
        assert_eq!(nick_color("alice"), nick_color("Alice"));
        assert_eq!(nick_color("alice"), nick_color("ALICE"));
        // Fixed values: the same in every run and on every machine.
        assert_eq!(nick_color("bob"), nick_color("b0b"));
        let colours: std::collections::HashSet<u8> = (0..200)
            .map(|i| nick_color(&format!("student{i}")))
            .collect();
        assert_eq!(colours.len(), NICK_COLORS.len(), "{colours:?}");
        // No white, black, greys or yellows: readable on dark and light.
        for c in NICK_COLORS {
            assert!(
                !matches!(c, 0 | 7 | 8 | 15 | 16 | 231..=255 | 3 | 11 | 226..=230),
                "{c}"
            );
        }
    }

    #[test]
    fn nicknames_are_painted_and_our_own_is_bold() {
        let style = Style {
            color: true,
            time: "10:00".into(),
            ..Style::default()
        };
        let out = render(&chat("bob", "hi", false), &style);
        let sgr = format!("\x1b[38;5;{}m", nick_color("bob"));
        assert_eq!(out, format!("10:00 {sgr}bob{RESET}: hi"));
        let out = render(&chat("alice", "hi", true), &style);
        let sgr = format!("\x1b[1;38;5;{}m", nick_color("alice"));
        assert_eq!(out, format!("10:00 {sgr}alice{RESET} (you): hi"));
    }

    #[test]
    fn mentions_are_words_by_the_nickname_rules() {
        let me = nick("alice");
        for text in [
            "alice",
            "hi alice!",
            "ALICE, look",
            "thanks Alice.",
            "@alice what",
            "is that you, ａｌｉｃｅ?",
        ] {
            assert!(mentions(text, &me), "{text}");
        }
        for text in ["malice", "alice_2 said", "alicexyz", "ali ce", ""] {
            assert!(!mentions(text, &me), "{text}");
        }
        // Look-alike spellings count: the key of b0b is the key of bob.
        assert!(mentions("ask b0b", &nick("bob")));
        // A Chinese name counts inside a run of Chinese text.
        assert!(mentions("小明你好", &nick("小明")));
        assert!(!mentions("小红你好", &nick("小明")));
    }

    #[test]
    fn a_line_for_us_is_highlighted_others_are_not() {
        let me = nick("alice");
        let style = Style {
            color: true,
            me: Some(me.clone()),
            ..Style::default()
        };
        let mention = chat("bob", "hi alice", false);
        let private = Line::PrivateFrom {
            from: "bob".into(),
            text: "psst".into(),
        };
        let ordinary = chat("bob", "hi all", false);
        let own = chat("alice", "I am alice", true);
        let old = Line::Chat {
            nick: "bob".into(),
            text: "alice?".into(),
            own: false,
            history: true,
        };
        for line in [&mention, &private] {
            assert!(is_for_me(line, Some(&me)), "{line:?}");
            assert!(render(line, &style).contains(HIGHLIGHT), "{line:?}");
        }
        for line in [&ordinary, &own, &old] {
            assert!(!is_for_me(line, Some(&me)), "{line:?}");
            assert!(!render(line, &style).contains(HIGHLIGHT), "{line:?}");
        }
        // Without colours, nothing but text.
        let plain = Style {
            me: Some(me),
            ..Style::default()
        };
        assert_eq!(render(&mention, &plain), "bob: hi alice");
    }

    #[test]
    fn room_lines_in_chinese() {
        let style = Style {
            lang: Lang::Zh,
            time: "09:05".into(),
            ..Style::default()
        };
        assert_eq!(
            render(&chat("me", "hi", true), &style),
            "09:05 me（你）: hi"
        );
        assert_eq!(
            render(
                &Line::Join {
                    nick: "bob".into(),
                    history: false
                },
                &style
            ),
            "09:05 * bob 加入了"
        );
        assert_eq!(
            render(
                &Line::PrivateFrom {
                    from: "bob".into(),
                    text: "psst".into()
                },
                &style
            ),
            "09:05 [来自 bob 的私信] psst"
        );
        assert!(render(&Line::Help, &style).contains("/clear"));
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
