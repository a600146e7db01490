//! Every line the client itself makes, in English and Chinese: one typed
//! message ([`Msg`]) per thing to say, its words in both languages next to
//! each other in [`Msg::text`]. The session and the app build `Msg`s; only
//! the screen turns them into words, in the language of `--lang` (or of
//! the environment, see [`lang_from_env`]).
//!
//! What other people wrote (chat, a host's kick reason) is shown as it is.
//! The relay's own reasons come in the relay's language: [`Reason`] shows
//! them only when they are in ours, and the client's text for the error
//! code otherwise, so one line never mixes English and Chinese.

use udpchat_proto::classic::ordinal;
pub use udpchat_proto::Lang;
use udpchat_proto::{ErrorCode, LeaveReason, ParseError};

use crate::reassembly::LossReason;

/// The language of the environment: the first of `LC_ALL`, `LC_MESSAGES`,
/// `LANG` that is set and not empty; Chinese when it starts with `zh`
/// (`zh_CN.UTF-8`, `zh_TW`), English otherwise.
pub fn lang_from_env() -> Lang {
    lang_from(|name| std::env::var(name).ok())
}

/// [`lang_from_env`] with the environment given (for tests).
pub fn lang_from(var: impl Fn(&str) -> Option<String>) -> Lang {
    let value = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .into_iter()
        .filter_map(var)
        .find(|v| !v.is_empty());
    match value {
        Some(v) if v.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
        _ => Lang::En,
    }
}

/// The language a piece of text is written in, as far as the client can
/// tell: Chinese if it has any CJK character, else English.
pub fn text_lang(s: &str) -> Lang {
    let cjk = |c: char| {
        matches!(c as u32,
            0x3000..=0x303f | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xf900..=0xfaff | 0xff00..=0xffef)
    };
    if s.chars().any(cjk) {
        Lang::Zh
    } else {
        Lang::En
    }
}

/// A reason the relay gave (in its own language), with the error code it
/// came with, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The stable code, when the reason came with one (`ERROR`).
    pub code: Option<ErrorCode>,
    /// The relay's words (unsanitized).
    pub text: String,
}

impl Reason {
    /// A reason from an `ERROR`.
    pub fn coded(code: ErrorCode, text: impl Into<String>) -> Reason {
        Reason {
            code: Some(code),
            text: text.into(),
        }
    }

    /// A reason without a code (`BYE`).
    pub fn plain(text: impl Into<String>) -> Reason {
        Reason {
            code: None,
            text: text.into(),
        }
    }

    /// The words to show in `lang`: the relay's when they are in `lang`
    /// (they may say more, such as for how long), else the client's own
    /// text for the code; `None` when neither fits (a reason in another
    /// language without a code).
    pub fn text(&self, lang: Lang) -> Option<String> {
        if text_lang(&self.text) == lang && !self.text.is_empty() {
            return Some(self.text.clone());
        }
        self.code.map(|code| code.reason(lang).to_owned())
    }

    /// [`Reason::text`], or the relay's words when nothing better exists.
    fn shown(&self, lang: Lang) -> String {
        self.text(lang).unwrap_or_else(|| self.text.clone())
    }
}

/// Why a typed line cannot be sent, in words for the user (see
/// [`crate::command::InputError`]).
fn parse_error_text(error: &ParseError, lang: Lang) -> String {
    match lang {
        Lang::En => error.to_string(),
        Lang::Zh => error
            .reason(Lang::Zh)
            .unwrap_or_else(|| error.code().reason(Lang::Zh).to_owned()),
    }
}

/// Something the client says. Strings inside are as received or typed
/// (unsanitized); the renderer makes them safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    // --- the session ---
    /// A message typed while not joined waits.
    NotConnectedQueued,
    /// A command typed while not joined is dropped.
    NotConnected,
    /// Back in the room after a rejoin.
    Rejoined { nick: String },
    /// Our nickname was taken while we were away.
    NickTakenRejoining { old: String, new: String },
    /// A rejoin was refused for now.
    StillRejoining { reason: Reason },
    /// The host removed us (the reason is the host's words).
    RemovedByHost { reason: String },
    /// `/nick` refused.
    RenameRefused { reason: Reason },
    /// Messages refused for good (muted, slow mode).
    NotSent { count: usize, reason: Reason },
    /// The relay says we send too fast.
    SlowingDown { reason: Reason },
    /// Any other relay error.
    RelayError { reason: Reason },
    /// `ERROR not-joined` while joined.
    RelayForgotUs,
    /// `BYE shutdown`.
    RelayShuttingDown { reason: Reason },
    /// `BYE timeout`.
    RelayDroppedUs { reason: Reason },
    /// `HAND up <position>`.
    HandUp { position: u32 },
    /// `HAND called`.
    Called,
    /// Room events lost.
    Lost { count: u64, why: LossReason },
    /// Room events still missing, asked for again.
    Waiting { missing: u64 },
    /// A member came back (resumed its membership).
    Reconnected { nick: String, history: bool },
    /// The first join refused for good.
    JoinRefused { reason: Reason },
    /// The link is lost.
    ConnectionLost,
    /// A datagram the client could not read (`shown`: sanitized start).
    Malformed { error: ParseError, shown: String },
    /// A private message never confirmed.
    PrivateUnconfirmed { to: String },
    /// `ERROR no-such-nick`, about our private message to `to` if known.
    NoSuchNick { reason: Reason, to: Option<String> },
    /// One of our room messages never echoed (`start`: its first words).
    MessageUnconfirmed { start: String, more: bool },

    // --- the app ---
    /// The local time zone is unknown.
    TimesAreUtc,
    /// Kicked: the prompt waits for Enter.
    PressEnterToLeave,
    /// Pasted lines after `/quit`.
    LinesAfterQuit { count: usize },
    /// Joined.
    Joined { relay: String, nick: String },
    /// The relay refused the first nickname; another is asked for.
    NickRefused { nick: String, reason: Reason },
    /// A typed line that cannot be sent (`start`: its first characters).
    LineNotSent {
        start: String,
        more: bool,
        error: ParseError,
    },
    /// `/something` that is not a command.
    UnknownCommand { verb: String },
    /// A command without its arguments.
    Usage { usage: &'static str },
    /// A nickname or message typed wrong.
    Invalid { error: ParseError },
    /// The prompt asking for a nickname.
    NickPrompt,
    /// Piped mode's report at the end: messages not confirmed.
    ShortUnconfirmed { count: usize },
    /// ... the relay never said how many there were.
    ShortUnanswered,
    /// ... room messages not received.
    ShortMissing { count: u64 },
    /// ... room messages lost for good.
    ShortLost { count: u64 },

    // --- pieces of room lines ---
    /// ` (you)` right after our own name.
    You,
    /// The label of the host's lines.
    HostLabel,
    /// `[history]` before a line said before we joined.
    History { at: Option<String> },
    /// `[private from NICK]`.
    PrivateFrom { nick: String },
    /// `[private to NICK]`.
    PrivateTo { nick: String },
    /// `NICK joined`.
    JoinedRoom { nick: String },
    /// `NICK left ...`.
    Left { nick: String, reason: LeaveReason },
    /// `OLD is now known as NEW`.
    Renamed { old: String, new: String },
    /// `online (N): ` with the page if more than one.
    Online { count: u32, page: u32, pages: u32 },
    /// The `/help` text.
    Help,
    /// `VOICE on`: the host gave us a voice.
    CanSpeak,
    /// `VOICE off`: the host took our voice away.
    CannotSpeak,
    /// `MODERATED on|off` for the room (`history`: said before we joined).
    Moderated { on: bool, history: bool },
    /// The label of an announcement's line.
    AnnouncementLabel,
}

impl Msg {
    /// The words in `lang`.
    pub fn text(&self, lang: Lang) -> String {
        let zh = lang == Lang::Zh;
        let pick = |en: String, cn: String| if zh { cn } else { en };
        match self {
            Msg::NotConnectedQueued => pick(
                "not connected right now; your message will be sent when the relay answers".into(),
                "暂时没有连接；服务器回应后会发出你的消息".into(),
            ),
            Msg::NotConnected => pick(
                "not connected right now; try again in a moment".into(),
                "暂时没有连接，请稍后再试".into(),
            ),
            Msg::Rejoined { nick } => pick(format!("rejoined as {nick}"), format!("已重新加入，昵称 {nick}")),
            Msg::NickTakenRejoining { old, new } => pick(
                format!("your nickname {old} is taken now; rejoining as {new}"),
                format!("你的昵称 {old} 已被占用；改用 {new} 重新加入"),
            ),
            Msg::StillRejoining { reason } => pick(
                format!("{}; still trying to rejoin…", reason.shown(lang)),
                format!("{}；仍在尝试重新加入…", reason.shown(lang)),
            ),
            Msg::RemovedByHost { reason } => pick(
                format!("you were removed by the host: {reason}"),
                format!("你被主持人移出了聊天室：{reason}"),
            ),
            Msg::RenameRefused { reason } => pick(
                format!("cannot change nickname: {}", reason.shown(lang)),
                format!("无法更改昵称：{}", reason.shown(lang)),
            ),
            Msg::NotSent { count, reason } => match count {
                0 | 1 => pick(
                    format!("not sent: {}", reason.shown(lang)),
                    format!("未发送：{}", reason.shown(lang)),
                ),
                n => pick(
                    format!("{n} messages not sent: {}", reason.shown(lang)),
                    format!("{n} 条消息未发送：{}", reason.shown(lang)),
                ),
            },
            Msg::SlowingDown { reason } => pick(
                format!("{} (slowing down)", reason.shown(lang)),
                format!("{}（正在放慢发送）", reason.shown(lang)),
            ),
            Msg::RelayError { reason } => pick(
                format!("relay: {}", reason.shown(lang)),
                format!("服务器：{}", reason.shown(lang)),
            ),
            Msg::RelayForgotUs => pick(
                "the relay no longer knows us".into(),
                "服务器已不认识我们了".into(),
            ),
            Msg::RelayShuttingDown { reason } => match reason.text(lang) {
                Some(r) => pick(
                    format!("the relay is shutting down: {r}"),
                    format!("服务器正在关闭：{r}"),
                ),
                None => pick("the relay is shutting down".into(), "服务器正在关闭".into()),
            },
            Msg::RelayDroppedUs { reason } => match reason.text(lang) {
                Some(r) => pick(
                    format!("the relay disconnected us: {r}"),
                    format!("服务器断开了我们的连接：{r}"),
                ),
                None => pick(
                    "the relay disconnected us".into(),
                    "服务器断开了我们的连接".into(),
                ),
            },
            Msg::HandUp { position } => pick(
                format!("your hand is up; {} in line", ordinal(*position)),
                format!("你已举手，排在第 {position} 位"),
            ),
            Msg::Called => pick("the teacher calls on you".into(), "老师点到你了".into()),
            Msg::Lost { count, why } => {
                let what = match count {
                    1 => pick("1 message".into(), "1 条消息".into()),
                    n => pick(format!("{n} messages"), format!("{n} 条消息")),
                };
                match why {
                    LossReason::Gone => pick(
                        format!("{what} lost for good (the relay no longer has them)"),
                        format!("{what}永久丢失（服务器已不再保存）"),
                    ),
                    LossReason::NoAnswer => pick(
                        format!("{what} missed (the relay did not send them again)"),
                        format!("{what}没有收到（服务器没有重发）"),
                    ),
                    LossReason::TooFarBehind => {
                        pick(format!("{what} missed"), format!("{what}没有收到"))
                    }
                }
            }
            Msg::Waiting { missing } => pick(
                format!("{missing} missed message(s), asking the relay again…"),
                format!("缺少 {missing} 条消息，正在向服务器重新索取…"),
            ),
            Msg::Reconnected { nick, history } => {
                let prefix = if *history {
                    format!("{} ", Msg::History { at: None }.text(lang))
                } else {
                    String::new()
                };
                pick(
                    format!("{prefix}{nick} reconnected"),
                    format!("{prefix}{nick} 重新连上了"),
                )
            }
            Msg::JoinRefused { reason } => pick(
                format!("the relay refused to let us join: {}", reason.shown(lang)),
                format!("服务器拒绝我们加入：{}", reason.shown(lang)),
            ),
            Msg::ConnectionLost => pick(
                "connection lost, rejoining…".into(),
                "连接中断，正在重新加入…".into(),
            ),
            Msg::Malformed { error, shown } => pick(
                format!("ignored a malformed datagram from the relay ({error}): {shown}"),
                format!(
                    "忽略了服务器发来的一个格式错误的数据报（{}）：{shown}",
                    parse_error_text(error, lang)
                ),
            ),
            Msg::PrivateUnconfirmed { to } => pick(
                format!(
                    "private message to {to} was not confirmed by the relay; it may not have arrived"
                ),
                format!("发给 {to} 的私信没有得到服务器确认，可能没有送到"),
            ),
            Msg::NoSuchNick { reason, to } => match to {
                None => reason.shown(lang),
                Some(to) => pick(
                    format!("{}; private message to {to} not sent", reason.shown(lang)),
                    format!("{}；发给 {to} 的私信未发送", reason.shown(lang)),
                ),
            },
            Msg::MessageUnconfirmed { start, more } => {
                let more = if *more { "…" } else { "" };
                pick(
                    format!("your message \"{start}{more}\" was not confirmed by the relay; it may not have arrived"),
                    format!("你的消息“{start}{more}”没有得到服务器确认，可能没有送到"),
                )
            }
            Msg::TimesAreUtc => pick(
                "times are UTC (the local time zone is unknown)".into(),
                "时间为 UTC（不知道本地时区）".into(),
            ),
            Msg::PressEnterToLeave => pick("press Enter to leave".into(), "按回车键退出".into()),
            Msg::LinesAfterQuit { count } => pick(
                format!("{count} line(s) after /quit were not sent"),
                format!("/quit 之后的 {count} 行没有发送"),
            ),
            Msg::Joined { relay, nick } => pick(
                format!("joined {relay} as {nick}; type /help for commands"),
                format!("已加入 {relay}，昵称 {nick}；输入 /help 查看命令"),
            ),
            Msg::NickRefused { nick, reason } => pick(
                format!("the relay refused the nickname {nick}: {}", reason.shown(lang)),
                format!("服务器拒绝了昵称 {nick}：{}", reason.shown(lang)),
            ),
            Msg::LineNotSent { start, more, error } => {
                let more = if *more { "…" } else { "" };
                pick(
                    format!("not sent: \"{start}{more}\": {error}"),
                    format!("未发送：“{start}{more}”：{}", parse_error_text(error, lang)),
                )
            }
            Msg::UnknownCommand { verb } => pick(
                format!(
                    "unknown command /{verb}; type /help for the list (// sends a line starting with /)"
                ),
                format!("没有 /{verb} 这个命令；输入 /help 查看命令列表（以 // 开头可发送以 / 开头的消息）"),
            ),
            Msg::Usage { usage } => pick(format!("usage: {usage}"), format!("用法：{usage}")),
            Msg::Invalid { error } => parse_error_text(error, lang),
            Msg::NickPrompt => pick("nickname: ".into(), "昵称：".into()),
            Msg::ShortUnconfirmed { count } => pick(
                format!(
                    "{count} of our message(s) not confirmed by the relay; they may not have arrived"
                ),
                format!("我们的 {count} 条消息没有得到服务器确认，可能没有送到"),
            ),
            Msg::ShortUnanswered => pick(
                "the relay never said how many room messages there were; some may be missing"
                    .into(),
                "服务器始终没有说明聊天室共有多少条消息，可能缺了一些".into(),
            ),
            Msg::ShortMissing { count } => pick(
                format!("{count} room message(s) not received"),
                format!("有 {count} 条聊天室消息没有收到"),
            ),
            Msg::ShortLost { count } => pick(
                format!("{count} room message(s) lost for good"),
                format!("有 {count} 条聊天室消息永久丢失"),
            ),
            // Right after our name: a space before the English words only.
            Msg::You => pick(" (you)".into(), "（你）".into()),
            Msg::HostLabel => pick("[host]".into(), "[主持人]".into()),
            Msg::History { at } => match at {
                None => pick("[history]".into(), "[历史]".into()),
                Some(at) => pick(format!("[history {at}]"), format!("[历史 {at}]")),
            },
            Msg::PrivateFrom { nick } => {
                pick(format!("[private from {nick}]"), format!("[来自 {nick} 的私信]"))
            }
            Msg::PrivateTo { nick } => {
                pick(format!("[private to {nick}]"), format!("[发给 {nick} 的私信]"))
            }
            Msg::JoinedRoom { nick } => pick(format!("{nick} joined"), format!("{nick} 加入了")),
            Msg::Left { nick, reason } => match reason {
                LeaveReason::Quit => pick(format!("{nick} left"), format!("{nick} 离开了")),
                LeaveReason::Timeout => pick(
                    format!("{nick} left (timed out)"),
                    format!("{nick} 离开了（超时）"),
                ),
                LeaveReason::Unreachable => pick(
                    format!("{nick} left (unreachable)"),
                    format!("{nick} 离开了（无法连接）"),
                ),
                LeaveReason::Kicked => pick(
                    format!("{nick} was removed by the host"),
                    format!("{nick} 被主持人移出了聊天室"),
                ),
            },
            Msg::Renamed { old, new } => pick(
                format!("{old} is now known as {new}"),
                format!("{old} 改名为 {new}"),
            ),
            Msg::Online { count, page, pages } => {
                if *pages > 1 {
                    pick(
                        format!("online ({count}, page {page}/{pages}): "),
                        format!("在线（{count} 人，第 {page}/{pages} 页）："),
                    )
                } else {
                    pick(format!("online ({count}): "), format!("在线（{count} 人）："))
                }
            }
            Msg::Help => pick(HELP_EN.into(), HELP_ZH.into()),
            Msg::CanSpeak => pick("you can speak now".into(), "你现在可以发言了".into()),
            Msg::CannotSpeak => pick("you can no longer speak".into(), "你不能再发言了".into()),
            Msg::Moderated { on, history } => {
                let said = match on {
                    true => pick(
                        "the host turned moderated mode on: only members with a voice can speak"
                            .into(),
                        "主持人开启了发言管理模式：只有获准发言的成员可以发言".into(),
                    ),
                    false => pick(
                        "the host turned moderated mode off: everyone can speak".into(),
                        "主持人关闭了发言管理模式：所有人都可以发言".into(),
                    ),
                };
                match history {
                    true => format!("{} {said}", Msg::History { at: None }.text(lang)),
                    false => said,
                }
            }
            Msg::AnnouncementLabel => pick("[announcement]".into(), "[通知]".into()),
        }
    }
}

impl crate::CliError {
    /// What the user reads when the client stops, in `lang`. The English
    /// words are the error's `Display`.
    pub fn text(&self, lang: Lang) -> String {
        use crate::CliError as E;
        if lang == Lang::En {
            return self.to_string();
        }
        match self {
            E::Resolve { addr, source } => format!(
                "找不到服务器地址 {addr:?}（{source}）；请写成 主机:端口，例如 127.0.0.1:10024"
            ),
            E::NoAddress(addr) => format!("服务器地址 {addr:?} 没有对应的 IP 地址"),
            E::Socket { addr, source } => {
                format!("无法打开连接 {addr} 的 UDP 套接字：{source}")
            }
            E::NoRelay(addr) => {
                format!("{addr} 没有服务器回应；请检查地址，并确认 udpchat-relay 正在运行")
            }
            E::NickRequired => {
                "标准输入不是终端时必须给出 --nick，例如 printf 'hi\\n' | udpchat --nick bot".into()
            }
            E::BadNick { nick, source } => {
                format!("昵称 {nick:?} 无效：{}", parse_error_text(source, Lang::Zh))
            }
            E::Refused { nick, reason } => {
                let reason = if text_lang(reason) == Lang::Zh {
                    reason.clone()
                } else {
                    "请换一个昵称".into()
                };
                format!("服务器拒绝了昵称 {nick}：{reason}")
            }
            E::Cancelled => "没有输入昵称，什么也没有发送".into(),
            E::Terminal(e) => format!("终端出错：{e}"),
            E::Stdin(e) => format!("无法读取标准输入：{e}"),
        }
    }
}

/// `/help` in English: every command and key.
const HELP_EN: &str = "\
commands:
  /who             who is in the room
  /msg NICK text   private message to NICK
  /me text         an action: /me waves shows * alice waves
  /nick NEW        change your nickname
  /hand [question] raise your hand; the teacher calls on you in turn
  /clear           clear the screen
  /quit            leave
  /help            this list
  //text           send a message that starts with /
keys:
  Tab              complete a nickname or a command
  Up, Down         earlier lines you typed
  Ctrl-C           clear the line; on an empty line, leave
  Ctrl-D           leave (on an empty line)
  Ctrl-L           clear the screen
anything else is sent to the room";

/// `/help` in Chinese.
const HELP_ZH: &str = "\
命令：
  /who             查看聊天室里有谁
  /msg 昵称 内容   给某人发私信
  /me 内容         动作：/me 挥手 显示为 * alice 挥手
  /nick 新昵称     更改昵称
  /hand [问题]     举手；老师会按顺序点名
  /clear           清屏
  /quit            退出
  /help            显示本列表
  //内容           发送以 / 开头的消息
按键：
  Tab              补全昵称或命令
  上、下方向键     翻看之前输入的内容
  Ctrl-C           清除当前输入；输入为空时退出
  Ctrl-D           退出（输入为空时）
  Ctrl-L           清屏
其他内容都会发送到聊天室";

#[cfg(test)]
mod tests {
    use super::*;

    /// The index of `m`'s variant; a new variant does not compile until
    /// it is added here, and [`every_message`] must then show it.
    fn variant(m: &Msg) -> usize {
        match m {
            Msg::NotConnectedQueued => 0,
            Msg::NotConnected => 1,
            Msg::Rejoined { .. } => 2,
            Msg::NickTakenRejoining { .. } => 3,
            Msg::StillRejoining { .. } => 4,
            Msg::RemovedByHost { .. } => 5,
            Msg::RenameRefused { .. } => 6,
            Msg::NotSent { .. } => 7,
            Msg::SlowingDown { .. } => 8,
            Msg::RelayError { .. } => 9,
            Msg::RelayForgotUs => 10,
            Msg::RelayShuttingDown { .. } => 11,
            Msg::RelayDroppedUs { .. } => 12,
            Msg::HandUp { .. } => 13,
            Msg::Called => 14,
            Msg::Lost { .. } => 15,
            Msg::Waiting { .. } => 16,
            Msg::Reconnected { .. } => 17,
            Msg::JoinRefused { .. } => 18,
            Msg::ConnectionLost => 19,
            Msg::Malformed { .. } => 20,
            Msg::PrivateUnconfirmed { .. } => 21,
            Msg::NoSuchNick { .. } => 22,
            Msg::MessageUnconfirmed { .. } => 23,
            Msg::TimesAreUtc => 24,
            Msg::PressEnterToLeave => 25,
            Msg::LinesAfterQuit { .. } => 26,
            Msg::Joined { .. } => 27,
            Msg::NickRefused { .. } => 28,
            Msg::LineNotSent { .. } => 29,
            Msg::UnknownCommand { .. } => 30,
            Msg::Usage { .. } => 31,
            Msg::Invalid { .. } => 32,
            Msg::NickPrompt => 33,
            Msg::ShortUnconfirmed { .. } => 34,
            Msg::ShortUnanswered => 35,
            Msg::ShortMissing { .. } => 36,
            Msg::ShortLost { .. } => 37,
            Msg::You => 38,
            Msg::HostLabel => 39,
            Msg::History { .. } => 40,
            Msg::PrivateFrom { .. } => 41,
            Msg::PrivateTo { .. } => 42,
            Msg::JoinedRoom { .. } => 43,
            Msg::Left { .. } => 44,
            Msg::Renamed { .. } => 45,
            Msg::Online { .. } => 46,
            Msg::Help => 47,
            Msg::CanSpeak => 48,
            Msg::CannotSpeak => 49,
            Msg::Moderated { .. } => 50,
            Msg::AnnouncementLabel => 51,
        }
    }
    const VARIANTS: usize = 52;

    /// Every message, each variant at least once and every branch of its
    /// words (counts, reasons, languages of the relay's reason).
    fn every_message() -> Vec<Msg> {
        let en = |code| Reason::coded(code, code.reason(Lang::En));
        let zh = |code| Reason::coded(code, code.reason(Lang::Zh));
        let mut all = vec![
            Msg::NotConnectedQueued,
            Msg::NotConnected,
            Msg::Rejoined { nick: "bob".into() },
            Msg::NickTakenRejoining {
                old: "bob".into(),
                new: "bob_2".into(),
            },
            Msg::RemovedByHost {
                reason: "spam".into(),
            },
            Msg::RelayForgotUs,
            Msg::HandUp { position: 3 },
            Msg::Called,
            Msg::Waiting { missing: 2 },
            Msg::Reconnected {
                nick: "bob".into(),
                history: false,
            },
            Msg::Reconnected {
                nick: "bob".into(),
                history: true,
            },
            Msg::ConnectionLost,
            Msg::Malformed {
                error: ParseError::UnknownVerb("X".into()),
                shown: "X y".into(),
            },
            Msg::PrivateUnconfirmed { to: "bob".into() },
            Msg::MessageUnconfirmed {
                start: "hi".into(),
                more: true,
            },
            Msg::TimesAreUtc,
            Msg::PressEnterToLeave,
            Msg::LinesAfterQuit { count: 2 },
            Msg::Joined {
                relay: "127.0.0.1:10024".into(),
                nick: "bob".into(),
            },
            Msg::LineNotSent {
                start: "a".into(),
                more: false,
                error: ParseError::ControlChar(7),
            },
            Msg::UnknownCommand {
                verb: "frob".into(),
            },
            Msg::Usage {
                usage: "/msg NICK text",
            },
            Msg::Invalid {
                error: ParseError::NickChar(' ' as u32),
            },
            Msg::Invalid {
                error: ParseError::TextTooLong(900),
            },
            Msg::NickPrompt,
            Msg::ShortUnconfirmed { count: 1 },
            Msg::ShortUnanswered,
            Msg::ShortMissing { count: 1 },
            Msg::ShortLost { count: 1 },
            Msg::You,
            Msg::HostLabel,
            Msg::History { at: None },
            Msg::History {
                at: Some("09:00".into()),
            },
            Msg::PrivateFrom { nick: "bob".into() },
            Msg::PrivateTo { nick: "bob".into() },
            Msg::JoinedRoom { nick: "bob".into() },
            Msg::Renamed {
                old: "bob".into(),
                new: "rob".into(),
            },
            Msg::Online {
                count: 2,
                page: 1,
                pages: 1,
            },
            Msg::Online {
                count: 200,
                page: 1,
                pages: 2,
            },
            Msg::Help,
            Msg::CanSpeak,
            Msg::CannotSpeak,
            Msg::Moderated {
                on: true,
                history: false,
            },
            Msg::Moderated {
                on: false,
                history: true,
            },
            Msg::AnnouncementLabel,
        ];
        for why in [
            LossReason::Gone,
            LossReason::NoAnswer,
            LossReason::TooFarBehind,
        ] {
            for count in [1, 5] {
                all.push(Msg::Lost { count, why });
            }
        }
        for reason in [
            LeaveReason::Quit,
            LeaveReason::Timeout,
            LeaveReason::Unreachable,
            LeaveReason::Kicked,
        ] {
            all.push(Msg::Left {
                nick: "bob".into(),
                reason,
            });
        }
        for code in ErrorCode::ALL.iter().copied() {
            for reason in [en(code), zh(code)] {
                all.extend([
                    Msg::StillRejoining {
                        reason: reason.clone(),
                    },
                    Msg::RenameRefused {
                        reason: reason.clone(),
                    },
                    Msg::NotSent {
                        count: 1,
                        reason: reason.clone(),
                    },
                    Msg::NotSent {
                        count: 3,
                        reason: reason.clone(),
                    },
                    Msg::SlowingDown {
                        reason: reason.clone(),
                    },
                    Msg::RelayError {
                        reason: reason.clone(),
                    },
                    Msg::JoinRefused {
                        reason: reason.clone(),
                    },
                    Msg::NoSuchNick {
                        reason: reason.clone(),
                        to: None,
                    },
                    Msg::NoSuchNick {
                        reason: reason.clone(),
                        to: Some("bob".into()),
                    },
                    Msg::NickRefused {
                        nick: "bob".into(),
                        reason,
                    },
                ]);
            }
        }
        for text in ["server restart", "服务器重启"] {
            all.push(Msg::RelayShuttingDown {
                reason: Reason::plain(text),
            });
            all.push(Msg::RelayDroppedUs {
                reason: Reason::plain(text),
            });
        }
        all
    }

    #[test]
    fn every_message_is_in_english_and_chinese_without_control_characters() {
        let all = every_message();
        let mut seen = [false; VARIANTS];
        for m in &all {
            seen[variant(m)] = true;
        }
        let missing: Vec<usize> = (0..VARIANTS).filter(|&i| !seen[i]).collect();
        assert!(
            missing.is_empty(),
            "variants without an example: {missing:?}"
        );
        for m in &all {
            let en = m.text(Lang::En);
            let zh = m.text(Lang::Zh);
            assert!(!en.trim().is_empty() && !zh.trim().is_empty(), "{m:?}");
            assert_ne!(en, zh, "{m:?} is not translated");
            for text in [&en, &zh] {
                // Line breaks only in the help text, which is shown as lines.
                assert!(
                    !text
                        .chars()
                        .any(|c| c != '\n' && crate::text::must_escape(c)),
                    "{m:?}: {text:?}"
                );
            }
            // Chinese words in the Chinese text, none in the English one:
            // one line never mixes the two.
            assert_eq!(text_lang(&zh), Lang::Zh, "{m:?}: {zh}");
            assert_eq!(text_lang(&en), Lang::En, "{m:?}: {en}");
        }
    }

    #[test]
    fn the_errors_that_stop_the_client_are_in_both_languages() {
        use crate::CliError as E;
        let io = || std::io::Error::other("x");
        let all = [
            E::Resolve {
                addr: "h".into(),
                source: io(),
            },
            E::NoAddress("h".into()),
            E::Socket {
                addr: "h".into(),
                source: io(),
            },
            E::NoRelay("127.0.0.1:10024".into()),
            E::NickRequired,
            E::BadNick {
                nick: "a b".into(),
                source: ParseError::NickChar(' ' as u32),
            },
            E::Refused {
                nick: "bob".into(),
                reason: "nickname is taken".into(),
            },
            E::Cancelled,
            E::Terminal(rustyline::error::ReadlineError::Eof),
            E::Stdin(io()),
        ];
        for e in &all {
            let (en, zh) = (e.text(Lang::En), e.text(Lang::Zh));
            assert_eq!(en, e.to_string());
            assert_ne!(en, zh);
            assert_eq!(text_lang(&zh), Lang::Zh, "{zh}");
            assert!(!zh.chars().any(crate::text::must_escape), "{zh:?}");
        }
        assert!(E::BadNick {
            nick: "a b".into(),
            source: ParseError::NickChar(' ' as u32),
        }
        .text(Lang::Zh)
        .contains("不能有空格"));
    }

    #[test]
    fn typed_line_errors_read_the_same_in_english_as_before() {
        use crate::command::{parse_input, refusal, refusal_text};
        for line in ["/frob", "/msg bob", "/nick a b", "a\u{7}b", "/nick"] {
            let e = parse_input(line).unwrap_err();
            assert_eq!(e.msg().text(Lang::En), e.to_string());
            assert_eq!(refusal(line, &e).text(Lang::En), refusal_text(line, &e));
            let zh = refusal(line, &e).text(Lang::Zh);
            assert_eq!(text_lang(&zh), Lang::Zh, "{zh}");
        }
    }

    #[test]
    fn the_relays_reason_is_shown_only_in_our_language() {
        let zh_reason = Reason::coded(ErrorCode::Muted, "主持人已将你禁言 10 分钟");
        assert_eq!(
            Msg::NotSent {
                count: 1,
                reason: zh_reason.clone()
            }
            .text(Lang::En),
            "not sent: the host has muted you; nobody sees your messages"
        );
        assert_eq!(
            Msg::NotSent {
                count: 1,
                reason: zh_reason
            }
            .text(Lang::Zh),
            "未发送：主持人已将你禁言 10 分钟"
        );
        let en_bye = Reason::plain("the relay is restarting");
        assert_eq!(
            Msg::RelayShuttingDown { reason: en_bye }.text(Lang::Zh),
            "服务器正在关闭"
        );
    }

    #[test]
    fn the_language_comes_from_lc_all_then_lc_messages_then_lang() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(lang_from(env(&[])), Lang::En);
        assert_eq!(lang_from(env(&[("LANG", "zh_CN.UTF-8")])), Lang::Zh);
        assert_eq!(
            lang_from(env(&[("LANG", "zh_CN.UTF-8"), ("LC_ALL", "en_US.UTF-8")])),
            Lang::En
        );
        assert_eq!(
            lang_from(env(&[("LANG", "en_US"), ("LC_MESSAGES", "zh_TW")])),
            Lang::Zh
        );
        // An empty variable does not count.
        assert_eq!(lang_from(env(&[("LC_ALL", ""), ("LANG", "zh")])), Lang::Zh);
        assert_eq!(lang_from(env(&[("LANG", "C.UTF-8")])), Lang::En);
    }
}
