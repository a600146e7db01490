//! Moderated mode and voices: while moderated mode is on, only the host
//! and the members the host gave a voice speak to the room. The state is
//! [`Voices`]; the operator's actions are [`Room`] methods (below); the
//! check is called from the speech checks (`speech.rs`) for `M` and `SAY`.
//!
//! Decisions:
//! - A voice belongs to the nickname (by key), like a mute: it follows a
//!   rename and survives leaving and joining again, for the relay's run.
//!   The host gives voices only to members (a typo draws an error), and
//!   may take one back whether or not its member is online.
//! - A voice does not lift a mute: the mute is checked first.
//! - Private messages, `HAND`/`H` and everything else are not affected:
//!   a student raises a hand to ask to speak.
//! - The room is told when the mode changes (`MODERATED on|off`, a room
//!   event); a member is told when it gets or loses its voice (`VOICE
//!   on|off`, to it only, uncharged like `HAND called`).

use std::collections::HashSet;
use std::time::Instant;

use udpchat_proto::{Nick, RelayMsg, RoomEvent};

use crate::{Event, ModerationError, Outputs, Refusal, Room};

/// Moderated mode and the nicknames with a voice.
#[derive(Debug, Default)]
pub(crate) struct Voices {
    moderated: bool,
    /// Nickname keys ([`Nick::key`]) with a voice.
    voiced: HashSet<String>,
}

impl Voices {
    pub(crate) fn new(moderated: bool) -> Voices {
        Voices {
            moderated,
            voiced: HashSet::new(),
        }
    }

    /// `moderated` if moderated mode is on and `nick` has no voice.
    pub(crate) fn check(&self, nick: &Nick) -> Result<(), Refusal> {
        if !self.moderated || self.voiced.contains(&nick.key()) {
            return Ok(());
        }
        Err(Refusal::Moderated)
    }

    /// A member was renamed: its voice follows it.
    pub(crate) fn renamed(&mut self, old: &Nick, new: &Nick) {
        if self.voiced.remove(&old.key()) {
            self.voiced.insert(new.key());
        }
    }
}

impl Room {
    /// Operator `/moderated on|off` (`--moderated` at start): while on,
    /// only the host and members with a voice speak to the room. The room
    /// gets `MODERATED on|off` when the mode changes; returns whether it
    /// changed.
    pub fn set_moderated(&mut self, now: Instant, on: bool, out: &mut Outputs) -> bool {
        self.touch(now);
        if self.voices.moderated == on {
            return false;
        }
        self.voices.moderated = on;
        self.room_event(RoomEvent::Moderated(on), out);
        true
    }

    /// Whether moderated mode is on.
    pub fn is_moderated(&self) -> bool {
        self.voices.moderated
    }

    /// Operator `/voice NICK`: the member may speak in moderated mode; it
    /// is told `VOICE on`. Returns its nickname as held.
    pub fn voice(
        &mut self,
        now: Instant,
        nick: &str,
        out: &mut Outputs,
    ) -> Result<Nick, ModerationError> {
        self.touch(now);
        let (addr, nick) = self.member_by_nick(nick)?;
        self.voices.voiced.insert(nick.key());
        out.events.push(Event::Voiced {
            nick: nick.clone(),
            on: true,
        });
        if let Some(dialect) = self.roster.get(&addr).map(|m| m.dialect) {
            self.send_to_member(addr, dialect, &RelayMsg::Voice(true), out);
        }
        Ok(nick)
    }

    /// Operator `/devoice NICK`: takes the voice back (the member, if
    /// online, is told `VOICE off`). Err if the nickname has no voice.
    pub fn devoice(
        &mut self,
        now: Instant,
        nick: &str,
        out: &mut Outputs,
    ) -> Result<Nick, ModerationError> {
        self.touch(now);
        let key = crate::moderation::nick_key(nick);
        if !self.voices.voiced.remove(&key) {
            return Err(ModerationError::NotVoiced(nick.to_owned()));
        }
        let online = self.member_by_nick(nick).ok();
        let held = online
            .as_ref()
            .map(|(_, n)| n.clone())
            .or_else(|| Nick::new(nick).ok());
        if let Some(held) = &held {
            out.events.push(Event::Voiced {
                nick: held.clone(),
                on: false,
            });
        }
        if let Some((addr, _)) = online {
            if let Some(dialect) = self.roster.get(&addr).map(|m| m.dialect) {
                self.send_to_member(addr, dialect, &RelayMsg::Voice(false), out);
            }
        }
        held.ok_or_else(|| ModerationError::NotVoiced(nick.to_owned()))
    }

    /// The nicknames with a voice (online or not), as keys, sorted.
    pub fn voiced(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.voices.voiced.iter().cloned().collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::testing::{to, Harness};
    use crate::{Config, Event, ModerationError};

    fn moderated() -> Harness {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.join_classic(3, "carol");
        h.out.clear();
        let now = h.now();
        assert!(h.room.set_moderated(now, true, &mut h.out));
        h
    }

    const REFUSED_EN: &str = "the host has turned on moderated mode; \
                              raise your hand (/hand) to ask to speak";

    #[test]
    fn the_room_is_told_when_moderated_mode_changes_and_only_then() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.out.clear();
        let now = h.now();
        assert!(h.room.set_moderated(now, true, &mut h.out));
        assert!(h.room.is_moderated());
        assert_eq!(
            to(&h.sent(), 1),
            ["* the host turned moderated mode on: only members with a voice can speak"]
        );
        assert_eq!(to(&h.sent(), 2), ["EVENT 3 live MODERATED on"]);
        h.out.clear();
        assert!(!h.room.set_moderated(now, true, &mut h.out));
        assert!(h.sent().is_empty());
        assert!(h.room.set_moderated(now, false, &mut h.out));
        assert_eq!(
            to(&h.sent(), 1),
            ["* the host turned moderated mode off: everyone can speak"]
        );
        assert_eq!(to(&h.sent(), 2), ["EVENT 4 live MODERATED off"]);
    }

    #[test]
    fn moderated_mode_refuses_unvoiced_chat_and_actions_in_both_dialects_to_the_sender_only() {
        let mut h = moderated();
        let seq = h.room.last_seq();
        for (n, datagram) in [
            (1, "M alice hello"),
            (1, "M alice /me waves"),
            (2, "SAY 1 hello"),
            (2, "SAY 2 /me waves"),
        ] {
            let sent = h.send(n, datagram);
            let want = if n == 1 {
                format!("ERROR moderated: {REFUSED_EN}")
            } else {
                format!("ERROR moderated {REFUSED_EN}")
            };
            assert_eq!(sent, [(n, want)], "{datagram}");
        }
        assert_eq!(h.room.last_seq(), seq);
        // A refused SAY uses up its id: the next one does not wait for it,
        // and a repeat draws nothing.
        assert_eq!(h.send(2, "SAY 1 hello"), []);
        let now = h.now();
        h.room.set_moderated(now, false, &mut h.out);
        assert_eq!(to(&h.send(2, "SAY 3 now"), 1), ["bob: now"]);
    }

    #[test]
    fn the_host_and_voiced_members_speak_and_a_voice_is_told_to_its_member_only() {
        let mut h = moderated();
        let now = h.now();
        h.out.clear();
        h.room.voice(now, "BOB", &mut h.out).unwrap();
        assert_eq!(h.sent(), [(2, "VOICE on".to_owned())]);
        assert!(h.out.events.contains(&Event::Voiced {
            nick: udpchat_proto::Nick::new("bob").unwrap(),
            on: true
        }));
        h.out.clear();
        h.room.voice(now, "alice", &mut h.out).unwrap();
        assert_eq!(h.sent(), [(1, "* you can speak now".to_owned())]);
        assert_eq!(to(&h.send(2, "SAY 1 hi"), 3), ["bob: hi"]);
        assert_eq!(to(&h.send(1, "M alice /me nods"), 3), ["* alice nods"]);
        assert!(h.send(3, "M carol me too")[0]
            .1
            .starts_with("ERROR moderated:"));
        h.out.clear();
        h.room
            .host_message(now, "quiet please", &mut h.out)
            .unwrap();
        assert_eq!(to(&h.sent(), 3), ["[host] quiet please"]);
        h.out.clear();
        h.room.devoice(now, "alice", &mut h.out).unwrap();
        assert_eq!(h.sent(), [(1, "* you can no longer speak".to_owned())]);
        assert!(h.send(1, "M alice hi")[0].1.starts_with("ERROR moderated:"));
        assert_eq!(
            h.room.devoice(now, "alice", &mut h.out),
            Err(ModerationError::NotVoiced("alice".into()))
        );
        assert_eq!(
            h.room.voice(now, "zed", &mut h.out),
            Err(ModerationError::NoSuchNick("zed".into()))
        );
    }

    #[test]
    fn a_voice_follows_a_rename_and_survives_leaving_and_joining_again() {
        let mut h = moderated();
        let now = h.now();
        h.room.voice(now, "alice", &mut h.out).unwrap();
        h.send(1, "NICK alicia");
        assert_eq!(
            to(&h.send(1, "M alicia hi"), 2),
            ["EVENT 6 live CHAT alicia hi"]
        );
        h.send(1, "Q alicia");
        h.join_structured(4, "alicia");
        assert_eq!(to(&h.send(4, "SAY 1 back"), 2).len(), 1);
        // The old nickname has no voice any more.
        h.join_classic(5, "alice");
        assert!(h.send(5, "M alice hi")[0].1.starts_with("ERROR moderated:"));
        assert_eq!(h.room.voiced(), ["alicia"]);
    }

    #[test]
    fn private_messages_hands_and_renames_still_work_under_moderation() {
        let mut h = moderated();
        assert_eq!(to(&h.send(1, "MSG bob psst"), 1), ["[private to bob] psst"]);
        let sent = h.send(2, "PMSG 1 carol hi");
        assert_eq!(to(&sent, 3), ["[private from bob] hi"]);
        assert_eq!(to(&sent, 2), ["SENT 1 carol hi"]);
        assert_eq!(
            h.send(3, "H may I?"),
            [(3, "* your hand is up; 1st in line".to_owned())]
        );
        assert_eq!(h.send(2, "HAND"), [(2, "HAND up 2".to_owned())]);
        assert_eq!(
            to(&h.send(3, "WHO"), 3),
            ["* online (3): alice, bob, carol"]
        );
        assert_eq!(
            to(&h.send(3, "NICK caro"), 1),
            ["* carol is now known as caro"]
        );
    }

    #[test]
    fn a_muted_member_stays_muted_with_a_voice() {
        let mut h = moderated();
        let now = h.now();
        h.room.voice(now, "bob", &mut h.out).unwrap();
        h.room
            .mute(now, "bob", Some(Duration::from_secs(60)), &mut h.out)
            .unwrap();
        assert!(h.send(2, "SAY 1 hi")[0].1.starts_with("ERROR muted "));
        assert!(h.send(2, "SAY 2 /me waves")[0]
            .1
            .starts_with("ERROR muted "));
    }

    #[test]
    fn the_moderated_flag_starts_the_room_moderated_without_an_event() {
        let mut h = Harness::with(Config {
            moderated: true,
            ..Config::default()
        });
        assert!(h.room.is_moderated());
        assert_eq!(h.room.last_seq(), 0);
        h.join_classic(1, "alice");
        assert!(h.send(1, "M alice hi")[0].1.starts_with("ERROR moderated:"));
    }

    #[test]
    fn the_refusal_reads_in_chinese_with_lang_zh() {
        let mut h = Harness::with(Config {
            moderated: true,
            lang: udpchat_proto::Lang::Zh,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        assert_eq!(
            to(&h.send(1, "M alice hi"), 1),
            ["错误 moderated: 主持人开启了发言管理模式；请举手（/hand）申请发言"]
        );
        let now = h.now();
        h.out.clear();
        h.room.voice(now, "alice", &mut h.out).unwrap();
        assert_eq!(to(&h.sent(), 1), ["* 你现在可以发言了"]);
    }
}
