//! What the operator console says, in English and Chinese: the greeting,
//! `/help`, the line that says how the console reads, and the answers to
//! commands ([`Answer`]). The event loop says *what* happened; the words
//! live here, so `server.rs` stays about running the room.

use std::net::IpAddr;
use std::time::Duration;

use udpchat_proto::Lang;
use udpchat_room::AnnouncementSummary;

/// What `/help` prints, in `lang`: the English list is `console::HELP`,
/// beside the parser; the Chinese one is here. A new command adds a line
/// to both.
pub fn help(lang: Lang) -> &'static str {
    match lang {
        Lang::En => crate::console::HELP,
        Lang::Zh => HELP_ZH,
    }
}

const HELP_ZH: &str = "\
控制台命令：
  <文字>               以主持人身份向聊天室说 <文字>（要说以 / 开头的话，请以 // 开头）
  /who                 列出成员：地址、方式、加入时间、空闲时间
  /hands               列出举手的人，先举手的在前
  /next                点第一个举手的人发言（会通知该学生）
  /attendance [save]   谁在场、迟到、缺席；save 立即写入 --attendance 的 CSV 文件
  /kick NICK [原因]    移出一名成员
  /ban NICK|IP [时长] [原因]
                       禁止一个 IP 地址加入（给昵称时：该成员的地址；该成员被移出）；
                       时长例如 10m、2h、1d（不写：直到 /unban）
  /unban IP|NICK       解除封禁           /bans   列出封禁
  /mute NICK [时长]    拒收该成员的消息（只有该成员会收到通知）   /unmute NICK
  /lock, /unlock       不许新成员加入（已在的成员留下）
  /code [加入码|off]   显示、设置或取消加入码（学生输入：N 名字 加入码，或 udpchat --code 加入码）
  /slow 秒数           同一成员两条消息之间的最短间隔（0：关闭）
  /rename NICK NEW     给成员改名
  /moderated on|off    发言管理模式：只有主持人和获准发言的成员可以发言（其他人：私信、/hand）
  /voice NICK, /devoice NICK
                       准许或取消某成员在发言管理模式下发言
  /announce [内容]     发布一条通知（客户端会确认）；不写内容：显示最近一条通知有多少人看到
  /quit [原因]         通知所有成员中继即将关闭，然后退出
  /help                显示此列表";

/// The greeting of the line-editor console: how to use it.
pub fn greeting(lang: Lang) -> &'static str {
    match lang {
        Lang::En => {
            "console: type a line and press Enter to say it to the room as the host; /help lists the commands.\n\
             The room's messages appear above this line. Up and Down recall what you typed.\n\
             Stop the relay with /quit [reason], or Ctrl-C on an empty line (every member is told)."
        }
        Lang::Zh => {
            "控制台：输入一行文字并按回车，即以主持人身份发到聊天室；/help 列出所有命令。\n\
             聊天室的消息显示在输入行上方。上下方向键可找回输入过的内容。\n\
             停止中继：输入 /quit [原因]，或在空行上按 Ctrl-C（会通知所有成员）。"
        }
    }
}

/// The one line that says the console reads commands without a line
/// editor (standard input or output is not a terminal).
pub fn plain_console(lang: Lang, stdin_is_terminal: bool) -> &'static str {
    match (lang, stdin_is_terminal) {
        (Lang::En, false) => {
            "console: reading commands from standard input, one a line (not a terminal: no line editor, no room view); /help lists them"
        }
        (Lang::En, true) => {
            "console: reading commands line by line (output is not a terminal: no line editor, no room view); /help lists them"
        }
        (Lang::Zh, false) => {
            "控制台：从标准输入逐行读取命令（不是终端：没有行编辑，不显示聊天室）；/help 列出命令"
        }
        (Lang::Zh, true) => {
            "控制台：逐行读取命令（输出不是终端：没有行编辑，不显示聊天室）；/help 列出命令"
        }
    }
}

/// What Ctrl-D on an empty line says: it does not stop the class.
pub fn eof_hint(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "(Ctrl-D does not stop the relay: type /quit [reason], or press Ctrl-C on an empty line)",
        Lang::Zh => "（Ctrl-D 不会停止中继：请输入 /quit [原因]，或在空行上按 Ctrl-C）",
    }
}

/// The console pausing in the background, and coming back.
pub fn paused(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "console: the relay runs in the background now and keeps relaying; fg brings the console back",
        Lang::Zh => "控制台：中继现在在后台运行，照常转发消息；用 fg 回到控制台",
    }
}

/// The console back in the foreground (`fg`).
pub fn resumed(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "console: back in the foreground",
        Lang::Zh => "控制台：已回到前台",
    }
}

/// The `/bans` listing.
pub fn ban_list(bans: &[udpchat_room::BanInfo], lang: Lang) -> String {
    let n = bans.len();
    let mut s = match (n, lang) {
        (1, Lang::En) => "1 ban".to_owned(),
        (_, Lang::En) => format!("{n} bans"),
        (_, Lang::Zh) => format!("{n} 项封禁"),
    };
    for ban in bans {
        let nick = ban
            .nick
            .as_ref()
            .map_or(String::new(), |n| format!(" ({n})"));
        let words = |d: &Duration| udpchat_room::duration_words(d.as_millis() as u64, lang);
        let left = match (ban.left, lang) {
            (Some(left), Lang::En) => format!("{} left", words(&left)),
            (Some(left), Lang::Zh) => format!("还剩 {}", words(&left)),
            (None, Lang::En) => "until /unban".to_owned(),
            (None, Lang::Zh) => "直到 /unban".to_owned(),
        };
        s.push_str(&format!("\n  {}{nick}, {left}: {}", ban.ip, ban.reason));
    }
    s
}

/// The console's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A host message the room refused (`why` says what is wrong with it).
    NotSent(String),
    /// `/kick` worked.
    Kicked(String),
    /// `/kick` failed.
    CannotKick {
        /// The nickname asked for.
        nick: String,
        /// Why.
        why: String,
    },
    /// `/ban` worked.
    Banned {
        /// The address banned.
        ip: IpAddr,
        /// How long (`None`: until `/unban`).
        duration: Option<Duration>,
        /// The members it removed.
        removed: Vec<String>,
    },
    /// `/ban` failed.
    CannotBan {
        /// The nickname or address asked for.
        target: String,
        /// Why.
        why: String,
    },
    /// `/unban` worked.
    Unbanned(IpAddr),
    /// `/unban` failed.
    CannotUnban(String),
    /// The bans are in force but `--ban-file` could not be written.
    BansNotSaved {
        /// The ban file.
        path: String,
        /// What the operating system said.
        why: String,
    },
    /// `/mute` worked.
    Muted(String),
    /// `/mute` failed.
    CannotMute(String),
    /// `/unmute` worked.
    Unmuted(String),
    /// `/unmute` failed.
    CannotUnmute(String),
    /// `/lock`.
    Locked,
    /// `/unlock`.
    Unlocked,
    /// `/code`: the code in force, if any (shown only when asked for).
    Code(Option<String>),
    /// `/code off`.
    CodeRemoved,
    /// `/code CODE` worked.
    CodeSet(String),
    /// `/code CODE` failed.
    CodeNotSet(String),
    /// `/slow` (zero: off).
    Slow(Duration),
    /// `/rename` worked.
    Renamed {
        /// The old nickname.
        nick: String,
        /// The new one.
        new: String,
    },
    /// `/rename` failed.
    CannotRename(String),
    /// `/attendance save` without `--attendance FILE`.
    AttendanceNotSaved,
    /// Attendance written.
    AttendanceSaved {
        /// The CSV file.
        path: String,
        /// How many names it has.
        names: usize,
    },
    /// Attendance could not be written.
    AttendanceFailed {
        /// The CSV file.
        path: String,
        /// What the operating system said.
        why: String,
    },
    /// `/moderated on|off` (`changed`: it was not so already).
    Moderated {
        /// On or off.
        on: bool,
        /// Whether this changed it.
        changed: bool,
    },
    /// `/voice` worked.
    Voiced(String),
    /// `/voice` failed.
    CannotVoice(String),
    /// `/devoice` worked.
    Devoiced(String),
    /// `/devoice` failed.
    CannotDevoice(String),
    /// `/announce TEXT` failed.
    NotAnnounced(String),
    /// `/announce`: the latest announcement's count, if there was one.
    Announcement(Option<AnnouncementSummary>),
    /// A line starting with `/` that is no command.
    Unknown(String),
}

impl Answer {
    /// The answer in words.
    pub fn text(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.english(),
            Lang::Zh => self.chinese(),
        }
    }

    fn english(&self) -> String {
        let words = |d: &Duration| udpchat_room::duration_words(d.as_millis() as u64, Lang::En);
        match self {
            Answer::NotSent(why) => format!("not sent: {why}"),
            Answer::Kicked(nick) => format!("kicked {nick}"),
            Answer::CannotKick { nick, why } => format!("cannot kick {nick}: {why}"),
            Answer::Banned {
                ip,
                duration,
                removed,
            } => {
                let how_long = match duration {
                    Some(d) => format!("for {}", words(d)),
                    None => "until /unban".to_owned(),
                };
                let removed = match removed.is_empty() {
                    true => String::new(),
                    false => format!("; removed {}", removed.join(", ")),
                };
                format!("banned {ip} {how_long}{removed}")
            }
            Answer::CannotBan { target, why } => format!("cannot ban {target}: {why}"),
            Answer::Unbanned(ip) => format!("unbanned {ip}"),
            Answer::CannotUnban(why) => format!("cannot unban: {why}"),
            Answer::BansNotSaved { path, why } => {
                format!("the bans are in force but could not be saved to {path}: {why}")
            }
            Answer::Muted(nick) => format!("muted {nick}"),
            Answer::CannotMute(why) => format!("cannot mute: {why}"),
            Answer::Unmuted(nick) => format!("unmuted {nick}"),
            Answer::CannotUnmute(why) => format!("cannot unmute: {why}"),
            Answer::Locked => "room locked: nobody new can join; members stay".to_owned(),
            Answer::Unlocked => "room unlocked".to_owned(),
            Answer::Code(Some(code)) => {
                format!(
                    "join code: {code} (students type: N name {code}, or udpchat --code {code})"
                )
            }
            Answer::Code(None) => "no join code".to_owned(),
            Answer::CodeRemoved => "join code removed".to_owned(),
            Answer::CodeSet(code) => format!("join code set: {code}"),
            Answer::CodeNotSet(why) => format!("not set: {why}"),
            Answer::Slow(d) if d.is_zero() => "slow mode off".to_owned(),
            Answer::Slow(d) => format!("slow mode: one message every {} s", d.as_secs()),
            Answer::Renamed { nick, new } => format!("renamed {nick} to {new}"),
            Answer::CannotRename(why) => format!("cannot rename: {why}"),
            Answer::AttendanceNotSaved => {
                "not saved: start the relay with --attendance FILE to save attendance".to_owned()
            }
            Answer::AttendanceSaved { path, names } => {
                format!("attendance saved to {path} ({names} names)")
            }
            Answer::AttendanceFailed { path, why } => format!(
                "cannot save attendance to {path}: {why}; check the path and its permissions"
            ),
            Answer::Moderated {
                on: true,
                changed: true,
            } => "moderated mode on: only the host and members with a voice (/voice NICK) speak"
                .to_owned(),
            Answer::Moderated {
                on: false,
                changed: true,
            } => "moderated mode off: everyone can speak".to_owned(),
            Answer::Moderated {
                on: true,
                changed: false,
            } => "moderated mode is on already".to_owned(),
            Answer::Moderated {
                on: false,
                changed: false,
            } => "moderated mode is off already".to_owned(),
            Answer::Voiced(nick) => format!("{nick} has a voice: may speak in moderated mode"),
            Answer::CannotVoice(why) => format!("cannot give a voice: {why}"),
            Answer::Devoiced(nick) => format!("{nick} no longer has a voice"),
            Answer::CannotDevoice(why) => format!("cannot take the voice: {why}"),
            Answer::NotAnnounced(why) => format!("not announced: {why}"),
            Answer::Announcement(Some(summary)) => {
                crate::recording::announcement_line(summary, Lang::En)
            }
            Answer::Announcement(None) => {
                "no announcement yet; /announce TEXT makes one".to_owned()
            }
            Answer::Unknown(line) => {
                format!("unknown command {line:?}; /help lists the commands")
            }
        }
    }

    fn chinese(&self) -> String {
        let words = |d: &Duration| udpchat_room::duration_words(d.as_millis() as u64, Lang::Zh);
        match self {
            Answer::NotSent(why) => format!("未发送：{why}"),
            Answer::Kicked(nick) => format!("已移出 {nick}"),
            Answer::CannotKick { nick, why } => format!("无法移出 {nick}：{why}"),
            Answer::Banned {
                ip,
                duration,
                removed,
            } => {
                let how_long = match duration {
                    Some(d) => words(d),
                    None => "直到 /unban".to_owned(),
                };
                let removed = match removed.is_empty() {
                    true => String::new(),
                    false => format!("；已移出 {}", removed.join("、")),
                };
                format!("已封禁 {ip}，{how_long}{removed}")
            }
            Answer::CannotBan { target, why } => format!("无法封禁 {target}：{why}"),
            Answer::Unbanned(ip) => format!("已解除对 {ip} 的封禁"),
            Answer::CannotUnban(why) => format!("无法解除封禁：{why}"),
            Answer::BansNotSaved { path, why } => {
                format!("封禁已生效，但无法保存到 {path}：{why}")
            }
            Answer::Muted(nick) => format!("已禁言 {nick}"),
            Answer::CannotMute(why) => format!("无法禁言：{why}"),
            Answer::Unmuted(nick) => format!("已解除 {nick} 的禁言"),
            Answer::CannotUnmute(why) => format!("无法解除禁言：{why}"),
            Answer::Locked => "聊天室已锁定：新成员不能加入；已在的成员留下".to_owned(),
            Answer::Unlocked => "聊天室已解锁".to_owned(),
            Answer::Code(Some(code)) => {
                format!("加入码：{code}（学生输入：N 名字 {code}，或 udpchat --code {code}）")
            }
            Answer::Code(None) => "没有加入码".to_owned(),
            Answer::CodeRemoved => "已取消加入码".to_owned(),
            Answer::CodeSet(code) => format!("已设置加入码：{code}"),
            Answer::CodeNotSet(why) => format!("未设置：{why}"),
            Answer::Slow(d) if d.is_zero() => "慢速模式已关闭".to_owned(),
            Answer::Slow(d) => format!("慢速模式：每人每 {} 秒一条消息", d.as_secs()),
            Answer::Renamed { nick, new } => format!("已将 {nick} 改名为 {new}"),
            Answer::CannotRename(why) => format!("无法改名：{why}"),
            Answer::AttendanceNotSaved => {
                "未保存：请用 --attendance FILE 启动中继以保存考勤".to_owned()
            }
            Answer::AttendanceSaved { path, names } => {
                format!("考勤已保存到 {path}（{names} 个名字）")
            }
            Answer::AttendanceFailed { path, why } => {
                format!("无法把考勤保存到 {path}：{why}；请检查路径和权限")
            }
            Answer::Moderated {
                on: true,
                changed: true,
            } => "发言管理模式已开启：只有主持人和获准发言的成员（/voice NICK）可以发言".to_owned(),
            Answer::Moderated {
                on: false,
                changed: true,
            } => "发言管理模式已关闭：所有人都可以发言".to_owned(),
            Answer::Moderated {
                on: true,
                changed: false,
            } => "发言管理模式本来就是开启的".to_owned(),
            Answer::Moderated {
                on: false,
                changed: false,
            } => "发言管理模式本来就是关闭的".to_owned(),
            Answer::Voiced(nick) => format!("{nick} 已获准发言：发言管理模式下也可以发言"),
            Answer::CannotVoice(why) => format!("无法准许发言：{why}"),
            Answer::Devoiced(nick) => format!("{nick} 不再获准发言"),
            Answer::CannotDevoice(why) => format!("无法取消发言许可：{why}"),
            Answer::NotAnnounced(why) => format!("未发布通知：{why}"),
            Answer::Announcement(Some(summary)) => {
                crate::recording::announcement_line(summary, Lang::Zh)
            }
            Answer::Announcement(None) => "还没有通知；用 /announce 内容 发布一条".to_owned(),
            Answer::Unknown(line) => format!("未知命令 {line:?}；/help 列出所有命令"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command_in_both_languages() {
        for command in [
            "/who",
            "/hands",
            "/next",
            "/attendance",
            "/kick",
            "/ban",
            "/unban",
            "/bans",
            "/mute",
            "/unmute",
            "/lock",
            "/unlock",
            "/code",
            "/slow",
            "/rename",
            "/quit",
            "/help",
        ] {
            assert!(help(Lang::En).contains(command), "{command} missing");
        }
        // Every command the English list names, the Chinese one names too.
        let commands = |text: &str| -> Vec<String> {
            text.split(|c: char| !(c == '/' || c.is_ascii_lowercase()))
                .filter(|w| w.len() > 1 && w.starts_with('/') && !w[1..].contains('/'))
                .map(str::to_owned)
                .collect()
        };
        let en = commands(help(Lang::En));
        assert!(en.len() >= 17, "{en:?}");
        let zh = commands(help(Lang::Zh));
        for command in &en {
            assert!(
                zh.contains(command),
                "{command} missing from the Chinese /help"
            );
        }
        assert!(help(Lang::Zh).starts_with("控制台命令"));
    }

    #[test]
    fn answers_keep_their_english_words_and_have_chinese_ones() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let banned = Answer::Banned {
            ip,
            duration: Some(Duration::from_secs(600)),
            removed: vec!["eve".into()],
        };
        // Scripts and tests read these English lines.
        assert_eq!(
            banned.text(Lang::En),
            "banned 127.0.0.1 for 10 minutes; removed eve"
        );
        assert_eq!(
            banned.text(Lang::Zh),
            "已封禁 127.0.0.1，10 分钟；已移出 eve"
        );
        assert_eq!(Answer::Kicked("bob".into()).text(Lang::En), "kicked bob");
        assert_eq!(Answer::Kicked("bob".into()).text(Lang::Zh), "已移出 bob");
        assert_eq!(
            Answer::Slow(Duration::from_secs(30)).text(Lang::Zh),
            "慢速模式：每人每 30 秒一条消息"
        );
        assert_eq!(
            Answer::Unknown("/frob".into()).text(Lang::En),
            "unknown command \"/frob\"; /help lists the commands"
        );
        // Every answer has words in both languages, and they differ.
        for answer in [
            Answer::Locked,
            Answer::Unlocked,
            Answer::CodeRemoved,
            Answer::Code(None),
            Answer::AttendanceNotSaved,
            Answer::Muted("bob".into()),
        ] {
            assert_ne!(answer.text(Lang::En), answer.text(Lang::Zh), "{answer:?}");
        }
    }

    #[test]
    fn the_ban_list_says_who_for_how_long_and_why() {
        let ban = udpchat_room::BanInfo {
            ip: "192.0.2.9".parse().unwrap(),
            nick: Some(udpchat_proto::Nick::new("eve").unwrap()),
            reason: "spam".into(),
            left: Some(Duration::from_secs(120)),
        };
        assert_eq!(
            ban_list(std::slice::from_ref(&ban), Lang::En),
            "1 ban\n  192.0.2.9 (eve), 2 minutes left: spam"
        );
        assert_eq!(
            ban_list(&[ban], Lang::Zh),
            "1 项封禁\n  192.0.2.9 (eve), 还剩 2 分钟: spam"
        );
        assert_eq!(ban_list(&[], Lang::En), "0 bans");
    }

    #[test]
    fn greeting_says_how_to_talk_to_the_room_and_how_to_stop() {
        let en = greeting(Lang::En);
        assert!(en.contains("/help") && en.contains("/quit") && en.contains("Ctrl-C"));
        let zh = greeting(Lang::Zh);
        assert!(zh.contains("/help") && zh.contains("/quit") && zh.contains("Ctrl-C"));
        assert!(eof_hint(Lang::En).contains("/quit"));
    }
}
