//! Validated field types. A value of one of these types is always legal on the
//! wire, so encoders need no checks of their own.

use std::fmt;

use crate::{ParseError, MAX_NICK_BYTES, MAX_NICK_CHARS, MAX_TEXT_BYTES};

/// How a client terminated its datagram.
///
/// `nc -u` users press Enter, so their datagrams end in `\n` (or `\r\n`); the
/// relay answers them with newline-terminated lines so their screen stays
/// readable, and answers bare clients with bare lines (a bare `OK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LineEnding {
    /// No terminator.
    #[default]
    Bare,
    /// `\n` or `\r\n`.
    Newline,
}

/// Strips one trailing `\n` or `\r\n` and says whether there was one.
pub fn strip_line_ending(bytes: &[u8]) -> (&[u8], LineEnding) {
    if let Some(rest) = bytes.strip_suffix(b"\r\n") {
        (rest, LineEnding::Newline)
    } else if let Some(rest) = bytes.strip_suffix(b"\n") {
        (rest, LineEnding::Newline)
    } else {
        (bytes, LineEnding::Bare)
    }
}

/// Says whether `c` may appear in message text; if not, the error to give.
///
/// Refused: C0 controls (U+0000–U+001F, including TAB, CR and LF: an embedded
/// newline would let a user forge a system line), DEL and the C1 controls
/// (U+007F–U+009F, ESC and CSI above all), the line and paragraph separators
/// U+2028–U+2029, the bidirectional overrides and isolates U+202A–U+202E
/// and U+2066–U+2069, which can make a line display as something else, and
/// the invisible format characters (see [`is_invisible`]).
pub fn check_text_char(c: char) -> Result<(), ParseError> {
    let bad = matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || is_invisible(c);
    if bad {
        Err(ParseError::ControlChar(c as u32))
    } else {
        Ok(())
    }
}

/// Whether `c` is an invisible format character refused in text: the
/// zero-width space U+200B, the directional marks U+200E, U+200F and
/// U+061C, the word joiner U+2060, the byte-order mark U+FEFF and the tag
/// characters U+E0000–U+E007F. They show nothing, so they can hide text from
/// a reader, make two lines that look alike differ, or ride along unseen to
/// classic clients and the transcript. The joiners U+200C and U+200D stay
/// allowed: Persian, Indic scripts and emoji sequences need them.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{2060}' | '\u{feff}'
    ) || ('\u{e0000}'..='\u{e007f}').contains(&c)
}

/// A valid nickname: 1 to 24 characters (at most 64 bytes of UTF-8), each a
/// letter or digit of any script (so CJK nicknames work) or one of `_ - .`.
///
/// Nicknames compare case-insensitively for uniqueness: see [`Nick::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nick(String);

impl Nick {
    /// Checks `s` against the nickname rules.
    pub fn new(s: &str) -> Result<Nick, ParseError> {
        if s.is_empty() {
            return Err(ParseError::NickEmpty);
        }
        if s.len() > MAX_NICK_BYTES || s.chars().count() > MAX_NICK_CHARS {
            return Err(ParseError::NickTooLong);
        }
        if let Some(c) = s
            .chars()
            .find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(ParseError::NickChar(c as u32));
        }
        Ok(Nick(s.to_owned()))
    }

    /// The nickname as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for uniqueness: Unicode lowercase, so `Alice` and
    /// `ALICE` are the same member.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Valid message text: 1 to 800 bytes of UTF-8 with no control characters
/// (see [`check_text_char`]), nothing that reads as the start of a relay
/// line and no more than 16 spaces in a row (see
/// [`check_text_content`](crate::check_text_content)). Spaces, CJK and
/// emoji are kept exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text(String);

impl Text {
    /// Checks `s` against the text rules.
    pub fn new(s: &str) -> Result<Text, ParseError> {
        if s.is_empty() {
            return Err(ParseError::TextEmpty);
        }
        if s.len() > MAX_TEXT_BYTES {
            return Err(ParseError::TextTooLong(s.len()));
        }
        s.chars().try_for_each(check_text_char)?;
        crate::lookalike::check_text_content(s)?;
        Ok(Text(s.to_owned()))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A short opaque token (ping tokens, the version token): 1 to 32 printable
/// ASCII characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// The most bytes a token may have.
    pub const MAX_LEN: usize = 32;

    /// Checks `s` against the token rules.
    pub fn new(s: &str) -> Result<Token, ParseError> {
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::BadToken);
        }
        Ok(Token(s.to_owned()))
    }

    /// The token as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A room's join code (PROTOCOL.md section 9, *Moderation*): 1 to 16 ASCII
/// letters and digits, compared without regard to case (a student copies it
/// from the board). Sent as `HELLO ... code=<code>` or classic `N <nick> <code>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinCode(String);

impl JoinCode {
    /// The most characters a join code may have.
    pub const MAX_LEN: usize = 16;

    /// Checks `s` against the join code rules.
    pub fn new(s: &str) -> Result<JoinCode, ParseError> {
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ParseError::BadCode);
        }
        Ok(JoinCode(s.to_owned()))
    }

    /// The code as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` is the same code (ASCII case-insensitively).
    pub fn matches(&self, other: &JoinCode) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl fmt::Display for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address-validation cookie: 64 bits, written as 16 hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cookie(pub u64);

impl Cookie {
    pub(crate) fn parse(s: &str) -> Result<Cookie, ParseError> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseError::BadCookie);
        }
        u64::from_str_radix(s, 16)
            .map(Cookie)
            .map_err(|_| ParseError::BadCookie)
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Parses a decimal number field: `0` or digits without a leading zero, at
/// most `u64::MAX`.
pub(crate) fn parse_number(s: &str, field: &'static str) -> Result<u64, ParseError> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(ParseError::BadNumber(field));
    }
    s.parse().map_err(|_| ParseError::BadNumber(field))
}

/// Splits off the next space-separated field. Returns the field and the rest
/// after exactly one space (or `None` if there is no space).
pub(crate) fn split_field(s: &str) -> (&str, Option<&str>) {
    match s.split_once(' ') {
        Some((head, rest)) => (head, Some(rest)),
        None => (s, None),
    }
}

/// A cursor over the space-separated fields of a datagram.
pub(crate) struct Fields<'a> {
    verb: &'static str,
    rest: Option<&'a str>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(verb: &'static str, rest: Option<&'a str>) -> Self {
        Fields { verb, rest }
    }

    /// The next field, which must be present.
    pub(crate) fn next(&mut self, field: &'static str) -> Result<&'a str, ParseError> {
        let rest = self.rest.ok_or(ParseError::MissingField {
            verb: self.verb,
            field,
        })?;
        let (head, tail) = split_field(rest);
        self.rest = tail;
        Ok(head)
    }

    /// The next field if there is one.
    pub(crate) fn optional(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let (head, tail) = split_field(rest);
        self.rest = tail;
        Some(head)
    }

    /// Everything left (free text), which must be present.
    pub(crate) fn rest(&mut self, field: &'static str) -> Result<&'a str, ParseError> {
        self.rest.take().ok_or(ParseError::MissingField {
            verb: self.verb,
            field,
        })
    }

    pub(crate) fn nick(&mut self, field: &'static str) -> Result<Nick, ParseError> {
        Nick::new(self.next(field)?)
    }

    pub(crate) fn number(&mut self, field: &'static str) -> Result<u64, ParseError> {
        parse_number(self.next(field)?, field)
    }

    pub(crate) fn text(&mut self, field: &'static str) -> Result<Text, ParseError> {
        Text::new(self.rest(field)?)
    }

    /// Fails if anything is left.
    pub(crate) fn end(self) -> Result<(), ParseError> {
        match self.rest {
            None => Ok(()),
            Some(_) => Err(ParseError::ExtraField(self.verb)),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn invisible_format_characters_are_refused_with_words_a_student_knows() {
        for c in [
            '\u{200b}',
            '\u{200e}',
            '\u{200f}',
            '\u{61c}',
            '\u{2060}',
            '\u{feff}',
            '\u{e0041}',
        ] {
            let err = check_text_char(c).unwrap_err();
            assert_eq!(err, ParseError::ControlChar(c as u32));
            let text = err.to_string();
            assert!(text.contains("an invisible character (U+"), "{text}");
            assert!(Text::new(&format!("a{c}b")).is_err());
        }
        // The joiners stay: Persian, Indic scripts and emoji need them.
        for ok in ["می\u{200c}خواهم", "👨\u{200d}👩\u{200d}👧", "क्\u{200d}ष"] {
            assert!(Text::new(ok).is_ok(), "{ok:?}");
        }
        assert!(check_text_char('\u{7}')
            .unwrap_err()
            .to_string()
            .contains("the control character U+0007"));
    }

    use super::*;

    #[test]
    fn cjk_nick_is_valid_and_case_folds() {
        assert!(Nick::new("小明").is_ok());
        assert_eq!(
            Nick::new("Alice").unwrap().key(),
            Nick::new("ALICE").unwrap().key()
        );
    }

    #[test]
    fn nick_rules() {
        assert_eq!(Nick::new(""), Err(ParseError::NickEmpty));
        assert_eq!(Nick::new(&"a".repeat(25)), Err(ParseError::NickTooLong));
        assert!(Nick::new(&"a".repeat(24)).is_ok());
        // 22 four-byte characters are within 24 chars but over 64 bytes.
        assert_eq!(Nick::new(&"𝒜".repeat(17)), Err(ParseError::NickTooLong));
        assert_eq!(Nick::new("a b"), Err(ParseError::NickChar(' ' as u32)));
        assert_eq!(Nick::new("a\u{1b}"), Err(ParseError::NickChar(0x1b)));
        assert_eq!(Nick::new("a:"), Err(ParseError::NickChar(':' as u32)));
        assert!(Nick::new("a_b-c.d").is_ok());
    }

    #[test]
    fn text_rules() {
        assert_eq!(Text::new(""), Err(ParseError::TextEmpty));
        assert!(Text::new(&"x".repeat(MAX_TEXT_BYTES)).is_ok());
        assert_eq!(
            Text::new(&"x".repeat(MAX_TEXT_BYTES + 1)),
            Err(ParseError::TextTooLong(MAX_TEXT_BYTES + 1))
        );
        for bad in [
            '\u{1b}', '\n', '\r', '\t', '\0', '\u{7f}', '\u{9b}', '\u{202e}', '\u{2066}',
            '\u{2028}',
        ] {
            assert_eq!(
                Text::new(&format!("a{bad}b")),
                Err(ParseError::ControlChar(bad as u32))
            );
        }
        assert_eq!(Text::new("  你好 👋 ").unwrap().as_str(), "  你好 👋 ");
    }

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(parse_number("0", "seq"), Ok(0));
        assert_eq!(parse_number("18446744073709551615", "seq"), Ok(u64::MAX));
        assert!(parse_number("18446744073709551616", "seq").is_err());
        assert!(parse_number("01", "seq").is_err());
        assert!(parse_number("+1", "seq").is_err());
        assert!(parse_number("", "seq").is_err());
    }

    #[test]
    fn line_endings() {
        assert_eq!(
            strip_line_ending(b"N a\r\n"),
            (&b"N a"[..], LineEnding::Newline)
        );
        assert_eq!(
            strip_line_ending(b"N a\n"),
            (&b"N a"[..], LineEnding::Newline)
        );
        assert_eq!(
            strip_line_ending(b"N a\n\n"),
            (&b"N a\n"[..], LineEnding::Newline)
        );
        assert_eq!(strip_line_ending(b"N a"), (&b"N a"[..], LineEnding::Bare));
    }
}
