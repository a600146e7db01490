//! One test per error case PROTOCOL.md names (section 11), plus the error
//! codes' own contract. The parse-error table of PROTOCOL.md is checked
//! row by row in spec.rs; these tests pin the exact ParseError as well.

use udpchat_proto::{
    classic, ClientMsg, ErrorCode, Lang, ParseError, RelayMsg, Text, MAX_DATAGRAM, MAX_TEXT_BYTES,
};

fn client_err(bytes: &[u8]) -> ParseError {
    match ClientMsg::parse(bytes) {
        Ok(msg) => panic!("{bytes:?} parsed as {msg:?}"),
        Err(e) => e,
    }
}

fn relay_err(bytes: &[u8]) -> ParseError {
    match RelayMsg::parse(bytes) {
        Ok(msg) => panic!("{bytes:?} parsed as {msg:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_datagram_is_bad_syntax() {
    assert_eq!(client_err(b""), ParseError::Empty);
    assert_eq!(client_err(b"\r\n"), ParseError::Empty);
    assert_eq!(ParseError::Empty.code(), ErrorCode::BadSyntax);
}

#[test]
fn invalid_utf8_is_bad_utf8() {
    assert_eq!(client_err(b"\xff\xfe"), ParseError::NotUtf8);
    // A character cut in half, as a 1024-byte read of a longer datagram would.
    assert_eq!(
        client_err("M bob 你".as_bytes()[..7].as_ref()),
        ParseError::NotUtf8
    );
    assert_eq!(
        relay_err(b"EVENT 1 live CHAT a \xe4\xbd"),
        ParseError::NotUtf8
    );
    assert_eq!(ParseError::NotUtf8.code(), ErrorCode::BadUtf8);
}

#[test]
fn unknown_or_lowercase_verb_is_unknown_verb() {
    for bytes in [
        &b"HI bob"[..],
        b"n bob",
        b"m bob hi",
        b"hello",
        b" N bob",
        b"N\tbob",
    ] {
        assert_eq!(
            client_err(bytes).code(),
            ErrorCode::UnknownVerb,
            "{bytes:?}"
        );
    }
    // Relay verbs are not client verbs and vice versa.
    assert_eq!(client_err(b"PONG 1").code(), ErrorCode::UnknownVerb);
    assert_eq!(relay_err(b"N bob").code(), ErrorCode::UnknownVerb);
    // The shown verb is cut, so an error about a huge word stays small.
    let long = "X".repeat(500);
    assert_eq!(
        client_err(long.as_bytes()),
        ParseError::UnknownVerb("X".repeat(16))
    );
}

#[test]
fn missing_fields_are_bad_syntax() {
    for (bytes, verb, field) in [
        (&b"N"[..], "N", "nickname"),
        (b"M", "M", "nickname"),
        (b"M bob", "M", "message"),
        (b"Q", "Q", "nickname"),
        (b"MSG bob", "MSG", "message"),
        (b"NICK", "NICK", "nickname"),
        (b"HELLO udpchat/1 bob", "HELLO", "cookie"),
        (b"PMSG 1 bob", "PMSG", "message"),
        (b"ACK", "ACK", "pid"),
        (b"RESEND 1", "RESEND", "to"),
    ] {
        assert_eq!(
            client_err(bytes),
            ParseError::MissingField { verb, field },
            "{bytes:?}"
        );
        assert_eq!(client_err(bytes).code(), ErrorCode::BadSyntax);
    }
}

#[test]
fn extra_fields_are_bad_syntax() {
    for (bytes, verb) in [
        (&b"WHO now"[..], "WHO"),
        (b"WHO ", "WHO"),
        (b"PING a b", "PING"),
        (b"ACK 1 2", "ACK"),
        (b"RESEND 1 2 3", "RESEND"),
        (b"HELLO udpchat/1 bob - pad more", "HELLO"),
    ] {
        assert_eq!(client_err(bytes), ParseError::ExtraField(verb), "{bytes:?}");
    }
    assert_eq!(relay_err(b"GONE 1 2 3"), ParseError::ExtraField("GONE"));
    assert_eq!(ParseError::ExtraField("WHO").code(), ErrorCode::BadSyntax);
}

#[test]
fn malformed_numbers_are_bad_syntax() {
    for bytes in [
        &b"ACK 007"[..],
        b"ACK -1",
        b"ACK +1",
        b"ACK 1.0",
        b"ACK 18446744073709551616",
        b"ACK \xd9\xa3", // ARABIC-INDIC DIGIT THREE: a digit, but not ASCII
    ] {
        let e = client_err(bytes);
        assert!(
            matches!(e, ParseError::BadNumber("pid") | ParseError::NotUtf8),
            "{bytes:?}: {e:?}"
        );
    }
    assert_eq!(client_err("ACK ٣".as_bytes()), ParseError::BadNumber("pid"));
    // u32 fields refuse what does not fit in 32 bits.
    assert_eq!(
        relay_err(b"WELCOME udpchat/1 a 0 4294967296 60"),
        ParseError::BadNumber("ping-interval")
    );
    assert_eq!(ParseError::BadNumber("pid").code(), ErrorCode::BadSyntax);
}

#[test]
fn bad_tokens_and_cookies_are_bad_syntax() {
    assert_eq!(client_err("PING été".as_bytes()), ParseError::BadToken);
    assert_eq!(
        client_err(format!("PING {}", "x".repeat(33)).as_bytes()),
        ParseError::BadToken
    );
    assert_eq!(client_err(b"PING "), ParseError::BadToken);
    assert_eq!(
        client_err(b"HELLO udpchat/1 bob 12345"),
        ParseError::BadCookie
    );
    assert_eq!(
        client_err(b"HELLO udpchat/1 bob 0123456789abcdeg"),
        ParseError::BadCookie
    );
    assert_eq!(
        client_err(b"HELLO udpchat/1 bob +123456789abcdef"),
        ParseError::BadCookie
    );
    assert_eq!(relay_err(b"COOKIE 0123456789abcde"), ParseError::BadCookie);
    // Padding is printable ASCII, one field.
    assert_eq!(
        client_err("HELLO udpchat/1 bob - 填充".as_bytes()),
        ParseError::BadToken
    );
    assert_eq!(ParseError::BadToken.code(), ErrorCode::BadSyntax);
    assert_eq!(ParseError::BadCookie.code(), ErrorCode::BadSyntax);
}

#[test]
fn unknown_keywords_are_bad_syntax() {
    for bytes in [
        &b"EVENT 1 later JOIN bob"[..],
        b"EVENT 1 live SHOUT bob",
        b"EVENT 1 live LEAVE bob bored",
        b"BYE reboot soon",
        b"ERROR no-such-code x",
    ] {
        let e = relay_err(bytes);
        assert!(
            matches!(e, ParseError::BadKeyword { .. }),
            "{bytes:?}: {e:?}"
        );
        assert_eq!(e.code(), ErrorCode::BadSyntax);
    }
}

#[test]
fn invalid_nicknames_are_nick_invalid() {
    assert_eq!(client_err(b"N "), ParseError::NickEmpty);
    assert_eq!(
        client_err(b"N bob smith jones"),
        ParseError::NickChar(' ' as u32)
    );
    assert_eq!(client_err(b"N bob!"), ParseError::NickChar('!' as u32));
    assert_eq!(
        client_err("N 👋".as_bytes()),
        ParseError::NickChar('👋' as u32)
    );
    assert_eq!(client_err(b"N a\x1bb"), ParseError::NickChar(0x1b));
    assert_eq!(
        client_err(format!("N {}", "a".repeat(25)).as_bytes()),
        ParseError::NickTooLong
    );
    // 17 four-byte letters: 17 characters but 68 bytes.
    assert_eq!(
        client_err(format!("N {}", "𝒜".repeat(17)).as_bytes()),
        ParseError::NickTooLong
    );
    assert!(ClientMsg::parse(format!("N {}", "𝒜".repeat(16)).as_bytes()).is_ok());
    assert!(ClientMsg::parse(format!("N {}", "a".repeat(24)).as_bytes()).is_ok());
    assert_eq!(client_err(b"MSG  hi"), ParseError::NickEmpty);
    assert_eq!(client_err(b"NICK a:b"), ParseError::NickChar(':' as u32));
    for e in [
        ParseError::NickEmpty,
        ParseError::NickTooLong,
        ParseError::NickChar(32),
    ] {
        assert_eq!(e.code(), ErrorCode::NickInvalid);
    }
}

#[test]
fn empty_text_is_text_empty() {
    assert_eq!(client_err(b"M bob "), ParseError::TextEmpty);
    assert_eq!(client_err(b"M bob \n"), ParseError::TextEmpty);
    assert_eq!(client_err(b"MSG bob "), ParseError::TextEmpty);
    assert_eq!(client_err(b"PMSG 1 bob "), ParseError::TextEmpty);
    assert_eq!(ParseError::TextEmpty.code(), ErrorCode::TextEmpty);
}

#[test]
fn forbidden_characters_are_control_char() {
    for c in [
        '\0', '\t', '\n', '\r', '\u{1b}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9b}', '\u{9f}',
        '\u{2028}', '\u{2029}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}',
    ] {
        let datagram = format!("M bob a{c}b");
        assert_eq!(
            client_err(datagram.as_bytes()),
            ParseError::ControlChar(c as u32),
            "{c:?}"
        );
    }
    // The neighbours of the forbidden ranges are allowed.
    for c in [
        ' ', '~', '\u{a0}', '\u{2027}', '\u{202f}', '\u{2065}', '\u{206a}',
    ] {
        assert!(
            ClientMsg::parse(format!("M bob a{c}b").as_bytes()).is_ok(),
            "{c:?}"
        );
    }
    assert_eq!(ParseError::ControlChar(0x1b).code(), ErrorCode::ControlChar);
}

#[test]
fn over_long_text_or_datagram_is_too_long() {
    let at_limit = format!("M bob {}", "x".repeat(MAX_TEXT_BYTES));
    assert!(ClientMsg::parse(at_limit.as_bytes()).is_ok());
    let over = format!("M bob {}", "x".repeat(MAX_TEXT_BYTES + 1));
    assert_eq!(
        client_err(over.as_bytes()),
        ParseError::TextTooLong(MAX_TEXT_BYTES + 1)
    );
    // 267 three-byte characters: 267 characters, 801 bytes.
    let cjk = format!("M bob {}", "你".repeat(267));
    assert_eq!(client_err(cjk.as_bytes()), ParseError::TextTooLong(801));
    let huge = vec![b'x'; MAX_DATAGRAM + 1];
    assert_eq!(client_err(&huge), ParseError::TooLong(MAX_DATAGRAM + 1));
    assert_eq!(relay_err(&huge), ParseError::TooLong(MAX_DATAGRAM + 1));
    assert_eq!(ParseError::TooLong(2000).code(), ErrorCode::TooLong);
    assert_eq!(ParseError::TextTooLong(801).code(), ErrorCode::TooLong);
}

#[test]
fn error_codes_round_trip_and_have_valid_reasons() {
    assert_eq!(ErrorCode::ALL.len(), 27);
    for &code in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
        for lang in [Lang::En, Lang::Zh] {
            let reason = Text::new(code.reason(lang))
                .unwrap_or_else(|e| panic!("{code} reason in {lang:?}: {e}"));
            let msg = RelayMsg::Error { code, reason };
            assert_eq!(RelayMsg::parse(&msg.encode()), Ok(msg.clone()));
            let line = classic::render(&msg, lang).expect("errors render");
            assert!(line.contains(code.as_str()), "{line}");
        }
    }
    assert_eq!(ErrorCode::from_wire("Nick-Taken"), None);
}

#[test]
fn parse_error_messages_say_what_to_do() {
    // What a user reads: non-empty, one line, and never echoing raw control
    // characters back to a terminal.
    let errors = [
        client_err(b""),
        client_err(b"\xff"),
        client_err(b"HI"),
        client_err(b"M bob"),
        client_err(b"WHO x"),
        client_err(b"N a\x1bb"),
        client_err(b"M bob \x1b"),
        client_err(b"M bob \xc2\x9b"),
        client_err(b"ACK x"),
        client_err(b"PING \x7f"),
        client_err("M bob hi * teacher left".as_bytes()),
        client_err(format!("M bob a{}b", " ".repeat(17)).as_bytes()),
        relay_err(b"BYE x y"),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.is_empty());
        assert!(
            text.chars()
                .all(|c| udpchat_proto::check_text_char(c).is_ok()),
            "{text:?}"
        );
    }
    assert_eq!(
        ParseError::ControlChar(0x1b).to_string(),
        "message contains the control character U+001B; remove it and send again"
    );
    assert_eq!(
        client_err(b"M bob padding padding * Teacher left").to_string(),
        "message looks like a relay notice (\"* teacher left\"); reword it"
    );
    assert_eq!(
        ParseError::SpaceRun.to_string(),
        "message has more than 16 spaces in a row; use fewer"
    );
}

#[test]
fn look_alike_relay_lines_and_space_padding_are_refused_in_every_text_command() {
    for datagram in [
        "M bob xxxxxxxxxxxxxxxxxxxx * teacher left",
        "SAY 1 xxxxxxxxxxxxxxxxxxxx [host] class is over",
        "MSG alice pad pad pad [private from teacher] psst",
        "PMSG 2 alice pad * 老师 离开了聊天室",
    ] {
        assert_eq!(
            client_err(datagram.as_bytes()).code(),
            ErrorCode::LooksLikeNotice,
            "{datagram}"
        );
    }
    let padded = format!("M bob hello{}x", " ".repeat(17));
    assert_eq!(client_err(padded.as_bytes()), ParseError::SpaceRun);
    assert_eq!(ParseError::SpaceRun.code(), ErrorCode::TooManySpaces);
    // Sixteen in a row is indentation, and ordinary stars and brackets pass.
    for ok in [
        format!("M bob a{}b", " ".repeat(16)),
        "M bob 2 * 3 = 6".to_owned(),
        "M bob see [hostname] * note".to_owned(),
    ] {
        assert!(ClientMsg::parse(ok.as_bytes()).is_ok(), "{ok}");
    }
}
