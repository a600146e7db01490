//! What a member says to the room (`M`, `SAY`): chat, or an action when
//! the text is `/me <text>`, and the checks every such message passes, in
//! one place for both dialects.
//!
//! Rules:
//! - an action is a text that starts with `/me ` (lowercase, one space)
//!   with more than spaces after it; the rest is kept exactly and becomes
//!   `ACTION <nick> <rest>` (classic `* alice waves`). Anything else (`/me`,
//!   `/me   `, `/Me hi`, `/mewaves`) is ordinary chat;
//! - an action whose classic line would read as a relay notice
//!   (`* alice joined`) is refused with `looks-like-notice`;
//! - the order of the checks: a mute first (a voice does not lift it),
//!   then moderated mode, then the action's look-alike, then slow mode
//!   last, since passing it counts as the member's latest message.

use udpchat_proto::{check_action, Nick, RoomEvent, Text};

use crate::{Refusal, Room};

/// The text of an action (after `/me `), if `text` is one.
pub(crate) fn action_text(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("/me ")?;
    rest.contains(|c: char| !c.is_whitespace()).then_some(rest)
}

/// The room event for `text` said by `nick`: `ACTION` for `/me ...`,
/// `CHAT` otherwise. (Whether it may be said is [`Room::check_speech`].)
pub(crate) fn speech_event(nick: Nick, text: Text) -> RoomEvent {
    // The rest of valid text is valid text (a shorter suffix), so the
    // fallback to chat is never taken.
    match action_text(text.as_str()).map(Text::new) {
        Some(Ok(rest)) => RoomEvent::Action { nick, text: rest },
        _ => RoomEvent::Chat { nick, text },
    }
}

impl Room {
    /// Whether `nick` may say `text` to the room now: its mute, moderated
    /// mode, an action's look-alike, slow mode (passing notes the time for
    /// slow mode). Allocates nothing for plain chat: this is on the path
    /// of every message.
    pub(crate) fn check_speech(
        &mut self,
        nick: &Nick,
        text: &Text,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        self.moderation.check_muted(nick, now_ms)?;
        self.voices.check(nick)?;
        if let Some(rest) = action_text(text.as_str()) {
            check_action(nick.as_str(), rest).map_err(Refusal::Malformed)?;
        }
        self.moderation.check_slow(nick, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::action_text;
    use crate::testing::{to, Harness};
    use crate::Config;

    #[test]
    fn only_a_lowercase_me_one_space_and_some_text_is_an_action() {
        assert_eq!(action_text("/me waves"), Some("waves"));
        assert_eq!(action_text("/me  waves twice"), Some(" waves twice"));
        for chat in [
            "/me",
            "/me ",
            "/me    ",
            "/Me waves",
            "/ME waves",
            "/mewaves",
            " /me waves",
        ] {
            assert_eq!(action_text(chat), None, "{chat:?}");
        }
    }

    #[test]
    fn actions_in_both_dialects_become_action_events() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        let sent = h.send(1, "M alice /me waves");
        assert_eq!(to(&sent, 1), ["* alice waves"]);
        assert_eq!(to(&sent, 2), ["EVENT 3 live ACTION alice waves"]);
        let sent = h.send(2, "SAY 1 /me waves back");
        assert_eq!(to(&sent, 1), ["* bob waves back"]);
        assert_eq!(to(&sent, 2), ["EVENT 4 live ACTION bob waves back"]);
        // Plain chat that only looks a little like one.
        assert_eq!(to(&h.send(1, "M alice /Me hi"), 1), ["alice: /Me hi"]);
        assert_eq!(to(&h.send(1, "M alice /me "), 1), ["alice: /me "]);
    }

    #[test]
    fn a_repeated_action_say_is_relayed_once_and_answered_with_its_event() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        assert_eq!(h.send(1, "SAY 5 /me waves").len(), 2);
        assert_eq!(
            h.send(1, "SAY 5 /me waves"),
            [(1, "EVENT 3 resend ago=0 ACTION alice waves".to_owned())]
        );
        assert_eq!(h.room.last_seq(), 3);
    }

    #[test]
    fn actions_that_read_as_relay_notices_are_refused_in_both_dialects() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        let seq = h.room.last_seq();
        for (id, text) in [
            "/me joined",
            "/me left",
            "/me left (timed out)",
            "/me was removed by the host",
            "/me is now known as carol",
            "/me 离开了聊天室",
            "/me 加入了聊天室",
        ]
        .into_iter()
        .enumerate()
        {
            let sent = h.send(1, &format!("M alice {text}"));
            assert_eq!(sent.len(), 1, "{text}: {sent:?}");
            assert!(
                sent[0].1.starts_with("ERROR looks-like-notice: "),
                "{text}: {sent:?}"
            );
            let sent = h.send(2, &format!("SAY {} {text}", id + 1));
            assert!(
                sent[0].1.starts_with("ERROR looks-like-notice "),
                "{text}: {sent:?}"
            );
        }
        assert_eq!(h.room.last_seq(), seq);
    }

    #[test]
    fn mutes_and_slow_mode_apply_to_actions_like_chat() {
        let mut h = Harness::with(Config {
            slow_mode: Duration::from_secs(30),
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        assert_eq!(to(&h.send(1, "M alice /me waves"), 1), ["* alice waves"]);
        assert!(h.send(1, "M alice /me waves again")[0]
            .1
            .starts_with("ERROR slow-mode:"));
        assert!(h.send(1, "M alice plain chat")[0]
            .1
            .starts_with("ERROR slow-mode:"));
        let now = h.now();
        h.room.mute(now, "bob", None, &mut h.out).unwrap();
        assert!(h.send(2, "SAY 1 /me waves")[0]
            .1
            .starts_with("ERROR muted "));
        assert_eq!(h.room.last_seq(), 3);
    }

    #[test]
    fn actions_count_as_messages_in_the_attendance() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.send(1, "M alice /me waves");
        h.send(1, "M alice hi");
        let records = h.room.attendance(h.now());
        let alice = records.iter().find(|r| r.nick.as_str() == "alice").unwrap();
        assert_eq!(alice.messages, 2);
    }
}
