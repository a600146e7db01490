//! Why the room refused a datagram, as a value: handlers return
//! `Err(Refusal)`, and [`Refusal::reply`] is the one place that turns it
//! into the `ERROR <code> <reason>` the sender reads.

use udpchat_proto::{ErrorCode, Lang, Nick, ParseError, RelayMsg, Token};

use crate::moderation::duration_words;
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
    /// A join from an IP address the host banned.
    #[error("banned IP address ({reason})")]
    Banned {
        /// The host's reason (may be empty).
        reason: String,
        /// Time left, in milliseconds; `None`: until the host lifts it.
        left_ms: Option<u64>,
    },
    /// A message from a member the host muted.
    #[error("muted member")]
    Muted {
        /// Time left, in milliseconds; `None`: until the host unmutes.
        left_ms: Option<u64>,
    },
    /// A new membership while the host has locked the room.
    #[error("the room is locked")]
    RoomLocked,
    /// A new membership without the room's join code.
    #[error("join without the join code")]
    CodeMissing,
    /// A new membership with a wrong join code.
    #[error("wrong join code")]
    CodeWrong,
    /// A join code guess from an IP address that guessed wrong too often.
    #[error("too many wrong join codes")]
    CodeGuesses {
        /// Milliseconds until it may guess again.
        wait_ms: u64,
    },
    /// Moderated mode: chat or an action from a member without a voice.
    #[error("moderated mode, no voice")]
    Moderated,
    /// Slow mode: chat sooner than the minimum time after the member's last.
    #[error("slow mode")]
    SlowMode {
        /// The minimum time between one member's messages, milliseconds.
        every_ms: u64,
        /// Milliseconds still to wait.
        wait_ms: u64,
    },
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
            Refusal::Banned { .. } => ErrorCode::Banned,
            Refusal::Muted { .. } => ErrorCode::Muted,
            Refusal::RoomLocked => ErrorCode::RoomLocked,
            Refusal::CodeMissing | Refusal::CodeWrong | Refusal::CodeGuesses { .. } => {
                ErrorCode::BadCode
            }
            Refusal::SlowMode { .. } => ErrorCode::SlowMode,
            Refusal::Moderated => ErrorCode::Moderated,
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
        if let Some(reason) = self.reason(lang).or_else(|| self.moderation_reason(lang)) {
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

impl Refusal {
    /// The reason of a moderation refusal, in words, with the time left;
    /// `None` for the other refusals.
    fn moderation_reason(&self, lang: Lang) -> Option<String> {
        let zh = lang == Lang::Zh;
        let reason = match self {
            Refusal::Banned { reason, left_ms } => {
                let mut s = ErrorCode::Banned.reason(lang).to_owned();
                if !reason.is_empty() {
                    s.push_str(if zh { "：" } else { ": " });
                    s.push_str(reason);
                }
                match (left_ms, zh) {
                    (Some(ms), false) => {
                        s.push_str(&format!("; the ban ends in {}", duration_words(*ms, lang)))
                    }
                    (Some(ms), true) => {
                        s.push_str(&format!("；{}后解除", duration_words(*ms, lang)))
                    }
                    (None, false) => s.push_str("; the ban lasts until the host lifts it"),
                    (None, true) => s.push_str("；在主持人解除之前一直有效"),
                }
                s
            }
            Refusal::Muted { left_ms } => match (left_ms, zh) {
                (Some(ms), false) => format!(
                    "the host has muted you for {} more; nobody sees your messages",
                    duration_words(*ms, lang)
                ),
                (Some(ms), true) => format!(
                    "主持人已将你禁言，还有 {}；别人看不到你的消息",
                    duration_words(*ms, lang)
                ),
                (None, false) => {
                    "the host has muted you; nobody sees your messages until the host unmutes you"
                        .to_owned()
                }
                (None, true) => "主持人已将你禁言；在解除之前别人看不到你的消息".to_owned(),
            },
            Refusal::CodeWrong if zh => "加入码不对；请向主持人要这节课的加入码".to_owned(),
            Refusal::CodeWrong => {
                "wrong join code; ask the host for the code of this lesson".to_owned()
            }
            Refusal::CodeGuesses { wait_ms } if zh => format!(
                "这台电脑输错加入码的次数太多；请等 {} 再试",
                duration_words(*wait_ms, lang)
            ),
            Refusal::CodeGuesses { wait_ms } => format!(
                "too many wrong join codes from this computer; wait {} and try again",
                duration_words(*wait_ms, lang)
            ),
            Refusal::SlowMode { every_ms, wait_ms } if zh => format!(
                "慢速模式：每 {} 只能发一条消息；请再等 {}",
                duration_words(*every_ms, lang),
                duration_words(*wait_ms, lang)
            ),
            Refusal::SlowMode { every_ms, wait_ms } => format!(
                "slow mode: one message every {}; wait {} more",
                duration_words(*every_ms, lang),
                duration_words(*wait_ms, lang)
            ),
            _ => return None,
        };
        Some(reason)
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
