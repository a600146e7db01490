//! PROTOCOL.md is checked against the code: its worked examples, its table of
//! error codes, its table of parse errors and its table of classic lines.
//! If the spec and the code disagree, one of these tests fails.

use std::collections::HashMap;

use udpchat_proto::{
    classic, split_key_prefix, strip_line_ending, ClientMsg, ErrorCode, Lang, LineEnding, RelayMsg,
    SessionKey, MAX_DATAGRAM,
};

const SPEC: &str = include_str!("../../../PROTOCOL.md");

/// Decodes the escapes PROTOCOL.md documents: `\n`, `\r`, `\t`, `\\`, `\xHH`
/// (a byte) and `\u{H...}` (a character). Anything else is literal.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let after = &rest[i + 1..];
        let (bytes, used): (Vec<u8>, usize) = match after.chars().next() {
            Some('n') => (b"\n".to_vec(), 1),
            Some('r') => (b"\r".to_vec(), 1),
            Some('t') => (b"\t".to_vec(), 1),
            Some('\\') => (b"\\".to_vec(), 1),
            Some('x') => {
                let byte =
                    u8::from_str_radix(&after[1..3], 16).expect("\\xHH needs two hex digits");
                (vec![byte], 3)
            }
            Some('u') => {
                let close = after.find('}').expect("\\u{...} needs a closing brace");
                let code = u32::from_str_radix(&after[2..close], 16).expect("hex in \\u{...}");
                let c = char::from_u32(code).expect("\\u{...} names a character");
                (c.to_string().into_bytes(), close + 1)
            }
            other => panic!("unknown escape \\{other:?} in PROTOCOL.md"),
        };
        out.extend_from_slice(&bytes);
        rest = &after[used..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// The fenced blocks of kind `udpchat-example`: (info string, body lines).
fn example_blocks() -> Vec<(String, Vec<&'static str>)> {
    let mut blocks = Vec::new();
    let mut lines = SPEC.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```udpchat-example") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push((info.trim().to_owned(), body));
        }
    }
    blocks
}

/// One line of an example: kind (`C`, `R`, `S`), party (empty for the main
/// client), datagram bytes.
fn parse_example_line(line: &str) -> (char, &str, Vec<u8>) {
    let (head, datagram) = line
        .split_once(": ")
        .unwrap_or_else(|| panic!("example line without \": \": {line:?}"));
    let mut chars = head.chars();
    let kind = chars.next().expect("non-empty head");
    let party = chars.as_str();
    let party = if party.is_empty() {
        ""
    } else {
        party
            .strip_prefix('[')
            .and_then(|p| p.strip_suffix(']'))
            .unwrap_or_else(|| panic!("bad party in {line:?}"))
    };
    assert!(
        matches!(kind, 'C' | 'R' | 'S'),
        "example line must start with C:, R: or S: ({line:?})"
    );
    (kind, party, unescape(datagram))
}

/// The codes a malformed datagram draws (the image of `ParseError::code`).
const PARSE_ERROR_CODES: &[ErrorCode] = &[
    ErrorCode::BadUtf8,
    ErrorCode::UnknownVerb,
    ErrorCode::BadSyntax,
    ErrorCode::NickInvalid,
    ErrorCode::TextEmpty,
    ErrorCode::ControlChar,
    ErrorCode::TooLong,
];

fn check_example(info: &str, body: &[&str]) {
    let lang = match info {
        "" => Lang::En,
        "lang=zh" => Lang::Zh,
        other => panic!("unknown example block option {other:?}"),
    };
    // The line ending each party joined with, once its `N` has been seen.
    let mut endings: HashMap<&str, LineEnding> = HashMap::new();
    // A client datagram that failed to parse: the next reply to that party
    // must be the ERROR with its code.
    let mut pending_error: Option<(String, ErrorCode)> = None;
    // A client datagram that parsed: the next reply must not be a parse error.
    let mut parsed_request: Option<String> = None;
    // The main client's session key (from its HELLO) and the relay's (from
    // WELCOME), once the block states them.
    let mut client_key: Option<SessionKey> = None;
    let mut relay_key: Option<SessionKey> = None;
    let lines: Vec<&str> = body
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let (kind, party, raw) = parse_example_line(line);
        assert!(raw.len() <= MAX_DATAGRAM, "{line:?} is over the limit");
        let (prefix, bytes) = split_key_prefix(&raw);
        let bytes = bytes.to_vec();
        match kind {
            'C' => {
                assert!(pending_error.is_none(), "no ERROR after {pending_error:?}");
                let (bare, ending) = strip_line_ending(&bytes);
                match ClientMsg::parse(&bytes) {
                    Ok(msg) => {
                        if party.is_empty() {
                            match &msg {
                                ClientMsg::Hello { key, .. } => {
                                    assert_eq!(prefix, None, "{line:?}: a HELLO has no prefix");
                                    client_key = key.or(client_key);
                                }
                                _ if relay_key.is_some() => assert_eq!(
                                    prefix, relay_key,
                                    "{line:?} lacks the relay's key from WELCOME"
                                ),
                                _ => {}
                            }
                        }
                        parsed_request = Some(line.to_owned());
                        assert_eq!(
                            msg.encode(),
                            bare,
                            "{line:?} does not re-encode to the same bytes"
                        );
                        if let ClientMsg::Join(..) = msg {
                            endings.entry(party).or_insert(ending);
                        }
                    }
                    Err(e) => pending_error = Some((line.to_owned(), e.code())),
                }
            }
            'R' => {
                let next = lines.get(i + 1).map(|l| parse_example_line(l));
                let structured = match next {
                    Some(('S', _, s)) => {
                        // A classic line: equals the rendering of its S: message.
                        i += 1;
                        let msg = RelayMsg::parse(&s)
                            .unwrap_or_else(|e| panic!("S: line of {line:?} fails: {e}"));
                        assert_eq!(msg.encode(), s, "S: line of {line:?} does not re-encode");
                        let (text, ending) = strip_line_ending(&bytes);
                        let rendered = classic::render(&msg, lang)
                            .unwrap_or_else(|| panic!("{msg:?} has no classic line"));
                        assert_eq!(
                            std::str::from_utf8(text).unwrap(),
                            rendered,
                            "classic line differs from classic::render"
                        );
                        if let Some(joined) = endings.get(party) {
                            assert_eq!(ending, *joined, "line ending of {line:?}");
                        }
                        msg
                    }
                    _ => {
                        let msg = RelayMsg::parse(&bytes)
                            .unwrap_or_else(|e| panic!("{line:?} is not a relay datagram: {e}"));
                        assert_eq!(msg.encode(), bytes, "{line:?} does not re-encode");
                        let unprefixed = matches!(
                            msg,
                            RelayMsg::Cookie(_)
                                | RelayMsg::Error {
                                    code: ErrorCode::NotJoined,
                                    ..
                                }
                        );
                        if party.is_empty() && client_key.is_some() && !unprefixed {
                            assert_eq!(prefix, client_key, "{line:?} lacks the client's key");
                        }
                        if let RelayMsg::Welcome { key: Some(key), .. } = msg {
                            relay_key = Some(key);
                        }
                        msg
                    }
                };
                if let (Some(request), RelayMsg::Error { code, .. }) =
                    (parsed_request.take(), &structured)
                {
                    assert!(
                        !PARSE_ERROR_CODES.contains(code),
                        "{request:?} parses, but the example answers it with {code}"
                    );
                }
                if let Some((request, code)) = pending_error.take() {
                    match structured {
                        RelayMsg::Error { code: got, .. } => {
                            assert_eq!(got, code, "wrong error code for {request:?}")
                        }
                        other => panic!("{request:?} is malformed but drew {other:?}"),
                    }
                }
            }
            _ => panic!("S: line without an R: line before it: {line:?}"),
        }
        i += 1;
    }
    assert!(pending_error.is_none(), "no ERROR after {pending_error:?}");
}

#[test]
fn worked_examples_match_the_code() {
    let blocks = example_blocks();
    // A classic, a Chinese classic, a structured and an nc session at least.
    assert!(
        blocks.len() >= 4,
        "found only {} example blocks",
        blocks.len()
    );
    for (info, body) in &blocks {
        check_example(info, body);
    }
}

#[test]
fn example_blocks_cover_every_client_verb_and_relay_kind() {
    let mut client = std::collections::HashSet::new();
    let mut relay = std::collections::HashSet::new();
    for (_, body) in example_blocks() {
        for line in body.iter().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (kind, _, raw) = parse_example_line(line);
            let bytes = split_key_prefix(&raw).1;
            let verb = String::from_utf8_lossy(bytes)
                .split(' ')
                .next()
                .unwrap_or("")
                .trim_end()
                .to_owned();
            match kind {
                'C' if ClientMsg::parse(bytes).is_ok() => client.insert(verb),
                'R' | 'S' if RelayMsg::parse(bytes).is_ok() => relay.insert(verb),
                _ => false,
            };
        }
    }
    for verb in [
        "N", "M", "Q", "WHO", "MSG", "PING", "NICK", "HELLO", "PMSG", "ACK", "RESEND", "H", "HAND",
        "SEEN",
    ] {
        assert!(client.contains(verb), "no example sends {verb}");
    }
    for verb in [
        "COOKIE", "WELCOME", "EVENT", "PRIVATE", "SENT", "WHO", "PONG", "GONE", "ERROR", "BYE",
        "HAND", "VOICE",
    ] {
        assert!(relay.contains(verb), "no example shows {verb}");
    }
}

/// The backticked cells of the table rows that follow `<!-- marker`.
fn table_after(marker: &str) -> Vec<Vec<&'static str>> {
    let start = SPEC
        .find(&format!("<!-- {marker}"))
        .unwrap_or_else(|| panic!("PROTOCOL.md has no <!-- {marker} table"));
    let rows: Vec<Vec<&str>> = SPEC[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim())
                .collect()
        })
        .collect();
    assert!(!rows.is_empty(), "empty table after {marker}");
    rows
}

fn code_span(cell: &'static str) -> Option<&'static str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

#[test]
fn error_table_lists_every_code_with_its_reasons() {
    let rows = table_after("error-codes");
    let mut listed = Vec::new();
    for row in &rows {
        let code = code_span(row[0]).expect("code cell in backticks");
        let code = ErrorCode::from_wire(code).unwrap_or_else(|| panic!("unknown code {code}"));
        assert_eq!(code_span(row[2]), Some(code.reason(Lang::En)), "{code}");
        assert_eq!(code_span(row[3]), Some(code.reason(Lang::Zh)), "{code}");
        listed.push(code);
    }
    // In the order of ErrorCode::ALL, each exactly once.
    assert_eq!(listed, ErrorCode::ALL);
}

#[test]
fn parse_error_table_matches_the_parser() {
    let rows = table_after("parse-errors");
    assert!(rows.len() >= 15);
    for row in rows {
        // The empty datagram is written as "(empty)".
        let datagram = if row[0] == "(empty)" {
            Vec::new()
        } else {
            unescape(code_span(row[0]).expect("datagram in backticks"))
        };
        let want = code_span(row[1]).expect("code in backticks");
        match ClientMsg::parse(&datagram) {
            Ok(msg) => panic!("{datagram:?} parses as {msg:?}; the table says {want}"),
            Err(e) => assert_eq!(e.code().as_str(), want, "{datagram:?}: {e}"),
        }
    }
}

#[test]
fn classic_line_table_matches_render() {
    let rows = table_after("classic-lines");
    assert!(rows.len() >= 20);
    let mut kinds = std::collections::HashSet::new();
    for row in rows {
        let wire = code_span(row[0]).expect("structured message in backticks");
        let msg = RelayMsg::parse(wire.as_bytes()).unwrap_or_else(|e| panic!("{wire}: {e}"));
        assert_eq!(msg.encode(), wire.as_bytes());
        kinds.insert(std::mem::discriminant(&msg));
        for (lang, cell) in [(Lang::En, row[1]), (Lang::Zh, row[2])] {
            let want = code_span(cell);
            assert_eq!(
                classic::render(&msg, lang).as_deref(),
                want,
                "{wire} in {lang:?}"
            );
        }
    }
    // Every RelayMsg variant has a row (12 variants).
    assert_eq!(kinds.len(), 12);
}

#[test]
fn spec_states_the_limits_the_code_uses() {
    for fact in [
        format!("default relay port is **{}**", udpchat_proto::DEFAULT_PORT),
        format!("longer than {} bytes**", MAX_DATAGRAM),
        format!("1 to **{}** characters", udpchat_proto::MAX_NICK_CHARS),
        format!("at most **{} bytes**", udpchat_proto::MAX_NICK_BYTES),
        format!("1 to **{} bytes** of UTF-8", udpchat_proto::MAX_TEXT_BYTES),
        format!(
            "padded to **at least\n   {} bytes**",
            udpchat_proto::MIN_HELLO_LEN
        ),
        format!("HELLO {} ", udpchat_proto::VERSION),
        format!(
            "no more than **{}** spaces in a\n  row",
            udpchat_proto::MAX_SPACE_RUN
        ),
    ] {
        assert!(SPEC.contains(&fact), "PROTOCOL.md does not say {fact:?}");
    }
}

#[test]
fn worst_case_datagram_is_the_one_the_spec_names() {
    use udpchat_proto::{Nick, Origin, RoomEvent, Text};
    let nick = Nick::new(&"𝒜".repeat(16)).unwrap();
    let text = Text::new(&"x".repeat(udpchat_proto::MAX_TEXT_BYTES)).unwrap();
    let worst = RelayMsg::Event {
        seq: u64::MAX,
        origin: Origin::History,
        ago: Some(u32::MAX),
        event: RoomEvent::Chat { nick, text },
    };
    let len = worst.encode().len();
    assert_eq!(len, 920);
    assert!(SPEC.contains(&format!("at or below {len} bytes")));
}
