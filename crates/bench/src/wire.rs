//! What the benchmark sends and how it reads what comes back.
//!
//! Every measured chat message carries `~<tag><id>.<ns>` at the start of its
//! text: a tag byte (`m` measured, `f` flood), the message id, and the send
//! time in nanoseconds since the run's start on the process's one monotonic
//! clock. Nicknames cannot hold `~`, so the first `~` in a delivered chat line
//! (classic `nick: text` or structured `EVENT n live CHAT nick text`) starts
//! the marker. The rest of the text is padding to the requested size.

use std::io::Write;

/// Tag of measured messages.
pub const TAG_MEASURED: u8 = b'm';
/// Tag of the flooder's messages.
pub const TAG_FLOOD: u8 = b'f';

/// A datagram from the relay, as far as the benchmark cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A chat message one of our clients sent.
    Chat {
        /// [`TAG_MEASURED`] or [`TAG_FLOOD`].
        tag: u8,
        /// The message id.
        id: u64,
        /// Send time, ns since the run's start.
        sent_ns: u64,
    },
    /// Classic `OK` or structured `WELCOME ...`: the join is complete.
    Joined,
    /// Structured `COOKIE <c>`: echo `c` in the next `HELLO`.
    Cookie(&'a str),
    /// `ERROR <code>...` (either dialect, either language): the code.
    Error(&'a str),
    /// Anything else (join and leave events, `PONG`, other chat).
    Other,
}

/// Classifies one datagram without allocating.
pub fn classify(d: &[u8]) -> Incoming<'_> {
    if d.starts_with(b"OK") && d[2..].iter().all(|&b| b == b'\n' || b == b'\r') {
        return Incoming::Joined;
    }
    if d.starts_with(b"WELCOME ") {
        return Incoming::Joined;
    }
    if let Some(rest) = d.strip_prefix(b"COOKIE ") {
        let rest = trim_line_end(rest);
        return match std::str::from_utf8(rest) {
            Ok(c) if c.len() == 16 => Incoming::Cookie(c),
            _ => Incoming::Other,
        };
    }
    let error_rest = d
        .strip_prefix(b"ERROR ")
        .or_else(|| d.strip_prefix("错误 ".as_bytes()));
    if let Some(rest) = error_rest {
        let end = rest
            .iter()
            .position(|&b| b == b' ' || b == b':' || b == b'\n')
            .unwrap_or(rest.len());
        return Incoming::Error(std::str::from_utf8(&rest[..end]).unwrap_or("?"));
    }
    if let Some(pos) = d.iter().position(|&b| b == b'~') {
        if let Some(chat) = parse_marker(&d[pos + 1..]) {
            return chat;
        }
    }
    Incoming::Other
}

fn trim_line_end(mut d: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = d {
        d = rest;
    }
    d
}

fn parse_marker(d: &[u8]) -> Option<Incoming<'static>> {
    let (&tag, rest) = d.split_first()?;
    if tag != TAG_MEASURED && tag != TAG_FLOOD {
        return None;
    }
    let (id, rest) = parse_u64(rest)?;
    let rest = rest.strip_prefix(b".")?;
    let (sent_ns, _) = parse_u64(rest)?;
    Some(Incoming::Chat { tag, id, sent_ns })
}

fn parse_u64(d: &[u8]) -> Option<(u64, &[u8])> {
    let digits = d.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in &d[..digits] {
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((v, &d[digits..]))
}

/// Writes `M <nick> ~<tag><id>.<ns>` padded with `x` so that the classic
/// line the relay fans out (`nick: text`) is `line_bytes` long where it can
/// be. Clears `out` first; reuses its allocation.
pub fn chat(out: &mut Vec<u8>, nick: &str, tag: u8, id: u64, sent_ns: u64, line_bytes: usize) {
    out.clear();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "M {nick} ~{}{id}.{sent_ns}", tag as char);
    let text_len = out.len() - (3 + nick.len());
    let line_len = nick.len() + 2 + text_len;
    let pad = line_bytes
        .saturating_sub(line_len)
        .min(udpchat_proto::MAX_TEXT_BYTES - text_len);
    out.extend(std::iter::repeat_n(b'x', pad));
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_proto::{ClientMsg, Nick, RelayMsg, RoomEvent, Text};

    #[test]
    fn chat_round_trips_through_both_renderings() {
        let mut out = Vec::new();
        chat(&mut out, "b1f-17", TAG_MEASURED, 42, 123_456_789, 64);
        let msg = ClientMsg::parse(&out).unwrap();
        let ClientMsg::Chat { nick, text } = msg else {
            panic!("not a chat: {msg:?}")
        };
        let event = RoomEvent::Chat { nick, text };
        let classic = format!("b1f-17: {}", text_of(&event));
        assert_eq!(classic.len(), 64);
        let structured = RelayMsg::Event {
            seq: 9,
            origin: udpchat_proto::Origin::Live,
            ago: None,
            event,
        }
        .encode();
        let expected = Incoming::Chat {
            tag: TAG_MEASURED,
            id: 42,
            sent_ns: 123_456_789,
        };
        assert_eq!(classify(classic.as_bytes()), expected);
        assert_eq!(classify(&structured), expected);
    }

    fn text_of(event: &RoomEvent) -> &str {
        match event {
            RoomEvent::Chat { text, .. } => text.as_str(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn long_markers_are_not_padded_below_their_length() {
        let mut out = Vec::new();
        chat(&mut out, "n", TAG_FLOOD, u64::MAX, u64::MAX, 8);
        assert!(ClientMsg::parse(&out).is_ok());
        assert_eq!(
            classify(format!("n: {}", std::str::from_utf8(&out[4..]).unwrap()).as_bytes()),
            Incoming::Chat {
                tag: TAG_FLOOD,
                id: u64::MAX,
                sent_ns: u64::MAX
            }
        );
    }

    #[test]
    fn replies_are_recognised() {
        assert_eq!(classify(b"OK"), Incoming::Joined);
        assert_eq!(classify(b"OK\n"), Incoming::Joined);
        assert_eq!(classify(b"OKAY"), Incoming::Other);
        assert_eq!(classify(b"WELCOME udpchat/1 a 0 15 60"), Incoming::Joined);
        assert_eq!(
            classify(b"COOKIE 0123456789abcdef"),
            Incoming::Cookie("0123456789abcdef")
        );
        assert_eq!(
            classify(b"ERROR room-full: the room is full"),
            Incoming::Error("room-full")
        );
        assert_eq!(
            classify(b"ERROR rate-limited slow down"),
            Incoming::Error("rate-limited")
        );
        assert_eq!(
            classify("错误 nick-taken: 昵称已被占用".as_bytes()),
            Incoming::Error("nick-taken")
        );
        assert_eq!(classify(b"* b1-3 joined"), Incoming::Other);
        assert_eq!(classify(b"alice: ~zzz"), Incoming::Other);
        assert_eq!(classify(b"alice: ~m12"), Incoming::Other);
        assert_eq!(classify(b""), Incoming::Other);
    }

    #[test]
    fn chat_text_is_valid_for_the_relay() {
        let mut out = Vec::new();
        for size in [0, 64, 200, 2000] {
            chat(&mut out, "abc", TAG_MEASURED, 7, 8, size);
            let _ = Text::new(std::str::from_utf8(&out[6..]).unwrap()).unwrap();
            assert!(out.len() <= udpchat_proto::MAX_DATAGRAM);
            let _ = Nick::new("abc").unwrap();
        }
    }
}
