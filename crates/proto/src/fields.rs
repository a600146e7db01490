//! Validated field types. A value of one of these types is always legal on the
//! wire, so encoders need no checks of their own.

use std::borrow::Cow;
use std::fmt;

use unicode_normalization::{is_nfc, UnicodeNormalization};

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

/// Whether `c` is a default-ignorable code point (Unicode's
/// `Default_Ignorable_Code_Point`, DerivedCoreProperties.txt): characters a
/// renderer shows as nothing, such as the zero-width space and joiners, soft
/// hyphen, variation selectors, tag characters, and the Hangul filler letters
/// U+115F, U+1160, U+3164 and U+FFA0, which are letters (so they pass
/// `is_alphanumeric`) yet draw a blank. None of them may be in a nickname:
/// they make invisible or blank names, and names that look the same but
/// differ.
pub fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fff8}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// Whether `c` may be in a nickname: a letter or digit of any script, or
/// `_ - .`, and not default-ignorable (see [`is_default_ignorable`]).
fn is_nick_char(c: char) -> bool {
    (c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) && !is_default_ignorable(c)
}

/// A valid nickname: 1 to 24 characters (at most 64 bytes of UTF-8), each a
/// letter or digit of any script (so CJK nicknames work) or one of `_ - .`,
/// none of them invisible or blank, kept in Unicode normalization form C.
///
/// A nickname typed in another normalization form (a decomposed `é` or a
/// Hangul word spelled with conjoining letters) is accepted and kept in NFC:
/// the member is known by the NFC spelling, which is also what every client
/// shows. Nicknames compare by their look-alike key for uniqueness: see
/// [`Nick::key`] (and [`Nick::look_key`], the room's second check).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nick(String);

impl Nick {
    /// Checks `s` against the nickname rules, and puts it in NFC.
    pub fn new(s: &str) -> Result<Nick, ParseError> {
        if s.is_empty() {
            return Err(ParseError::NickEmpty);
        }
        // ASCII is NFC already: the common case costs one scan.
        let nick: Cow<'_, str> = if s.is_ascii() || is_nfc(s) {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(s.nfc().collect())
        };
        if nick.len() > MAX_NICK_BYTES || nick.chars().count() > MAX_NICK_CHARS {
            return Err(ParseError::NickTooLong);
        }
        if let Some(c) = nick.chars().find(|&c| !is_nick_char(c)) {
            return Err(ParseError::NickChar(c as u32));
        }
        Ok(Nick(nick.into_owned()))
    }

    /// The nickname as written (in NFC).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for uniqueness: two nicknames with the same key cannot
    /// be online together, and a reserved name's key is refused.
    ///
    /// It is the UTS #39 confusable skeleton of the full case folding of
    /// the NFKC form, case-folded once more: `casefold(skeleton(casefold(
    /// NFKC(nick))))`. So `Alice` = `ALICE`, `Straße` = `STRASSE` (full
    /// folding: `ß` is `ss`), `teacher` = Cyrillic `tеacher` = full-width
    /// `ｔｅａｃｈｅｒ` = math-bold `𝐭𝐞𝐚𝐜𝐡𝐞𝐫`, and `bob` = `b0b`. The second
    /// folding merges prototypes that differ only in case (the skeleton maps
    /// `0` to `O`). The key is not meant to be shown.
    ///
    /// Costly next to a byte comparison (several passes and allocations):
    /// the room computes it when a member joins or renames and keeps it, not
    /// per datagram.
    pub fn key(&self) -> String {
        if self.0.is_ascii() {
            return ascii_key(&self.0, true);
        }
        slow_key(&self.0)
    }

    /// The second look-alike key: the UTS #39 skeleton of the NFKC form as
    /// typed, capitals and all, then case-folded: `casefold(skeleton(
    /// NFKC(nick)))`. [`Nick::key`] folds case first, so it cannot see
    /// capitals that look like Latin ones only as capitals: Cyrillic `М`
    /// (`Мs.Li`) is Latin `M` as a capital, but its lower case `м` is not
    /// `m`. This key catches them. It is not a uniqueness key on its own
    /// (it keeps `ALICE` apart from `alice`: the skeleton of `I` is `l`), so
    /// the room refuses a nickname if either key matches a member's.
    pub fn look_key(&self) -> String {
        if self.0.is_ascii() {
            return ascii_key(&self.0, false);
        }
        slow_look_key(&self.0)
    }

    /// Whether `other` is this nickname in another letter case (full case
    /// folding: `Straße` and `STRASSE`), as opposed to a look-alike in other
    /// letters (Cyrillic `а` for Latin `a`) that only [`Nick::key`] merges.
    pub fn same_letters(&self, other: &Nick) -> bool {
        self == other
            || caseless::default_case_fold_str(&self.0) == caseless::default_case_fold_str(&other.0)
    }
}

/// [`Nick::key`] by the book: `casefold(skeleton(casefold(NFKC(s))))`.
fn slow_key(s: &str) -> String {
    let compatible: String = s.nfkc().collect();
    let folded = caseless::default_case_fold_str(&compatible);
    let skeleton: String = unicode_security::skeleton(&folded).collect();
    caseless::default_case_fold_str(&skeleton)
}

/// [`Nick::look_key`] by the book: `casefold(skeleton(NFKC(s)))`.
fn slow_look_key(s: &str) -> String {
    let compatible: String = s.nfkc().collect();
    let skeleton: String = unicode_security::skeleton(&compatible).collect();
    caseless::default_case_fold_str(&skeleton)
}

/// The two keys of an ASCII nickname, without the Unicode machinery: most
/// nicknames are ASCII, and the room computes a key for every chat line it
/// counts for attendance. For ASCII, NFKC changes nothing, case folding is
/// `to_ascii_lowercase`, and the skeleton maps each character on its own
/// (to its prototype in confusables.txt, e.g. `m` to `rn`, `0` to `O`), so
/// the key is the folded concatenation of each character's skeleton. The
/// table holds those skeletons, made once by the slow path itself; a test
/// checks the two agree on every nickname of up to three ASCII characters.
/// `fold_first`: [`Nick::key`] (case folded before the skeleton) rather
/// than [`Nick::look_key`].
fn ascii_key(s: &str, fold_first: bool) -> String {
    static SKELETONS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let table = SKELETONS.get_or_init(|| {
        (0u8..128)
            .map(|b| {
                let one = char::from(b).to_string();
                let skeleton: String = unicode_security::skeleton(&one).collect();
                caseless::default_case_fold_str(&skeleton)
            })
            .collect()
    });
    let mut key = String::with_capacity(s.len() + 4);
    for b in s.bytes() {
        let b = if fold_first {
            b.to_ascii_lowercase()
        } else {
            b
        };
        key.push_str(&table[usize::from(b)]);
    }
    key
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
    fn ascii_keys_are_the_unicode_keys() {
        // Every ASCII nickname of up to three characters (letters, digits,
        // `_-.`), and every pair of printable ASCII characters: the table
        // path and the by-the-book path agree on both keys.
        let alphabet: Vec<char> = ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .chain(['_', '-', '.'])
            .collect();
        let mut words: Vec<String> = Vec::new();
        for &a in &alphabet {
            words.push(a.to_string());
            for &b in &alphabet {
                words.push(format!("{a}{b}"));
                for &c in &alphabet {
                    words.push(format!("{a}{b}{c}"));
                }
            }
        }
        for a in '!'..='~' {
            for b in '!'..='~' {
                words.push(format!("{a}{b}"));
            }
        }
        words.push("Straight.Shooter_2024-rn".to_owned());
        for w in &words {
            assert_eq!(ascii_key(w, true), slow_key(w), "key of {w:?}");
            assert_eq!(ascii_key(w, false), slow_look_key(w), "look key of {w:?}");
        }
    }

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
    use crate::Lang;

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
    fn nicknames_are_kept_in_nfc() {
        // Hangul: precomposed syllables and the same word in conjoining letters.
        let precomposed = Nick::new("\u{d55c}\u{ad6d}").unwrap();
        let conjoining = Nick::new("\u{1112}\u{1161}\u{11ab}\u{1100}\u{116e}\u{11a8}").unwrap();
        assert_eq!(conjoining, precomposed);
        assert_eq!(conjoining.as_str(), "한국");
        assert_eq!(conjoining.key(), precomposed.key());
        // A decomposed accent (a combining mark is no letter on its own).
        let zoe = Nick::new("Zoe\u{308}").unwrap();
        assert_eq!(zoe.as_str(), "Zo\u{eb}");
        assert_eq!(zoe, Nick::new("Zoë").unwrap());
        // The limits count the NFC form: 24 syllables typed as 72 letters.
        assert!(Nick::new(&"\u{1112}\u{1161}\u{11ab}".repeat(MAX_NICK_CHARS / 2)).is_ok());
    }

    #[test]
    fn hangul_fillers_and_default_ignorables_are_refused_in_words() {
        for c in ['\u{3164}', '\u{115f}', '\u{1160}', '\u{ffa0}'] {
            assert!(c.is_alphanumeric(), "{c:?} is a letter, yet blank");
            for nick in [c.to_string(), format!("a{c}b"), format!("{c}{c}")] {
                let err = Nick::new(&nick).unwrap_err();
                assert_eq!(err, ParseError::NickChar(c as u32), "{nick:?}");
                let text = err.to_string();
                assert!(text.contains("invisible or blank"), "{text}");
                assert!(!text.contains("U+"), "{text}");
                let zh = err.reason(Lang::Zh).unwrap();
                assert!(zh.contains("看不见的或空白的字符"), "{zh}");
            }
        }
        for c in [
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{ad}',
            '\u{34f}',
            '\u{fe0f}',
            '\u{2060}',
            '\u{180e}',
            '\u{e0041}',
            '\u{17b4}',
        ] {
            assert!(is_default_ignorable(c), "{c:?}");
            let err = Nick::new(&format!("te{c}acher")).unwrap_err();
            assert!(
                err.to_string().contains("invisible or blank"),
                "{c:?}: {err}"
            );
        }
        for c in ['a', '小', '_', '\u{1112}', '\u{d55c}', ' '] {
            assert!(!is_default_ignorable(c), "{c:?}");
        }
    }

    #[test]
    fn nickname_errors_say_it_in_words() {
        let space = Nick::new("bob smith").unwrap_err();
        assert_eq!(
            space.to_string(),
            "spaces are not allowed in a nickname; use _ or - instead"
        );
        assert_eq!(
            space.reason(Lang::Zh).unwrap(),
            "昵称中不能有空格，可以用 _ 或 - 代替"
        );
        let ideographic = Nick::new("小\u{3000}明").unwrap_err();
        assert!(ideographic.to_string().contains("invisible or blank"));
        let bang = Nick::new("bob!").unwrap_err();
        assert_eq!(
            bang.to_string(),
            "\"!\" is not allowed in a nickname; use letters, digits, _ - . only"
        );
        assert!(bang.reason(Lang::Zh).unwrap().contains("“!”"));
        let esc = Nick::new("a\u{1b}").unwrap_err();
        assert!(esc.to_string().contains("control characters"), "{esc}");
        assert!(!esc.to_string().contains("U+"));
        assert_eq!(ParseError::NickEmpty.reason(Lang::En), None);
    }

    fn key(s: &str) -> String {
        Nick::new(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).key()
    }

    #[test]
    fn look_alikes_of_a_nickname_share_its_key() {
        let teacher = key("teacher");
        for look_alike in [
            "TEACHER",
            "Teacher",
            "t\u{435}acher",                   // Cyrillic е
            "t\u{435}\u{430}\u{441}h\u{435}r", // Cyrillic е а с е
            "ｔｅａｃｈｅｒ",                  // full-width
            "ＴＥＡＣＨＥＲ",
            "𝐭𝐞𝐚𝐜𝐡𝐞𝐫", // mathematical bold
            "𝐓𝐄𝐀𝐂𝐇𝐄𝐑",
            "te\u{251}cher", // Latin alpha
        ] {
            assert_eq!(key(look_alike), teacher, "{look_alike:?}");
        }
        assert_eq!(key("Straße"), key("STRASSE"));
        assert_eq!(key("straße"), key("strasse"));
        assert_eq!(key("Alice"), key("ALICE"));
        assert_eq!(key("bob"), key("b0b"));
        assert_eq!(key("Ana"), key("\u{410}n\u{430}"));
        assert_eq!(
            key("한국"),
            key("\u{1112}\u{1161}\u{11ab}\u{1100}\u{116e}\u{11a8}")
        );
        assert_eq!(key("主持人"), key("主持人"));
    }

    #[test]
    fn capitals_that_look_alike_only_as_capitals_share_the_look_key() {
        let look = |s: &str| Nick::new(s).unwrap().look_key();
        // Cyrillic М, Н, Т, В, К: Latin as capitals, not in lower case.
        for (latin, cyrillic) in [
            ("Ms.Li", "\u{41c}s.Li"),
            ("HOST", "\u{41d}OS\u{422}"),
            ("BEA", "\u{412}\u{415}\u{410}"),
            ("KIM", "\u{41a}IM"),
        ] {
            assert_ne!(
                key(latin),
                key(cyrillic),
                "{cyrillic:?}: the key folds first"
            );
            assert_eq!(look(latin), look(cyrillic), "{cyrillic:?}");
        }
        // It alone would keep case variants apart; the key merges them.
        assert_ne!(look("ALICE"), look("alice"));
        assert_eq!(key("ALICE"), key("alice"));
        assert_ne!(look("alice"), look("bob"));
    }

    #[test]
    fn different_names_keep_different_keys() {
        let names = [
            "alice",
            "alicia",
            "bob",
            "bobby",
            "carol",
            "teacher",
            "teachers",
            "host",
            "admin",
            "relay",
            "小明",
            "小红",
            "老师",
            "主持人",
            "系统消息",
            "한국",
            "Zoë",
            "Zoe",
            "d",
            "dave",
            "Straße",
            "strase",
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(key(a), key(b), "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn same_letters_is_case_but_not_look_alikes() {
        let nick = |s| Nick::new(s).unwrap();
        assert!(nick("Straße").same_letters(&nick("STRASSE")));
        assert!(nick("alice").same_letters(&nick("ALICE")));
        assert!(!nick("alice").same_letters(&nick("\u{430}lice")));
        assert!(!nick("alice").same_letters(&nick("bob")));
    }

    proptest::proptest! {
        /// Any mix of upper case, full-width, mathematical bold and
        /// Cyrillic look-alike letters in an ASCII nickname has its key.
        #[test]
        fn disguised_letters_keep_the_key(
            word in "[a-z]{1,12}",
            disguises in proptest::collection::vec(0u8..5, 12),
        ) {
            let disguised: String = word
                .chars()
                .zip(disguises)
                .map(|(c, how)| {
                    let offset = c as u32 - 'a' as u32;
                    let cyrillic = match c {
                        'a' => Some('\u{430}'),
                        'c' => Some('\u{441}'),
                        'e' => Some('\u{435}'),
                        'o' => Some('\u{43e}'),
                        'p' => Some('\u{440}'),
                        'x' => Some('\u{445}'),
                        'y' => Some('\u{443}'),
                        _ => None,
                    };
                    match how {
                        0 => c.to_ascii_uppercase(),
                        1 => char::from_u32(0xff41 + offset).unwrap(),
                        2 => char::from_u32(0x1d41a + offset).unwrap(),
                        3 => cyrillic.unwrap_or(c),
                        _ => c,
                    }
                })
                .collect();
            proptest::prop_assert_eq!(key(&disguised), key(&word), "{:?}", disguised);
        }

        /// The decomposed spelling of any valid nickname is the same nickname.
        #[test]
        fn decomposed_spelling_is_the_same_nickname(s in "[a-zA-Z\u{c0}-\u{d6}\u{d8}-\u{f6}\u{f8}-\u{17f}\u{ac00}-\u{d7a3}]{1,12}") {
            let nick = Nick::new(&s).unwrap();
            let decomposed: String = s.nfd().collect();
            proptest::prop_assert_eq!(Nick::new(&decomposed), Ok(nick.clone()));
            let upper = Nick::new(&s.to_uppercase());
            if let Ok(upper) = upper {
                proptest::prop_assert_eq!(upper.key(), nick.key());
            }
        }
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
