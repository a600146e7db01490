//! The human-readable lines of the classic dialect.
//!
//! Classic clients print whatever they receive, so the relay tells them the
//! same things it tells structured clients, as sentences. This module is the
//! one place those sentences are written. Lines are returned without a line
//! ending; the relay appends `\n` for members that joined with one.

use crate::{ByeCode, HandNotice, Lang, LeaveReason, RelayMsg, RoomEvent};

/// The exact reply to a successful classic join.
pub const OK: &str = "OK";

/// Renders `msg` as the line a classic client sees, or `None` for messages
/// that only the structured dialect has (`COOKIE`, `GONE`).
///
/// A `WELCOME` renders as the bare `OK` that classic clients compare
/// against. Every line is at most [`crate::MAX_DATAGRAM`] bytes (with the
/// newline) for every message the relay can build.
pub fn render(msg: &RelayMsg, lang: Lang) -> Option<String> {
    let zh = lang == Lang::Zh;
    let line = match msg {
        RelayMsg::Cookie(_) | RelayMsg::Gone { .. } => return None,
        RelayMsg::Welcome { .. } => OK.to_owned(),
        RelayMsg::Event { event, .. } => match event {
            RoomEvent::Chat { nick, text } => format!("{nick}: {text}"),
            RoomEvent::Join(nick) if zh => format!("* {nick} 加入了聊天室"),
            RoomEvent::Join(nick) => format!("* {nick} joined"),
            RoomEvent::Reconnect(nick) if zh => format!("* {nick} 重新连接了"),
            RoomEvent::Reconnect(nick) => format!("* {nick} reconnected"),
            RoomEvent::Leave { nick, reason } => match (reason, zh) {
                (LeaveReason::Quit, false) => format!("* {nick} left"),
                (LeaveReason::Timeout, false) => format!("* {nick} left (timed out)"),
                (LeaveReason::Unreachable, false) => format!("* {nick} left (unreachable)"),
                (LeaveReason::Kicked, false) => format!("* {nick} was removed by the host"),
                (LeaveReason::Quit, true) => format!("* {nick} 离开了聊天室"),
                (LeaveReason::Timeout, true) => format!("* {nick} 离开了聊天室（超时）"),
                (LeaveReason::Unreachable, true) => format!("* {nick} 离开了聊天室（无法送达）"),
                (LeaveReason::Kicked, true) => format!("* {nick} 被主持人移出聊天室"),
            },
            RoomEvent::Rename { old, new } if zh => format!("* {old} 改名为 {new}"),
            RoomEvent::Rename { old, new } => format!("* {old} is now known as {new}"),
            RoomEvent::Host(text) if zh => format!("[主持人] {text}"),
            RoomEvent::Host(text) => format!("[host] {text}"),
            RoomEvent::Action { nick, text } => format!("* {nick} {text}"),
            RoomEvent::Moderated(true) if zh => {
                "* 主持人开启了发言管理模式：只有获准发言的成员可以发言".to_owned()
            }
            RoomEvent::Moderated(true) => {
                "* the host turned moderated mode on: only members with a voice can speak"
                    .to_owned()
            }
            RoomEvent::Moderated(false) if zh => {
                "* 主持人关闭了发言管理模式：所有人都可以发言".to_owned()
            }
            RoomEvent::Moderated(false) => {
                "* the host turned moderated mode off: everyone can speak".to_owned()
            }
            RoomEvent::Announce(text) if zh => format!("[通知] {text}"),
            RoomEvent::Announce(text) => format!("[announcement] {text}"),
        },
        RelayMsg::Private { from, text, .. } if zh => format!("[私信 来自 {from}] {text}"),
        RelayMsg::Private { from, text, .. } => format!("[private from {from}] {text}"),
        RelayMsg::Sent { to, text, .. } if zh => format!("[私信 发给 {to}] {text}"),
        RelayMsg::Sent { to, text, .. } => format!("[private to {to}] {text}"),
        RelayMsg::Who {
            page,
            pages,
            count,
            nicks,
        } => {
            let names = nicks
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            match (pages > &1, zh) {
                (false, false) => format!("* online ({count}): {names}"),
                (true, false) => format!("* online ({count}, page {page}/{pages}): {names}"),
                (false, true) => format!("* 在线 ({count}): {names}"),
                (true, true) => format!("* 在线 ({count}，第 {page}/{pages} 页): {names}"),
            }
        }
        RelayMsg::Pong { token: None, .. } => "PONG".to_owned(),
        RelayMsg::Pong {
            token: Some(token), ..
        } => format!("PONG {token}"),
        RelayMsg::Error { code, reason } if zh => format!("错误 {code}: {reason}"),
        RelayMsg::Error { code, reason } => format!("ERROR {code}: {reason}"),
        RelayMsg::Bye { code, reason } => match (code, zh) {
            (ByeCode::Shutdown, false) => format!("* the relay is shutting down: {reason}"),
            (ByeCode::Kicked, false) => format!("* you were removed by the host: {reason}"),
            (ByeCode::Timeout, false) => format!("* you were disconnected: {reason}"),
            (ByeCode::Shutdown, true) => format!("* 服务器即将关闭：{reason}"),
            (ByeCode::Kicked, true) => format!("* 你已被主持人移出：{reason}"),
            (ByeCode::Timeout, true) => format!("* 你已断开连接：{reason}"),
        },
        RelayMsg::Hand(HandNotice::Up { position }) if zh => {
            format!("* 你已举手，排第 {position} 位")
        }
        RelayMsg::Hand(HandNotice::Up { position }) => {
            format!("* your hand is up; {} in line", ordinal(*position))
        }
        RelayMsg::Hand(HandNotice::Called) if zh => "* 老师点到你了".to_owned(),
        RelayMsg::Hand(HandNotice::Called) => "* the teacher calls on you".to_owned(),
        RelayMsg::Voice(true) if zh => "* 你现在可以发言了".to_owned(),
        RelayMsg::Voice(true) => "* you can speak now".to_owned(),
        RelayMsg::Voice(false) if zh => "* 你不能再发言了".to_owned(),
        RelayMsg::Voice(false) => "* you can no longer speak".to_owned(),
    };
    Some(line)
}

/// `1st`, `2nd`, `3rd`, `4th`, ... `11th`, `12th`, `13th`, `21st`.
pub fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Nick, Origin, Text, Token};

    #[test]
    fn welcome_is_exactly_ok() {
        let msg = RelayMsg::Welcome {
            version: Token::new("udpchat/1").unwrap(),
            nick: Nick::new("a").unwrap(),
            last_seq: 0,
            ping_interval: 15,
            idle_timeout: 60,
            history_from: Some(1),
            resume: None,
            key: None,
        };
        assert_eq!(render(&msg, Lang::En).as_deref(), Some("OK"));
        assert_eq!(render(&msg, Lang::Zh).as_deref(), Some("OK"));
    }

    #[test]
    fn chat_line_is_nick_colon_text() {
        let msg = RelayMsg::Event {
            seq: 1,
            origin: Origin::Live,
            ago: None,
            event: RoomEvent::Chat {
                nick: Nick::new("小明").unwrap(),
                text: Text::new("你好 world").unwrap(),
            },
        };
        assert_eq!(render(&msg, Lang::En).as_deref(), Some("小明: 你好 world"));
    }

    #[test]
    fn who_pages_fit_classic_lines_too() {
        let nicks: Vec<Nick> = (0..100)
            .map(|i| Nick::new(&format!("{}{i:02}", "𝒜".repeat(15))).unwrap())
            .collect();
        for page in RelayMsg::who_pages(&nicks) {
            for lang in [Lang::En, Lang::Zh] {
                let line = render(&page, lang).unwrap();
                assert!(line.len() < crate::MAX_DATAGRAM, "{} bytes", line.len());
            }
        }
    }

    #[test]
    fn ordinals_in_english() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
                "111th"
            ]
        );
    }
}
