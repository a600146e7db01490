//! The extensions both dialects may use (PROTOCOL.md section 7), spoken by
//! classic members. A relay that answers an extension with `unknown-verb`
//! does not implement it: the check is skipped and says so.

use std::collections::BTreeMap;

use udpchat_proto::{ClientMsg, ErrorCode, LineEnding, Token, MAX_DATAGRAM};

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
        group: Group::Extensions,
        title: Title { en, zh },
        run,
    }
}

/// The extension checks, in report order.
pub const CHECKS: &[Check] = &[
    check(
        "ext.who.paging",
        "7",
        "WHO lists every member once, in pages of at most 1024 bytes each",
        "WHO 列出每个成员一次，每页不超过 1024 字节",
        who_paging,
    ),
    check(
        "ext.msg.private",
        "7",
        "MSG reaches the recipient only, and the sender gets its confirmation",
        "MSG 只发给收信人，发送者收到确认",
        msg_private,
    ),
    check(
        "ext.ping.pong",
        "7",
        "PING token is answered PONG with the same token",
        "PING 令牌得到带相同令牌的 PONG",
        ping_pong,
    ),
    check(
        "ext.nick.rename",
        "7",
        "NICK renames: the room is told, and M works under the new name",
        "NICK 改名：通知所有成员，之后用新昵称发送 M",
        nick_rename,
    ),
];

/// `Err(Skip)` if `reply` says the relay does not know `verb`.
fn skip_if_unknown(reply: &[u8], verb: &str) -> CheckResult {
    if lines::is_error(reply, ErrorCode::UnknownVerb) {
        return Err(NotPassed::Skip(format!(
            "the relay does not implement {verb} (it answered {})",
            show_bytes(reply, 60)
        )));
    }
    Ok(())
}

/// How many members the `WHO` check joins: enough, with nicknames of 60
/// bytes, that one line listing them all would be over 1024 bytes.
const WHO_MEMBERS: usize = 18;

fn who_paging(ctx: &mut Ctx) -> CheckResult {
    // One address for all: the asker's address must have sent enough to
    // be allowed a reply of two pages (PROTOCOL.md section 9, reply bytes).
    ctx.one_address = true;
    let mut members: Vec<Member> = Vec::new();
    let mut refused = None;
    for _ in 0..WHO_MEMBERS {
        // 24 characters, 60 bytes: `w`, the run's tag and number, and CJK.
        let short = ctx.fresh_nick("w");
        let fill = 24usize.saturating_sub(short.chars().count());
        let nick = format!("{short}{}", "长".repeat(fill));
        match ctx.join_as(&nick, LineEnding::Bare, b"") {
            Ok(m) => members.push(m),
            Err(NotPassed::Skip(why)) if members.len() >= 2 => {
                refused = Some(why);
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(why) = &refused {
        log::warn!(
            "ext.who.paging: only {} members joined: {why}",
            members.len()
        );
    }
    let asker = &members[0];
    asker.probe.send(&ClientMsg::Who.encode());
    let mut pages: BTreeMap<u32, lines::WhoPage> = BTreeMap::new();
    let mut total_pages: Option<u32> = None;
    let expected = "WHO is answered with pages of at most 1024 bytes that list every member once";
    while total_pages.is_none_or(|n| pages.len() < n as usize) {
        let (found, before) = asker.probe.recv_until(ctx.timeout, |b| {
            lines::parse_who(b).is_some()
                || lines::error_code(b).is_some()
                || b.len() > MAX_DATAGRAM
        });
        let Some(b) = found else {
            return Err(NotPassed::fail(
                expected,
                format!(
                    "{} of {} WHO pages arrived within {:?}{}",
                    pages.len(),
                    total_pages.map_or("?".to_owned(), |n| n.to_string()),
                    ctx.timeout,
                    seen(&before)
                ),
            ));
        };
        skip_if_unknown(&b, "WHO")?;
        if b.len() > MAX_DATAGRAM {
            return Err(NotPassed::fail(
                expected,
                format!(
                    "an answer of {} bytes arrived ({}): over the 1024-byte limit; a classic client's read cuts it",
                    b.len(),
                    show_bytes(&b, 40)
                ),
            ));
        }
        let Some(page) = lines::parse_who(&b) else {
            return Err(NotPassed::fail(
                expected,
                format!("the answer was {}", show_bytes(&b, 120)),
            ));
        };
        total_pages = Some(page.pages);
        pages.insert(page.page, page);
    }
    let mut seen_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = 0;
    for page in pages.values() {
        count = page.count;
        for name in &page.names {
            *seen_names.entry(name.clone()).or_default() += 1;
        }
    }
    for member in &members {
        match seen_names.get(&member.nick()) {
            Some(1) => {}
            Some(n) => {
                return Err(NotPassed::fail(
                    expected,
                    format!("{} is listed {n} times", member.nick()),
                ))
            }
            None => {
                return Err(NotPassed::fail(
                    expected,
                    format!("{} is not listed", member.nick()),
                ))
            }
        }
    }
    let listed: usize = seen_names.values().sum();
    if listed != count as usize {
        return Err(NotPassed::fail(
            expected,
            format!("the pages say {count} members but list {listed}"),
        ));
    }
    Ok(())
}

fn msg_private(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let bob = ctx.join("bob")?;
    let cat = ctx.join("cat")?;
    let text = format!("psst {}", ctx.unique());
    ann.probe.send(
        &ClientMsg::Private {
            to: lines::nick(&bob.nick()),
            text: lines::text(&text),
        }
        .encode(),
    );
    let to = lines::private_to(&bob.nick(), &text);
    let (found, before) = ann.probe.recv_until(ctx.timeout, |b| {
        lines::is_line(b, &to, LineEnding::Bare) || lines::error_code(b).is_some()
    });
    match found {
        Some(b) if lines::is_line(&b, &to, LineEnding::Bare) => {}
        Some(b) => {
            skip_if_unknown(&b, "MSG")?;
            return Err(NotPassed::fail(
                format!(
                    "{} receives {}",
                    ann.nick(),
                    show_bytes(to[0].as_bytes(), 80)
                ),
                format!("it received {}", show_bytes(&b, 120)),
            ));
        }
        None => {
            return Err(NotPassed::fail(
                format!(
                    "{} receives {}",
                    ann.nick(),
                    show_bytes(to[0].as_bytes(), 80)
                ),
                format!(
                    "it did not arrive within {:?}{}",
                    ctx.timeout,
                    seen(&before)
                ),
            ))
        }
    }
    let from = lines::private_from(&ann.nick(), &text);
    ctx.expect(&bob.probe, &show_bytes(from[0].as_bytes(), 80), |b| {
        lines::is_line(b, &from, LineEnding::Bare)
    })?;
    let before = ctx.barrier(&ann, &[&cat])?;
    if let Some(b) = before[0]
        .iter()
        .find(|b| b.windows(text.len()).any(|w| w == text.as_bytes()))
    {
        return Err(NotPassed::fail(
            format!("only {} receives the private message", bob.nick()),
            format!("{} received {}", cat.nick(), show_bytes(b, 80)),
        ));
    }
    Ok(())
}

fn ping_pong(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let token = format!("t{}", ctx.unique());
    ann.probe.send(
        &ClientMsg::Ping(Some(
            Token::new(&token).expect("the kit's tokens are valid"),
        ))
        .encode(),
    );
    let pong = lines::pong(&token);
    let (found, before) = ann.probe.recv_until(ctx.timeout, |b| {
        b.starts_with(b"PONG") || lines::error_code(b).is_some()
    });
    let expected = format!(
        "PING {token} is answered {}",
        show_bytes(pong[0].as_bytes(), 40)
    );
    match found {
        Some(b) if lines::is_line(&b, &pong, LineEnding::Bare) => Ok(()),
        Some(b) => {
            skip_if_unknown(&b, "PING")?;
            Err(NotPassed::fail(
                expected,
                format!("the answer was {}", show_bytes(&b, 80)),
            ))
        }
        None => Err(NotPassed::fail(
            expected,
            format!("no PONG within {:?}{}", ctx.timeout, seen(&before)),
        )),
    }
}

fn nick_rename(ctx: &mut Ctx) -> CheckResult {
    let ann = ctx.join("ann")?;
    let bob = ctx.join("bob")?;
    let old = ann.nick();
    let new = ctx.fresh_nick("anna");
    ann.probe
        .send(&ClientMsg::Rename(lines::nick(&new)).encode());
    let renamed = lines::renamed(&old, &new);
    // The room, the renamed member included, is told; a refusal comes to
    // it alone.
    let (found, before) = ann.probe.recv_until(ctx.timeout, |b| {
        lines::is_line(b, &renamed, LineEnding::Bare) || lines::error_code(b).is_some()
    });
    let expected = format!(
        "{} and {} receive {}",
        old,
        bob.nick(),
        show_bytes(renamed[0].as_bytes(), 80)
    );
    match found {
        Some(b) if lines::is_line(&b, &renamed, LineEnding::Bare) => {}
        Some(b) => {
            skip_if_unknown(&b, "NICK")?;
            return Err(NotPassed::fail(
                expected,
                format!("{old} received {}", show_bytes(&b, 120)),
            ));
        }
        None => {
            return Err(NotPassed::fail(
                expected,
                format!(
                    "it did not arrive within {:?}{}",
                    ctx.timeout,
                    seen(&before)
                ),
            ))
        }
    }
    ctx.expect(&bob.probe, &show_bytes(renamed[0].as_bytes(), 80), |b| {
        lines::is_line(b, &renamed, LineEnding::Bare)
    })?;
    ann.renamed(&new);
    let text = format!("renamed {}", ctx.unique());
    ann.say(&text);
    ctx.expect_chat(&bob, &new, &text, LineEnding::Bare)
}
