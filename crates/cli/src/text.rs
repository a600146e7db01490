//! Making untrusted text safe and measuring it on a terminal.
//!
//! Everything the relay sends passes through [`sanitize`] before it reaches
//! the screen: the client does not trust the relay to have filtered control
//! characters, because one ESC is enough to rewrite a student's screen.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

/// Says whether `c` must be shown escaped rather than passed to the terminal.
///
/// The set is the one the protocol refuses in text (C0, DEL, C1, U+2028/2029,
/// bidi overrides and isolates, and the invisible format characters such as
/// U+200B and the direction marks U+061C, U+200E, U+200F).
pub fn must_escape(c: char) -> bool {
    udpchat_proto::check_text_char(c).is_err()
}

/// Replaces every character [`must_escape`] flags with a visible escape such
/// as `\u{1b}`; returns the input unchanged (borrowed) when there is none.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(must_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if must_escape(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Terminal columns `c` occupies: 2 for CJK and most emoji, 0 for combining
/// marks, 1 otherwise.
fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Terminal columns `s` occupies (for text that went through [`sanitize`]).
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Splits `text` into lines that fit in the terminal: the first line has
/// `first` columns available, the following ones `rest` columns.
///
/// Breaks after a space when one is near the end of the line, otherwise
/// between characters; a double-width character never straddles the edge.
/// Every character of `text` ends up in exactly one line, in order, so
/// spaces are kept exactly (a line break replaces nothing).
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    let mut avail = first.max(1);
    // Byte offset in `current` just after the last space, and the width up
    // to there, for breaking at a word boundary.
    let mut last_space: Option<(usize, usize)> = None;
    for c in text.chars() {
        let w = char_width(c);
        if used + w > avail && !current.is_empty() {
            match last_space {
                // Break after the space if that keeps at least half the line.
                Some((at, w_at)) if w_at * 2 >= avail && at < current.len() => {
                    let tail = current.split_off(at);
                    lines.push(std::mem::take(&mut current));
                    used -= w_at;
                    current = tail;
                }
                _ => {
                    lines.push(std::mem::take(&mut current));
                    used = 0;
                }
            }
            last_space = None;
            avail = rest.max(1);
        }
        current.push(c);
        used += w;
        if c == ' ' {
            last_space = Some((current.len(), used));
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(
            sanitize("hello 你好 👋"),
            Cow::Borrowed("hello 你好 👋")
        ));
    }

    #[test]
    fn escape_and_bidi_are_shown_escaped() {
        assert_eq!(sanitize("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(sanitize("x\u{202e}y\u{2066}"), "x\\u{202e}y\\u{2066}");
        assert_eq!(
            sanitize("\u{9b}\u{7f}\n\r\t\0"),
            "\\u{9b}\\u{7f}\\u{a}\\u{d}\\u{9}\\u{0}"
        );
        assert_eq!(sanitize("l\u{200f}r"), "l\\u{200f}r");
        assert!(!sanitize("\u{1b}\u{202e}\u{85}").chars().any(must_escape));
    }

    #[test]
    fn cjk_is_two_columns_wide() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("你好"), 4);
        assert_eq!(width("e\u{301}"), 1);
    }

    #[test]
    fn wrap_breaks_at_spaces_and_keeps_every_character() {
        let text = "the quick brown fox jumps over";
        let lines = wrap(text, 10, 10);
        assert_eq!(lines.concat(), text);
        assert!(lines.iter().all(|l| width(l) <= 10), "{lines:?}");
        assert_eq!(lines[0], "the quick ");
    }

    #[test]
    fn wrap_never_splits_a_wide_character_over_the_edge() {
        let lines = wrap("你好世界你好", 5, 5);
        assert_eq!(lines, ["你好", "世界", "你好"]);
        assert_eq!(wrap("a你好", 4, 4), ["a你", "好"]);
    }

    #[test]
    fn wrap_uses_the_first_width_once() {
        let lines = wrap("aaaaaaaaaa", 4, 3);
        assert_eq!(lines, ["aaaa", "aaa", "aaa"]);
    }

    #[test]
    fn wrap_of_empty_text_is_one_empty_line() {
        assert_eq!(wrap("", 10, 10), [""]);
    }
}
