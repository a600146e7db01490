//! Attendance: who came, when, for how long, how much they said, and who
//! on the teacher's roster never came.
//!
//! Kept per nickname, by [`Nick::key`] (so `Alice` and `alice` are one
//! student, and a roster line matches a nickname the same way), on the
//! room clock (milliseconds since the room started; the shell turns them
//! into wall-clock times):
//! - first join: the first time a membership under the nickname began;
//! - last leave: the last time one ended (none while present);
//! - time present: summed over every membership, across leaves and
//!   rejoins (a reconnect from a new address is no leave);
//! - messages: chat messages to the room (`M`, `SAY`);
//! - addresses: every address the nickname was a member from.
//!
//! A rename ends the old nickname's presence and begins the new one's: a
//! student who joins as `bob` and renames to `bobby` is on both lines (a
//! change of letter case only, `bob` to `Bob`, is the same name).
//!
//! Status: a nickname on the roster that never joined is *absent*; one
//! that first joined more than [`Config::late_after`](crate::Config::late_after)
//! after the room started is *late*; anyone else who joined is *present*
//! (whether or not still in the room: see [`AttendanceRecord::here`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_proto::Nick;

use crate::{Dialect, Room};

/// Most nicknames attendance keeps: a long run with someone joining under
/// ever new names (joins are rate-limited, not forbidden) must not grow the
/// table without bound. Past it, new nicknames are not recorded; roster
/// names always are.
pub const MAX_RECORDS: usize = 16_384;

/// Present, late or absent (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Presence {
    /// Joined within the grace after the room started.
    Present,
    /// First joined after the grace.
    Late,
    /// On the roster, never joined.
    Absent,
}

impl Presence {
    /// The word for it, as in the CSV (`present`, `late`, `absent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Present => "present",
            Presence::Late => "late",
            Presence::Absent => "absent",
        }
    }
}

/// One line of attendance, times on the room clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceRecord {
    /// The nickname (as last spelled by its holder, or as on the roster).
    pub nick: Nick,
    /// Present, late or absent.
    pub status: Presence,
    /// Whether the nickname is on the roster.
    pub on_roster: bool,
    /// Whether it is a member right now.
    pub here: bool,
    /// Every address it was a member from, in order of first use.
    pub addresses: Vec<SocketAddr>,
    /// When it first joined (none: absent).
    pub first_join: Option<Duration>,
    /// When it last left (none: never joined, or here now).
    pub last_leave: Option<Duration>,
    /// Time present in all, up to now for a member that is here.
    pub present: Duration,
    /// Chat messages it sent to the room.
    pub messages: u64,
}

impl AttendanceRecord {
    /// Whole minutes present (rounded down).
    pub fn minutes(&self) -> u64 {
        self.present.as_secs() / 60
    }
}

/// Most addresses kept per nickname (the first ones).
const MAX_ADDRESSES: usize = 16;

#[derive(Debug, Clone)]
struct Record {
    nick: Nick,
    addresses: Vec<SocketAddr>,
    first_join_ms: u64,
    last_leave_ms: Option<u64>,
    /// Time present in finished stretches.
    present_ms: u64,
    /// Since when it is here (none: not a member now).
    since_ms: Option<u64>,
    messages: u64,
}

/// Attendance by nickname key, and the roster.
#[derive(Debug, Default)]
pub(crate) struct Attendance {
    records: BTreeMap<String, Record>,
    /// The roster, by key: the spelling on the roster.
    roster: BTreeMap<String, Nick>,
    late_after_ms: u64,
}

impl Attendance {
    pub(crate) fn new(roster: &[Nick], late_after: Duration) -> Attendance {
        Attendance {
            records: BTreeMap::new(),
            roster: roster.iter().map(|n| (n.key(), n.clone())).collect(),
            late_after_ms: u64::try_from(late_after.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// A membership under `nick` began at `addr`.
    pub(crate) fn joined(&mut self, nick: &Nick, addr: SocketAddr, now_ms: u64) {
        let key = nick.key();
        if self.records.len() >= MAX_RECORDS
            && !self.records.contains_key(&key)
            && !self.roster.contains_key(&key)
        {
            return;
        }
        let record = self.records.entry(key).or_insert_with(|| Record {
            nick: nick.clone(),
            // Most students use one address: room for exactly one (an
            // empty Vec's first push makes room for four, 128 bytes).
            addresses: Vec::with_capacity(1),
            first_join_ms: now_ms,
            last_leave_ms: None,
            present_ms: 0,
            since_ms: None,
            messages: 0,
        });
        record.nick = nick.clone();
        if !record.addresses.contains(&addr) && record.addresses.len() < MAX_ADDRESSES {
            record.addresses.push(addr);
        }
        record.since_ms.get_or_insert(now_ms);
    }

    /// The membership under `nick` moved to `addr` (no leave).
    pub(crate) fn moved(&mut self, nick: &Nick, addr: SocketAddr) {
        if let Some(record) = self.records.get_mut(&nick.key()) {
            if !record.addresses.contains(&addr) && record.addresses.len() < MAX_ADDRESSES {
                record.addresses.push(addr);
            }
        }
    }

    /// The membership under `nick` ended.
    pub(crate) fn left(&mut self, nick: &Nick, now_ms: u64) {
        if let Some(record) = self.records.get_mut(&nick.key()) {
            if let Some(since) = record.since_ms.take() {
                record.present_ms += now_ms.saturating_sub(since);
                record.last_leave_ms = Some(now_ms);
            }
        }
    }

    /// The member at `addr` renamed from `old` to `new`: the old
    /// nickname's presence ends and the new one's begins, unless the two
    /// are the same name (a change of letter case), whose spelling is
    /// updated.
    pub(crate) fn renamed(&mut self, old: &Nick, new: &Nick, addr: SocketAddr, now_ms: u64) {
        if old.key() == new.key() {
            if let Some(record) = self.records.get_mut(&new.key()) {
                record.nick = new.clone();
            }
            return;
        }
        self.left(old, now_ms);
        self.joined(new, addr, now_ms);
    }

    /// `nick` said something to the room.
    pub(crate) fn said(&mut self, nick: &Nick) {
        if let Some(record) = self.records.get_mut(&nick.key()) {
            record.messages += 1;
        }
    }

    /// Every nickname that joined and every roster name, sorted by key.
    pub(crate) fn report(&self, now_ms: u64) -> Vec<AttendanceRecord> {
        let mut keys: Vec<&String> = self.records.keys().chain(self.roster.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|key| {
                let on_roster = self.roster.contains_key(key);
                match self.records.get(key) {
                    Some(r) => {
                        let here = r.since_ms.map_or(0, |s| now_ms.saturating_sub(s));
                        AttendanceRecord {
                            nick: r.nick.clone(),
                            status: if r.first_join_ms > self.late_after_ms {
                                Presence::Late
                            } else {
                                Presence::Present
                            },
                            on_roster,
                            here: r.since_ms.is_some(),
                            addresses: r.addresses.clone(),
                            first_join: Some(Duration::from_millis(r.first_join_ms)),
                            last_leave: r.last_leave_ms.map(Duration::from_millis),
                            present: Duration::from_millis(r.present_ms + here),
                            messages: r.messages,
                        }
                    }
                    None => AttendanceRecord {
                        nick: self.roster[key].clone(),
                        status: Presence::Absent,
                        on_roster,
                        here: false,
                        addresses: Vec::new(),
                        first_join: None,
                        last_leave: None,
                        present: Duration::ZERO,
                        messages: 0,
                    },
                }
            })
            .collect()
    }
}

/// One member as the console's `/who` shows it, times on the room clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoEntry {
    /// Its nickname.
    pub nick: Nick,
    /// Its address.
    pub addr: SocketAddr,
    /// How it joined.
    pub dialect: Dialect,
    /// When its nickname's present stretch began (its join, or its rename).
    pub joined_at: Duration,
    /// How long since the relay last heard a well-formed command from it.
    pub idle: Duration,
}

impl Attendance {
    /// Since when `nick` is here.
    fn here_since(&self, nick: &Nick) -> Option<u64> {
        self.records.get(&nick.key()).and_then(|r| r.since_ms)
    }
}

impl Room {
    /// Operator console `/who`: every member, sorted by nick key.
    pub fn who(&self, now: Instant) -> Vec<WhoEntry> {
        let now_ms = self.ms(now).max(self.now_ms);
        self.roster
            .sorted()
            .map(|(addr, m)| WhoEntry {
                nick: m.nick.clone(),
                addr,
                dialect: m.dialect,
                joined_at: Duration::from_millis(self.attendance.here_since(&m.nick).unwrap_or(0)),
                idle: Duration::from_millis(now_ms.saturating_sub(m.last_heard_ms())),
            })
            .collect()
    }

    /// Operator console `/attendance`: one record per nickname that joined
    /// and per roster name, sorted by key, times on the room clock (since
    /// the room started), time present counted up to `now`.
    pub fn attendance(&self, now: Instant) -> Vec<AttendanceRecord> {
        let now_ms = self.ms(now).max(self.now_ms);
        self.attendance.report(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use udpchat_proto::Nick;

    use super::Presence;
    use crate::testing::{addr, Harness};
    use crate::Config;

    const MIN: u64 = 60_000;

    fn with_roster(names: &[&str]) -> Harness {
        Harness::with(Config {
            roster: names.iter().map(|n| Nick::new(n).unwrap()).collect(),
            late_after: Duration::from_secs(10 * 60),
            ..Config::default()
        })
    }

    #[test]
    fn minutes_are_summed_across_a_leave_and_a_rejoin() {
        let mut h = with_roster(&[]);
        h.advance_ms(MIN);
        h.join_classic(1, "alice");
        h.advance_ms(20 * MIN);
        h.send(1, "Q alice");
        h.advance_ms(30 * MIN);
        // Back from another port, spelled otherwise: the same student.
        h.send(2, "N Alice");
        h.advance_ms(5 * MIN + 59_000);
        let now = h.now();
        let report = h.room.attendance(now);
        assert_eq!(report.len(), 1);
        let alice = &report[0];
        assert_eq!(alice.nick.as_str(), "Alice");
        assert_eq!(alice.first_join, Some(Duration::from_millis(MIN)));
        assert_eq!(alice.last_leave, Some(Duration::from_millis(21 * MIN)));
        assert!(alice.here);
        assert_eq!(alice.present, Duration::from_millis(25 * MIN + 59_000));
        assert_eq!(alice.minutes(), 25);
        assert_eq!(alice.addresses, [addr(1), addr(2)]);
        // Leaving again closes the second stretch.
        h.advance_ms(MIN);
        h.send(2, "Q Alice");
        h.advance_ms(100 * MIN);
        let now = h.now();
        let alice = &h.room.attendance(now)[0];
        assert!(!alice.here);
        assert_eq!(alice.minutes(), 26);
        assert_eq!(
            alice.last_leave,
            Some(Duration::from_millis(57 * MIN + 59_000))
        );
    }

    #[test]
    fn roster_names_are_present_absent_or_late() {
        let mut h = with_roster(&["Alice", "bob", "carol"]);
        h.advance_ms(2 * MIN);
        h.join_classic(1, "alice");
        h.advance_ms(10 * MIN);
        h.join_structured(2, "Bob");
        h.join_classic(3, "dave");
        let now = h.now();
        let report = h.room.attendance(now);
        let rows: Vec<(&str, Presence, bool, bool)> = report
            .iter()
            .map(|r| (r.nick.as_str(), r.status, r.on_roster, r.here))
            .collect();
        assert_eq!(
            rows,
            [
                ("alice", Presence::Present, true, true),
                ("Bob", Presence::Late, true, true),
                ("carol", Presence::Absent, true, false),
                ("dave", Presence::Late, false, true),
            ]
        );
        assert_eq!(report[2].first_join, None);
        assert_eq!(report[2].minutes(), 0);
    }

    #[test]
    fn chat_messages_are_counted_per_nickname() {
        let mut h = with_roster(&[]);
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.send(1, "M alice hi");
        h.send(1, "M alice again");
        h.send(2, "SAY 1 hello");
        h.send(2, "SAY 1 hello"); // a repeat is not relayed twice
        h.send(1, "MSG bob private");
        h.send(1, "M bob not mine"); // refused: not counted
        let now = h.now();
        let counts: Vec<(String, u64)> = h
            .room
            .attendance(now)
            .iter()
            .map(|r| (r.nick.to_string(), r.messages))
            .collect();
        assert_eq!(counts, [("alice".into(), 2), ("bob".into(), 1)]);
    }

    #[test]
    fn a_rename_ends_one_name_and_begins_the_other() {
        let mut h = with_roster(&[]);
        h.join_classic(1, "bob");
        h.advance_ms(3 * MIN);
        h.send(1, "NICK bobby");
        h.advance_ms(2 * MIN);
        let now = h.now();
        let report = h.room.attendance(now);
        let rows: Vec<(String, u64, bool)> = report
            .iter()
            .map(|r| (r.nick.to_string(), r.minutes(), r.here))
            .collect();
        assert_eq!(rows, [("bob".into(), 3, false), ("bobby".into(), 2, true)]);
        // A change of letter case is the same name: no leave.
        h.send(1, "NICK Bobby");
        h.advance_ms(MIN);
        let now = h.now();
        let bobby = h.room.attendance(now).pop().unwrap();
        assert_eq!(bobby.nick.as_str(), "Bobby");
        assert_eq!(bobby.last_leave, None);
        assert_eq!(bobby.minutes(), 3);
    }

    #[test]
    fn who_shows_join_time_and_idle() {
        let mut h = with_roster(&[]);
        h.advance_ms(MIN);
        h.join_classic(1, "alice");
        h.advance_ms(2 * MIN);
        h.send(1, "M alice hi");
        h.advance_ms(30_000);
        let now = h.now();
        let who = h.room.who(now);
        assert_eq!(who.len(), 1);
        assert_eq!(who[0].addr, addr(1));
        assert_eq!(who[0].joined_at, Duration::from_millis(MIN));
        assert_eq!(who[0].idle, Duration::from_secs(30));
    }

    #[test]
    fn the_table_is_bounded_but_roster_names_are_always_kept() {
        let mut a = super::Attendance::new(&[Nick::new("zoe").unwrap()], Duration::ZERO);
        for i in 0..super::MAX_RECORDS + 10 {
            let nick = Nick::new(&format!("n{i}")).unwrap();
            a.joined(&nick, addr(1), 0);
        }
        a.joined(&Nick::new("zoe").unwrap(), addr(2), 5);
        let report = a.report(10);
        assert_eq!(report.len(), super::MAX_RECORDS + 1);
        let zoe = report.iter().find(|r| r.nick.as_str() == "zoe").unwrap();
        assert_eq!(zoe.first_join, Some(Duration::from_millis(5)));
    }

    #[test]
    fn shutdown_ends_every_presence() {
        let mut h = with_roster(&[]);
        h.join_classic(1, "alice");
        h.advance_ms(7 * MIN);
        let now = h.now();
        h.room.shutdown(now, "bye", &mut h.out);
        h.advance_ms(7 * MIN);
        let now = h.now();
        let alice = &h.room.attendance(now)[0];
        assert!(!alice.here);
        assert_eq!(alice.minutes(), 7);
        assert_eq!(alice.last_leave, Some(Duration::from_millis(7 * MIN)));
    }
}
