//! Why the room refused a datagram, as a value: handlers return
//! `Err(Refusal)`, and [`Refusal::reply`] is the one place that turns it
//! into the `ERROR <code> <reason>` the sender reads.

use udpchat_proto::{ErrorCode, Lang, Nick, ParseError, RelayMsg, Token};

use crate::output::text_or;

/// A request the room refused with an `ERROR` reply. `Display` is the
/// detail for the operator's log ([`Event::Refused`](crate::Event::Refused));
/// [`Refusal::reply`] is what the sender reads, in the room's language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The first datagram over the sender's rate limit (later ones are
    /// dropped silently, counted towards an [`Event::Block`](crate::Event::Block)).
    #[error("over the rate limit")]
    OverRateLimit,
    /// The datagram is not a well-formed command.
    #[error(transparent)]
    Malformed(ParseError),
    /// A classic `N` while the relay runs with `--no-classic`.
    #[error("classic join while classic is disabled")]
    ClassicDisabled,
    /// The address is a member under another nickname.
    #[error("holds {held}, asked for {asked}")]
    AlreadyJoined {
        /// The nickname the address holds.
        held: Nick,
        /// The one it asked for.
        asked: Nick,
    },
    /// Another address holds the nickname asked for in a join (in the
    /// same letters, maybe in another case).
    #[error("{0} is taken")]
    NickTaken(Nick),
    /// Another address holds a nickname that looks like the one asked for
    /// in a join or rename (same [`Nick::key`], other letters: Cyrillic
    /// `а` for Latin `a`, full-width, ...). Code `nick-taken`; the reason
    /// names the online member.
    #[error("{asked} looks like {online}, who is online")]
    LooksTaken {
        /// The nickname asked for.
        asked: Nick,
        /// The member's nickname it looks like.
        online: Nick,
    },
    /// The nickname asked for in a join or rename is, or looks like, one
    /// reserved for the teacher and the relay ([`Config::reserved`](crate::Config::reserved)).
    #[error("{asked} is reserved (as {reserved})")]
    NickReserved {
        /// The nickname asked for.
        asked: Nick,
        /// The reserved name it is or looks like.
        reserved: Nick,
    },
    /// The room holds `max_clients` members.
    #[error("{members} members")]
    RoomFull {
        /// How many.
        members: usize,
    },
    /// The source IP address has [`Config::max_per_ip`](crate::Config::max_per_ip) members.
    #[error("{members} members from this IP address, limit {limit}")]
    IpFull {
        /// How many it has.
        members: u32,
        /// The limit.
        limit: usize,
    },
    /// A `HELLO` with a version this relay does not speak.
    #[error("version {0}")]
    BadVersion(Token),
    /// A cookie `HELLO` without `key=` while keys are required
    /// ([`Config::allow_keyless`](crate::Config::allow_keyless) off).
    #[error("HELLO without key=")]
    KeyRequired,
    /// A command only members may send, from a non-member.
    #[error("command from a non-member")]
    NotJoined,
    /// A member claimed a nickname it does not hold.
    #[error("{held} claimed {claimed}")]
    NotYours {
        /// The nickname the address holds.
        held: Nick,
        /// The one it claimed.
        claimed: Nick,
    },
    /// A private message to a nickname nobody holds.
    #[error("private message to absent {0}")]
    NoSuchNick(Nick),
    /// A rename to a nickname another member holds.
    #[error("rename to taken {0}")]
    RenameTaken(Nick),
    /// `RESEND` from a classic member (classic has no sequence numbers).
    #[error("RESEND from a classic member")]
    ResendFromClassic,
}

impl Refusal {
    /// The error code on the wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::OverRateLimit => ErrorCode::RateLimited,
            Refusal::Malformed(err) => err.code(),
            Refusal::ClassicDisabled => ErrorCode::ClassicDisabled,
            Refusal::AlreadyJoined { .. } => ErrorCode::AlreadyJoined,
            Refusal::NickTaken(_) | Refusal::RenameTaken(_) | Refusal::LooksTaken { .. } => {
                ErrorCode::NickTaken
            }
            Refusal::NickReserved { .. } => ErrorCode::NickReserved,
            Refusal::RoomFull { .. } => ErrorCode::RoomFull,
            Refusal::IpFull { .. } => ErrorCode::IpFull,
            Refusal::BadVersion(_) => ErrorCode::BadVersion,
            Refusal::KeyRequired => ErrorCode::KeyRequired,
            Refusal::NotJoined => ErrorCode::NotJoined,
            Refusal::NotYours { .. } => ErrorCode::NotYours,
            Refusal::NoSuchNick(_) => ErrorCode::NoSuchNick,
            Refusal::ResendFromClassic => ErrorCode::UnknownVerb,
        }
    }

    /// The nickname the sender is shown after the reason, if any.
    fn shown(&self) -> Option<&Nick> {
        match self {
            Refusal::AlreadyJoined { held: nick, .. }
            | Refusal::NickTaken(nick)
            | Refusal::RenameTaken(nick)
            | Refusal::NotYours { claimed: nick, .. }
            | Refusal::NoSuchNick(nick) => Some(nick),
            _ => None,
        }
    }

    /// Whether [`Stats::refused`](crate::Stats::refused) counts it (the
    /// rate limit has its own counter).
    pub(crate) fn counts_as_refused(&self) -> bool {
        !matches!(self, Refusal::OverRateLimit)
    }

    /// A reason of its own instead of the code's, in `lang`: what is wrong
    /// with a nickname, in words.
    fn reason(&self, lang: Lang) -> Option<String> {
        Some(match (self, lang) {
            (Refusal::Malformed(err), _) => return err.reason(lang),
            (Refusal::LooksTaken { asked, online }, Lang::En) => {
                format!("the nickname {asked} looks like {online}, who is online; choose another")
            }
            (Refusal::LooksTaken { asked, online }, Lang::Zh) => {
                format!("昵称 {asked} 看起来像在线成员 {online} 的昵称，请换一个")
            }
            (Refusal::NickReserved { asked, reserved }, Lang::En)
                if asked.same_letters(reserved) =>
            {
                format!("the nickname {asked} is reserved for the teacher and the relay; choose another")
            }
            (Refusal::NickReserved { asked, reserved }, Lang::Zh)
                if asked.same_letters(reserved) =>
            {
                format!("昵称 {asked} 留给老师和服务器使用，请换一个")
            }
            (Refusal::NickReserved { asked, reserved }, Lang::En) => format!(
                "the nickname {asked} looks like {reserved}, which is reserved for the teacher \
                 and the relay; choose another"
            ),
            (Refusal::NickReserved { asked, reserved }, Lang::Zh) => {
                format!("昵称 {asked} 看起来像 {reserved}，这个名字留给老师和服务器使用，请换一个")
            }
            _ => return None,
        })
    }

    /// The `ERROR <code> <reason>` the sender gets: the code's reason in the
    /// room's language, plus the nickname concerned in parentheses; a
    /// reason of its own for a look-alike or reserved nickname, `ip-full`
    /// and the nickname rules.
    pub fn reply(&self, lang: Lang) -> RelayMsg {
        let code = self.code();
        let base = code.reason(lang);
        if let Some(reason) = self.reason(lang) {
            return RelayMsg::Error {
                code,
                reason: text_or(&reason, base),
            };
        }
        if let Refusal::IpFull { members, limit } = self {
            let reason = match lang {
                Lang::En => format!(
                    "this computer already has {members} members in the room; \
                     the relay allows {limit} per address (--max-per-ip)"
                ),
                Lang::Zh => format!(
                    "这台电脑已有 {members} 个成员在聊天室中；\
                     服务器每个地址最多允许 {limit} 个（--max-per-ip）"
                ),
            };
            return RelayMsg::Error {
                code,
                reason: text_or(&reason, base),
            };
        }
        let reason = match self.shown() {
            Some(shown) => text_or(&format!("{base} ({shown})"), base),
            None => text_or(base, "error"),
        };
        RelayMsg::Error { code, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{to, Harness};
    use crate::Event;

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    #[test]
    fn reply_shows_the_nickname_concerned() {
        let reply = Refusal::NickTaken(nick("Bob")).reply(Lang::En);
        let RelayMsg::Error { code, reason } = reply else {
            panic!("{reply:?}");
        };
        assert_eq!(code, ErrorCode::NickTaken);
        assert_eq!(
            reason.as_str(),
            format!("{} (Bob)", ErrorCode::NickTaken.reason(Lang::En))
        );
    }

    #[test]
    fn not_yours_shows_the_claimed_nickname_and_logs_both() {
        let refusal = Refusal::NotYours {
            held: nick("bob"),
            claimed: nick("alice"),
        };
        assert_eq!(refusal.to_string(), "bob claimed alice");
        let RelayMsg::Error { reason, .. } = refusal.reply(Lang::En) else {
            panic!("not an error");
        };
        assert!(reason.as_str().ends_with(" (alice)"), "{reason:?}");
    }

    #[test]
    fn only_the_rate_limit_is_not_counted_as_refused() {
        assert!(!Refusal::OverRateLimit.counts_as_refused());
        assert!(Refusal::NotJoined.counts_as_refused());
        assert_eq!(Refusal::ResendFromClassic.code(), ErrorCode::UnknownVerb);
    }

    // ----- refusals through the room -----

    #[test]
    fn chat_from_non_member_is_not_joined_and_not_relayed() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "M alice hi\n");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 2);
        assert!(sent[0].1.starts_with("ERROR not-joined: "));
    }

    #[test]
    fn chat_with_another_members_nick_is_not_yours_and_not_relayed() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(2, "M alice I am alice");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 2);
        assert!(sent[0].1.starts_with("ERROR not-yours: "), "{sent:?}");
        assert!(!h.out.events.iter().any(|e| matches!(e, Event::Room { .. })));
    }

    #[test]
    fn quit_with_another_members_nick_is_refused() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(2, "Q alice");
        assert!(sent[0].1.starts_with("ERROR not-yours: "));
        assert_eq!(h.room.member_count(), 2);
    }

    #[test]
    fn who_from_non_member_is_not_joined() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "WHO");
        assert!(sent[0].1.starts_with("ERROR not-joined "), "{sent:?}");
    }

    #[test]
    fn malformed_datagram_from_member_gets_its_error() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        let sent = h.send_bytes(1, b"M alice \xff");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR bad-utf8 "));
        let sent = h.send(1, "M alice a\x1b[2Jb");
        assert!(sent[0].1.starts_with("ERROR control-char "));
        assert!(h.out.events.iter().any(|e| matches!(
            e,
            Event::Refused {
                code: ErrorCode::ControlChar,
                ..
            }
        )));
    }

    #[test]
    fn look_alike_relay_lines_are_refused_with_words_a_student_reads() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let padded = format!("M alice see you{}* teacher left\n", "x".repeat(60));
        assert_eq!(
            h.send(1, &padded),
            [(
                1,
                "ERROR looks-like-notice: message looks like a line from the relay \
                 (someone joining or leaving, the host speaking); reword it"
                    .to_owned()
            )]
        );
        let spaces = format!("M alice hi{}[host] class is over\n", " ".repeat(17));
        assert_eq!(
            h.send(1, &spaces),
            [(
                1,
                "ERROR too-many-spaces: message has more than 16 spaces in a row; use fewer"
                    .to_owned()
            )]
        );
        assert!(!h.out.events.iter().any(|e| matches!(e, Event::Room { .. })));
        // Ordinary stars and brackets go through.
        let sent = h.send(1, "M alice 2 * 3 = 6, see [hostname]\n");
        assert_eq!(to(&sent, 2), ["alice: 2 * 3 = 6, see [hostname]"]);
    }

    #[test]
    fn zh_refusals_of_look_alike_lines_are_in_chinese() {
        let mut h = Harness::with(crate::Config {
            lang: Lang::Zh,
            ..crate::Config::default()
        });
        h.join_classic(1, "alice");
        let sent = h.send(1, "M alice * 老师 离开了聊天室\n");
        assert_eq!(
            to(&sent, 1),
            ["错误 looks-like-notice: 消息看起来像服务器的通知（有人加入或离开、主持人讲话），请换个说法"]
        );
    }

    #[test]
    fn refused_event_carries_the_code_and_the_log_detail() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.send(2, "N ALICE");
        assert!(h.out.events.contains(&Event::Refused {
            addr: crate::testing::addr(2),
            code: ErrorCode::NickTaken,
            detail: "ALICE is taken".into(),
        }));
        assert_eq!(to(&h.sent(), 1), Vec::<&str>::new());
    }
}
