//! The structured dialect (PROTOCOL.md section 8), with session keys.
//! Run only when the relay answers a `HELLO` with a `COOKIE`; otherwise
//! the runner skips the whole group with one line.

use std::time::Duration;

use udpchat_proto::{ClientMsg, Origin, RelayMsg, RoomEvent, Token, MIN_HELLO_LEN, VERSION};

use crate::check::{Check, CheckResult, Group, Level, NotPassed, Title};
use crate::ctx::{seen, Ctx, Member};
use crate::lines;
use crate::probe::show_bytes;

const fn check(
    id: &'static str,
    section: &'static str,
    en: &'static str,
    zh: &'static str,
    run: fn(&mut Ctx) -> CheckResult,
) -> Check {
    Check {
        id,
        section,
        level: Level::Must,
        group: Group::Structured,
        title: Title { en, zh },
        run,
    }
}

/// The structured checks, in report order.
pub const CHECKS: &[Check] = &[
    check(
        "struct.cookie.round-trip",
        "8 Joining",
        "HELLO draws a COOKIE, and HELLO with it a WELCOME behind the client's key with the relay's key",
        "HELLO 得到 COOKIE，带 COOKIE 的 HELLO 得到以客户端密钥为前缀、含服务器密钥的 WELCOME",
        cookie_round_trip,
    ),
    check(
        "struct.cookie.padding",
        "8 Joining",
        "a cookie-less HELLO under 64 bytes gets no answer; a COOKIE is never larger than its HELLO",
        "不足 64 字节且无 cookie 的 HELLO 不被回答；COOKIE 不比 HELLO 长",
        cookie_padding,
    ),
    check(
        "struct.key.unprefixed-dropped",
        "8 Keyed datagrams",
        "a keyed member's datagrams without the relay's key are dropped: no chat, no leave",
        "没有服务器密钥前缀的数据报（来自已用密钥加入的成员地址）被丢弃：不转发、不离开",
        unprefixed_dropped,
    ),
    check(
        "struct.say.once",
        "8 SAY",
        "a repeated SAY is relayed once; the sender alone gets its event again",
        "重复的 SAY 只转发一次；只有发送者再次收到该事件",
        say_once,
    ),
    check(
        "struct.event.contiguous",
        "8 Sequence numbers",
        "live events are numbered contiguously from the join point on",
        "实时事件从加入点起连续编号",
        events_contiguous,
    ),
    check(
        "struct.resend.repair",
        "8 Sequence numbers",
        "RESEND sends events again; beyond the newest it answers PONG",
        "RESEND 重发事件；超出最新事件时回答 PONG",
        resend_repair,
    ),
    check(
        "struct.resend.gone",
        "8 Sequence numbers",
        "RESEND of the first event is answered with it, or with GONE once history dropped it",
        "RESEND 第一个事件：回答该事件，或在历史已丢弃时回答 GONE",
        resend_gone,
    ),
    check(
        "struct.private.ack",
        "8 PMSG",
        "PMSG is confirmed with SENT, PRIVATE is repeated until ACK, and a repeated PMSG is delivered once",
        "PMSG 以 SENT 确认，PRIVATE 重发直到 ACK，重复的 PMSG 只投递一次",
        private_ack,
    ),
    check(
        "struct.history.join",
        "8 Joining",
        "a new member gets the room's recent events as history after WELCOME",
        "新成员在 WELCOME 之后收到最近的事件作为历史",
        history_on_join,
    ),
];

/// A `CHAT` event from `nick` with `text`, of `origin`.
fn is_chat(msg: &RelayMsg, origin: Origin, nick: &str, text: &str) -> Option<u64> {
    match msg {
        RelayMsg::Event {
            seq,
            origin: o,
            event: RoomEvent::Chat { nick: n, text: t },
            ..
        } if *o == origin && n.as_str() == nick && t.as_str() == text => Some(*seq),
        _ => None,
    }
}

fn cookie_round_trip(ctx: &mut Ctx) -> CheckResult {
    let (sam, _) = ctx.join_structured("sam")?;
    if sam.keys().and_then(|k| k.relay).is_none() {
        return Err(NotPassed::fail(
            "a WELCOME answering a HELLO with key= ends with the relay's key",
            "the WELCOME carried no key",
        ));
    }
    Ok(())
}

fn cookie_padding(ctx: &mut Ctx) -> CheckResult {
    let stranger = ctx.probe("stranger")?;
    let nick = ctx.fresh_nick("pad");
    // 27 bytes: a HELLO the relay must drop silently (its COOKIE, 23 bytes,
    // would be nearly as large as the request).
    // Proto pads every HELLO it builds: this one is written out by hand.
    let short = format!("HELLO {VERSION} {nick} -").into_bytes();
    stranger.send(&short);
    let token = format!("t{}", ctx.unique());
    stranger.send(&ClientMsg::Ping(Some(Token::new(&token).expect("valid"))).encode());
    let (found, before) = stranger.recv_until(ctx.timeout, |b| b.starts_with(b"PONG"));
    let expected = format!(
        "{} ({} bytes) gets no answer; the PING after it gets a PONG",
        show_bytes(&short, 60),
        short.len()
    );
    if found.is_none() {
        return Err(NotPassed::fail(
            expected,
            format!("no PONG within {:?}{}", ctx.timeout, seen(&before)),
        ));
    }
    if !before.is_empty() {
        return Err(NotPassed::fail(
            expected,
            format!("the short HELLO was answered{}", seen(&before)),
        ));
    }
    let padded = crate::join::hello(&nick, None, None);
    // A relay answers only a few COOKIEs a second per IP address (ours: 4,
    // then 1 a second) and drops the rest: ask up to five times, a second
    // apart.
    let mut found = None;
    let mut before = Vec::new();
    for _ in 0..5 {
        stranger.send(&padded);
        (found, before) = stranger.recv_until(ctx.timeout.max(Duration::from_millis(1100)), |b| {
            matches!(RelayMsg::parse(b), Ok(RelayMsg::Cookie(_)))
        });
        if found.is_some() {
            break;
        }
    }
    match found {
        Some(cookie) if cookie.len() <= padded.len() => Ok(()),
        Some(cookie) => Err(NotPassed::fail(
            "a COOKIE answer is no larger than the HELLO that drew it",
            format!("{} bytes answered {} bytes", cookie.len(), padded.len()),
        )),
        None => Err(NotPassed::fail(
            format!("a padded HELLO of {MIN_HELLO_LEN} bytes is answered COOKIE"),
            format!("no COOKIE within {:?}{}", ctx.timeout, seen(&before)),
        )),
    }
}

/// What a blind spoofer could send from a keyed member's address (the kit
/// sends it from the member's own socket, which needs no raw socket): `M`,
/// `SAY`, `Q` without the relay's key. None may act.
fn unprefixed_dropped(ctx: &mut Ctx) -> CheckResult {
    let (sam, _) = ctx.join_structured("sam")?;
    let bob = ctx.join("bob")?;
    let nick = sam.nick();
    let text = format!("forged {}", ctx.unique());
    let bare = [
        ClientMsg::Chat {
            nick: lines::nick(&nick),
            text: lines::text(&text),
        },
        ClientMsg::Say {
            id: 77,
            text: lines::text(&text),
        },
        ClientMsg::Quit(lines::nick(&nick), None),
    ];
    for msg in &bare {
        sam.probe.send(&msg.encode());
    }
    let expected = format!(
        "M, SAY and Q from {nick}'s address without the relay's key are dropped: nothing relayed, {nick} stays"
    );
    let before = ctx.barrier(&bob, &[&bob])?;
    let relayed = lines::chat(&nick, &text);
    let left = lines::left(&nick);
    if let Some(b) = before[0]
        .iter()
        .find(|b| lines::is_line_any_ending(b, &relayed) || lines::is_line_any_ending(b, &left))
    {
        return Err(NotPassed::fail(
            expected,
            format!("{} received {}", bob.nick(), show_bytes(b, 80)),
        ));
    }
    // Still a member: its keyed SAY is relayed.
    let still = format!("still here {}", ctx.unique());
    sam.send_msg(&ClientMsg::Say {
        id: 78,
        text: lines::text(&still),
    });
    ctx.expect_chat(&bob, &nick, &still, udpchat_proto::LineEnding::Bare)
}

fn say_once(ctx: &mut Ctx) -> CheckResult {
    let (sam, _) = ctx.join_structured("sam")?;
    let bob = ctx.join("bob")?;
    let text = format!("only once {}", ctx.unique());
    let say = ClientMsg::Say {
        id: 1,
        text: lines::text(&text),
    };
    let nick = sam.nick();
    sam.send_msg(&say);
    let first = ctx.expect_msg(&sam, &format!("EVENT n live CHAT {nick} {text}"), |m| {
        is_chat(m, Origin::Live, &nick, &text).is_some()
    })?;
    let seq = is_chat(&first, Origin::Live, &nick, &text).unwrap_or(0);
    ctx.expect_chat(&bob, &nick, &text, udpchat_proto::LineEnding::Bare)?;
    sam.send_msg(&say);
    ctx.expect_msg(
        &sam,
        &format!("EVENT {seq} resend ago=... CHAT {nick} {text} (the repeat's answer)"),
        |m| is_chat(m, Origin::Resend, &nick, &text) == Some(seq),
    )?;
    let before = ctx.barrier(&bob, &[&bob])?;
    let want = lines::chat(&nick, &text);
    if before[0]
        .iter()
        .any(|b| lines::is_line_any_ending(b, &want))
    {
        return Err(NotPassed::fail(
            "a repeated SAY (same id) is not relayed to the room again",
            format!("{} received {nick}'s text twice", bob.nick()),
        ));
    }
    Ok(())
}

/// `bob` (classic) says `texts`; returns the sequence numbers `sam`
/// (structured) receives them under, checking that every live event it
/// receives meanwhile is one more than the one before.
fn collect_live(
    ctx: &Ctx,
    sam: &Member,
    bob: &Member,
    texts: &[String],
    mut next: Option<u64>,
) -> Result<Vec<u64>, NotPassed> {
    for text in texts {
        bob.say(text);
    }
    let mut seqs = Vec::new();
    for text in texts {
        loop {
            let msg = ctx.expect_msg(
                sam,
                &format!("EVENT n live CHAT {} {text}", bob.nick()),
                |m| {
                    matches!(
                        m,
                        RelayMsg::Event {
                            origin: Origin::Live,
                            ..
                        }
                    )
                },
            )?;
            let RelayMsg::Event { seq, .. } = msg else {
                continue;
            };
            if let Some(want) = next {
                if seq != want {
                    return Err(NotPassed::fail(
                        format!("the next live event is number {want}"),
                        format!("it was number {seq}"),
                    ));
                }
            }
            next = Some(seq + 1);
            if let Some(s) = is_chat(&msg, Origin::Live, &bob.nick(), text) {
                seqs.push(s);
                break;
            }
        }
    }
    Ok(seqs)
}

fn events_contiguous(ctx: &mut Ctx) -> CheckResult {
    let bob = ctx.join("bob")?;
    let (sam, welcome) = ctx.join_structured("sam")?;
    let texts: Vec<String> = (1..=3)
        .map(|i| format!("number {i} {}", ctx.unique()))
        .collect();
    collect_live(ctx, &sam, &bob, &texts, Some(welcome.last_seq + 1)).map(|_| ())
}

fn resend_repair(ctx: &mut Ctx) -> CheckResult {
    let bob = ctx.join("bob")?;
    let (sam, _) = ctx.join_structured("sam")?;
    let texts: Vec<String> = (1..=2)
        .map(|i| format!("again {i} {}", ctx.unique()))
        .collect();
    let seqs = collect_live(ctx, &sam, &bob, &texts, None)?;
    let (first, last) = (seqs[0], seqs[1]);
    sam.send_msg(&ClientMsg::Resend {
        from: first,
        to: last,
    });
    for (seq, text) in seqs.iter().zip(&texts) {
        ctx.expect_msg(
            &sam,
            &format!("EVENT {seq} resend ago=... CHAT {} {text}", bob.nick()),
            |m| is_chat(m, Origin::Resend, &bob.nick(), text) == Some(*seq),
        )?;
    }
    let beyond = last + 1000;
    sam.send_msg(&ClientMsg::Resend {
        from: beyond,
        to: beyond + 1,
    });
    ctx.expect_msg(
        &sam,
        &format!("PONG <newest> (no token) answering RESEND {beyond} {}: those events do not exist", beyond + 1),
        |m| matches!(m, RelayMsg::Pong { last_seq, token: None } if *last_seq >= last && *last_seq < beyond),
    )?;
    Ok(())
}

fn resend_gone(ctx: &mut Ctx) -> CheckResult {
    let (sam, _) = ctx.join_structured("sam")?;
    sam.send_msg(&ClientMsg::Resend { from: 1, to: 1 });
    ctx.expect_msg(
        &sam,
        "EVENT 1 resend ... (still in the relay's history) or GONE 1 1 (no longer)",
        |m| {
            matches!(
                m,
                RelayMsg::Event {
                    seq: 1,
                    origin: Origin::Resend,
                    ..
                } | RelayMsg::Gone { from: 1, to: 1 }
            )
        },
    )?;
    Ok(())
}

fn private_ack(ctx: &mut Ctx) -> CheckResult {
    let (sam, _) = ctx.join_structured("sam")?;
    let (tom, _) = ctx.join_structured("tom")?;
    let cat = ctx.join("cat")?;
    let text = format!("just you {}", ctx.unique());
    let pmsg = ClientMsg::PrivateReliable {
        id: 5,
        to: lines::nick(&tom.nick()),
        text: lines::text(&text),
    };
    let is_sent = |m: &RelayMsg| matches!(m, RelayMsg::Sent { id: Some(5), to, text: t } if to.as_str() == tom.nick() && t.as_str() == text);
    let is_private = |m: &RelayMsg| match m {
        RelayMsg::Private { pid, from, text: t }
            if from.as_str() == sam.nick() && t.as_str() == text =>
        {
            Some(*pid)
        }
        _ => None,
    };
    sam.send_msg(&pmsg);
    ctx.expect_msg(&sam, &format!("SENT 5 {} {text}", tom.nick()), is_sent)?;
    let first = ctx.expect_msg(&tom, &format!("PRIVATE pid {} {text}", sam.nick()), |m| {
        is_private(m).is_some()
    })?;
    let pid = is_private(&first).unwrap_or(0);
    // No ACK yet: the relay sends it again after 1 s.
    let saved = ctx.timeout;
    ctx.timeout += Duration::from_secs(2);
    let again = ctx.expect_msg(
        &tom,
        &format!("PRIVATE {pid} again, about 1 s later, while it sent no ACK"),
        |m| is_private(m) == Some(pid),
    );
    ctx.timeout = saved;
    again?;
    tom.send_msg(&ClientMsg::Ack(pid));
    sam.send_msg(&pmsg);
    ctx.expect_msg(
        &sam,
        &format!("SENT 5 {} {text} again (the repeat)", tom.nick()),
        is_sent,
    )?;
    let before = ctx.barrier(&cat, &[&tom])?;
    if let Some(b) = before[0].iter().find(|b| {
        tom.read(b)
            .and_then(|m| is_private(&m))
            .is_some_and(|p| p != pid)
    }) {
        return Err(NotPassed::fail(
            "a repeated PMSG (same id) is not delivered again",
            format!("{} received {}", tom.nick(), show_bytes(b, 80)),
        ));
    }
    Ok(())
}

fn history_on_join(ctx: &mut Ctx) -> CheckResult {
    let bob = ctx.join("bob")?;
    let text = format!("before you came {}", ctx.unique());
    bob.say(&text);
    ctx.expect_chat(&bob, &bob.nick(), &text, udpchat_proto::LineEnding::Bare)?;
    let (sam, welcome) = ctx.join_structured("sam")?;
    let msg = ctx.expect_msg(
        &sam,
        &format!("EVENT n history ago=... CHAT {} {text}", bob.nick()),
        |m| is_chat(m, Origin::History, &bob.nick(), &text).is_some(),
    )?;
    let seq = is_chat(&msg, Origin::History, &bob.nick(), &text).unwrap_or(0);
    let from = welcome.history_from.unwrap_or(welcome.last_seq + 1);
    if !(from..=welcome.last_seq).contains(&seq) {
        return Err(NotPassed::fail(
            format!(
                "history events are numbered within the WELCOME's range {from}..={}",
                welcome.last_seq
            ),
            format!("the event was number {seq}"),
        ));
    }
    Ok(())
}
