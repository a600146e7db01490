//! What the relay's classic lines look like, built with proto's own
//! renderer (`udpchat_proto::classic::render`) in both languages, and the
//! few readings of received lines the checks need (an error's code, a
//! `WHO` page). The kit does not know which `--lang` the relay runs with,
//! so it accepts either language's line.

use udpchat_proto::{
    classic, strip_line_ending, ErrorCode, Lang, LeaveReason, LineEnding, Nick, Origin, RelayMsg,
    RoomEvent, Text,
};

/// The nickname `s`; the kit only makes valid ones.
pub fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap_or_else(|e| panic!("the kit made an invalid nickname {s:?}: {e}"))
}

/// The text `s`; the kit only expects valid ones back.
pub fn text(s: &str) -> Text {
    Text::new(s).unwrap_or_else(|e| panic!("the kit expects an invalid text {s:?}: {e}"))
}

fn live(event: RoomEvent) -> RelayMsg {
    RelayMsg::Event {
        seq: 1,
        origin: Origin::Live,
        ago: None,
        event,
    }
}

/// The classic lines (English, Chinese) for `msg`.
fn both(msg: &RelayMsg) -> [String; 2] {
    [Lang::En, Lang::Zh].map(|lang| classic::render(msg, lang).unwrap_or_default())
}

/// `nick: text`.
pub fn chat(nick_: &str, text_: &str) -> [String; 2] {
    both(&live(RoomEvent::Chat {
        nick: nick(nick_),
        text: text(text_),
    }))
}

/// `* nick joined`.
pub fn joined(nick_: &str) -> [String; 2] {
    both(&live(RoomEvent::Join(nick(nick_))))
}

/// `* nick left` (after `Q`).
pub fn left(nick_: &str) -> [String; 2] {
    both(&live(RoomEvent::Leave {
        nick: nick(nick_),
        reason: LeaveReason::Quit,
    }))
}

/// `* old is now known as new`.
pub fn renamed(old: &str, new: &str) -> [String; 2] {
    both(&live(RoomEvent::Rename {
        old: nick(old),
        new: nick(new),
    }))
}

/// `[private from from] text`.
pub fn private_from(from: &str, text_: &str) -> [String; 2] {
    both(&RelayMsg::Private {
        pid: 1,
        from: nick(from),
        text: text(text_),
    })
}

/// `[private to to] text`.
pub fn private_to(to: &str, text_: &str) -> [String; 2] {
    both(&RelayMsg::Sent {
        id: None,
        to: nick(to),
        text: text(text_),
    })
}

/// `PONG token`.
pub fn pong(token: &str) -> [String; 2] {
    both(&RelayMsg::Pong {
        last_seq: 0,
        token: Some(udpchat_proto::Token::new(token).expect("the kit's tokens are valid")),
    })
}

/// `bytes` as a structured relay message: behind `key`'s prefix if `key`
/// is given (`None` if the prefix is missing or another key's), bare
/// otherwise.
pub fn structured(bytes: &[u8], key: Option<udpchat_proto::SessionKey>) -> Option<RelayMsg> {
    let (prefix, rest) = udpchat_proto::split_key_prefix(bytes);
    match (key, prefix) {
        (Some(mine), Some(got)) if mine.matches(got) => RelayMsg::parse(rest).ok(),
        (None, None) => RelayMsg::parse(rest).ok(),
        _ => None,
    }
}

/// Whether `bytes` is exactly one of `lines` with the line ending `ending`
/// asks for.
pub fn is_line(bytes: &[u8], lines: &[String], ending: LineEnding) -> bool {
    lines.iter().any(|line| {
        let mut want = line.clone().into_bytes();
        if ending == LineEnding::Newline {
            want.push(b'\n');
        }
        bytes == want.as_slice()
    })
}

/// Whether `bytes` is one of `lines`, with or without one trailing `\n`
/// (for lines whose ending another check tests).
pub fn is_line_any_ending(bytes: &[u8], lines: &[String]) -> bool {
    let (body, _) = strip_line_ending(bytes);
    lines.iter().any(|line| body == line.as_bytes())
}

/// The error code of an error reply, classic (`ERROR code: reason`,
/// `错误 code: reason`) or structured (`ERROR code reason`, perhaps behind
/// a session key's prefix).
pub fn error_code(bytes: &[u8]) -> Option<String> {
    let (_, bytes) = udpchat_proto::split_key_prefix(bytes);
    let (body, _) = strip_line_ending(bytes);
    let body = std::str::from_utf8(body).ok()?;
    let rest = body
        .strip_prefix("ERROR ")
        .or_else(|| body.strip_prefix("错误 "))?;
    let code: String = rest
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || *c == '-' || c.is_ascii_digit())
        .collect();
    (!code.is_empty()).then_some(code)
}

/// Whether `bytes` is an error reply with `code`.
pub fn is_error(bytes: &[u8], code: ErrorCode) -> bool {
    error_code(bytes).as_deref() == Some(code.as_str())
}

/// One page of a `WHO` answer, read from a classic line or a structured
/// `WHO` datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoPage {
    /// This page, from 1.
    pub page: u32,
    /// Pages in all.
    pub pages: u32,
    /// Members in all.
    pub count: u32,
    /// The nicknames on this page.
    pub names: Vec<String>,
}

/// Reads a `WHO` answer: `* online (2): alice, bob`, `* online (250, page
/// 2/3): ...`, the Chinese forms, or structured `WHO 1 1 2 alice bob`.
pub fn parse_who(bytes: &[u8]) -> Option<WhoPage> {
    let (body, _) = strip_line_ending(bytes);
    if let Ok(RelayMsg::Who {
        page,
        pages,
        count,
        nicks,
    }) = RelayMsg::parse(body)
    {
        return Some(WhoPage {
            page,
            pages,
            count,
            names: nicks.iter().map(|n| n.as_str().to_owned()).collect(),
        });
    }
    let body = std::str::from_utf8(body).ok()?;
    let rest = body
        .strip_prefix("* online (")
        .or_else(|| body.strip_prefix("* 在线 ("))?;
    let (head, names) = rest.split_once("): ")?;
    let names: Vec<String> = names.split(", ").map(str::to_owned).collect();
    let number = |s: &str| s.trim().parse::<u32>().ok();
    let (count, page, pages) = match head.split_once(['，', ',']) {
        None => (number(head)?, 1, 1),
        Some((count, paging)) => {
            let digits: String = paging
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '/')
                .collect();
            let (page, pages) = digits.split_once('/')?;
            (number(count)?, number(page)?, number(pages)?)
        }
    };
    Some(WhoPage {
        page,
        pages,
        count,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_both_dialects_and_languages() {
        assert_eq!(
            error_code(b"ERROR nick-taken: nickname is taken; choose another (bob)").as_deref(),
            Some("nick-taken")
        );
        assert_eq!(
            error_code("错误 too-long: 消息过长\n".as_bytes()).as_deref(),
            Some("too-long")
        );
        assert_eq!(
            error_code(b"ERROR not-joined you have not joined").as_deref(),
            Some("not-joined")
        );
        assert_eq!(
            error_code(b"@0123456789abcdef ERROR rate-limited you are sending too fast").as_deref(),
            Some("rate-limited")
        );
        assert_eq!(error_code(b"bob: ERROR nick-taken: x"), None);
    }

    #[test]
    fn who_pages_are_read_in_every_form() {
        let one = parse_who(b"* online (2): alice, bob").unwrap();
        assert_eq!((one.page, one.pages, one.count), (1, 1, 2));
        assert_eq!(one.names, ["alice", "bob"]);
        let paged = parse_who(b"* online (250, page 2/3): carol, dave\n").unwrap();
        assert_eq!((paged.page, paged.pages, paged.count), (2, 3, 250));
        let zh = parse_who("* 在线 (250，第 2/3 页): carol, dave".as_bytes()).unwrap();
        assert_eq!((zh.page, zh.pages, zh.count), (2, 3, 250));
        let structured = parse_who(b"WHO 1 2 30 a b").unwrap();
        assert_eq!((structured.page, structured.pages), (1, 2));
        assert_eq!(parse_who(b"alice: * online (2): x"), None);
    }

    #[test]
    fn lines_match_exactly_with_the_ending_asked_for() {
        let want = chat("ann", "  hi  ");
        assert!(is_line(b"ann:   hi  ", &want, LineEnding::Bare));
        assert!(!is_line(b"ann: hi", &want, LineEnding::Bare));
        assert!(is_line(b"ann:   hi  \n", &want, LineEnding::Newline));
        assert!(!is_line(b"ann:   hi  ", &want, LineEnding::Newline));
        assert!(is_line_any_ending(b"* ann joined\n", &joined("ann")));
    }
}
