//! The client checks (`udpchat-conform client`): the join, what it sends
//! for a typed line, its datagrams' size and line endings, retransmission,
//! repair and rejoining (structured clients), and what it prints.
//! Each runs a fresh client process ([`Kit`]).

use std::time::{Duration, Instant};

use udpchat_proto::{ClientMsg, RoomEvent, SessionKey};

use super::kit::{nick, text, Dialect, Incoming, JoinFault, Kit};
use crate::check::{Check, CheckResult, Group, Level, NotPassed, Title};
use crate::ctx::Ctx;
use crate::probe::show_bytes;

/// A client check: its entry in the registry and the function that runs it.
pub struct ClientCheck {
    /// Id, section, level and title, as every check has.
    pub check: Check,
    /// Runs it against a freshly started client.
    pub run: fn(&mut Kit) -> CheckResult,
}

/// The registry entry's relay function: never called (the client runner
/// calls [`ClientCheck::run`]); a relay run does not list client checks.
fn relay_mode(_: &mut Ctx) -> CheckResult {
    Err(NotPassed::Skip(
        "a client check; run it with udpchat-conform client".to_owned(),
    ))
}

const fn check(
    id: &'static str,
    section: &'static str,
    level: Level,
    en: &'static str,
    zh: &'static str,
    run: fn(&mut Kit) -> CheckResult,
) -> ClientCheck {
    ClientCheck {
        check: Check {
            id,
            section,
            level,
            group: Group::Client,
            title: Title { en, zh },
            run: relay_mode,
        },
        run,
    }
}

/// A check of [`Group::ClientStructured`]: skipped, as one group, for a
/// client that joins with `N`.
const fn check_structured(
    id: &'static str,
    section: &'static str,
    level: Level,
    en: &'static str,
    zh: &'static str,
    run: fn(&mut Kit) -> CheckResult,
) -> ClientCheck {
    let mut c = check(id, section, level, en, zh, run);
    c.check.group = Group::ClientStructured;
    c
}

/// The client checks, in report order: every client, then structured
/// clients only.
pub const CHECKS: &[ClientCheck] = &[
    check(
        "client.join.first",
        "10",
        Level::Must,
        "the first datagram is N nick, or a cookie-less HELLO of at least 64 bytes",
        "第一个数据报是 N 昵称，或至少 64 字节、不带 cookie 的 HELLO",
        join_first,
    ),
    check(
        "client.chat.identity",
        "9",
        Level::Must,
        "a typed line is sent as M with the client's own nickname, or SAY behind the relay's key, from the address it joined from",
        "输入的一行以 M 加自己的昵称、或带服务器密钥前缀的 SAY 发出，且来自加入时的地址",
        chat_identity,
    ),
    check(
        "client.text.spaces-kept",
        "3 Message text",
        Level::Must,
        "leading, trailing and repeated spaces, CJK and emoji are sent unchanged",
        "开头、结尾和连续的空格、中文和表情符号原样发出",
        spaces_kept,
    ),
    check(
        "client.datagram.line-endings",
        "2",
        Level::Must,
        "no CR or LF inside a datagram (a line typed with CR LF included)",
        "数据报内部没有 CR 或 LF（包括以 CR LF 结尾输入的一行）",
        line_endings,
    ),
    check(
        "client.datagram.max-1024",
        "2",
        Level::Must,
        "no datagram over 1024 bytes, also for typed lines of 800 and 1500 bytes",
        "任何数据报都不超过 1024 字节，输入 800 和 1500 字节的行时也是如此",
        max_1024,
    ),
    check(
        "client.show.chat",
        "6",
        Level::Should,
        "a chat message from the room appears in what the client prints",
        "聊天室里的消息出现在客户端的输出中",
        show_chat,
    ),
    check(
        "client.show.no-control",
        "12",
        Level::Must,
        "an escape sequence from a misbehaving relay is never printed raw",
        "来自异常服务器的转义序列绝不原样打印",
        show_no_control,
    ),
    check_structured(
        "client.join.cookie",
        "8 Joining",
        Level::Must,
        "a structured client echoes the COOKIE in its next HELLO, with key=",
        "结构化客户端在下一个 HELLO 中原样带回 COOKIE，并带 key=",
        join_cookie,
    ),
    check_structured(
        "client.say.retransmit",
        "8 SAY",
        Level::Must,
        "a SAY whose echo does not come is sent again with the same id",
        "收不到回显的 SAY 以相同的 id 重发",
        say_retransmit,
    ),
    check_structured(
        "client.resend.gap",
        "8 Sequence numbers",
        Level::Must,
        "a gap in the event numbers is asked for with RESEND",
        "事件编号出现缺口时用 RESEND 请求补发",
        resend_gap,
    ),
    check_structured(
        "client.rejoin.restart",
        "8 Sequence numbers",
        Level::Must,
        "after a relay restart (ERROR not-joined) the client joins again",
        "服务器重启后（ERROR not-joined）客户端重新加入",
        rejoin_restart,
    ),
];

/// How long a check waits for what the client owes after a typed line or
/// an event: the run's timeout, but at least 3 s (a client retransmits
/// within about a second, PROTOCOL.md section 10, *Retransmission*).
fn owed(kit: &Kit) -> Instant {
    Instant::now() + kit.timeout.max(Duration::from_secs(3))
}

/// Why a classic client skips the structured checks.
pub const CLASSIC_SKIP: &str = "the client joined with N (classic): it has no cookie, SAY ids, sequence numbers or session keys (section 6)";

/// Skips a check that only applies to structured clients.
fn structured_only(kit: &Kit) -> CheckResult {
    if kit.structured() {
        Ok(())
    } else {
        Err(NotPassed::Skip(CLASSIC_SKIP.to_owned()))
    }
}

/// A unique marker text for this check.
fn marker(kit: &Kit, what: &str) -> String {
    format!("{what} {}", kit.addr.port())
}

/// The text of a chat datagram from the joined client (`M` with any
/// nickname, or `SAY`), if `incoming` is one.
fn chat_text(incoming: &Incoming) -> Option<String> {
    match &incoming.msg {
        Some(ClientMsg::Chat { text, .. }) | Some(ClientMsg::Say { text, .. }) => {
            Some(text.as_str().to_owned())
        }
        _ => None,
    }
}

/// Types `line` and waits for the chat datagram it becomes (the first chat
/// datagram; a client may send other things meanwhile).
fn type_and_wait(kit: &mut Kit, line: &str) -> Result<Incoming, NotPassed> {
    kit.type_line(line.as_bytes());
    let deadline = owed(kit);
    kit.wait_for(deadline, |i| chat_text(i).is_some() || is_raw_chat(i))
        .ok_or_else(|| {
            NotPassed::fail(
                format!(
                    "the line {} typed into the client is sent as M or SAY",
                    show_bytes(line.as_bytes(), 60)
                ),
                "no chat datagram arrived",
            )
        })
}

/// An `M` or `SAY` datagram proto refuses (a text with CR, too long).
fn is_raw_chat(i: &Incoming) -> bool {
    let (_, body) = udpchat_proto::split_key_prefix(&i.bytes);
    i.msg.is_none() && (body.starts_with(b"M ") || body.starts_with(b"SAY "))
}

fn join_first(kit: &mut Kit) -> CheckResult {
    match kit.join() {
        Ok(_) | Err(JoinFault::Cookie(_)) => Ok(()),
        Err(JoinFault::First(n)) => Err(n),
    }
}

fn join_cookie(kit: &mut Kit) -> CheckResult {
    match kit.join() {
        Ok(joined) => match joined.dialect {
            Dialect::Classic { .. } => Err(NotPassed::Skip(CLASSIC_SKIP.to_owned())),
            Dialect::Structured { .. } => Ok(()),
        },
        Err(JoinFault::Cookie(n)) => Err(n),
        Err(JoinFault::First(_)) => Err(NotPassed::Skip(
            "the client did not start a join (see client.join.first)".to_owned(),
        )),
    }
}

fn chat_identity(kit: &mut Kit) -> CheckResult {
    let joined = kit.joined()?;
    let line = marker(kit, "hello from the kit");
    let got = type_and_wait(kit, &line)?;
    let expected = format!(
        "{} becomes M {} <text> or SAY <id> <text> behind the relay's key, from {} (sections 8, 9)",
        show_bytes(line.as_bytes(), 60),
        joined.nick,
        joined.from
    );
    if got.from != joined.from {
        return Err(NotPassed::fail(
            expected,
            format!(
                "it came from {} (a relay takes that for a stranger: not-joined)",
                got.from
            ),
        ));
    }
    if let Dialect::Structured { relay, .. } = joined.dialect {
        if got.key.map(SessionKey::to_u64) != Some(relay.to_u64()) {
            return Err(NotPassed::fail(
                expected,
                format!("it did not start with @{relay} (a relay drops it)"),
            ));
        }
    }
    match &got.msg {
        Some(ClientMsg::Chat { nick, .. }) if nick.as_str() != joined.nick => Err(NotPassed::fail(
            expected,
            format!("it named {} (a relay answers not-yours)", nick.as_str()),
        )),
        Some(ClientMsg::Chat { .. }) | Some(ClientMsg::Say { .. }) => Ok(()),
        _ => Err(NotPassed::fail(
            expected,
            format!("it sent {}", show_bytes(&got.bytes, 100)),
        )),
    }
}

fn spaces_kept(kit: &mut Kit) -> CheckResult {
    kit.joined()?;
    let line = format!(
        "  two leading, three   inside, 你好 👋 {}, two trailing  ",
        kit.addr.port()
    );
    let got = type_and_wait(kit, &line)?;
    let sent = chat_text(&got);
    if sent.as_deref() == Some(line.as_str()) {
        Ok(())
    } else {
        Err(NotPassed::fail(
            format!(
                "the text is sent exactly as typed: {} (section 3, Message text)",
                show_bytes(line.as_bytes(), 100)
            ),
            format!("it sent {}", show_bytes(&got.bytes, 120)),
        ))
    }
}

/// No CR or LF in a datagram, but one line ending at its end.
fn inner_line_break(bytes: &[u8]) -> bool {
    let (_, body) = udpchat_proto::split_key_prefix(bytes);
    let (body, _) = udpchat_proto::strip_line_ending(body);
    body.iter().any(|b| *b == b'\r' || *b == b'\n')
}

fn line_endings(kit: &mut Kit) -> CheckResult {
    kit.joined()?;
    let first = marker(kit, "typed with CR LF");
    kit.type_line(format!("{first}\r").as_bytes());
    let second = marker(kit, "typed with LF");
    kit.type_line(second.as_bytes());
    let deadline = owed(kit);
    let mut seen = Vec::new();
    kit.wait_for(deadline, |i| {
        if let Some(text) = chat_text(i) {
            seen.push(text);
        }
        seen.iter().any(|t| t.contains(&second)) || is_raw_chat(i)
    });
    if let Some(bad) = kit.received.iter().find(|b| inner_line_break(b)) {
        return Err(NotPassed::fail(
            "every datagram is one line: no CR or LF in it but one line ending at its end; a line typed with CR LF loses both (sections 2, 3)",
            format!("it sent {}", show_bytes(bad, 100)),
        ));
    }
    if !seen.iter().any(|t| t.contains(&second)) {
        return Err(NotPassed::fail(
            format!("the line {} is sent", show_bytes(second.as_bytes(), 60)),
            "it did not arrive",
        ));
    }
    Ok(())
}

fn max_1024(kit: &mut Kit) -> CheckResult {
    kit.joined()?;
    let port = kit.addr.port().to_string();
    let long_800 = format!("{port} {}", "x".repeat(799 - port.len()));
    let long_1500 = format!("{port} {}", "长".repeat((1499 - port.len()) / 3));
    kit.type_line(long_800.as_bytes());
    kit.type_line(long_1500.as_bytes());
    let last = marker(kit, "after the long lines");
    kit.type_line(last.as_bytes());
    let deadline = owed(kit);
    let arrived = kit
        .wait_for(deadline, |i| {
            i.bytes.len() > udpchat_proto::MAX_DATAGRAM || chat_text(i).is_some_and(|t| t == last)
        })
        .is_some();
    if let Some(big) = kit
        .received
        .iter()
        .find(|b| b.len() > udpchat_proto::MAX_DATAGRAM)
    {
        return Err(NotPassed::fail(
            "no datagram over 1024 bytes: a line too long for one message (800 bytes of text) is refused or split (sections 2, 3)",
            format!(
                "it sent {} bytes: {}",
                big.len(),
                show_bytes(big, 60)
            ),
        ));
    }
    if !arrived {
        return Err(NotPassed::fail(
            format!(
                "after lines of 800 and 1500 bytes, the line {} is still sent",
                show_bytes(last.as_bytes(), 60)
            ),
            "it did not arrive",
        ));
    }
    Ok(())
}

fn say_retransmit(kit: &mut Kit) -> CheckResult {
    kit.joined()?;
    structured_only(kit)?;
    kit.echo = false;
    let line = marker(kit, "echo this once");
    let first = type_and_wait(kit, &line)?;
    let Some(ClientMsg::Say { id, text }) = first.msg.clone() else {
        return Err(NotPassed::Skip(format!(
            "the client chats with {} rather than SAY: M carries no id to retransmit (SAY is a SHOULD, section 8)",
            show_bytes(&first.bytes, 40)
        )));
    };
    let deadline = owed(kit);
    let again = kit.wait_for(deadline, |i| chat_text(i).is_some());
    kit.echo = true;
    match again {
        Some(i) => match &i.msg {
            Some(ClientMsg::Say { id: again_id, text: again_text })
                if *again_id == id && *again_text == text =>
            {
                kit.serve(&i);
                Ok(())
            }
            _ => Err(NotPassed::fail(
                format!("the same SAY {id} is sent again (a relay relays each id once)"),
                format!("it sent {} instead", show_bytes(&i.bytes, 100)),
            )),
        },
        None => Err(NotPassed::fail(
            format!(
                "without its echo, SAY {id} is sent again within {:?} (section 8, SAY; section 10, Retransmission)",
                kit.timeout.max(Duration::from_secs(3))
            ),
            "it was not sent again",
        )),
    }
}

fn resend_gap(kit: &mut Kit) -> CheckResult {
    kit.joined()?;
    structured_only(kit)?;
    let other = nick("kitbob");
    kit.event(RoomEvent::Chat {
        nick: other.clone(),
        text: text("one"),
    });
    let lost = kit.lose_event(RoomEvent::Chat {
        nick: other.clone(),
        text: text("two"),
    });
    kit.event(RoomEvent::Chat {
        nick: other,
        text: text("three"),
    });
    let deadline = owed(kit);
    let resend = kit.wait_for(
        deadline,
        |i| matches!(i.msg, Some(ClientMsg::Resend { from, to }) if from <= lost && lost <= to),
    );
    match resend {
        Some(i) => {
            kit.serve(&i);
            Ok(())
        }
        None => Err(NotPassed::fail(
            format!("after events {} and {}, the client asks for {lost} with RESEND (section 8, Sequence numbers)", lost - 1, lost + 1),
            "no RESEND for it arrived",
        )),
    }
}

fn rejoin_restart(kit: &mut Kit) -> CheckResult {
    kit.joined()?;
    structured_only(kit)?;
    kit.restart()?;
    let line = marker(kit, "after the restart");
    kit.type_line(line.as_bytes());
    let deadline = Instant::now() + kit.timeout.max(Duration::from_secs(6));
    kit.rejoin(deadline)?;
    Ok(())
}

/// `text` appears in the client's stdout before `deadline` (serving it meanwhile).
fn printed(kit: &mut Kit, text: &str, deadline: Instant) -> bool {
    loop {
        if contains(&kit.stdout(), text.as_bytes()) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        kit.serve_until((now + Duration::from_millis(50)).min(deadline));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len().max(1)).any(|w| w == needle)
}

fn show_chat(kit: &mut Kit) -> CheckResult {
    kit.joined()?;
    let line = marker(kit, "a message from the room");
    kit.event(RoomEvent::Chat {
        nick: nick("kitbob"),
        text: text(&line),
    });
    let deadline = owed(kit);
    if printed(kit, &line, deadline) {
        return Ok(());
    }
    let out = kit.stdout();
    if out.is_empty() {
        return Err(NotPassed::Skip(
            "the client printed nothing on stdout (its output cannot be read here)".to_owned(),
        ));
    }
    Err(NotPassed::fail(
        format!(
            "the client prints {} from kitbob",
            show_bytes(line.as_bytes(), 60)
        ),
        format!("its output: {}", show_bytes(&out, 200)),
    ))
}

fn show_no_control(kit: &mut Kit) -> CheckResult {
    let joined = kit.joined()?;
    let before = marker(kit, "before the escape");
    kit.event(RoomEvent::Chat {
        nick: nick("kitbob"),
        text: text(&before),
    });
    let deadline = owed(kit);
    printed(kit, &before, deadline);
    // What a misbehaving relay sends: a text with ESC sequences (clear the
    // screen, red), a bell and a backspace.
    let evil = b"kitbob: look \x1b[2J\x1b[31mred\x1b[0m \x07\x08 here";
    match joined.dialect {
        Dialect::Classic { ending } => {
            let mut line = evil.to_vec();
            if ending != udpchat_proto::LineEnding::Bare {
                line.push(b'\n');
            }
            kit.send_body(&line);
        }
        Dialect::Structured { .. } => {
            let seq = kit.take_seq();
            let mut body = format!("EVENT {seq} live CHAT kitbob ").into_bytes();
            body.extend_from_slice(&evil[8..]);
            kit.send_body(&body);
        }
    }
    let after = marker(kit, "after the escape");
    kit.event(RoomEvent::Chat {
        nick: nick("kitbob"),
        text: text(&after),
    });
    let deadline = owed(kit);
    printed(kit, &after, deadline);
    let out = kit.stdout();
    if out.is_empty() {
        return Err(NotPassed::Skip(
            "the client printed nothing on stdout (its output cannot be read here)".to_owned(),
        ));
    }
    let text = String::from_utf8_lossy(&out);
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\n') {
        let at = text.find(c).unwrap_or(0);
        let from = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let to = text[at..].find('\n').map_or(text.len(), |n| at + n);
        return Err(NotPassed::fail(
            "the client never prints a control character but newline: ESC sequences, bells and backspaces from a relay are removed or shown escaped (section 12)",
            format!(
                "it printed U+{:04X} in the line {}",
                c as u32,
                show_bytes(text[from..to].as_bytes(), 120)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_ending_at_the_end_is_allowed_but_none_inside() {
        assert!(!inner_line_break(b"M carol hi"));
        assert!(!inner_line_break(b"M carol hi\n"));
        assert!(!inner_line_break(b"M carol hi\r\n"));
        assert!(!inner_line_break(b"@0123456789abcdef SAY 1 hi"));
        assert!(inner_line_break(b"M carol hi\r"));
        assert!(inner_line_break(b"M carol a\nb"));
        assert!(inner_line_break(b"M carol hi\n\n"));
    }

    #[test]
    fn client_checks_are_listed_every_client_first_then_structured() {
        let groups: Vec<Group> = CHECKS.iter().map(|c| c.check.group).collect();
        let first_structured = groups
            .iter()
            .position(|g| *g == Group::ClientStructured)
            .expect("structured client checks");
        assert!(groups[..first_structured]
            .iter()
            .all(|g| *g == Group::Client));
        assert!(groups[first_structured..]
            .iter()
            .all(|g| *g == Group::ClientStructured));
    }
}
