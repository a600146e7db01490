//! The two dialects a client may speak, how the room decides which one to
//! answer a datagram in, and rendering a message for a dialect.
//!
//! Replies to non-members follow a guess from the datagram: `HELLO`,
//! `PMSG`, `SAY`, `ACK`, `RESEND` and other bare datagrams get the
//! structured form (so an evicted structured client can parse its
//! `ERROR not-joined`); newline-terminated datagrams and `N` get classic
//! lines. A member is always answered in its own dialect, except that a
//! `HELLO` is always answered in the structured one.

use std::net::SocketAddr;
use std::rc::Rc;

use udpchat_proto::{
    classic, strip_line_ending, ClientMsg, Lang, LineEnding, RelayMsg, SessionKey,
};

/// The dialect a member joined with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Joined with `N`; gets human-readable lines, with `\n` if it sent one.
    Classic(LineEnding),
    /// Joined with `HELLO`; gets `RelayMsg` encodings.
    Structured,
}

/// Who a reply goes to: a member (known dialect, no budget) or a stranger
/// (dialect guessed from its datagram; the global budget applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recipient {
    Member(Dialect),
    Stranger(Dialect),
}

/// One datagram as the handlers see it: when it came, from whom, and how
/// to answer it. Decided once per datagram, before any handler runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// Milliseconds since the room started.
    pub(crate) now_ms: u64,
    /// The sender.
    pub(crate) from: SocketAddr,
    /// How replies (and refusals) to the sender go out.
    pub(crate) reply: Recipient,
    /// The datagram's length in bytes (a reply must never be longer than
    /// an unvalidated request).
    pub(crate) len: usize,
    /// The client's session key that prefixes every structured reply
    /// (`@<key> `): a keyed member's, or that of a cookie-validated `HELLO`.
    pub(crate) key: Option<SessionKey>,
}

impl Context {
    /// The context of a datagram from `from`, whose dialect is `member` if
    /// it is a member; a stranger is answered as [`guess`] says.
    pub(crate) fn new(
        now_ms: u64,
        from: SocketAddr,
        member: Option<Dialect>,
        key: Option<SessionKey>,
        bytes: &[u8],
    ) -> Self {
        let reply = match member {
            Some(dialect) => Recipient::Member(dialect),
            None => Recipient::Stranger(guess(bytes)),
        };
        Context {
            now_ms,
            from,
            reply,
            len: bytes.len(),
            key,
        }
    }

    /// Replies go out prefixed with `key` (a cookie-validated `HELLO`'s).
    pub(crate) fn with_key(self, key: Option<SessionKey>) -> Self {
        Context { key, ..self }
    }

    /// Refines the reply once the command is known: a `HELLO` is always
    /// answered in the structured dialect, and a stranger's `N` in the
    /// dialect (line ending) it asks to join with.
    pub(crate) fn for_command(self, msg: &ClientMsg, bytes: &[u8]) -> Self {
        let reply = match (msg, self.reply) {
            (ClientMsg::Hello { .. }, Recipient::Member(_)) => {
                Recipient::Member(Dialect::Structured)
            }
            (ClientMsg::Hello { .. }, Recipient::Stranger(_)) => {
                Recipient::Stranger(Dialect::Structured)
            }
            (ClientMsg::Join(..), Recipient::Stranger(_)) => {
                Recipient::Stranger(Dialect::Classic(strip_line_ending(bytes).1))
            }
            (_, reply) => reply,
        };
        Context { reply, ..self }
    }
}

/// How to answer a non-member: the structured verbs and bare datagrams get
/// the structured form (which a structured client can parse and a person
/// can still read); newline-terminated datagrams and `N` come from classic
/// clients and get classic lines.
pub(crate) fn guess(bytes: &[u8]) -> Dialect {
    let verb = bytes.split(|&b| b == b' ').next().unwrap_or_default();
    let (verb, _) = strip_line_ending(verb);
    if matches!(verb, b"HELLO" | b"PMSG" | b"SAY" | b"ACK" | b"RESEND") {
        return Dialect::Structured;
    }
    match strip_line_ending(bytes).1 {
        LineEnding::Newline => Dialect::Classic(LineEnding::Newline),
        LineEnding::Bare if verb == b"N" => Dialect::Classic(LineEnding::Bare),
        LineEnding::Bare => Dialect::Structured,
    }
}

/// Says whether a datagram that is not a command is something a relay sends:
/// a structured message, or a classic line (`OK`, `* ...`, `[host] ...`,
/// `ERROR ...`, `PONG`, `nick: text`). Such datagrams get no error reply.
pub(crate) fn looks_like_relay_output(bytes: &[u8]) -> bool {
    let (line, _) = strip_line_ending(bytes);
    if RelayMsg::parse(line).is_ok() {
        return true;
    }
    let first = line.split(|&b| b == b' ').next().unwrap_or_default();
    matches!(first, b"OK" | b"*" | b"ERROR" | b"PONG")
        || first.starts_with(b"[")
        || first.starts_with("错误".as_bytes())
        || (first.len() > 1 && first.ends_with(b":"))
}

/// Encodes messages for the wire, reusing one buffer.
pub(crate) struct Renderer {
    lang: Lang,
    scratch: Vec<u8>,
}

impl Renderer {
    pub(crate) fn new(lang: Lang) -> Renderer {
        Renderer {
            lang,
            scratch: Vec::with_capacity(1024),
        }
    }

    /// Renders `msg` for one dialect. `None` for messages classic has no
    /// line for (`COOKIE`, `GONE`).
    pub(crate) fn render(&mut self, msg: &RelayMsg, dialect: Dialect) -> Option<Rc<[u8]>> {
        self.scratch.clear();
        match dialect {
            Dialect::Structured => msg.encode_into(&mut self.scratch),
            Dialect::Classic(line_ending) => {
                self.scratch
                    .extend_from_slice(classic::render(msg, self.lang)?.as_bytes());
                if line_ending == LineEnding::Newline {
                    self.scratch.push(b'\n');
                }
            }
        }
        Some(Rc::from(&self.scratch[..]))
    }

    /// Renders `msg` for one recipient: in its dialect, and for a keyed
    /// structured one after its `@<key> ` prefix.
    pub(crate) fn render_for(
        &mut self,
        msg: &RelayMsg,
        dialect: Dialect,
        key: Option<SessionKey>,
    ) -> Option<Rc<[u8]>> {
        match (dialect, key) {
            (Dialect::Structured, Some(key)) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(&key.prefix());
                msg.encode_into(&mut self.scratch);
                Some(Rc::from(&self.scratch[..]))
            }
            _ => self.render(msg, dialect),
        }
    }
}

/// Which of the three renderings (structured, bare classic, newline
/// classic) a dialect gets: a broadcast renders each at most once.
pub(crate) fn rendering_index(dialect: Dialect) -> usize {
    match dialect {
        Dialect::Structured => 0,
        Dialect::Classic(LineEnding::Bare) => 1,
        Dialect::Classic(LineEnding::Newline) => 2,
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use udpchat_proto::{ErrorCode, Lang, RelayMsg};

    use crate::testing::{to, Harness};
    use crate::Config;

    #[test]
    fn newline_classic_member_gets_every_line_with_newline() {
        let mut h = Harness::new();
        let sent = h.send(1, "N alice\r\n");
        assert_eq!(to(&sent, 1), ["OK\n", "* alice joined\n"]);
        let sent = h.send(1, "M alice hi");
        assert_eq!(to(&sent, 1), ["alice: hi\n"]);
    }

    #[test]
    fn bare_classic_member_gets_bare_ok() {
        let mut h = Harness::new();
        let sent = h.send(1, "N alice");
        assert_eq!(to(&sent, 1)[0], "OK");
    }

    #[test]
    fn evicted_structured_client_gets_a_parseable_not_joined() {
        let mut h = Harness::new();
        let sent = h.send(1, "M alice hi");
        let reply = RelayMsg::parse(sent[0].1.as_bytes()).unwrap();
        assert!(matches!(
            reply,
            RelayMsg::Error {
                code: ErrorCode::NotJoined,
                ..
            }
        ));
    }

    #[test]
    fn relay_output_gets_no_error_reply() {
        // Two relays that list each other as members must not answer each
        // other's lines with errors forever.
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        for line in [
            "OK",
            "* alice joined\n",
            "[host] hello",
            "alice: hi there",
            "ERROR unknown-verb: unknown command",
            "错误 unknown-verb: 未知命令",
            "PONG",
            "EVENT 3 live CHAT bob hi",
            "ERROR not-joined you have not joined; send N <nick> first",
        ] {
            assert!(h.send(1, line).is_empty(), "{line:?} was answered");
            assert!(h.send(9, line).is_empty(), "{line:?} was answered");
        }
        // An ordinary unknown command still gets its error.
        assert_eq!(h.send(1, "HELP").len(), 1);
    }

    #[test]
    fn chinese_room_renders_chinese_lines_and_reasons() {
        let mut h = Harness::with(Config {
            lang: Lang::Zh,
            ..Config::default()
        });
        let sent = h.send(1, "N 小明");
        assert_eq!(to(&sent, 1), ["OK", "* 小明 加入了聊天室"]);
        let sent = h.send(2, "N 小明");
        assert_eq!(
            to(&sent, 2),
            ["错误 nick-taken: 昵称已被占用，请换一个 (小明)"]
        );
        let sent = h.send(3, "M 小明 你好\n");
        assert!(to(&sent, 3)[0].starts_with("错误 not-joined: 你尚未加入"));
    }

    #[test]
    fn fanned_out_event_shares_one_allocation_per_rendering() {
        let mut h = Harness::new();
        for n in 1..=5 {
            h.join_classic(n, &format!("bare{n}"));
            h.send(10 + n, &format!("N nl{n}\n"));
            h.join_structured(20 + n, &format!("s{n}"));
        }
        h.send(1, "M bare1 hello");
        let transmits = &h.out.transmits;
        assert_eq!(transmits.len(), 15);
        let mut distinct: Vec<&Rc<[u8]>> = Vec::new();
        for t in transmits {
            if !distinct.iter().any(|d| Rc::ptr_eq(d, &t.bytes)) {
                distinct.push(&t.bytes);
            }
        }
        assert_eq!(distinct.len(), 3);
        for d in distinct {
            assert_eq!(Rc::strong_count(d), 5);
        }
    }

    #[test]
    fn structured_ping_gets_pong_with_last_seq_and_token() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        assert_eq!(to(&h.send(1, "PING t1"), 1), ["PONG 1 t1"]);
        assert_eq!(to(&h.send(1, "PING"), 1), ["PONG 1"]);
    }

    #[test]
    fn classic_ping_gets_pong_without_seq() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        assert_eq!(to(&h.send(1, "PING x"), 1), ["PONG x"]);
    }

    #[test]
    fn stranger_ping_gets_pong() {
        let mut h = Harness::new();
        assert_eq!(to(&h.send(1, "PING x"), 1), ["PONG 0 x"]);
        assert_eq!(to(&h.send(1, "PING x\n"), 1), ["PONG x\n"]);
    }
}
