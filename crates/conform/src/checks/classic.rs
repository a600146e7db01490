//! The classic dialect and the wire rules every relay keeps (PROTOCOL.md
//! sections 2, 3, 6, 9 and 10), spoken as a course client speaks them.

use udpchat_proto::{ClientMsg, ErrorCode, LineEnding, MAX_DATAGRAM, MAX_TEXT_BYTES};

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
        group: Group::Classic,
        title: Title { en, zh },
        run,
    }
}

/// The classic checks, in report order.
pub const CHECKS: &[Check] = &[
    check(
        "classic.join.ok",
        "6",
        "N gets exactly OK",
        "N 的回复正好是 OK",
        join_ok,
    ),
    check(
        "classic.join.repeat-ok",
        "10",
        "the same N again from the same address gets OK again",
        "同一地址再次发送相同的 N，仍然得到 OK",
        join_repeat_ok,
    ),
    check(
        "classic.join.already-joined",
        "9",
        "an address that joined cannot join again under another nickname",
        "已加入的地址不能再用另一个昵称加入",
        already_joined,
    ),
    check(
        "classic.join.nick-taken",
        "9",
        "a nickname another address holds is refused with nick-taken",
        "别的地址已占用的昵称被拒绝（nick-taken）",
        nick_taken,
    ),
    check(
        "classic.join.nick-case",
        "3 Nicknames",
        "nicknames are unique ignoring case (ALICE is alice)",
        "昵称唯一性不区分大小写（ALICE 即 alice）",
        nick_case,
    ),
    check(
        "classic.chat.fan-out",
        "9",
        "M reaches every member, the sender included",
        "M 发给所有成员，包括发送者自己",
        fan_out,
    ),
    check(
        "classic.text.spaces-kept",
        "3 Message text",
        "leading, trailing and repeated spaces arrive unchanged",
        "开头、结尾和连续的空格原样送达",
        spaces_kept,
    ),
    check(
        "classic.text.unicode-kept",
        "3 Message text",
        "CJK and emoji arrive unchanged",
        "中日韩文字和表情符号原样送达",
        unicode_kept,
    ),
    check(
        "classic.text.800-accepted",
        "3 Message text",
        "800 bytes of text are accepted and arrive whole",
        "800 字节的正文被接受并完整送达",
        text_800_accepted,
    ),
    check(
        "classic.text.801-refused",
        "3 Message text",
        "801 bytes of text are refused with too-long and not relayed",
        "801 字节的正文被拒绝（too-long），不转发",
        text_801_refused,
    ),
    check(
        "classic.datagram.over-1024-refused",
        "2",
        "a datagram over 1024 bytes is refused, never truncated and relayed",
        "超过 1024 字节的数据报被拒绝，绝不截断后转发",
        over_1024_refused,
    ),
    check(
        "classic.text.control-refused",
        "3 Message text",
        "text with control characters is refused with control-char",
        "含控制字符的正文被拒绝（control-char）",
        control_refused,
    ),
    check(
        "classic.identity.forged-m",
        "9",
        "M naming another member, from another address, is not relayed",
        "从别的地址冒用他人昵称发送的 M 不被转发",
        forged_m,
    ),
    check(
        "classic.identity.forged-q",
        "9",
        "Q naming another member, from another address, does not remove it",
        "从别的地址冒用他人昵称发送的 Q 不会让其离开",
        forged_q,
    ),
    check(
        "classic.quit.leave-notice",
        "9",
        "Q removes the member and the others get its leave notice",
        "Q 让成员离开，其他成员收到离开通知",
        quit_leave_notice,
    ),
    check(
        "classic.ending.lf",
        "6",
        "N and M ending in LF: OK and lines with LF, the LF not in the text",
        "以 LF 结尾的 N 和 M：回复带 LF，正文不含 LF",
        ending_lf,
    ),
    check(
        "classic.ending.crlf",
        "2",
        "N and M ending in CR LF: OK and lines with LF, the CR LF not in the text",
        "以 CR LF 结尾的 N 和 M：回复带 LF，正文不含 CR LF",
        ending_crlf,
    ),
    check(
        "classic.robust.garbage",
        "9",
        "invalid UTF-8, empty and garbage datagrams do not stop the relay",
        "无效 UTF-8、空数据报和乱码不会让服务器停止工作",
        garbage_survived,
    ),
];

fn join_ok(ctx: &mut Ctx) -> CheckResult {
    ctx.join("ann").map(|_| ())
}

fn join_repeat_ok(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    ann.probe
        .send(&ClientMsg::Join(lines::nick(&ann.nick()), None).encode());
    let ok = [udpchat_proto::classic::OK.to_owned()];
    let (found, before) = ann.probe.recv_until(ctx.timeout, |b| {
        lines::is_line(b, &ok, LineEnding::Bare) || lines::error_code(b).is_some()
    });
    match found {
        Some(b) if lines::is_line(&b, &ok, LineEnding::Bare) => Ok(()),
        Some(b) => Err(NotPassed::fail(
            "a repeated N from the same address with the same nickname gets OK again (its OK may have been lost)",
            format!("the answer was {}", show_bytes(&b, 120)),
        )),
        None => Err(NotPassed::fail(
            "a repeated N from the same address with the same nickname gets OK again",
            format!("no OK within {:?}{}", ctx.timeout, seen(&before)),
        )),
    }
}

fn already_joined(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let other = ctx.fresh_nick("alt");
    ann.probe
        .send(&ClientMsg::Join(lines::nick(&other), None).encode());
    let expected = format!(
        "N {other} from the address that holds {} is answered ERROR already-joined",
        ann.nick()
    );
    let (found, before) = ann.probe.recv_until(ctx.timeout, |b| {
        b == b"OK" || lines::error_code(b).is_some()
    });
    match found {
        Some(b) if lines::is_error(&b, ErrorCode::AlreadyJoined) => Ok(()),
        Some(b) => {
            if b == b"OK" {
                // It joined as the other name: that one leaves too.
                ann.probe
                    .send(&ClientMsg::Quit(lines::nick(&other), None).encode());
            }
            Err(NotPassed::fail(
                expected,
                format!("the answer was {}", show_bytes(&b, 120)),
            ))
        }
        None => Err(NotPassed::fail(
            expected,
            format!("no answer within {:?}{}", ctx.timeout, seen(&before)),
        )),
    }
}

/// Sends `N <nick>` from a fresh socket and expects `nick-taken`.
fn expect_nick_taken(ctx: &mut Ctx, nick: &str, holder: &str) -> CheckResult {
    let other = ctx.probe("other")?;
    other.send(&ClientMsg::Join(lines::nick(nick), None).encode());
    let expected = format!(
        "N {nick} from another address, while {holder} is online, is answered ERROR nick-taken"
    );
    match other.recv(ctx.timeout) {
        Some(b) if lines::is_error(&b, ErrorCode::NickTaken) => Ok(()),
        Some(b) => {
            if b == b"OK" {
                // It joined: make it leave again.
                other.send(&ClientMsg::Quit(lines::nick(nick), None).encode());
            }
            Err(NotPassed::fail(
                expected,
                format!("the answer was {}", show_bytes(&b, 120)),
            ))
        }
        None => Err(NotPassed::fail(
            expected,
            format!("no answer within {:?}", ctx.timeout),
        )),
    }
}

fn nick_taken(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    expect_nick_taken(ctx, &ann.nick(), &ann.nick())
}

fn nick_case(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let upper = ann.nick().to_uppercase();
    expect_nick_taken(ctx, &upper, &ann.nick())
}

fn fan_out(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let bob = ctx.join("bob")?;
    let cat = ctx.join("cat")?;
    let text = format!("hello everyone {}", ctx.unique());
    ann.say(&text);
    for member in [&ann, &bob, &cat] {
        ctx.expect_chat(member, &ann.nick(), &text, LineEnding::Bare)?;
    }
    Ok(())
}

/// `ann` says `text`; `bob` and `ann` must receive it exactly.
fn text_kept(ctx: &mut Ctx, text: &str) -> CheckResult {
    let ann = ctx.join("ann")?;
    let bob = ctx.join("bob")?;
    ann.say(text);
    ctx.expect_chat(&bob, &ann.nick(), text, LineEnding::Bare)?;
    ctx.expect_chat(&ann, &ann.nick(), text, LineEnding::Bare)
}

fn spaces_kept(ctx: &mut Ctx) -> CheckResult {
    text_kept(
        ctx,
        "  two leading, three   inside,  two   runs and two trailing  ",
    )
}

fn unicode_kept(ctx: &mut Ctx) -> CheckResult {
    text_kept(ctx, "你好，世界 こんにちは 안녕 Zoë 👋🏽 👨‍👩‍👧 ✔")
}

fn text_800_accepted(ctx: &mut Ctx) -> CheckResult {
    // 600 bytes of CJK (so a relay counting characters, not bytes, is not
    // caught out the other way) and 200 ASCII letters: 800 bytes exactly.
    let text = format!("{}{}", "字".repeat(200), "a".repeat(200));
    debug_assert_eq!(text.len(), MAX_TEXT_BYTES);
    text_kept(ctx, &text)
}

/// `ann` sends `M ann <raw>`, which must draw `ERROR <code>` and not be
/// relayed to `bob` (nor echoed to `ann`): checked behind a barrier.
fn refused_not_relayed(
    ctx: &mut Ctx,
    ann: &Member,
    bob: &Member,
    raw: &[u8],
    code: ErrorCode,
) -> CheckResult {
    ann.say_raw(raw);
    let nick = ann.nick();
    let prefix = format!("{nick}: ");
    let what = format!(
        "M {nick} {} is answered ERROR {} and not relayed",
        show_bytes(raw, 40),
        code.as_str()
    );
    let (found, before) = ann.probe.recv_until(ctx.timeout, |b| {
        lines::error_code(b).is_some() || b.starts_with(prefix.as_bytes())
    });
    match found {
        Some(b) if lines::is_error(&b, code) => {}
        Some(b) => {
            return Err(NotPassed::fail(
                what,
                format!("{nick} received {}", show_bytes(&b, 120)),
            ))
        }
        None => {
            return Err(NotPassed::fail(
                what,
                format!(
                    "no ERROR {} within {:?}{}",
                    code.as_str(),
                    ctx.timeout,
                    seen(&before)
                ),
            ))
        }
    }
    let before = ctx.barrier(ann, &[bob, ann])?;
    for (who, lines_) in [bob, ann].iter().zip(before) {
        if let Some(relayed) = lines_.iter().find(|b| b.starts_with(prefix.as_bytes())) {
            return Err(NotPassed::fail(
                what,
                format!(
                    "{} received {} ({} bytes): the refused text was relayed{}",
                    who.nick(),
                    show_bytes(relayed, 60),
                    relayed.len(),
                    if raw.len() + prefix.len() > relayed.len() + 2 {
                        ", cut short"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}

fn text_801_refused(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let bob = ctx.join("bob")?;
    let raw = "b".repeat(MAX_TEXT_BYTES + 1);
    refused_not_relayed(ctx, &ann, &bob, raw.as_bytes(), ErrorCode::TooLong)
}

fn over_1024_refused(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let bob = ctx.join("bob")?;
    // A datagram of 1,100 bytes: cut at 1,024 (a 1,024-byte receive buffer)
    // it still reads as a message; refused whole, nothing is relayed.
    let total = MAX_DATAGRAM + 76;
    let head = format!("M {} ", ann.nick()).len();
    let raw = "c".repeat(total - head);
    refused_not_relayed(ctx, &ann, &bob, raw.as_bytes(), ErrorCode::TooLong)
}

fn control_refused(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let bob = ctx.join("bob")?;
    let texts: [&[u8]; 5] = [
        b"ring the \x07 bell",
        b"clear \x1b[2J the screen",
        b"a forged\n* teacher left",
        b"tab\there",
        "reversed \u{202e}txet".as_bytes(),
    ];
    for raw in texts {
        refused_not_relayed(ctx, &ann, &bob, raw, ErrorCode::ControlChar)?;
    }
    Ok(())
}

fn forged_m(ctx: &mut Ctx) -> CheckResult {
    let vic = ctx.join("vic")?;
    let obs = ctx.join("obs")?;
    let mal = ctx.join("mal")?;
    let stranger = ctx.probe("stranger")?;
    let text = format!("I am {} {}", vic.nick(), ctx.unique());
    let forged = ClientMsg::Chat {
        nick: lines::nick(&vic.nick()),
        text: lines::text(&text),
    }
    .encode();
    stranger.send(&forged);
    mal.probe.send(&forged);
    let before = ctx.barrier(&vic, &[&obs])?;
    let want = lines::chat(&vic.nick(), &text);
    if let Some(b) = before[0]
        .iter()
        .find(|b| lines::is_line_any_ending(b, &want))
    {
        return Err(NotPassed::fail(
            format!(
                "M {} ... from an address that does not hold {} is not relayed (not-joined or not-yours)",
                vic.nick(),
                vic.nick()
            ),
            format!(
                "{} received {}: the relay trusted the nickname inside M",
                obs.nick(),
                show_bytes(b, 80)
            ),
        ));
    }
    Ok(())
}

fn forged_q(ctx: &mut Ctx) -> CheckResult {
    let vic = ctx.join("vic")?;
    let obs = ctx.join("obs")?;
    let mal = ctx.join("mal")?;
    let stranger = ctx.probe("stranger")?;
    let forged = ClientMsg::Quit(lines::nick(&vic.nick()), None).encode();
    stranger.send(&forged);
    mal.probe.send(&forged);
    let expected = format!(
        "Q {} from another address does nothing to {}: no leave notice, and it can still chat",
        vic.nick(),
        vic.nick()
    );
    let before = ctx.barrier(&vic, &[&obs]).map_err(|_| {
        NotPassed::fail(
            expected.clone(),
            format!(
                "{} said something after the forged Q, and {} did not receive it: {} was removed",
                vic.nick(),
                obs.nick(),
                vic.nick()
            ),
        )
    })?;
    let left = lines::left(&vic.nick());
    if let Some(b) = before[0]
        .iter()
        .find(|b| lines::is_line_any_ending(b, &left))
    {
        return Err(NotPassed::fail(
            expected,
            format!("{} received {}", obs.nick(), show_bytes(b, 80)),
        ));
    }
    Ok(())
}

fn quit_leave_notice(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let bob = ctx.join("bob")?;
    ann.probe
        .send(&ClientMsg::Quit(lines::nick(&ann.nick()), None).encode());
    ctx.forget(&ann);
    let left = lines::left(&ann.nick());
    ctx.expect(
        &bob.probe,
        &format!("the leave notice {}", show_bytes(left[0].as_bytes(), 60)),
        |b| lines::is_line(b, &left, LineEnding::Bare),
    )?;
    // Gone for good: its M is no longer relayed.
    let text = format!("still here {}", ctx.unique());
    ann.say(&text);
    let before = ctx.barrier(&bob, &[&bob])?;
    let want = lines::chat(&ann.nick(), &text);
    if let Some(b) = before[0]
        .iter()
        .find(|b| lines::is_line_any_ending(b, &want))
    {
        return Err(NotPassed::fail(
            format!(
                "after Q, M {} ... is no longer relayed (not-joined)",
                ann.nick()
            ),
            format!("{} received {}", bob.nick(), show_bytes(b, 80)),
        ));
    }
    Ok(())
}

fn ending(ctx: &mut Ctx, suffix: &[u8]) -> CheckResult {
    let nick = ctx.fresh_nick("nc");
    let typist = ctx.join_as(&nick, LineEnding::Newline, suffix)?;
    let bob = ctx.join("bob")?;
    let text = format!("typed into nc {}", ctx.unique());
    let mut datagram = ClientMsg::Chat {
        nick: lines::nick(&nick),
        text: lines::text(&text),
    }
    .encode();
    datagram.extend_from_slice(suffix);
    typist.probe.send(&datagram);
    ctx.expect_chat(&bob, &nick, &text, LineEnding::Bare)?;
    ctx.expect_chat(&typist, &nick, &text, LineEnding::Newline)
}

fn ending_lf(ctx: &mut Ctx) -> CheckResult {
    ending(ctx, b"\n")
}

fn ending_crlf(ctx: &mut Ctx) -> CheckResult {
    ending(ctx, b"\r\n")
}

fn garbage_survived(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let stranger = ctx.probe("stranger")?;
    let junk: [&[u8]; 7] = [
        b"",
        b"\xff\xfe\x80 not UTF-8",
        b"M \xc3",
        b"\x00\x01\x02\x03",
        b"N",
        b"   ",
        b"\r\n",
    ];
    for datagram in junk {
        stranger.send(datagram);
        ann.probe.send(datagram);
    }
    // Cut inside a multi-byte character, as a 1,024-byte buffer would.
    let mut cut = format!("M {} ", ann.nick()).into_bytes();
    cut.extend_from_slice(&"字".as_bytes()[..2]);
    ann.probe.send(&cut);
    ctx.barrier(&ann, &[&ann]).map(|_| ())
}
