//! Parse errors and the stable error codes the relay answers with.

use std::fmt;

use thiserror::Error;

use crate::{Lang, MAX_DATAGRAM, MAX_NICK_BYTES, MAX_NICK_CHARS, MAX_SPACE_RUN, MAX_TEXT_BYTES};

/// Why a datagram could not be parsed. The message is what a user reads.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Zero bytes (after stripping a line ending).
    #[error("empty datagram; send a command such as N <nick>")]
    Empty,
    /// More than [`MAX_DATAGRAM`] bytes.
    #[error("datagram of {0} bytes is longer than the {MAX_DATAGRAM}-byte limit")]
    TooLong(usize),
    /// Not valid UTF-8.
    #[error("datagram is not valid UTF-8; send text")]
    NotUtf8,
    /// The first word is not a known command.
    #[error("unknown command {0:?}; commands are N, M, Q, WHO, MSG, PING, NICK, H")]
    UnknownVerb(String),
    /// A required field is missing.
    #[error("{verb} needs a {field}")]
    MissingField {
        /// The command.
        verb: &'static str,
        /// The field that is missing.
        field: &'static str,
    },
    /// Fields after the last one the command takes.
    #[error("too many fields after {0}")]
    ExtraField(&'static str),
    /// Empty nickname.
    #[error("nickname is empty")]
    NickEmpty,
    /// Nickname over the length limit.
    #[error(
        "nickname is too long; at most {MAX_NICK_CHARS} characters and {MAX_NICK_BYTES} bytes"
    )]
    NickTooLong,
    /// Nickname with a character that is not allowed (a space, a symbol,
    /// a control character, or an invisible or blank one such as a Hangul
    /// filler). The message says which kind in words.
    #[error("{}", nick_char_problem(*.0, Lang::En))]
    NickChar(u32),
    /// Empty message text.
    #[error("message text is empty")]
    TextEmpty,
    /// Message text over the length limit.
    #[error("message of {0} bytes is too long; at most {MAX_TEXT_BYTES} bytes")]
    TextTooLong(usize),
    /// Message text with a control character, bidi override or invisible
    /// format character.
    #[error("message contains {}; remove it and send again", forbidden_char(*.0))]
    ControlChar(u32),
    /// Message text with something that reads as the start of a relay
    /// line (a soft-wrapping terminal may show it at the start of a row).
    /// Holds the start of it, lowercased.
    #[error("message looks like a relay notice ({0:?}); reword it")]
    LooksLikeNotice(String),
    /// Message text with more than [`MAX_SPACE_RUN`] spaces in a row.
    #[error("message has more than {MAX_SPACE_RUN} spaces in a row; use fewer")]
    SpaceRun,
    /// A number field that is not a canonical decimal number.
    #[error("{0} must be a decimal number")]
    BadNumber(&'static str),
    /// A token that is not 1 to 32 printable ASCII characters.
    #[error("token must be 1 to 32 printable ASCII characters without spaces")]
    BadToken,
    /// A cookie that is not 16 hexadecimal digits.
    #[error("cookie must be 16 hexadecimal digits, or - for none")]
    BadCookie,
    /// A join code that is not 1 to 16 ASCII letters and digits.
    #[error("join code must be 1 to 16 letters and digits")]
    BadCode,
    /// A session key that is not 16 lowercase hexadecimal digits.
    #[error("session key must be 16 lowercase hexadecimal digits")]
    BadKey,
    /// A keyword field with a value outside its set.
    #[error("{field} {value:?} is not one of the values the protocol defines")]
    BadKeyword {
        /// The field.
        field: &'static str,
        /// What was found.
        value: String,
    },
}

/// "the control character U+0007" or "an invisible character (U+200B)".
fn forbidden_char(c: u32) -> String {
    match char::from_u32(c) {
        Some(ch) if crate::fields::is_invisible(ch) => {
            format!("an invisible character (U+{c:04X})")
        }
        _ => format!("the control character {}", describe_char(c)),
    }
}

/// What is wrong with a character in a nickname, in words a student knows
/// (never just a code point: an invisible character shows nothing to point
/// at).
fn nick_char_problem(c: u32, lang: Lang) -> String {
    let ch = char::from_u32(c).unwrap_or('\u{fffd}');
    let invisible = crate::fields::is_default_ignorable(ch) || crate::fields::is_invisible(ch);
    match lang {
        Lang::En if ch == ' ' => "spaces are not allowed in a nickname; use _ or - instead".into(),
        Lang::Zh if ch == ' ' => "昵称中不能有空格，可以用 _ 或 - 代替".into(),
        Lang::En if ch.is_whitespace() || invisible => {
            "a nickname cannot contain invisible or blank characters (such as a Hangul \
             filler or a zero-width space); use letters, digits, _ - . only"
                .into()
        }
        Lang::Zh if ch.is_whitespace() || invisible => {
            "昵称中不能有看不见的或空白的字符（例如韩文填充字符、零宽空格）；\
             请只用字母、数字或 _ - ."
                .into()
        }
        Lang::En if ch.is_control() => {
            "a nickname cannot contain control characters; use letters, digits, _ - . only".into()
        }
        Lang::Zh if ch.is_control() => "昵称中不能有控制字符；请只用字母、数字或 _ - .".into(),
        Lang::En => {
            format!("\"{ch}\" is not allowed in a nickname; use letters, digits, _ - . only")
        }
        Lang::Zh => format!("昵称中不能有“{ch}”；请只用字母、数字或 _ - ."),
    }
}

fn describe_char(c: u32) -> String {
    match char::from_u32(c) {
        Some(ch)
            if !ch.is_control() && !ch.is_whitespace() && crate::check_text_char(ch).is_ok() =>
        {
            format!("{ch:?} (U+{c:04X})")
        }
        _ => format!("U+{c:04X}"),
    }
}

impl ParseError {
    /// A reason more precise than the code's ([`ErrorCode::reason`]), in
    /// `lang`, for the errors a student can fix by retyping: what is wrong
    /// with a nickname. `None`: the code's reason says it.
    pub fn reason(&self, lang: Lang) -> Option<String> {
        match self {
            ParseError::NickChar(c) => Some(nick_char_problem(*c, lang)),
            _ => None,
        }
    }

    /// The error code the relay answers with for this parse error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::Empty
            | ParseError::MissingField { .. }
            | ParseError::ExtraField(_)
            | ParseError::BadNumber(_)
            | ParseError::BadToken
            | ParseError::BadCookie
            | ParseError::BadCode
            | ParseError::BadKey
            | ParseError::BadKeyword { .. } => ErrorCode::BadSyntax,
            ParseError::TooLong(_) | ParseError::TextTooLong(_) => ErrorCode::TooLong,
            ParseError::NotUtf8 => ErrorCode::BadUtf8,
            ParseError::UnknownVerb(_) => ErrorCode::UnknownVerb,
            ParseError::NickEmpty | ParseError::NickTooLong | ParseError::NickChar(_) => {
                ErrorCode::NickInvalid
            }
            ParseError::TextEmpty => ErrorCode::TextEmpty,
            ParseError::ControlChar(_) => ErrorCode::ControlChar,
            ParseError::LooksLikeNotice(_) => ErrorCode::LooksLikeNotice,
            ParseError::SpaceRun => ErrorCode::TooManySpaces,
        }
    }
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $en:literal, $zh:literal;)*) => {
        /// A stable error code. The wire form ([`ErrorCode::as_str`]) never
        /// changes meaning; clients branch on it, not on the reason text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order PROTOCOL.md lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// Parses a wire code.
            pub fn from_wire(s: &str) -> Option<ErrorCode> {
                match s { $($code => Some(ErrorCode::$variant),)* _ => None }
            }

            /// The default human-readable reason in `lang`.
            pub fn reason(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((ErrorCode::$variant, Lang::En) => $en,
                      (ErrorCode::$variant, Lang::Zh) => $zh,)*
                }
            }
        }
    };
}

error_codes! {
    /// The datagram is not valid UTF-8.
    BadUtf8 = "bad-utf8", "datagram is not valid UTF-8", "数据报不是有效的 UTF-8";
    /// The first word is not a command.
    UnknownVerb = "unknown-verb", "unknown command; commands are N, M, Q, WHO, MSG, PING, NICK, H", "未知命令；可用命令为 N、M、Q、WHO、MSG、PING、NICK、H";
    /// Missing, extra or malformed fields.
    BadSyntax = "bad-syntax", "malformed command", "命令格式错误";
    /// The nickname breaks the nickname rules.
    NickInvalid = "nick-invalid", "invalid nickname; use 1 to 24 letters, digits, _ - .", "昵称无效：请使用 1 到 24 个字母、数字或 _ - .";
    /// Another member holds the nickname, or one that looks like it (same
    /// [`Nick::key`](crate::Nick::key)).
    NickTaken = "nick-taken", "nickname is taken; choose another", "昵称已被占用，请换一个";
    /// The nickname is (or looks like) one reserved for the teacher and the
    /// relay (`host`, `teacher`, `主持人`, ..., `--reserve`).
    NickReserved = "nick-reserved", "this nickname is reserved for the teacher and the relay; choose another", "该昵称留给老师和服务器使用，请换一个";
    /// The message text is empty.
    TextEmpty = "text-empty", "message text is empty", "消息内容为空";
    /// The message text contains a control character or bidi override.
    ControlChar = "control-char", "message contains a control character; remove it", "消息包含控制字符，请删除后重发";
    /// The message or datagram is over its length limit.
    TooLong = "too-long", "message is too long; at most 800 bytes of text", "消息过长：正文最多 800 字节";
    /// The sender's address has not joined.
    NotJoined = "not-joined", "you have not joined; send N <nick> first", "你尚未加入，请先发送 N <昵称>";
    /// The nickname in the command is not the one this address joined with.
    NotYours = "not-yours", "that nickname belongs to another address", "该昵称属于其他地址";
    /// This address is already a member under another nickname.
    AlreadyJoined = "already-joined", "this address has already joined under another nickname; send Q first or NICK to rename", "此地址已用其他昵称加入；请先发送 Q，或用 NICK 改名";
    /// The room is at `--max-clients`.
    RoomFull = "room-full", "the room is full; try again later", "聊天室已满，请稍后再试";
    /// The source IP address already has `--max-per-ip` members.
    IpFull = "ip-full", "this computer already has the most members the relay allows per address (--max-per-ip); quit one first", "这台电脑已达到服务器允许的每个地址成员上限（--max-per-ip）；请先退出一个";
    /// The address is sending faster than its rate limit.
    RateLimited = "rate-limited", "you are sending too fast; wait a moment", "发送过快，请稍等";
    /// A private message names no member.
    NoSuchNick = "no-such-nick", "no member has that nickname", "没有该昵称的成员";
    /// The relay was started with `--no-classic`.
    ClassicDisabled = "classic-disabled", "this relay accepts only the structured dialect (HELLO)", "本服务器只接受结构化协议（HELLO）";
    /// The structured version token is not one the relay speaks.
    BadVersion = "bad-version", "unsupported protocol version; this relay speaks udpchat/1", "不支持的协议版本；本服务器使用 udpchat/1";
    /// A cookie `HELLO` without `key=`, to a relay that requires session keys.
    KeyRequired = "key-required", "this relay needs a session key (HELLO ... key=<16 hex digits>); update your client", "本服务器需要会话密钥（HELLO ... key=<16 位十六进制数>）；请更新客户端";
    /// The text contains something that reads as the start of a relay line.
    LooksLikeNotice = "looks-like-notice", "message looks like a line from the relay (someone joining or leaving, the host speaking); reword it", "消息看起来像服务器的通知（有人加入或离开、主持人讲话），请换个说法";
    /// The text has more than 16 spaces in a row.
    TooManySpaces = "too-many-spaces", "message has more than 16 spaces in a row; use fewer", "消息中连续的空格超过 16 个，请减少空格";
    /// The host banned the sender's IP address (the reason says why and for how long).
    Banned = "banned", "the host has banned this computer from the room", "主持人已禁止这台电脑进入聊天室";
    /// The host muted the sender (the reason says for how long).
    Muted = "muted", "the host has muted you; nobody sees your messages", "主持人已将你禁言，别人看不到你的消息";
    /// The host locked the room: no new members.
    RoomLocked = "room-locked", "the host has locked the room; nobody new can join now", "主持人已锁定聊天室，现在不能加入";
    /// The room has a join code and the join did not carry it.
    BadCode = "bad-code", "this room needs the join code from the host; type your name, a space and the code", "加入聊天室需要主持人给的加入码；请输入你的名字、一个空格和加入码";
    /// Slow mode: the sender's previous message was too recent.
    SlowMode = "slow-mode", "slow mode: wait a little before your next message", "慢速模式：请稍等再发下一条消息";
    /// Moderated mode: only the host and members with a voice speak to the room.
    Moderated = "moderated", "the host has turned on moderated mode; raise your hand (/hand) to ask to speak", "主持人开启了发言管理模式；请举手（/hand）申请发言";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
