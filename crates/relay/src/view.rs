//! The room as the teacher's console shows it: one line per event the room
//! reports, as a member would see it (`alice: hi`, `* bob joined`,
//! `[host] ...`), plus what only the host sees (private messages without
//! their text, moderation, raised hands). Pure functions: an [`Event`] and
//! a [`Lang`] in, a line out; the screen adds the time.
//!
//! Room events are rendered by the classic dialect's own sentences
//! ([`udpchat_proto::classic::render`]), so the console and a course client
//! read the same words, and a new kind of room event shows up here as soon
//! as members can see it. Texts are already free of control characters
//! (the room checked them on the way in): nothing is sanitised again.

use std::time::Duration;

use udpchat_proto::{classic, Lang, LeaveReason, Origin, RelayMsg, RoomEvent};

use crate::Event;

/// The console's line for `event`, or `None` for what only the log shows
/// (refusals, floods, dropped datagrams, unreachable ports: the recorder
/// logs those). `private_text`: show a private message's text
/// (`--transcript-private`); otherwise only who wrote to whom.
pub fn event_line(event: &Event, lang: Lang, private_text: bool) -> Option<String> {
    let zh = lang == Lang::Zh;
    let words = |d: &Duration| udpchat_room::duration_words(d.as_millis() as u64, lang);
    Some(match event {
        Event::Room { event, .. } | Event::Unannounced { event } => room_line(event, lang)?,
        Event::Private { from, to, text } => match (private_text, zh) {
            (false, false) => format!("{from} → {to} (private)"),
            (false, true) => format!("{from} → {to}（私信）"),
            (true, false) => format!("{from} → {to} (private): {text}"),
            (true, true) => format!("{from} → {to}（私信）：{text}"),
        },
        Event::Kicked { nick, reason, .. } => match (reason.is_empty(), zh) {
            (true, false) => format!("* {nick} was removed by the host"),
            (false, false) => format!("* {nick} was removed by the host: {reason}"),
            (true, true) => format!("* {nick} 被主持人移出聊天室"),
            (false, true) => format!("* {nick} 被主持人移出聊天室：{reason}"),
        },
        Event::Banned {
            ip,
            nick,
            reason,
            duration,
        } => {
            let who = nick.as_ref().map_or(String::new(), |n| match zh {
                false => format!(" ({n})"),
                true => format!("（{n}）"),
            });
            let how_long = match (duration, zh) {
                (Some(d), false) => format!("for {}", words(d)),
                (None, false) => "until /unban".to_owned(),
                (Some(d), true) => words(d),
                (None, true) => "直到 /unban".to_owned(),
            };
            match (reason.is_empty(), zh) {
                (true, false) => format!("* banned {ip}{who} {how_long}"),
                (false, false) => format!("* banned {ip}{who} {how_long}: {reason}"),
                (true, true) => format!("* 已封禁 {ip}{who}，{how_long}"),
                (false, true) => format!("* 已封禁 {ip}{who}，{how_long}：{reason}"),
            }
        }
        Event::Unbanned { ip } if zh => format!("* 已解除对 {ip} 的封禁"),
        Event::Unbanned { ip } => format!("* the ban of {ip} is lifted"),
        Event::Silenced { nick, duration } => match (duration, zh) {
            (Some(d), false) => format!("* {nick} is muted for {}", words(d)),
            (None, false) => format!("* {nick} is muted until /unmute"),
            (Some(d), true) => format!("* {nick} 已被禁言 {}", words(d)),
            (None, true) => format!("* {nick} 已被禁言，直到 /unmute"),
        },
        Event::Unsilenced { nick } if zh => format!("* {nick} 已解除禁言"),
        Event::Unsilenced { nick } => format!("* {nick} may speak again"),
        Event::Locked(true) if zh => "* 聊天室已锁定：新成员不能加入".to_owned(),
        Event::Locked(true) => "* the room is locked: nobody new can join".to_owned(),
        Event::Locked(false) if zh => "* 聊天室已解锁".to_owned(),
        Event::Locked(false) => "* the room is unlocked".to_owned(),
        // Never the code itself: the console may be on a projector.
        Event::CodeSet(Some(_)) if zh => "* 加入码已更改（/code 显示它）".to_owned(),
        Event::CodeSet(Some(_)) => "* the join code is changed (/code shows it)".to_owned(),
        Event::CodeSet(None) if zh => "* 已取消加入码".to_owned(),
        Event::CodeSet(None) => "* the join code is removed".to_owned(),
        Event::SlowMode(d) if d.is_zero() && zh => "* 慢速模式已关闭".to_owned(),
        Event::SlowMode(d) if d.is_zero() => "* slow mode is off".to_owned(),
        Event::SlowMode(d) if zh => format!("* 慢速模式：每人每 {} 一条消息", words(d)),
        Event::SlowMode(d) => format!("* slow mode: one message every {}", words(d)),
        Event::Hand {
            nick,
            question,
            position,
            again,
            ..
        } => hand_line(
            nick.as_str(),
            question.as_ref().map(|q| q.as_str()),
            *position,
            *again,
            lang,
        ),
        Event::Called { nick, .. } if zh => format!("* 你点了 {nick} 发言"),
        Event::Called { nick, .. } => format!("* you called on {nick}"),
        Event::Voiced { nick, on: true } if zh => format!("* {nick} 已获准发言"),
        Event::Voiced { nick, on: true } => format!("* {nick} has a voice"),
        Event::Voiced { nick, on: false } if zh => format!("* {nick} 不再获准发言"),
        Event::Voiced { nick, on: false } => format!("* {nick} no longer has a voice"),
        Event::Announcement(summary) => crate::recording::announcement_line(summary, lang),
        Event::Joined { .. }
        | Event::Left { .. }
        | Event::Refused { .. }
        | Event::Block { .. }
        | Event::Unblock { .. }
        | Event::Muted { .. }
        | Event::Restored { .. }
        | Event::Dropped { .. } => return None,
    })
}

/// A room event as members read it. A leave because of a kick is left
/// out: [`Event::Kicked`] says it, with the reason.
fn room_line(event: &RoomEvent, lang: Lang) -> Option<String> {
    if let RoomEvent::Leave {
        reason: LeaveReason::Kicked,
        ..
    } = event
    {
        return None;
    }
    classic::render(
        &RelayMsg::Event {
            seq: 0,
            origin: Origin::Live,
            ago: None,
            event: event.clone(),
        },
        lang,
    )
}

/// A hand going up: `* alice raises a hand (1 in line): question`.
pub fn hand_line(
    nick: &str,
    question: Option<&str>,
    position: usize,
    again: bool,
    lang: Lang,
) -> String {
    match (lang, again, question) {
        (Lang::En, false, None) => format!("* {nick} raises a hand ({position} in line)"),
        (Lang::En, true, None) => format!("* {nick} asks again ({position} in line)"),
        (Lang::En, false, Some(q)) => {
            format!("* {nick} raises a hand ({position} in line): {q}")
        }
        (Lang::En, true, Some(q)) => format!("* {nick} asks again ({position} in line): {q}"),
        (Lang::Zh, false, None) => format!("* {nick} 举手了（排第 {position} 位）"),
        (Lang::Zh, true, None) => format!("* {nick} 又举手了（排第 {position} 位）"),
        (Lang::Zh, false, Some(q)) => format!("* {nick} 举手了（排第 {position} 位）：{q}"),
        (Lang::Zh, true, Some(q)) => format!("* {nick} 又举手了（排第 {position} 位）：{q}"),
    }
}

/// The console's line for `event` on `screen`, time included: with the
/// line editor up (and in the foreground), every event [`event_line`]
/// shows; on a plain console (a pipe: scripts and tests), only raised
/// hands, which the teacher must not miss.
pub fn console_line(
    event: &Event,
    screen: &crate::screen::Screen,
    lang: Lang,
    private_text: bool,
) -> Option<String> {
    if screen.has_editor() {
        if !screen.shows_room() {
            return None;
        }
        let line = event_line(event, lang, private_text)?;
        return Some(format!("{} {line}", now_clock()));
    }
    match event {
        Event::Hand {
            nick,
            question,
            position,
            again,
            ..
        } => Some(hand_line(
            nick.as_str(),
            question.as_ref().map(|q| q.as_str()),
            *position,
            *again,
            lang,
        )),
        // Asked for on the console, so shown without the room view too.
        Event::Announcement(summary) => Some(crate::recording::announcement_line(summary, lang)),
        _ => None,
    }
}

/// The local time now as `HH:MM` (UTC where the offset is unknown).
fn now_clock() -> String {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let offset = udpchat_udp::local_offset_seconds(unix).unwrap_or(0);
    clock(unix, offset)
}

/// `HH:MM` of the local time `offset_secs` east of UTC at `unix_secs`.
pub fn clock(unix_secs: i64, offset_secs: i32) -> String {
    let local = unix_secs + i64::from(offset_secs);
    let minutes = local.div_euclid(60);
    format!(
        "{:02}:{:02}",
        minutes.div_euclid(60).rem_euclid(24),
        minutes.rem_euclid(60)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use udpchat_proto::{JoinCode, Nick, Text};

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    fn addr() -> SocketAddr {
        // Only parsed, never used for sending.
        "192.0.2.7:4000".parse().unwrap()
    }

    fn room(event: RoomEvent) -> Event {
        Event::Room { seq: 3, event }
    }

    fn line(event: &Event) -> Option<String> {
        event_line(event, Lang::En, false)
    }

    #[test]
    fn chat_host_joins_leaves_and_renames_read_as_members_see_them() {
        let chat = room(RoomEvent::Chat {
            nick: nick("alice"),
            text: Text::new("hi  there").unwrap(),
        });
        assert_eq!(line(&chat).as_deref(), Some("alice: hi  there"));
        assert_eq!(
            line(&room(RoomEvent::Host(Text::new("quiet please").unwrap()))).as_deref(),
            Some("[host] quiet please")
        );
        assert_eq!(
            line(&room(RoomEvent::Join(nick("bob")))).as_deref(),
            Some("* bob joined")
        );
        assert_eq!(
            line(&room(RoomEvent::Leave {
                nick: nick("bob"),
                reason: LeaveReason::Timeout
            }))
            .as_deref(),
            Some("* bob left (timed out)")
        );
        assert_eq!(
            line(&room(RoomEvent::Rename {
                old: nick("bob"),
                new: nick("robert")
            }))
            .as_deref(),
            Some("* bob is now known as robert")
        );
        assert_eq!(
            line(&room(RoomEvent::Reconnect(nick("carol")))).as_deref(),
            Some("* carol reconnected")
        );
        // Not announced to members (a big room): the console still shows it.
        let quiet = Event::Unannounced {
            event: RoomEvent::Join(nick("dave")),
        };
        assert_eq!(line(&quiet).as_deref(), Some("* dave joined"));
        assert_eq!(
            event_line(&chat, Lang::Zh, false).as_deref(),
            Some("alice: hi  there")
        );
        assert_eq!(
            event_line(&room(RoomEvent::Join(nick("bob"))), Lang::Zh, false).as_deref(),
            Some("* bob 加入了聊天室")
        );
    }

    #[test]
    fn private_messages_show_their_text_only_when_asked() {
        let private = Event::Private {
            from: nick("alice"),
            to: nick("bob"),
            text: Text::new("secret plan").unwrap(),
        };
        let hidden = line(&private).unwrap();
        assert_eq!(hidden, "alice → bob (private)");
        assert!(!hidden.contains("secret"));
        assert_eq!(
            event_line(&private, Lang::En, true).as_deref(),
            Some("alice → bob (private): secret plan")
        );
        assert_eq!(
            event_line(&private, Lang::Zh, false).as_deref(),
            Some("alice → bob（私信）")
        );
    }

    #[test]
    fn a_kick_is_one_line_with_its_reason() {
        let kicked = Event::Kicked {
            addr: addr(),
            nick: nick("eve"),
            reason: "be nice".into(),
        };
        assert_eq!(
            line(&kicked).as_deref(),
            Some("* eve was removed by the host: be nice")
        );
        // The room's LEAVE for the same kick is not shown twice.
        let leave = room(RoomEvent::Leave {
            nick: nick("eve"),
            reason: LeaveReason::Kicked,
        });
        assert_eq!(line(&leave), None);
        assert_eq!(
            event_line(&kicked, Lang::Zh, false).as_deref(),
            Some("* eve 被主持人移出聊天室：be nice")
        );
    }

    #[test]
    fn moderation_is_shown_in_words_and_never_the_join_code() {
        let banned = Event::Banned {
            ip: addr().ip(),
            nick: Some(nick("eve")),
            reason: "spam".into(),
            duration: Some(Duration::from_secs(600)),
        };
        assert_eq!(
            line(&banned).as_deref(),
            Some("* banned 192.0.2.7 (eve) for 10 minutes: spam")
        );
        let muted = Event::Silenced {
            nick: nick("bob"),
            duration: None,
        };
        assert_eq!(
            line(&muted).as_deref(),
            Some("* bob is muted until /unmute")
        );
        assert_eq!(
            line(&Event::Locked(true)).as_deref(),
            Some("* the room is locked: nobody new can join")
        );
        let code = Event::CodeSet(Some(JoinCode::new("maple7").unwrap()));
        for lang in [Lang::En, Lang::Zh] {
            let shown = event_line(&code, lang, true).unwrap();
            assert!(!shown.contains("maple7"), "{shown}");
        }
        assert_eq!(
            line(&Event::SlowMode(Duration::from_secs(30))).as_deref(),
            Some("* slow mode: one message every 30 seconds")
        );
        assert_eq!(
            line(&Event::SlowMode(Duration::ZERO)).as_deref(),
            Some("* slow mode is off")
        );
        assert!(event_line(&banned, Lang::Zh, false)
            .unwrap()
            .starts_with("* 已封禁 192.0.2.7（eve）"));
    }

    #[test]
    fn hands_and_calls_are_shown_and_the_log_only_events_are_not() {
        let hand = Event::Hand {
            addr: addr(),
            nick: nick("alice"),
            question: Some(Text::new("what is a port?").unwrap()),
            position: 2,
            again: false,
        };
        assert_eq!(
            line(&hand).as_deref(),
            Some("* alice raises a hand (2 in line): what is a port?")
        );
        assert_eq!(
            line(&Event::Called {
                addr: addr(),
                nick: nick("alice")
            })
            .as_deref(),
            Some("* you called on alice")
        );
        let refused = Event::Refused {
            addr: addr(),
            code: udpchat_proto::ErrorCode::NotJoined,
            detail: String::new(),
        };
        assert_eq!(line(&refused), None);
        let joined = Event::Joined {
            addr: addr(),
            nick: nick("alice"),
            dialect: crate::Dialect::Structured,
        };
        assert_eq!(line(&joined), None, "the room's JOIN says it");
    }

    /// An editor's printer that prints nothing.
    struct Nowhere;

    impl rustyline::ExternalPrinter for Nowhere {
        fn print(&mut self, _: String) -> rustyline::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_room_view_needs_the_editor_in_the_foreground_and_hands_always_show() {
        let chat = room(RoomEvent::Chat {
            nick: nick("alice"),
            text: Text::new("hi").unwrap(),
        });
        let hand = Event::Hand {
            addr: addr(),
            nick: nick("bob"),
            question: None,
            position: 1,
            again: false,
        };
        let screen = crate::screen::Screen::default();
        // A plain console (a pipe): no room view, but raised hands.
        assert_eq!(console_line(&chat, &screen, Lang::En, false), None);
        assert_eq!(
            console_line(&hand, &screen, Lang::En, false).as_deref(),
            Some("* bob raises a hand (1 in line)")
        );
        // The editor: every line, after the time.
        screen.attach(Box::new(Nowhere)).unwrap();
        let shown = console_line(&chat, &screen, Lang::En, false).unwrap();
        assert!(
            shown.len() == "12:34 alice: hi".len() && shown.ends_with(" alice: hi"),
            "{shown}"
        );
        // In the background: nothing, until fg.
        screen.set_paused(true);
        assert_eq!(console_line(&chat, &screen, Lang::En, false), None);
        screen.set_paused(false);
        assert!(console_line(&chat, &screen, Lang::En, false).is_some());
        screen.detach();
    }

    #[test]
    fn voices_and_announcement_counts_are_shown_and_counts_also_without_the_room_view() {
        let voiced = Event::Voiced {
            nick: nick("bob"),
            on: true,
        };
        assert_eq!(
            event_line(&voiced, Lang::En, false).as_deref(),
            Some("* bob has a voice")
        );
        let devoiced = Event::Voiced {
            nick: nick("bob"),
            on: false,
        };
        assert_eq!(
            event_line(&devoiced, Lang::Zh, false).as_deref(),
            Some("* bob 不再获准发言")
        );
        let summary = Event::Announcement(udpchat_room::AnnouncementSummary {
            seq: 12,
            seen: 23,
            members: 25,
            classic: 2,
            left: 0,
            complete: true,
        });
        let line = event_line(&summary, Lang::En, false).unwrap();
        assert!(line.contains("seen by 23 of 25"), "{line}");
        // A plain console (a pipe) has no room view but shows the count the
        // host asked for with /announce; never a voice line.
        let screen = crate::screen::Screen::default();
        assert_eq!(console_line(&summary, &screen, Lang::En, false), Some(line));
        assert_eq!(console_line(&voiced, &screen, Lang::En, false), None);
    }

    #[test]
    fn clock_is_local_hours_and_minutes() {
        // 2026-01-01T23:59:30Z
        let t = 1_767_311_970;
        assert_eq!(clock(t, 0), "23:59");
        assert_eq!(clock(t, 8 * 3600), "07:59");
        assert_eq!(clock(t, -5 * 3600), "18:59");
        assert_eq!(clock(t + 30, 0), "00:00");
    }
}
