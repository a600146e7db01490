//! Client-to-relay datagrams.

use crate::fields::{split_field, Fields};
use crate::{
    Cookie, JoinCode, Nick, ParseError, SessionKey, Text, Token, MAX_DATAGRAM, MIN_HELLO_LEN,
};

/// A datagram a client sends to the relay.
///
/// The classic dialect is `Join`, `Chat` and `Quit`; `Who`, `Private`,
/// `Ping` and `Rename` are extensions both dialects may use; the rest belong
/// to the structured dialect (whose clients chat with `Say`, not `Chat`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientMsg {
    /// `N <nick> [<code>]`: join in the classic dialect, with the room's
    /// join code if it has one (a course client that asks for a name sends
    /// what the student typed: `alice CODE`).
    Join(Nick, Option<JoinCode>),
    /// `M <nick> <text>`: say `text` to the room. `nick` must be the sender's.
    Chat {
        /// The sender's own nickname.
        nick: Nick,
        /// The message, kept exactly.
        text: Text,
    },
    /// `Q <nick> [<code>]`: leave. `nick` must be the sender's; a join code
    /// after it (a course client repeating `alice CODE`) is kept, so the
    /// datagram re-encodes as it came, and ignored by the relay.
    Quit(Nick, Option<JoinCode>),
    /// `WHO`: ask who is online.
    Who,
    /// `MSG <to> <text>`: a private message to one member.
    Private {
        /// The recipient.
        to: Nick,
        /// The message.
        text: Text,
    },
    /// `PING [<token>]`: keepalive; the relay answers `PONG`.
    Ping(Option<Token>),
    /// `NICK <new>`: change nickname.
    Rename(Nick),
    /// `HELLO <version> <nick> <cookie>|- [since=<seq>] [resume=<token>]
    /// [key=<key>] [<padding>]`: join in the structured dialect. Without a cookie the
    /// datagram is padded to at least [`MIN_HELLO_LEN`] bytes; the padding
    /// is not kept.
    Hello {
        /// The dialect version the client speaks, e.g. `udpchat/1`.
        version: Token,
        /// The nickname asked for.
        nick: Nick,
        /// The cookie from the relay's `COOKIE` answer, if the client has one.
        cookie: Option<Cookie>,
        /// `since=<seq>`: the client has every room event up to `seq` of this
        /// relay run (from an earlier membership); history starts after it.
        since: Option<u64>,
        /// `resume=<token>`: the token of an earlier `WELCOME`, to take over
        /// that membership from a new address.
        resume: Option<Token>,
        /// `key=<key>`: the client's session key; the relay prefixes every
        /// datagram to this member with `@<key> ` (PROTOCOL.md section 8,
        /// *Session keys*). Without it the membership is authenticated by
        /// its address only.
        key: Option<SessionKey>,
        /// `code=<code>`: the room's join code (needed only when the relay
        /// has one set).
        code: Option<JoinCode>,
    },
    /// `PMSG <id> <to> <text>`: a private message the relay acknowledges with
    /// `SENT <id> ...`; the client retransmits until then and the relay
    /// delivers each `id` once.
    PrivateReliable {
        /// Chosen by the client, unique among its recent private messages.
        id: u64,
        /// The recipient.
        to: Nick,
        /// The message.
        text: Text,
    },
    /// `SAY <id> <text>`: say `text` to the room as the nickname the sending
    /// address holds. The client retransmits until its own `CHAT` event
    /// comes back, and the relay relays each `id` once, so a datagram the
    /// network duplicates, or a retransmission whose echo was lost, is not
    /// relayed twice.
    Say {
        /// Chosen by the client, unique among its recent `SAY` and `PMSG`
        /// ids.
        id: u64,
        /// The message, kept exactly.
        text: Text,
    },
    /// `ACK <pid>`: the client received `PRIVATE <pid> ...`.
    Ack(u64),
    /// `HAND [<question>]`: raise a hand (structured; a classic member may
    /// send it too). Raising it again updates the question.
    Hand(Option<Text>),
    /// `H [<question>]`: raise a hand, the classic verb.
    ClassicHand(Option<Text>),
    /// `SEEN <seq>`: the client showed the announcement that is room
    /// event `seq` (structured; the relay counts who confirmed it).
    Seen(u64),
    /// `RESEND <from> <to>`: send room events `from..=to` again.
    Resend {
        /// First sequence number wanted.
        from: u64,
        /// Last sequence number wanted.
        to: u64,
    },
}

/// The nickname of `N` and `Q`, and the join code after it if there is one
/// (`alice CODE`). Anything else with a space is a nickname with a space,
/// refused as such.
fn nick_and_code(s: &str) -> Result<(Nick, Option<JoinCode>), ParseError> {
    if let Some((nick, code)) = s.split_once(' ') {
        if let (Ok(nick), Ok(code)) = (Nick::new(nick), JoinCode::new(code)) {
            return Ok((nick, Some(code)));
        }
    }
    Ok((Nick::new(s)?, None))
}

impl ClientMsg {
    /// Parses one datagram. One trailing `\n` or `\r\n` is ignored (use
    /// [`crate::strip_line_ending`] to learn whether there was one).
    pub fn parse(bytes: &[u8]) -> Result<ClientMsg, ParseError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(ParseError::TooLong(bytes.len()));
        }
        let (bytes, _) = crate::strip_line_ending(bytes);
        if bytes.is_empty() {
            return Err(ParseError::Empty);
        }
        let s = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
        let (verb, rest) = split_field(s);
        let msg = match verb {
            "N" => {
                let mut f = Fields::new("N", rest);
                let (nick, code) = nick_and_code(f.rest("nickname")?)?;
                ClientMsg::Join(nick, code)
            }
            "M" => {
                let mut f = Fields::new("M", rest);
                let nick = f.nick("nickname")?;
                ClientMsg::Chat {
                    nick,
                    text: f.text("message")?,
                }
            }
            "Q" => {
                let mut f = Fields::new("Q", rest);
                let (nick, code) = nick_and_code(f.rest("nickname")?)?;
                ClientMsg::Quit(nick, code)
            }
            "WHO" => {
                Fields::new("WHO", rest).end()?;
                ClientMsg::Who
            }
            "MSG" => {
                let mut f = Fields::new("MSG", rest);
                let to = f.nick("recipient")?;
                ClientMsg::Private {
                    to,
                    text: f.text("message")?,
                }
            }
            "PING" => {
                let mut f = Fields::new("PING", rest);
                let token = f.optional().map(Token::new).transpose()?;
                f.end()?;
                ClientMsg::Ping(token)
            }
            "NICK" => {
                let mut f = Fields::new("NICK", rest);
                ClientMsg::Rename(Nick::new(f.rest("nickname")?)?)
            }
            "HELLO" => {
                let mut f = Fields::new("HELLO", rest);
                let version = Token::new(f.next("version")?)?;
                let nick = f.nick("nickname")?;
                let cookie = match f.next("cookie")? {
                    "-" => None,
                    c => Some(Cookie::parse(c)?),
                };
                let mut since = None;
                let mut resume = None;
                let mut field = f.optional();
                if let Some(n) = field.and_then(|x| x.strip_prefix("since=")) {
                    since = Some(crate::fields::parse_number(n, "since")?);
                    field = f.optional();
                }
                if let Some(t) = field.and_then(|x| x.strip_prefix("resume=")) {
                    resume = Some(Token::new(t)?);
                    field = f.optional();
                }
                let mut key = None;
                if let Some(k) = field.and_then(|x| x.strip_prefix("key=")) {
                    key = Some(SessionKey::parse(k)?);
                    field = f.optional();
                }
                let mut code = None;
                if let Some(c) = field.and_then(|x| x.strip_prefix("code=")) {
                    code = Some(JoinCode::new(c)?);
                    field = f.optional();
                }
                // Padding: anything printable, ignored.
                if let Some(pad) = field {
                    if pad.is_empty() || !pad.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(ParseError::BadToken);
                    }
                }
                f.end()?;
                ClientMsg::Hello {
                    version,
                    nick,
                    cookie,
                    since,
                    resume,
                    key,
                    code,
                }
            }
            "PMSG" => {
                let mut f = Fields::new("PMSG", rest);
                let id = f.number("id")?;
                let to = f.nick("recipient")?;
                ClientMsg::PrivateReliable {
                    id,
                    to,
                    text: f.text("message")?,
                }
            }
            "SAY" => {
                let mut f = Fields::new("SAY", rest);
                let id = f.number("id")?;
                ClientMsg::Say {
                    id,
                    text: f.text("message")?,
                }
            }
            "ACK" => {
                let mut f = Fields::new("ACK", rest);
                let pid = f.number("pid")?;
                f.end()?;
                ClientMsg::Ack(pid)
            }
            "RESEND" => {
                let mut f = Fields::new("RESEND", rest);
                let from = f.number("from")?;
                let to = f.number("to")?;
                f.end()?;
                ClientMsg::Resend { from, to }
            }
            "SEEN" => {
                let mut f = Fields::new("SEEN", rest);
                let seq = f.number("seq")?;
                f.end()?;
                ClientMsg::Seen(seq)
            }
            "HAND" => ClientMsg::Hand(optional_text(rest)?),
            "H" => ClientMsg::ClassicHand(optional_text(rest)?),
            other => {
                let shown: String = other.chars().take(16).collect();
                return Err(ParseError::UnknownVerb(shown));
            }
        };
        Ok(msg)
    }

    /// Encodes the datagram, bare (no line ending). A `HELLO` without a
    /// cookie is padded to [`MIN_HELLO_LEN`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let s = match self {
            ClientMsg::Join(nick, None) => format!("N {nick}"),
            ClientMsg::Join(nick, Some(code)) => format!("N {nick} {code}"),
            ClientMsg::Chat { nick, text } => format!("M {nick} {text}"),
            ClientMsg::Quit(nick, None) => format!("Q {nick}"),
            ClientMsg::Quit(nick, Some(code)) => format!("Q {nick} {code}"),
            ClientMsg::Who => "WHO".to_owned(),
            ClientMsg::Private { to, text } => format!("MSG {to} {text}"),
            ClientMsg::Ping(None) => "PING".to_owned(),
            ClientMsg::Ping(Some(token)) => format!("PING {token}"),
            ClientMsg::Rename(nick) => format!("NICK {nick}"),
            ClientMsg::Hello {
                version,
                nick,
                cookie,
                since,
                resume,
                key,
                code,
            } => {
                let mut s = match cookie {
                    Some(cookie) => format!("HELLO {version} {nick} {cookie}"),
                    None => format!("HELLO {version} {nick} -"),
                };
                if let Some(since) = since {
                    s.push_str(&format!(" since={since}"));
                }
                if let Some(resume) = resume {
                    s.push_str(&format!(" resume={resume}"));
                }
                if let Some(key) = key {
                    s.push_str(&format!(" key={key}"));
                }
                if let Some(code) = code {
                    s.push_str(&format!(" code={code}"));
                }
                if cookie.is_none() {
                    s.push(' ');
                    let pad = MIN_HELLO_LEN.saturating_sub(s.len()).max(1);
                    s.extend(std::iter::repeat_n('=', pad));
                }
                s
            }
            ClientMsg::PrivateReliable { id, to, text } => format!("PMSG {id} {to} {text}"),
            ClientMsg::Say { id, text } => format!("SAY {id} {text}"),
            ClientMsg::Ack(pid) => format!("ACK {pid}"),
            ClientMsg::Seen(seq) => format!("SEEN {seq}"),
            ClientMsg::Resend { from, to } => format!("RESEND {from} {to}"),
            ClientMsg::Hand(None) => "HAND".to_owned(),
            ClientMsg::Hand(Some(question)) => format!("HAND {question}"),
            ClientMsg::ClassicHand(None) => "H".to_owned(),
            ClientMsg::ClassicHand(Some(question)) => format!("H {question}"),
        };
        s.into_bytes()
    }

    /// The nickname this command claims to act as, for the commands that
    /// name the sender (`M`, `Q`). The relay checks it against the address.
    pub fn claimed_nick(&self) -> Option<&Nick> {
        match self {
            ClientMsg::Chat { nick, .. } | ClientMsg::Quit(nick, _) => Some(nick),
            _ => None,
        }
    }
}

/// The free text after a verb whose text is optional: none, or an empty
/// rest (`H ` typed with a trailing space), is no text.
fn optional_text(rest: Option<&str>) -> Result<Option<Text>, ParseError> {
    match rest {
        None | Some("") => Ok(None),
        Some(text) => Text::new(text).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    #[test]
    fn classic_verbs_parse() {
        assert_eq!(
            ClientMsg::parse(b"N alice"),
            Ok(ClientMsg::Join(nick("alice"), None))
        );
        assert_eq!(
            ClientMsg::parse("M 小明 你好  世界 ".as_bytes()),
            Ok(ClientMsg::Chat {
                nick: nick("小明"),
                text: Text::new("你好  世界 ").unwrap()
            })
        );
        assert_eq!(
            ClientMsg::parse(b"Q alice\r\n"),
            Ok(ClientMsg::Quit(nick("alice"), None))
        );
    }

    #[test]
    fn text_after_single_space_is_kept_exactly() {
        let msg = ClientMsg::parse(b"M bob   three leading spaces").unwrap();
        assert_eq!(
            msg,
            ClientMsg::Chat {
                nick: nick("bob"),
                text: Text::new("  three leading spaces").unwrap()
            }
        );
    }

    #[test]
    fn errors() {
        assert_eq!(ClientMsg::parse(b""), Err(ParseError::Empty));
        assert_eq!(ClientMsg::parse(b"\n"), Err(ParseError::Empty));
        assert_eq!(ClientMsg::parse(b"\xff\xfe"), Err(ParseError::NotUtf8));
        assert_eq!(
            ClientMsg::parse(b"X y"),
            Err(ParseError::UnknownVerb("X".into()))
        );
        assert_eq!(
            ClientMsg::parse(b"n bob"),
            Err(ParseError::UnknownVerb("n".into()))
        );
        assert_eq!(
            ClientMsg::parse(b"N"),
            Err(ParseError::MissingField {
                verb: "N",
                field: "nickname"
            })
        );
        assert_eq!(ClientMsg::parse(b"N "), Err(ParseError::NickEmpty));
        assert_eq!(
            ClientMsg::parse(b"N bob smith jones"),
            Err(ParseError::NickChar(' ' as u32))
        );
        assert_eq!(
            ClientMsg::parse(b"M bob"),
            Err(ParseError::MissingField {
                verb: "M",
                field: "message"
            })
        );
        assert_eq!(ClientMsg::parse(b"M bob "), Err(ParseError::TextEmpty));
        assert_eq!(
            ClientMsg::parse(b"M bob \x1b[2J"),
            Err(ParseError::ControlChar(0x1b))
        );
        assert_eq!(
            ClientMsg::parse(b"M bob a\nb"),
            Err(ParseError::ControlChar(0x0a))
        );
        assert_eq!(
            ClientMsg::parse(b"WHO x"),
            Err(ParseError::ExtraField("WHO"))
        );
        assert_eq!(
            ClientMsg::parse(b"RESEND 1"),
            Err(ParseError::MissingField {
                verb: "RESEND",
                field: "to"
            })
        );
        assert_eq!(
            ClientMsg::parse(b"ACK 01"),
            Err(ParseError::BadNumber("pid"))
        );
        assert_eq!(
            ClientMsg::parse(b"HELLO udpchat/1 bob xyz"),
            Err(ParseError::BadCookie)
        );
        let huge = vec![b'a'; MAX_DATAGRAM + 1];
        assert_eq!(
            ClientMsg::parse(&huge),
            Err(ParseError::TooLong(MAX_DATAGRAM + 1))
        );
    }

    #[test]
    fn say_parses_and_keeps_its_text_exactly() {
        let msg = ClientMsg::parse(b"SAY 7  two leading, trailing  \r\n").unwrap();
        assert_eq!(
            msg,
            ClientMsg::Say {
                id: 7,
                text: Text::new(" two leading, trailing  ").unwrap()
            }
        );
        assert_eq!(msg.encode(), b"SAY 7  two leading, trailing  ");
        assert_eq!(msg.claimed_nick(), None);
        let max = format!("SAY {} 你好", u64::MAX);
        assert!(ClientMsg::parse(max.as_bytes()).is_ok());
    }

    #[test]
    fn say_errors() {
        assert_eq!(
            ClientMsg::parse(b"SAY"),
            Err(ParseError::MissingField {
                verb: "SAY",
                field: "id"
            })
        );
        assert_eq!(
            ClientMsg::parse(b"SAY 1"),
            Err(ParseError::MissingField {
                verb: "SAY",
                field: "message"
            })
        );
        assert_eq!(ClientMsg::parse(b"SAY 1 "), Err(ParseError::TextEmpty));
        assert_eq!(
            ClientMsg::parse(b"SAY 01 hi"),
            Err(ParseError::BadNumber("id"))
        );
        assert_eq!(
            ClientMsg::parse(b"SAY alice hi"),
            Err(ParseError::BadNumber("id"))
        );
        assert_eq!(
            ClientMsg::parse(b"SAY 18446744073709551616 hi"),
            Err(ParseError::BadNumber("id"))
        );
        assert_eq!(
            ClientMsg::parse(b"SAY 1 a\x07"),
            Err(ParseError::ControlChar(0x07))
        );
    }

    #[test]
    fn hello_without_cookie_is_padded() {
        let hello = ClientMsg::Hello {
            version: Token::new(crate::VERSION).unwrap(),
            nick: nick("a"),
            cookie: None,
            since: None,
            resume: None,
            key: None,
            code: None,
        };
        let bytes = hello.encode();
        assert!(bytes.len() >= MIN_HELLO_LEN);
        assert_eq!(ClientMsg::parse(&bytes), Ok(hello));
    }

    #[test]
    fn join_codes_in_both_dialects() {
        let code = JoinCode::new("Mx42").unwrap();
        assert_eq!(
            ClientMsg::parse(b"N alice Mx42\n"),
            Ok(ClientMsg::Join(nick("alice"), Some(code.clone())))
        );
        assert_eq!(
            ClientMsg::Join(nick("alice"), Some(code.clone())).encode(),
            b"N alice Mx42"
        );
        assert_eq!(
            ClientMsg::parse(b"Q alice Mx42"),
            Ok(ClientMsg::Quit(nick("alice"), Some(code.clone())))
        );
        assert!(code.matches(&JoinCode::new("mX42").unwrap()));
        // What a course client sends re-encodes exactly (the fuzz contract).
        for datagram in [&b"N alice Mx42"[..], b"Q alice Mx42", b"M alice Mx42 hi"] {
            crate::fuzzing::check_client(datagram);
        }
        assert_eq!(
            ClientMsg::parse(b"N alice mx-42"),
            Err(ParseError::NickChar(' ' as u32))
        );
        let hello = ClientMsg::Hello {
            version: Token::new(crate::VERSION).unwrap(),
            nick: nick("bob"),
            cookie: None,
            since: None,
            resume: None,
            key: None,
            code: Some(code),
        };
        let bytes = hello.encode();
        assert!(bytes.starts_with(b"HELLO udpchat/1 bob - code=Mx42 ="));
        assert_eq!(ClientMsg::parse(&bytes), Ok(hello));
        assert_eq!(
            ClientMsg::parse(b"HELLO udpchat/1 bob 00000000000000ff code=a.b"),
            Err(ParseError::BadCode)
        );
    }

    #[test]
    fn hello_carries_the_client_key_before_the_padding() {
        let key = SessionKey::parse("0123456789abcdef").unwrap();
        let hello = ClientMsg::Hello {
            version: Token::new(crate::VERSION).unwrap(),
            nick: nick("alice"),
            cookie: None,
            since: Some(4),
            resume: Some(Token::new("t0k3n").unwrap()),
            key: Some(key),
            code: None,
        };
        let bytes = hello.encode();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with("HELLO udpchat/1 alice - since=4 resume=t0k3n key=0123456789abcdef ="),
            "{text}"
        );
        assert!(bytes.len() >= MIN_HELLO_LEN);
        assert_eq!(ClientMsg::parse(&bytes), Ok(hello));
        let with_cookie = b"HELLO udpchat/1 bob 00000000000000ff key=fedcba9876543210";
        match ClientMsg::parse(with_cookie) {
            Ok(ClientMsg::Hello { key, cookie, .. }) => {
                assert_eq!(key, Some(SessionKey::from_u64(0xfedc_ba98_7654_3210)));
                assert_eq!(cookie, Some(Cookie(0xff)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ClientMsg::parse(b"HELLO udpchat/1 bob 00000000000000ff key=FEDCBA9876543210"),
            Err(ParseError::BadKey)
        );
        assert_eq!(
            ClientMsg::parse(b"HELLO udpchat/1 bob 00000000000000ff key=12"),
            Err(ParseError::BadKey)
        );
        // Padding may follow the key; two paddings may not.
        assert!(ClientMsg::parse(b"HELLO udpchat/1 bob - key=fedcba9876543210 ===").is_ok());
        assert_eq!(
            ClientMsg::parse(b"HELLO udpchat/1 bob - key=fedcba9876543210 == =="),
            Err(ParseError::ExtraField("HELLO"))
        );
    }

    #[test]
    fn seen_parses_one_sequence_number() {
        assert_eq!(ClientMsg::parse(b"SEEN 12"), Ok(ClientMsg::Seen(12)));
        assert_eq!(ClientMsg::Seen(12).encode(), b"SEEN 12");
        assert_eq!(
            ClientMsg::parse(b"SEEN"),
            Err(ParseError::MissingField {
                verb: "SEEN",
                field: "seq"
            })
        );
        assert_eq!(
            ClientMsg::parse(b"SEEN 1 2"),
            Err(ParseError::ExtraField("SEEN"))
        );
        assert_eq!(
            ClientMsg::parse(b"SEEN 012"),
            Err(ParseError::BadNumber("seq"))
        );
    }

    #[test]
    fn hand_verbs_parse_with_and_without_a_question() {
        assert_eq!(ClientMsg::parse(b"HAND"), Ok(ClientMsg::Hand(None)));
        assert_eq!(ClientMsg::parse(b"H\n"), Ok(ClientMsg::ClassicHand(None)));
        assert_eq!(ClientMsg::parse(b"H \n"), Ok(ClientMsg::ClassicHand(None)));
        let q = Text::new("what is  a socket?").unwrap();
        let hand = ClientMsg::parse(b"HAND what is  a socket?").unwrap();
        assert_eq!(hand, ClientMsg::Hand(Some(q.clone())));
        assert_eq!(hand.encode(), b"HAND what is  a socket?");
        let classic = ClientMsg::parse("H 老师 what is a socket?".as_bytes()).unwrap();
        assert!(matches!(classic, ClientMsg::ClassicHand(Some(_))));
        assert_eq!(
            ClientMsg::parse(b"H a\x1b[2J"),
            Err(ParseError::ControlChar(0x1b))
        );
        assert_eq!(ClientMsg::parse(b"HAND").unwrap().encode(), b"HAND");
        assert_eq!(
            ClientMsg::ClassicHand(Some(q)).encode(),
            b"H what is  a socket?"
        );
    }
}
