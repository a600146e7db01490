//! Relay-to-client datagrams of the structured dialect.

use crate::fields::{split_field, Fields};
use crate::{Cookie, ErrorCode, Nick, ParseError, SessionKey, Text, Token, MAX_DATAGRAM};

/// How a room event reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Sent as it happened.
    Live,
    /// Sent again from history, answering `RESEND`.
    Resend,
    /// Recent history sent to a member that just joined.
    History,
}

/// Why a member left the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// It sent `Q`.
    Quit,
    /// It was silent longer than the idle timeout.
    Timeout,
    /// The operating system reported its port unreachable.
    Unreachable,
    /// The operator removed it.
    Kicked,
}

/// Why the relay ends a member's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByeCode {
    /// The relay is shutting down.
    Shutdown,
    /// The operator removed this member.
    Kicked,
    /// The member was silent longer than the idle timeout.
    Timeout,
}

macro_rules! keywords {
    ($ty:ident, $field:literal, $($variant:ident = $word:literal),*) => {
        impl $ty {
            /// The keyword on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $word,)* }
            }

            fn parse(s: &str) -> Result<$ty, ParseError> {
                match s {
                    $($word => Ok($ty::$variant),)*
                    _ => Err(ParseError::BadKeyword { field: $field, value: s.chars().take(16).collect() }),
                }
            }
        }
    };
}

keywords!(
    Origin,
    "origin",
    Live = "live",
    Resend = "resend",
    History = "history"
);
keywords!(
    LeaveReason,
    "reason",
    Quit = "quit",
    Timeout = "timeout",
    Unreachable = "unreachable",
    Kicked = "kicked"
);
keywords!(
    ByeCode,
    "bye code",
    Shutdown = "shutdown",
    Kicked = "kicked",
    Timeout = "timeout"
);

/// What a `HAND` datagram tells the member that raised its hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandNotice {
    /// `HAND up <position>`: your hand is up; you are `position`th in line
    /// (from 1).
    Up {
        /// Your place in the queue, from 1.
        position: u32,
    },
    /// `HAND called`: the teacher calls on you (your hand is down now).
    Called,
}

/// Something that happened in the room. Room events are numbered and kept in
/// history; every member sees the same numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoomEvent {
    /// A member said something.
    Chat {
        /// Who.
        nick: Nick,
        /// What, exactly.
        text: Text,
    },
    /// A member joined.
    Join(Nick),
    /// A member came back from a new address (a restarted client) and took
    /// over its membership: no `LEAVE`, no `JOIN`.
    Reconnect(Nick),
    /// A member left.
    Leave {
        /// Who.
        nick: Nick,
        /// Why.
        reason: LeaveReason,
    },
    /// A member changed nickname.
    Rename {
        /// The old nickname.
        old: Nick,
        /// The new nickname.
        new: Nick,
    },
    /// The operator (the teacher at the relay's console) said something.
    Host(Text),
    /// A member's action: a chat text `/me <text>` (`* alice waves`).
    Action {
        /// Who.
        nick: Nick,
        /// What it does (the text after `/me `).
        text: Text,
    },
    /// The host turned moderated mode on (`true`: only members with a
    /// voice speak to the room) or off.
    Moderated(bool),
    /// An announcement from the host, which structured clients confirm
    /// with `SEEN <seq>`.
    Announce(Text),
}

/// A datagram the relay sends to a structured client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RelayMsg {
    /// `COOKIE <cookie>`: echo this in `HELLO` to prove the address is yours.
    Cookie(Cookie),
    /// `WELCOME <version> <nick> <last-seq> <ping-interval> <idle-timeout>
    /// [<history-from> [<resume> [<key>]]]`: the join is complete.
    Welcome {
        /// The dialect version.
        version: Token,
        /// The nickname the member holds.
        nick: Nick,
        /// The member's join point: the newest room event's sequence number
        /// when this membership began (0 if none yet). A repeated `WELCOME`
        /// states the same number; every event after it is the member's.
        last_seq: u64,
        /// Seconds between the client's pings.
        ping_interval: u32,
        /// Seconds of silence after which the relay evicts the member.
        idle_timeout: u32,
        /// The first event of the history that comes with this membership:
        /// events `history_from..=last_seq` are sent with origin `history`
        /// (none if `history_from > last_seq`). Absent from older relays.
        history_from: Option<u64>,
        /// The resume token of this membership (`HELLO ... resume=<token>`
        /// takes it over from a new address). Needs `history_from`.
        resume: Option<Token>,
        /// The relay's session key for this membership: the client prefixes
        /// every datagram after this one with `@<key> `. Sent to a client
        /// that gave its own key in `HELLO`; needs `resume`.
        key: Option<SessionKey>,
    },
    /// `EVENT <seq> <origin> [ago=<seconds>] <kind> ...`: a numbered room
    /// event.
    Event {
        /// The relay-assigned sequence number, from 1, increasing by 1.
        seq: u64,
        /// Live, resent, or history on join.
        origin: Origin,
        /// `ago=<seconds>`: how long before this datagram the relay
        /// numbered the event (history and resent events; absent on live
        /// ones and from older relays).
        ago: Option<u32>,
        /// What happened.
        event: RoomEvent,
    },
    /// `PRIVATE <pid> <from> <text>`: a private message for this member only.
    /// Acknowledge with `ACK <pid>`.
    Private {
        /// The relay-assigned private message id.
        pid: u64,
        /// The sender.
        from: Nick,
        /// The message.
        text: Text,
    },
    /// `SENT <id>|- <to> <text>`: the relay delivered your private message.
    Sent {
        /// The client's `PMSG` id, or `None` for `MSG`.
        id: Option<u64>,
        /// The recipient.
        to: Nick,
        /// The message.
        text: Text,
    },
    /// `WHO <page> <pages> <count> <nick>...`: who is online, in pages.
    Who {
        /// This page, from 1.
        page: u32,
        /// How many pages.
        pages: u32,
        /// How many members in all.
        count: u32,
        /// The nicknames on this page.
        nicks: Vec<Nick>,
    },
    /// `PONG <last-seq> [<token>]`: answer to `PING`, with the newest room
    /// event's sequence number so a client notices a lost last message.
    Pong {
        /// The newest sequence number.
        last_seq: u64,
        /// The ping's token, echoed.
        token: Option<Token>,
    },
    /// `GONE <from> <to>`: those room events are no longer in history.
    Gone {
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
    },
    /// `ERROR <code> <reason>`: a request was refused.
    Error {
        /// The stable code.
        code: ErrorCode,
        /// Human-readable reason.
        reason: Text,
    },
    /// `HAND up <position>` / `HAND called`: about this member's raised
    /// hand, for it only.
    Hand(HandNotice),
    /// `VOICE on` / `VOICE off`: the host gave this member a voice (it may
    /// speak in moderated mode) or took it away; to it only.
    Voice(bool),
    /// `BYE <code> <reason>`: the relay ends this member's session.
    Bye {
        /// Why.
        code: ByeCode,
        /// Human-readable reason.
        reason: Text,
    },
}

impl RelayMsg {
    /// Parses a datagram of the structured dialect. Any bytes are accepted
    /// without panicking.
    pub fn parse(bytes: &[u8]) -> Result<RelayMsg, ParseError> {
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
            "COOKIE" => {
                let mut f = Fields::new("COOKIE", rest);
                let cookie = Cookie::parse(f.next("cookie")?)?;
                f.end()?;
                RelayMsg::Cookie(cookie)
            }
            "WELCOME" => {
                let mut f = Fields::new("WELCOME", rest);
                let version = Token::new(f.next("version")?)?;
                let nick = f.nick("nickname")?;
                let last_seq = f.number("last-seq")?;
                let ping_interval = small(f.number("ping-interval")?, "ping-interval")?;
                let idle_timeout = small(f.number("idle-timeout")?, "idle-timeout")?;
                let history_from = f
                    .optional()
                    .map(|n| crate::fields::parse_number(n, "history-from"))
                    .transpose()?;
                let resume = match history_from {
                    Some(_) => f.optional().map(Token::new).transpose()?,
                    None => None,
                };
                let key = match resume {
                    Some(_) => f.optional().map(SessionKey::parse).transpose()?,
                    None => None,
                };
                f.end()?;
                RelayMsg::Welcome {
                    version,
                    nick,
                    last_seq,
                    ping_interval,
                    idle_timeout,
                    history_from,
                    resume,
                    key,
                }
            }
            "EVENT" => {
                let mut f = Fields::new("EVENT", rest);
                let seq = f.number("seq")?;
                let origin = Origin::parse(f.next("origin")?)?;
                let mut kind = f.next("kind")?;
                let mut ago = None;
                if let Some(n) = kind.strip_prefix("ago=") {
                    ago = Some(small(crate::fields::parse_number(n, "ago")?, "ago")?);
                    kind = f.next("kind")?;
                }
                let event = match kind {
                    "CHAT" => {
                        let nick = f.nick("nickname")?;
                        RoomEvent::Chat {
                            nick,
                            text: f.text("message")?,
                        }
                    }
                    "JOIN" => {
                        let nick = f.nick("nickname")?;
                        f.end()?;
                        RoomEvent::Join(nick)
                    }
                    "RECONNECT" => {
                        let nick = f.nick("nickname")?;
                        f.end()?;
                        RoomEvent::Reconnect(nick)
                    }
                    "LEAVE" => {
                        let nick = f.nick("nickname")?;
                        let reason = LeaveReason::parse(f.next("reason")?)?;
                        f.end()?;
                        RoomEvent::Leave { nick, reason }
                    }
                    "RENAME" => {
                        let old = f.nick("old nickname")?;
                        let new = f.nick("new nickname")?;
                        f.end()?;
                        RoomEvent::Rename { old, new }
                    }
                    "HOST" => RoomEvent::Host(f.text("message")?),
                    "ACTION" => {
                        let nick = f.nick("nickname")?;
                        RoomEvent::Action {
                            nick,
                            text: f.text("message")?,
                        }
                    }
                    "MODERATED" => {
                        let on = on_off(f.next("mode")?)?;
                        f.end()?;
                        RoomEvent::Moderated(on)
                    }
                    "ANNOUNCE" => RoomEvent::Announce(f.text("message")?),
                    other => {
                        return Err(ParseError::BadKeyword {
                            field: "event kind",
                            value: other.chars().take(16).collect(),
                        })
                    }
                };
                RelayMsg::Event {
                    seq,
                    origin,
                    ago,
                    event,
                }
            }
            "PRIVATE" => {
                let mut f = Fields::new("PRIVATE", rest);
                let pid = f.number("pid")?;
                let from = f.nick("sender")?;
                RelayMsg::Private {
                    pid,
                    from,
                    text: f.text("message")?,
                }
            }
            "SENT" => {
                let mut f = Fields::new("SENT", rest);
                let id = match f.next("id")? {
                    "-" => None,
                    n => Some(crate::fields::parse_number(n, "id")?),
                };
                let to = f.nick("recipient")?;
                RelayMsg::Sent {
                    id,
                    to,
                    text: f.text("message")?,
                }
            }
            "WHO" => {
                let mut f = Fields::new("WHO", rest);
                let page = small(f.number("page")?, "page")?;
                let pages = small(f.number("pages")?, "pages")?;
                let count = small(f.number("count")?, "count")?;
                let mut nicks = Vec::new();
                while let Some(n) = f.optional() {
                    nicks.push(Nick::new(n)?);
                }
                RelayMsg::Who {
                    page,
                    pages,
                    count,
                    nicks,
                }
            }
            "PONG" => {
                let mut f = Fields::new("PONG", rest);
                let last_seq = f.number("last-seq")?;
                let token = f.optional().map(Token::new).transpose()?;
                f.end()?;
                RelayMsg::Pong { last_seq, token }
            }
            "GONE" => {
                let mut f = Fields::new("GONE", rest);
                let from = f.number("from")?;
                let to = f.number("to")?;
                f.end()?;
                RelayMsg::Gone { from, to }
            }
            "ERROR" => {
                let mut f = Fields::new("ERROR", rest);
                let word = f.next("code")?;
                let code = ErrorCode::from_wire(word).ok_or_else(|| ParseError::BadKeyword {
                    field: "error code",
                    value: word.chars().take(16).collect(),
                })?;
                RelayMsg::Error {
                    code,
                    reason: f.text("reason")?,
                }
            }
            "BYE" => {
                let mut f = Fields::new("BYE", rest);
                let code = ByeCode::parse(f.next("code")?)?;
                RelayMsg::Bye {
                    code,
                    reason: f.text("reason")?,
                }
            }
            "HAND" => {
                let mut f = Fields::new("HAND", rest);
                let notice = match f.next("notice")? {
                    "up" => HandNotice::Up {
                        position: small(f.number("position")?, "position")?,
                    },
                    "called" => HandNotice::Called,
                    other => {
                        return Err(ParseError::BadKeyword {
                            field: "hand notice",
                            value: other.chars().take(16).collect(),
                        })
                    }
                };
                f.end()?;
                RelayMsg::Hand(notice)
            }
            "VOICE" => {
                let mut f = Fields::new("VOICE", rest);
                let on = on_off(f.next("voice")?)?;
                f.end()?;
                RelayMsg::Voice(on)
            }
            other => return Err(ParseError::UnknownVerb(other.chars().take(16).collect())),
        };
        Ok(msg)
    }

    /// Encodes the datagram. The result is at most [`MAX_DATAGRAM`] bytes
    /// for every value except a `Who` page holding more nicknames than
    /// [`RelayMsg::who_pages`] puts on one.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out` (lets the relay reuse one buffer).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = match self {
            RelayMsg::Cookie(cookie) => write!(out, "COOKIE {cookie}"),
            RelayMsg::Welcome {
                version,
                nick,
                last_seq,
                ping_interval,
                idle_timeout,
                history_from,
                resume,
                key,
            } => {
                let _ = write!(
                    out,
                    "WELCOME {version} {nick} {last_seq} {ping_interval} {idle_timeout}"
                );
                // A token needs the field before it, a key the token.
                let from = history_from.unwrap_or(last_seq.saturating_add(1));
                match (history_from, resume, key) {
                    (_, Some(resume), Some(key)) => write!(out, " {from} {resume} {key}"),
                    // (Never parsed: a key comes only after a token.)
                    (_, None, Some(key)) => write!(out, " {from} - {key}"),
                    (_, Some(resume), None) => write!(out, " {from} {resume}"),
                    (Some(from), None, None) => write!(out, " {from}"),
                    (None, None, None) => Ok(()),
                }
            }
            RelayMsg::Event {
                seq,
                origin,
                ago,
                event,
            } => {
                let _ = write!(out, "EVENT {seq} {} ", origin.as_str());
                if let Some(ago) = ago {
                    let _ = write!(out, "ago={ago} ");
                }
                match event {
                    RoomEvent::Chat { nick, text } => write!(out, "CHAT {nick} {text}"),
                    RoomEvent::Join(nick) => write!(out, "JOIN {nick}"),
                    RoomEvent::Reconnect(nick) => write!(out, "RECONNECT {nick}"),
                    RoomEvent::Leave { nick, reason } => {
                        write!(out, "LEAVE {nick} {}", reason.as_str())
                    }
                    RoomEvent::Rename { old, new } => write!(out, "RENAME {old} {new}"),
                    RoomEvent::Host(text) => write!(out, "HOST {text}"),
                    RoomEvent::Action { nick, text } => write!(out, "ACTION {nick} {text}"),
                    RoomEvent::Moderated(on) => write!(out, "MODERATED {}", on_off_word(*on)),
                    RoomEvent::Announce(text) => write!(out, "ANNOUNCE {text}"),
                }
            }
            RelayMsg::Private { pid, from, text } => write!(out, "PRIVATE {pid} {from} {text}"),
            RelayMsg::Sent {
                id: Some(id),
                to,
                text,
            } => write!(out, "SENT {id} {to} {text}"),
            RelayMsg::Sent { id: None, to, text } => write!(out, "SENT - {to} {text}"),
            RelayMsg::Who {
                page,
                pages,
                count,
                nicks,
            } => {
                let _ = write!(out, "WHO {page} {pages} {count}");
                for nick in nicks {
                    out.push(b' ');
                    out.extend_from_slice(nick.as_str().as_bytes());
                }
                Ok(())
            }
            RelayMsg::Pong {
                last_seq,
                token: None,
            } => write!(out, "PONG {last_seq}"),
            RelayMsg::Pong {
                last_seq,
                token: Some(token),
            } => write!(out, "PONG {last_seq} {token}"),
            RelayMsg::Gone { from, to } => write!(out, "GONE {from} {to}"),
            RelayMsg::Error { code, reason } => write!(out, "ERROR {code} {reason}"),
            RelayMsg::Bye { code, reason } => write!(out, "BYE {} {reason}", code.as_str()),
            RelayMsg::Hand(HandNotice::Up { position }) => write!(out, "HAND up {position}"),
            RelayMsg::Hand(HandNotice::Called) => write!(out, "HAND called"),
            RelayMsg::Voice(on) => write!(out, "VOICE {}", on_off_word(*on)),
        };
    }

    /// Splits a member list into `WHO` pages that each fit in one datagram.
    /// An empty room gives one empty page.
    pub fn who_pages(nicks: &[Nick]) -> Vec<RelayMsg> {
        // Room for the longest header of either dialect ("WHO " and three
        // u32 numbers, 36 bytes, after an 18-byte session key prefix; the
        // classic "* online (N, page i/n): " in English or Chinese), and two
        // bytes per nickname for the classic ", ".
        const HEADER: usize = 64;
        let mut pages: Vec<Vec<Nick>> = vec![Vec::new()];
        let mut used = HEADER;
        for nick in nicks {
            let need = 2 + nick.as_str().len();
            if used + need > MAX_DATAGRAM {
                pages.push(Vec::new());
                used = HEADER;
            }
            used += need;
            pages.last_mut().expect("never empty").push(nick.clone());
        }
        let total = pages.len() as u32;
        let count = nicks.len() as u32;
        pages
            .into_iter()
            .enumerate()
            .map(|(i, nicks)| RelayMsg::Who {
                page: i as u32 + 1,
                pages: total,
                count,
                nicks,
            })
            .collect()
    }
}

/// `on` or `off`, the words of `MODERATED` and `VOICE`.
fn on_off(word: &str) -> Result<bool, ParseError> {
    match word {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(ParseError::BadKeyword {
            field: "on or off",
            value: other.chars().take(16).collect(),
        }),
    }
}

fn on_off_word(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn small(n: u64, field: &'static str) -> Result<u32, ParseError> {
    u32::try_from(n).map_err(|_| ParseError::BadNumber(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    #[test]
    fn event_encodes_as_spec_says() {
        let msg = RelayMsg::Event {
            seq: 7,
            origin: Origin::Live,
            ago: None,
            event: RoomEvent::Chat {
                nick: nick("bob"),
                text: Text::new("hi  there").unwrap(),
            },
        };
        assert_eq!(msg.encode(), b"EVENT 7 live CHAT bob hi  there");
        assert_eq!(RelayMsg::parse(&msg.encode()), Ok(msg));
    }

    #[test]
    fn who_pages_fit_in_a_datagram() {
        let nicks: Vec<Nick> = (0..200)
            .map(|i| nick(&format!("{}{i}", "汉".repeat(20))))
            .collect();
        let pages = RelayMsg::who_pages(&nicks);
        assert!(pages.len() > 1);
        let mut seen = 0;
        for p in &pages {
            let keyed = crate::SessionKey::from_u64(u64::MAX).prefixed(&p.encode());
            assert!(keyed.len() <= MAX_DATAGRAM);
            if let RelayMsg::Who { nicks, count, .. } = p {
                seen += nicks.len();
                assert_eq!(*count, 200);
            }
        }
        assert_eq!(seen, 200);
        assert_eq!(RelayMsg::who_pages(&[]).len(), 1);
    }

    #[test]
    fn welcome_carries_the_relay_key_last() {
        let msg = RelayMsg::Welcome {
            version: Token::new(crate::VERSION).unwrap(),
            nick: nick("alice"),
            last_seq: 4,
            ping_interval: 15,
            idle_timeout: 60,
            history_from: Some(1),
            resume: Some(Token::new("00000000000000010123456789abcdef").unwrap()),
            key: Some(SessionKey::from_u64(0xfedc_ba98_7654_3210)),
        };
        let bytes = msg.encode();
        assert_eq!(
            bytes,
            b"WELCOME udpchat/1 alice 4 15 60 1 00000000000000010123456789abcdef fedcba9876543210"
        );
        assert_eq!(RelayMsg::parse(&bytes), Ok(msg));
        assert_eq!(
            RelayMsg::parse(b"WELCOME udpchat/1 alice 4 15 60 1 t0k3n FEDCBA9876543210"),
            Err(ParseError::BadKey)
        );
    }

    #[test]
    fn the_longest_keyed_datagrams_fit() {
        let long_nick = nick(&"汉".repeat(21));
        assert_eq!(long_nick.as_str().len(), crate::MAX_NICK_BYTES - 1);
        let long_nick = nick(&format!("{}a", "汉".repeat(21)));
        let text = Text::new(&"x".repeat(crate::MAX_TEXT_BYTES)).unwrap();
        let key = SessionKey::from_u64(u64::MAX);
        let longest = [
            RelayMsg::Event {
                seq: u64::MAX,
                origin: Origin::History,
                ago: Some(u32::MAX),
                event: RoomEvent::Chat {
                    nick: long_nick.clone(),
                    text: text.clone(),
                },
            },
            RelayMsg::Private {
                pid: u64::MAX,
                from: long_nick.clone(),
                text: text.clone(),
            },
            RelayMsg::Sent {
                id: Some(u64::MAX),
                to: long_nick.clone(),
                text: text.clone(),
            },
            RelayMsg::Event {
                seq: u64::MAX,
                origin: Origin::Resend,
                ago: Some(u32::MAX),
                event: RoomEvent::Host(text.clone()),
            },
            // (The relay's actions carry at most 796 bytes: the chat text
            // less its "/me ". Even a whole 800 fit.)
            RelayMsg::Event {
                seq: u64::MAX,
                origin: Origin::History,
                ago: Some(u32::MAX),
                event: RoomEvent::Action {
                    nick: long_nick.clone(),
                    text: text.clone(),
                },
            },
            RelayMsg::Event {
                seq: u64::MAX,
                origin: Origin::History,
                ago: Some(u32::MAX),
                event: RoomEvent::Announce(text.clone()),
            },
        ];
        for msg in longest {
            let bytes = key.prefixed(&msg.encode());
            assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        }
    }

    #[test]
    fn action_moderated_announce_and_voice_round_trip() {
        let wire: [&[u8]; 7] = [
            b"EVENT 3 live ACTION alice waves  hello",
            b"EVENT 4 live MODERATED on",
            b"EVENT 5 history ago=2 MODERATED off",
            b"EVENT 6 live ANNOUNCE test on Friday",
            b"VOICE on",
            b"VOICE off",
            b"EVENT 7 resend ago=0 ACTION \xe5\xb0\x8f\xe6\x98\x8e \xe6\x8c\xa5\xe6\x89\x8b",
        ];
        for bytes in wire {
            let msg = RelayMsg::parse(bytes).unwrap_or_else(|e| panic!("{bytes:?}: {e}"));
            assert_eq!(msg.encode(), bytes);
        }
        assert_eq!(
            RelayMsg::parse(b"EVENT 3 live ACTION alice waves"),
            Ok(RelayMsg::Event {
                seq: 3,
                origin: Origin::Live,
                ago: None,
                event: RoomEvent::Action {
                    nick: nick("alice"),
                    text: Text::new("waves").unwrap()
                }
            })
        );
        assert_eq!(RelayMsg::parse(b"VOICE on"), Ok(RelayMsg::Voice(true)));
        for bad in [
            &b"VOICE"[..],
            b"VOICE yes",
            b"VOICE on now",
            b"EVENT 1 live MODERATED",
            b"EVENT 1 live MODERATED ON",
            b"EVENT 1 live ANNOUNCE",
            b"EVENT 1 live ACTION alice",
        ] {
            assert!(RelayMsg::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_error_code_is_refused() {
        assert!(matches!(
            RelayMsg::parse(b"ERROR made-up reason"),
            Err(ParseError::BadKeyword { .. })
        ));
    }
}
