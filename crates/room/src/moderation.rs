//! Moderation: what the host decides about who may join and speak. Bans by
//! IP address (with an optional end), mutes by nickname, the lock, the join
//! code, slow mode, and the host's renames. The state lives in
//! [`Moderation`]; the operator's actions are [`Room`] methods (below) that
//! the console and tests call; the checks are called from the room's
//! handlers (`handle_join`, chat, `SAY`, `MSG`, `PMSG`).
//!
//! Decisions:
//! - A ban is by IP address: a new port or a new nickname does not get
//!   round it. Banning a nickname bans its member's IP address, and every
//!   member at that address is removed (`BYE kicked`, `LEAVE kicked`): a
//!   ban that left some of them in would not be one. Every join from a
//!   banned address is refused (`banned`), a resume with a token and a
//!   member's repeated `HELLO` included.
//! - Time in the room is relative (milliseconds since the room began); the
//!   shell turns what [`Room::bans`] reports into absolute times for its ban
//!   file, and back with [`Room::restore_ban`].
//! - A mute belongs to a nickname (it follows a rename and survives a
//!   rejoin under the same nickname). A muted member's `M`, `SAY`, `MSG`
//!   and `PMSG` draw `muted` to it only; nobody else sees anything.
//! - The lock and the join code stop only new memberships: a member's
//!   repeated join and a resume with its token still work. A classic
//!   reclaim (same IP address, no token) is a new membership.
//! - A wrong join code costs its IP address a guess (5, then one every
//!   10 s); a join without any code costs nothing (it guesses nothing).
//! - Slow mode applies to chat to the room (`M`, `SAY`), not to private
//!   messages.
//! - A course client asks for a name and sends `N <what was typed>`; a
//!   student who types `alice CODE` joins as `alice`, and its client then
//!   sends `M alice CODE text` and `Q alice CODE`. The relay keeps the code
//!   word each classic member joined with and removes it from the start of
//!   its chat text (`Q` ignores it in the parser).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use udpchat_proto::{JoinCode, Lang, LeaveReason, Nick, ParseError, RoomEvent, Text};

use crate::limits::ip_key;
use crate::{Event, Outputs, Refusal, Room};

/// The longest reason the host may give (longer ones are cut): every
/// refusal that carries it stays far below the datagram limit.
pub const MAX_REASON_CHARS: usize = 200;

/// Why an operator's moderation command could not be carried out. The
/// text is what the operator reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModerationError {
    /// No member holds the nickname.
    #[error("nobody called {0} is in the room")]
    NoSuchNick(String),
    /// Neither a banned IP address nor the nickname of a ban.
    #[error("{0} is not banned")]
    NotBanned(String),
    /// The nickname is not muted.
    #[error("{0} is not muted")]
    NotMuted(String),
    /// The nickname has no voice.
    #[error("{0} has no voice")]
    NotVoiced(String),
    /// The new nickname breaks the nickname rules.
    #[error("{0}")]
    BadNick(ParseError),
    /// Another member holds the new nickname.
    #[error("{0} is taken")]
    NickTaken(String),
}

/// One ban, as [`Room::bans`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanInfo {
    /// The banned IP address.
    pub ip: IpAddr,
    /// The nickname the ban was made for, if it was made by nickname.
    pub nick: Option<Nick>,
    /// The host's reason (may be empty).
    pub reason: String,
    /// Time left; `None`: until the host lifts it.
    pub left: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Ban {
    nick: Option<Nick>,
    reason: String,
    /// Room time (ms) at which it ends; `None`: never.
    until_ms: Option<u64>,
}

/// The moderation state of a room.
#[derive(Debug, Default)]
pub(crate) struct Moderation {
    bans: HashMap<IpAddr, Ban>,
    /// Muted nicknames (by nickname key), and until when (room ms).
    mutes: HashMap<String, Option<u64>>,
    locked: bool,
    code: Option<JoinCode>,
    /// Slow mode: minimum milliseconds between one member's chat (0: off).
    slow_ms: u64,
    /// When each member (by nickname key) last chatted, for slow mode.
    last_chat_ms: HashMap<String, u64>,
    /// The code word a classic member joined with (`N alice CODE`).
    join_words: HashMap<SocketAddr, JoinCode>,
}

impl Moderation {
    pub(crate) fn new(locked: bool, code: Option<JoinCode>, slow: Duration) -> Moderation {
        Moderation {
            locked,
            code,
            slow_ms: millis(slow),
            ..Moderation::default()
        }
    }

    /// `banned` if `addr`'s IP address is banned now.
    pub(crate) fn check_banned(&self, addr: SocketAddr, now_ms: u64) -> Result<(), Refusal> {
        if self.bans.is_empty() {
            return Ok(());
        }
        match self.bans.get(&ip_key(addr)) {
            Some(ban) if ban.until_ms.is_none_or(|until| until > now_ms) => Err(Refusal::Banned {
                reason: ban.reason.clone(),
                left_ms: ban.until_ms.map(|until| until - now_ms),
            }),
            _ => Ok(()),
        }
    }

    /// Whether the room is locked.
    pub(crate) fn locked(&self) -> bool {
        self.locked
    }

    /// The join code, if one is set.
    pub(crate) fn code(&self) -> Option<&JoinCode> {
        self.code.as_ref()
    }

    /// `muted` if the member holding `nick` is muted now.
    pub(crate) fn check_muted(&self, nick: &Nick, now_ms: u64) -> Result<(), Refusal> {
        if self.mutes.is_empty() {
            return Ok(());
        }
        match self.mutes.get(&nick.key()) {
            Some(until) if until.is_none_or(|until| until > now_ms) => Err(Refusal::Muted {
                left_ms: until.map(|until| until - now_ms),
            }),
            _ => Ok(()),
        }
    }

    /// Slow mode: `slow-mode` if `nick` chatted less than the minimum time
    /// ago; otherwise this chat is noted.
    pub(crate) fn check_slow(&mut self, nick: &Nick, now_ms: u64) -> Result<(), Refusal> {
        if self.slow_ms == 0 {
            return Ok(());
        }
        let key = nick.key();
        if let Some(&last) = self.last_chat_ms.get(&key) {
            let next = last.saturating_add(self.slow_ms);
            if now_ms < next {
                return Err(Refusal::SlowMode {
                    every_ms: self.slow_ms,
                    wait_ms: next - now_ms,
                });
            }
        }
        self.last_chat_ms.insert(key, now_ms);
        Ok(())
    }

    /// Notes the code word a classic member joined with (none: forgets it).
    pub(crate) fn set_join_word(&mut self, addr: SocketAddr, word: Option<JoinCode>) {
        match word {
            Some(word) => self.join_words.insert(addr, word),
            None => self.join_words.remove(&addr),
        };
    }

    /// The member at `addr` left (or moved away).
    pub(crate) fn member_left(&mut self, addr: SocketAddr, nick: &Nick) {
        self.join_words.remove(&addr);
        self.last_chat_ms.remove(&nick.key());
    }

    /// Every member is gone.
    pub(crate) fn members_cleared(&mut self) {
        self.join_words.clear();
        self.last_chat_ms.clear();
    }

    /// Chat text from the member at `addr` without the code word it
    /// joined with (`M alice CODE hi` from a course client is `hi`).
    pub(crate) fn strip_join_word(&self, addr: SocketAddr, text: Text) -> Result<Text, Refusal> {
        // The common case costs no hashing: nobody joined with a code word.
        if self.join_words.is_empty() {
            return Ok(text);
        }
        let Some(word) = self.join_words.get(&addr) else {
            return Ok(text);
        };
        let s = text.as_str();
        if s == word.as_str() {
            return Err(Refusal::Malformed(ParseError::TextEmpty));
        }
        match s
            .strip_prefix(word.as_str())
            .and_then(|rest| rest.strip_prefix(' '))
        {
            Some(rest) => Text::new(rest).map_err(Refusal::Malformed),
            None => Ok(text),
        }
    }

    /// A member was renamed: its mute and slow-mode clock follow it.
    pub(crate) fn renamed(&mut self, old: &Nick, new: &Nick) {
        if let Some(until) = self.mutes.remove(&old.key()) {
            self.mutes.insert(new.key(), until);
        }
        if let Some(last) = self.last_chat_ms.remove(&old.key()) {
            self.last_chat_ms.insert(new.key(), last);
        }
    }

    fn forget_expired(&mut self, now_ms: u64) {
        self.bans
            .retain(|_, ban| ban.until_ms.is_none_or(|until| until > now_ms));
        self.mutes
            .retain(|_, until| until.is_none_or(|until| until > now_ms));
    }
}

impl Room {
    /// Operator `/ban NICK|IP [DURATION] [reason]`: bans an IP address
    /// (`target` is an IP address, or the nickname of a member, whose
    /// address is banned) for `duration` (`None`: until lifted). Every
    /// member at that address is removed with `BYE kicked`; returns the
    /// address and their nicknames.
    pub fn ban(
        &mut self,
        now: Instant,
        target: &str,
        duration: Option<Duration>,
        reason: &str,
        out: &mut Outputs,
    ) -> Result<(IpAddr, Vec<Nick>), ModerationError> {
        let now_ms = self.touch(now);
        let reason = short_reason(reason);
        let (ip, nick) = match target.parse::<IpAddr>() {
            Ok(ip) => (ip_key(SocketAddr::new(ip, 0)), None),
            Err(_) => {
                let addr = self
                    .roster
                    .addr_of(&nick_key(target))
                    .ok_or_else(|| ModerationError::NoSuchNick(target.to_owned()))?;
                let nick = self.roster.get(&addr).map(|m| m.nick.clone());
                (ip_key(addr), nick)
            }
        };
        self.moderation.forget_expired(now_ms);
        self.moderation.bans.insert(
            ip,
            Ban {
                nick: nick.clone(),
                reason: reason.clone(),
                until_ms: duration.map(|d| now_ms.saturating_add(millis(d))),
            },
        );
        out.events.push(Event::Banned {
            ip,
            nick,
            reason: reason.clone(),
            duration,
        });
        let bye = match (duration, self.config().lang) {
            (Some(d), Lang::En) => format!("banned for {}", duration_words(millis(d), Lang::En)),
            (Some(d), Lang::Zh) => format!("被禁止进入 {}", duration_words(millis(d), Lang::Zh)),
            (None, Lang::En) => "banned".to_owned(),
            (None, Lang::Zh) => "被禁止进入".to_owned(),
        };
        let bye = match (reason.is_empty(), self.config().lang) {
            (true, _) => bye,
            (false, Lang::En) => format!("{bye}: {reason}"),
            (false, Lang::Zh) => format!("{bye}：{reason}"),
        };
        let at_ip: Vec<(SocketAddr, Nick)> = self
            .roster
            .iter()
            .filter(|(addr, _)| ip_key(**addr) == ip)
            .map(|(addr, m)| (*addr, m.nick.clone()))
            .collect();
        let mut kicked = Vec::new();
        for (addr, nick) in at_ip {
            self.remove_member(addr, &bye, out);
            kicked.push(nick);
        }
        Ok((ip, kicked))
    }

    /// Restores a ban from the shell's ban file at start: `left` is the
    /// time it still has (`None`: until lifted). No event.
    pub fn restore_ban(
        &mut self,
        now: Instant,
        ip: IpAddr,
        nick: Option<Nick>,
        reason: &str,
        left: Option<Duration>,
    ) {
        let now_ms = self.touch(now);
        let ip = ip_key(SocketAddr::new(ip, 0));
        self.moderation.bans.insert(
            ip,
            Ban {
                nick,
                reason: short_reason(reason),
                until_ms: left.map(|d| now_ms.saturating_add(millis(d))),
            },
        );
    }

    /// Operator `/unban IP|NICK`: lifts the ban of an IP address, or the
    /// ban made for a nickname.
    pub fn unban(
        &mut self,
        now: Instant,
        target: &str,
        out: &mut Outputs,
    ) -> Result<IpAddr, ModerationError> {
        let now_ms = self.touch(now);
        self.moderation.forget_expired(now_ms);
        let ip = match target.parse::<IpAddr>() {
            Ok(ip) => Some(ip_key(SocketAddr::new(ip, 0))),
            Err(_) => {
                let key = nick_key(target);
                self.moderation
                    .bans
                    .iter()
                    .find(|(_, ban)| ban.nick.as_ref().is_some_and(|n| n.key() == key))
                    .map(|(ip, _)| *ip)
            }
        };
        let ip = ip
            .filter(|ip| self.moderation.bans.remove(ip).is_some())
            .ok_or_else(|| ModerationError::NotBanned(target.to_owned()))?;
        out.events.push(Event::Unbanned { ip });
        Ok(ip)
    }

    /// Operator `/bans`: the bans in force, by IP address.
    pub fn bans(&self, now: Instant) -> Vec<BanInfo> {
        let now_ms = self.ms_at(now);
        let mut bans: Vec<BanInfo> = self
            .moderation
            .bans
            .iter()
            .filter(|(_, ban)| ban.until_ms.is_none_or(|until| until > now_ms))
            .map(|(ip, ban)| BanInfo {
                ip: *ip,
                nick: ban.nick.clone(),
                reason: ban.reason.clone(),
                left: ban
                    .until_ms
                    .map(|until| Duration::from_millis(until - now_ms)),
            })
            .collect();
        bans.sort_by_key(|b| b.ip);
        bans
    }

    /// Operator `/mute NICK [DURATION]`: the member's messages are refused
    /// (`muted`, to it only) for `duration` (`None`: until unmuted).
    pub fn mute(
        &mut self,
        now: Instant,
        nick: &str,
        duration: Option<Duration>,
        out: &mut Outputs,
    ) -> Result<Nick, ModerationError> {
        let now_ms = self.touch(now);
        let nick = self.member_nick(nick)?;
        self.moderation.forget_expired(now_ms);
        let until = duration.map(|d| now_ms.saturating_add(millis(d)));
        self.moderation.mutes.insert(nick.key(), until);
        out.events.push(Event::Silenced {
            nick: nick.clone(),
            duration,
        });
        Ok(nick)
    }

    /// Operator `/unmute NICK`.
    pub fn unmute(
        &mut self,
        now: Instant,
        nick: &str,
        out: &mut Outputs,
    ) -> Result<(), ModerationError> {
        let now_ms = self.touch(now);
        self.moderation.forget_expired(now_ms);
        let key = nick_key(nick);
        if self.moderation.mutes.remove(&key).is_none() {
            return Err(ModerationError::NotMuted(nick.to_owned()));
        }
        let nick = self
            .roster
            .addr_of(&key)
            .and_then(|addr| self.roster.get(&addr))
            .map(|m| m.nick.clone())
            .or_else(|| Nick::new(nick).ok());
        if let Some(nick) = nick {
            out.events.push(Event::Unsilenced { nick });
        }
        Ok(())
    }

    /// Operator `/lock`: no new members (`room-locked`); members stay.
    pub fn lock(&mut self, out: &mut Outputs) {
        self.moderation.locked = true;
        out.events.push(Event::Locked(true));
    }

    /// Operator `/unlock`.
    pub fn unlock(&mut self, out: &mut Outputs) {
        self.moderation.locked = false;
        out.events.push(Event::Locked(false));
    }

    /// Whether the room is locked.
    pub fn is_locked(&self) -> bool {
        self.moderation.locked()
    }

    /// Operator `/code CODE|off`: new members need `code` (`None`: no code).
    pub fn set_code(&mut self, code: Option<JoinCode>, out: &mut Outputs) {
        self.moderation.code = code.clone();
        out.events.push(Event::CodeSet(code));
    }

    /// The join code, if one is set.
    pub fn code(&self) -> Option<&JoinCode> {
        self.moderation.code()
    }

    /// Operator `/slow SECONDS`: the least time between one member's chat
    /// messages (zero: off).
    pub fn slow(&mut self, every: Duration, out: &mut Outputs) {
        self.moderation.slow_ms = millis(every);
        out.events.push(Event::SlowMode(every));
    }

    /// Operator `/rename NICK NEW`: the member is renamed as if it had
    /// sent `NICK NEW` (a `RENAME` room event).
    pub fn rename(
        &mut self,
        now: Instant,
        nick: &str,
        new: &str,
        out: &mut Outputs,
    ) -> Result<(), ModerationError> {
        self.touch(now);
        let new = Nick::new(new).map_err(ModerationError::BadNick)?;
        let addr = self
            .roster
            .addr_of(&nick_key(nick))
            .ok_or_else(|| ModerationError::NoSuchNick(nick.to_owned()))?;
        let held = self.member_nick(nick)?;
        if held == new {
            return Ok(());
        }
        // Taken if another member holds it or a look-alike of it (the
        // host may give a reserved name: it is the host).
        let other = |a: &SocketAddr| *a != addr;
        if self.roster.addr_of(&new.key()).filter(other).is_some()
            || self
                .roster
                .addr_of_look(&new.look_key())
                .filter(other)
                .is_some()
        {
            return Err(ModerationError::NickTaken(new.to_string()));
        }
        if let Some(old) = self.roster.rename(addr, new.clone()) {
            self.moderation.renamed(&old, &new);
            self.voices.renamed(&old, &new);
            self.room_event(RoomEvent::Rename { old, new }, out);
        }
        Ok(())
    }

    /// The address and nickname (as held) of the member `nick` names.
    pub(crate) fn member_by_nick(&self, nick: &str) -> Result<(SocketAddr, Nick), ModerationError> {
        self.roster
            .addr_of(&nick_key(nick))
            .and_then(|addr| self.roster.get(&addr).map(|m| (addr, m.nick.clone())))
            .ok_or_else(|| ModerationError::NoSuchNick(nick.to_owned()))
    }

    /// The nickname as held by a member.
    fn member_nick(&self, nick: &str) -> Result<Nick, ModerationError> {
        self.roster
            .addr_of(&nick_key(nick))
            .and_then(|addr| self.roster.get(&addr))
            .map(|m| m.nick.clone())
            .ok_or_else(|| ModerationError::NoSuchNick(nick.to_owned()))
    }

    /// Removes the member at `addr` as the host: `BYE kicked <reason>` to
    /// it, `LEAVE kicked` to the rest, [`Event::Kicked`] for the record.
    pub(crate) fn remove_member(&mut self, addr: SocketAddr, reason: &str, out: &mut Outputs) {
        let Some(member) = self.roster.get(&addr) else {
            return;
        };
        let (dialect, nick) = (member.dialect, member.nick.clone());
        let default = match self.config().lang {
            Lang::En => "removed by the host",
            Lang::Zh => "被主持人移出",
        };
        let msg = udpchat_proto::RelayMsg::Bye {
            code: udpchat_proto::ByeCode::Kicked,
            reason: crate::output::text_or(reason, default),
        };
        self.send_to_member(addr, dialect, &msg, out);
        out.events.push(Event::Kicked {
            addr,
            nick,
            reason: reason.to_owned(),
        });
        self.leave(addr, LeaveReason::Kicked, out);
    }
}

/// The host's reason, trimmed and cut to [`MAX_REASON_CHARS`].
fn short_reason(reason: &str) -> String {
    reason.trim().chars().take(MAX_REASON_CHARS).collect()
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration in words a student reads, rounded up: "45 seconds",
/// "1 minute", "12 minutes", "2 hours 5 minutes", "3 days"; in Chinese
/// "45 秒", "12 分钟", "2 小时 5 分钟", "3 天".
pub fn duration_words(ms: u64, lang: Lang) -> String {
    let secs = ms.div_ceil(1000).max(1);
    let zh = lang == Lang::Zh;
    let unit = |n: u64, en: &str, zh_unit: &str| -> String {
        match (zh, n) {
            (true, _) => format!("{n} {zh_unit}"),
            (false, 1) => format!("1 {en}"),
            (false, _) => format!("{n} {en}s"),
        }
    };
    if secs < 60 {
        return unit(secs, "second", "秒");
    }
    let mins = secs.div_ceil(60);
    if mins < 60 {
        return unit(mins, "minute", "分钟");
    }
    let hours = mins / 60;
    if hours < 48 {
        let rest = mins % 60;
        let h = unit(hours, "hour", "小时");
        return match rest {
            0 => h,
            _ => format!("{h} {}", unit(rest, "minute", "分钟")),
        };
    }
    unit(hours.div_ceil(24), "day", "天")
}

/// The roster key of a nickname the operator typed: the same key members
/// are found by ([`Nick::key`]: case-folded, look-alikes merged), or the
/// lowercase text if it is not a valid nickname (then nobody holds it).
pub(crate) fn nick_key(typed: &str) -> String {
    Nick::new(typed).map_or_else(|_| typed.to_lowercase(), |nick| nick.key())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use udpchat_proto::{JoinCode, Lang, Nick};

    use super::{duration_words, ModerationError};
    use crate::testing::{addr, to, token_in, Harness};
    use crate::{Config, Event};

    fn ban(h: &mut Harness, target: &str, secs: Option<u64>, reason: &str) -> Vec<Nick> {
        let now = h.now();
        h.out.clear();
        let (_, kicked) = h
            .room
            .ban(
                now,
                target,
                secs.map(Duration::from_secs),
                reason,
                &mut h.out,
            )
            .unwrap();
        kicked
    }

    fn with_code(code: &str) -> Harness {
        Harness::with(Config {
            join_code: Some(JoinCode::new(code).unwrap()),
            ..Config::default()
        })
    }

    // ----- bans -----

    #[test]
    fn a_ban_by_nickname_removes_the_member_and_refuses_its_joins_with_reason_and_time_left() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let kicked = ban(&mut h, "ALICE", Some(600), "shouting");
        assert_eq!(kicked, [Nick::new("alice").unwrap()]);
        assert_eq!(
            to(&h.sent(), 1),
            ["* you were removed by the host: banned for 10 minutes: shouting"]
        );
        assert_eq!(to(&h.sent(), 2), ["* alice was removed by the host"]);
        assert!(h
            .out
            .events
            .iter()
            .any(|e| matches!(e, Event::Banned { .. })));
        assert!(h
            .out
            .events
            .iter()
            .any(|e| matches!(e, Event::Kicked { .. })));
        // Another nickname, another port of the same IP address: refused.
        h.advance_ms(60_000);
        let other_port = std::net::SocketAddr::new(addr(1).ip(), 5555);
        let sent = h.send_from(other_port, "N alice2");
        assert_eq!(
            sent,
            [
                "ERROR banned: the host has banned this computer from the room: shouting; \
              the ban ends in 9 minutes"
            ]
        );
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn a_banned_structured_members_auto_rejoin_and_resume_are_refused() {
        let mut h = Harness::new();
        let sent = h.join_structured(1, "alice");
        let token = token_in(&sent);
        ban(&mut h, "alice", None, "");
        assert_eq!(to(&h.sent(), 1), ["BYE kicked banned"]);
        // The client's rejoin: a cookie HELLO with its token.
        let cookie = h.cookie(1);
        let sent = h.send(1, &format!("HELLO udpchat/1 alice {cookie} resume={token}"));
        assert_eq!(
            to(&sent, 1),
            [
                "ERROR banned the host has banned this computer from the room; \
              the ban lasts until the host lifts it"
            ]
        );
        // A new process with the saved token: the same.
        let cookie = h.cookie(1);
        let sent = h.send(
            1,
            &format!("HELLO udpchat/1 alice {cookie} since=0 resume={token}"),
        );
        assert!(to(&sent, 1)[0].starts_with("ERROR "), "{sent:?}");
        assert_eq!(h.room.member_count(), 0);
        // Lifted: joins again.
        let now = h.now();
        h.room.unban(now, "alice", &mut h.out).unwrap();
        h.join_structured(1, "alice");
    }

    #[test]
    fn a_ban_expires_and_is_listed_with_its_time_left_until_then() {
        let mut h = Harness::new();
        ban(&mut h, "10.0.0.3", Some(120), "other class");
        h.advance_ms(30_000);
        let bans = h.room.bans(h.now());
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].ip, addr(3).ip());
        assert_eq!(bans[0].nick, None);
        assert_eq!(bans[0].reason, "other class");
        assert_eq!(bans[0].left, Some(Duration::from_secs(90)));
        assert!(h.send(3, "N carol")[0].1.starts_with("ERROR banned"));
        h.advance_ms(90_000);
        h.join_classic(3, "carol");
        assert!(h.room.bans(h.now()).is_empty());
    }

    #[test]
    fn unban_of_what_is_not_banned_and_ban_of_an_absent_nick_are_errors() {
        let mut h = Harness::new();
        let now = h.now();
        assert_eq!(
            h.room.unban(now, "10.0.0.9", &mut h.out),
            Err(ModerationError::NotBanned("10.0.0.9".into()))
        );
        assert_eq!(
            h.room.ban(now, "zed", None, "", &mut h.out),
            Err(ModerationError::NoSuchNick("zed".into()))
        );
    }

    #[test]
    fn a_restored_ban_from_the_file_keeps_the_address_out() {
        let mut h = Harness::new();
        let now = h.now();
        h.room.restore_ban(
            now,
            addr(4).ip(),
            Some(Nick::new("dave").unwrap()),
            "spam",
            Some(Duration::from_secs(3600)),
        );
        let sent = h.send(4, "N dave");
        assert_eq!(
            to(&sent, 4),
            [
                "ERROR banned: the host has banned this computer from the room: spam; \
              the ban ends in 1 hour"
            ]
        );
    }

    #[test]
    fn the_ban_reason_is_in_chinese_with_lang_zh() {
        let mut h = Harness::with(Config {
            lang: Lang::Zh,
            ..Config::default()
        });
        ban(&mut h, "10.0.0.1", Some(90), "");
        assert_eq!(
            to(&h.send(1, "N a"), 1),
            ["错误 banned: 主持人已禁止这台电脑进入聊天室；2 分钟后解除"]
        );
    }

    // ----- mutes -----

    #[test]
    fn a_muted_members_messages_reach_nobody_and_it_gets_the_reason() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.join_classic(3, "carol");
        let now = h.now();
        h.room
            .mute(now, "bob", Some(Duration::from_secs(300)), &mut h.out)
            .unwrap();
        let seq = h.room.last_seq();
        let refused =
            "ERROR muted the host has muted you for 5 minutes more; nobody sees your messages";
        for datagram in [
            "SAY 1 hi",
            "M bob hi",
            "MSG alice psst",
            "PMSG 2 alice psst",
        ] {
            let sent = h.send(2, datagram);
            assert_eq!(sent, [(2, refused.to_owned())], "{datagram}");
        }
        assert_eq!(h.room.last_seq(), seq);
        // A repeat of the refused SAY is dropped (told once); the next SAY
        // id does not wait for the refused one.
        assert_eq!(h.send(2, "SAY 1 hi"), []);
        let now = h.now();
        h.room.unmute(now, "bob", &mut h.out).unwrap();
        let sent = h.send(2, "SAY 3 back");
        assert_eq!(to(&sent, 1), ["bob: back"]);
        // A classic muted member reads the reason as a line.
        let now = h.now();
        h.room.mute(now, "carol", None, &mut h.out).unwrap();
        assert_eq!(
            h.send(3, "M carol hello"),
            [(
                3,
                "ERROR muted: the host has muted you; nobody sees your messages until the host unmutes you"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn a_say_held_from_before_a_mute_does_not_reach_the_room() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 one");
        assert_eq!(h.send(1, "SAY 3 three"), []); // waits for 2
        let now = h.now();
        h.room.mute(now, "alice", None, &mut h.out).unwrap();
        h.advance_ms(crate::roster::SAY_HOLD_MS);
        assert_eq!(h.timeout(), []);
        let seq = h.room.last_seq();
        assert!(h.send(1, "SAY 2 two")[0].1.starts_with("ERROR muted "));
        assert_eq!(h.room.last_seq(), seq);
    }

    #[test]
    fn a_mute_ends_by_itself_and_follows_a_rename() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let now = h.now();
        h.room
            .mute(now, "alice", Some(Duration::from_secs(60)), &mut h.out)
            .unwrap();
        h.send(1, "NICK alicia");
        assert!(h.send(1, "M alicia hi")[0].1.starts_with("ERROR muted"));
        h.advance_ms(60_000);
        assert_eq!(to(&h.send(1, "M alicia hi"), 1), ["alicia: hi"]);
    }

    // ----- lock -----

    #[test]
    fn a_locked_room_refuses_new_joins_but_members_stay_and_may_rejoin() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.join_structured(2, "bob");
        let token = token_in(&sent);
        h.room.lock(&mut h.out);
        assert!(h.room.is_locked());
        assert_eq!(
            to(&h.send(3, "N carol"), 3),
            ["ERROR room-locked: the host has locked the room; nobody new can join now"]
        );
        let cookie = h.cookie(4);
        assert!(
            to(&h.send(4, &format!("HELLO udpchat/1 dave {cookie}")), 4)[0]
                .starts_with("ERROR room-locked ")
        );
        // Members: chat, a repeated N, a repeated HELLO, a resume from a
        // new address with the token.
        assert_eq!(
            to(&h.send(1, "M alice still here"), 1),
            ["alice: still here"]
        );
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        let cookie = h.cookie(5);
        let sent = h.send(5, &format!("HELLO udpchat/1 bob {cookie} resume={token}"));
        assert!(to(&sent, 5)[0].starts_with("WELCOME "), "{sent:?}");
        assert_eq!(h.room.member_count(), 2);
        h.room.unlock(&mut h.out);
        h.join_classic(3, "carol");
    }

    // ----- join code -----

    #[test]
    fn a_join_code_is_required_from_both_dialects() {
        let mut h = with_code("maple7");
        assert_eq!(
            to(&h.send(1, "N alice"), 1),
            [
                "ERROR bad-code: this room needs the join code from the host; \
              type your name, a space and the code"
            ]
        );
        assert_eq!(
            to(&h.send(1, "N alice oak3"), 1),
            ["ERROR bad-code: wrong join code; ask the host for the code of this lesson"]
        );
        h.join_classic(1, "alice MAPLE7");
        let cookie = h.cookie(2);
        let sent = h.send(2, &format!("HELLO udpchat/1 bob {cookie}"));
        assert!(to(&sent, 2)[0].starts_with("ERROR bad-code "), "{sent:?}");
        let sent = h.send(2, &format!("HELLO udpchat/1 bob {cookie} code=maple7"));
        assert!(to(&sent, 2)[0].starts_with("WELCOME "), "{sent:?}");
        assert_eq!(h.room.member_count(), 2);
    }

    #[test]
    fn a_course_client_that_joined_with_name_and_code_chats_and_quits() {
        let mut h = with_code("maple7");
        h.join_classic(1, "alice maple7");
        h.join_classic(2, "bob maple7");
        // The course client repeats what was typed as the name.
        let sent = h.send(1, "M alice maple7 hello there");
        assert_eq!(to(&sent, 2), ["alice: hello there"]);
        assert!(h.send(1, "M alice maple7")[0]
            .1
            .starts_with("ERROR text-empty"));
        // Text that merely starts like the code is kept.
        assert_eq!(
            to(&h.send(1, "M alice maple7s rock"), 2),
            ["alice: maple7s rock"]
        );
        h.send(1, "Q alice maple7");
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn the_host_changes_the_code_and_members_stay() {
        let mut h = with_code("maple7");
        h.join_classic(1, "alice maple7");
        h.room
            .set_code(Some(JoinCode::new("birch2").unwrap()), &mut h.out);
        h.join_classic(1, "alice maple7"); // its own repeated join
        assert!(h.send(2, "N bob maple7")[0].1.starts_with("ERROR bad-code"));
        h.join_classic(2, "bob birch2");
        h.room.set_code(None, &mut h.out);
        h.join_classic(3, "carol whatever");
        assert_eq!(to(&h.send(3, "M carol whatever hi"), 1), ["carol: hi"]);
    }

    #[test]
    fn wrong_join_codes_are_rate_limited_per_ip_address() {
        let mut h = with_code("maple7");
        for i in 0..5 {
            let from = std::net::SocketAddr::new(addr(1).ip(), 6000 + i);
            assert_eq!(
                h.send_from(from, &format!("N s{i} wrong{i}")),
                ["ERROR bad-code: wrong join code; ask the host for the code of this lesson"]
            );
        }
        // Out of guesses: even the right code waits, on every port.
        let guesses = "ERROR bad-code: too many wrong join codes from this computer; \
                       wait 10 seconds and try again";
        assert_eq!(h.send(1, "N alice maple7"), [(1, guesses.to_owned())]);
        // Another IP address has its own guesses.
        h.join_classic(2, "bob maple7");
        // One more guess every 10 s.
        h.advance_ms(10_000);
        assert!(h.send(1, "N alice nope")[0].1.contains("wrong join code"));
        assert!(h.send(1, "N alice maple7")[0].1.contains("too many wrong"));
        h.advance_ms(10_000);
        h.join_classic(1, "alice maple7");
        // A join without any code guesses nothing.
        for _ in 0..3 {
            assert!(h.send(3, "N carol")[0].1.contains("needs the join code"));
        }
        h.join_classic(3, "carol maple7");
    }

    // ----- slow mode -----

    #[test]
    fn slow_mode_refuses_a_too_early_message_to_its_sender_only() {
        let mut h = Harness::with(Config {
            slow_mode: Duration::from_secs(30),
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        assert_eq!(
            to(&h.send(1, "M alice one"), 2),
            ["EVENT 3 live CHAT alice one"]
        );
        h.advance_ms(12_000);
        assert_eq!(
            h.send(1, "M alice two"),
            [(
                1,
                "ERROR slow-mode: slow mode: one message every 30 seconds; wait 18 seconds more"
                    .to_owned()
            )]
        );
        // Others are not slowed by alice; private messages are not slowed.
        assert_eq!(h.send(2, "SAY 1 mine").len(), 2);
        assert!(to(&h.send(1, "MSG bob psst"), 1)[0].starts_with("[private to bob]"));
        assert!(h.send(2, "SAY 2 again")[0]
            .1
            .starts_with("ERROR slow-mode "));
        h.advance_ms(18_000);
        assert_eq!(to(&h.send(1, "M alice two"), 1), ["alice: two"]);
        h.room.slow(Duration::ZERO, &mut h.out);
        assert_eq!(to(&h.send(1, "M alice three"), 1), ["alice: three"]);
    }

    // ----- rename -----

    #[test]
    fn the_host_renames_a_member_with_a_rename_event() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.out.clear();
        let now = h.now();
        h.room.rename(now, "BOB", "robert", &mut h.out).unwrap();
        assert_eq!(to(&h.sent(), 1), ["* bob is now known as robert"]);
        assert_eq!(to(&h.sent(), 2), ["EVENT 3 live RENAME bob robert"]);
        assert_eq!(to(&h.send(2, "SAY 1 hi"), 1), ["robert: hi"]);
        assert_eq!(
            h.room.rename(now, "robert", "alice", &mut h.out),
            Err(ModerationError::NickTaken("alice".into()))
        );
        assert_eq!(
            h.room.rename(now, "zed", "z", &mut h.out),
            Err(ModerationError::NoSuchNick("zed".into()))
        );
        assert!(matches!(
            h.room.rename(now, "robert", "a b", &mut h.out),
            Err(ModerationError::BadNick(_))
        ));
    }

    #[test]
    fn every_moderation_refusal_has_its_own_words_in_both_languages() {
        use crate::Refusal;
        use udpchat_proto::RelayMsg;
        let refusals = [
            Refusal::Banned {
                reason: "spam".into(),
                left_ms: Some(61_000),
            },
            Refusal::Banned {
                reason: String::new(),
                left_ms: None,
            },
            Refusal::Muted {
                left_ms: Some(5_000),
            },
            Refusal::Muted { left_ms: None },
            Refusal::CodeWrong,
            Refusal::CodeGuesses { wait_ms: 9_500 },
            Refusal::SlowMode {
                every_ms: 30_000,
                wait_ms: 1_200,
            },
        ];
        for refusal in &refusals {
            for lang in [Lang::En, Lang::Zh] {
                let RelayMsg::Error { code, reason } = refusal.reply(lang) else {
                    panic!("not an error");
                };
                // Not the fallback: the sentence was valid text.
                assert_ne!(reason.as_str(), code.reason(lang), "{refusal:?} {lang:?}");
                let zh = reason.as_str().chars().any(|c| c > '\u{2e80}');
                assert_eq!(zh, lang == Lang::Zh, "{reason}");
            }
        }
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(1, Lang::En), "1 second");
        assert_eq!(duration_words(45_000, Lang::En), "45 seconds");
        assert_eq!(duration_words(60_000, Lang::En), "1 minute");
        assert_eq!(duration_words(125 * 60_000, Lang::En), "2 hours 5 minutes");
        assert_eq!(duration_words(3 * 86_400_000, Lang::En), "3 days");
        assert_eq!(duration_words(90_000, Lang::Zh), "2 分钟");
    }
}
