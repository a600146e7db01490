//! Announcements: the host's `/announce TEXT` is the room event `ANNOUNCE`,
//! structured clients confirm it with `SEEN <seq>`, and the room counts
//! who did, for the console. The state is [`Announcements`]; the
//! operator's actions and the `SEEN` handler are [`Room`] methods (below).
//!
//! Decisions:
//! - Who counts is fixed when the announcement is made: the members at
//!   that moment, structured ones (who can confirm) and classic ones (who
//!   cannot: counted as such, and their `SEEN`, if one types it, counts
//!   nothing). A member is known by its address; a takeover (`RECONNECT`)
//!   moves it, a leave before confirming counts as *left*.
//! - A `SEEN` counts only from a structured member of that announcement,
//!   once; repeats, other numbers, non-members and strangers count
//!   nothing, and nothing is ever answered (no reply to amplify). A keyed
//!   member's `SEEN` without its key never reaches here (`room.rs`).
//! - The summary ([`Event::Announcement`]) goes to the console once by
//!   itself: when every structured member of it confirmed or left, or
//!   [`SUMMARY_AFTER_MS`] after it was made, whichever is first (the
//!   room's timer); and on request ([`Room::announcement`]).
//! - Bounded: the last [`ANNOUNCEMENTS_KEPT`] announcements, each with at
//!   most the members of that moment.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use udpchat_proto::{ParseError, RoomEvent, Text};

use crate::dialect::Context;
use crate::{Dialect, Event, Outputs, Room};

/// How many recent announcements are counted.
pub const ANNOUNCEMENTS_KEPT: usize = 4;

/// The summary goes to the console by itself at the latest this long
/// after the announcement (milliseconds).
pub const SUMMARY_AFTER_MS: u64 = 10_000;

/// Who has seen an announcement, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncementSummary {
    /// The announcement's event number.
    pub seq: u64,
    /// Structured members that confirmed it (`SEEN`).
    pub seen: usize,
    /// Members when it was made (structured and classic).
    pub members: usize,
    /// Classic members among them (they cannot confirm).
    pub classic: usize,
    /// Structured members that left before confirming.
    pub left: usize,
    /// Every structured member confirmed or left (otherwise some may
    /// still confirm).
    pub complete: bool,
}

#[derive(Debug)]
struct Announcement {
    seq: u64,
    made_ms: u64,
    /// Structured members that have not confirmed yet (and are online).
    waiting: HashSet<SocketAddr>,
    seen: usize,
    members: usize,
    classic: usize,
    left: usize,
    /// The summary went to the console by itself.
    reported: bool,
}

impl Announcement {
    fn summary(&self) -> AnnouncementSummary {
        AnnouncementSummary {
            seq: self.seq,
            seen: self.seen,
            members: self.members,
            classic: self.classic,
            left: self.left,
            complete: self.waiting.is_empty(),
        }
    }

    /// Its summary, if it is due now and was not reported yet.
    fn due(&mut self, now_ms: u64) -> Option<AnnouncementSummary> {
        let due = self.waiting.is_empty() || now_ms >= self.deadline();
        (due && !self.reported).then(|| {
            self.reported = true;
            self.summary()
        })
    }

    fn deadline(&self) -> u64 {
        self.made_ms.saturating_add(SUMMARY_AFTER_MS)
    }
}

/// The recent announcements and who confirmed them.
#[derive(Debug, Default)]
pub(crate) struct Announcements {
    recent: VecDeque<Announcement>,
}

impl Announcements {
    /// Announcement `seq` was made at `now_ms` to `members`.
    fn made(
        &mut self,
        seq: u64,
        now_ms: u64,
        members: impl Iterator<Item = (SocketAddr, Dialect)>,
    ) {
        let mut a = Announcement {
            seq,
            made_ms: now_ms,
            waiting: HashSet::new(),
            seen: 0,
            members: 0,
            classic: 0,
            left: 0,
            reported: false,
        };
        for (addr, dialect) in members {
            a.members += 1;
            match dialect {
                Dialect::Structured => {
                    a.waiting.insert(addr);
                }
                Dialect::Classic(_) => a.classic += 1,
            }
        }
        if self.recent.len() == ANNOUNCEMENTS_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(a);
    }

    /// `SEEN seq` from `addr`: true if it counted.
    fn seen(&mut self, addr: SocketAddr, seq: u64) -> bool {
        let Some(a) = self.recent.iter_mut().find(|a| a.seq == seq) else {
            return false;
        };
        let counted = a.waiting.remove(&addr);
        a.seen += usize::from(counted);
        counted
    }

    /// The member at `addr` left: it will not confirm.
    pub(crate) fn member_left(&mut self, addr: SocketAddr) {
        for a in &mut self.recent {
            if a.waiting.remove(&addr) {
                a.left += 1;
            }
        }
    }

    /// The member at `old` now speaks from `new` (a takeover).
    pub(crate) fn moved(&mut self, old: SocketAddr, new: SocketAddr) {
        for a in &mut self.recent {
            if a.waiting.remove(&old) {
                a.waiting.insert(new);
            }
        }
    }

    /// Every member is gone (shutdown).
    pub(crate) fn members_cleared(&mut self) {
        let addrs: Vec<SocketAddr> = self
            .recent
            .iter()
            .flat_map(|a| a.waiting.iter().copied())
            .collect();
        for addr in addrs {
            self.member_left(addr);
        }
    }

    /// The summaries due now (complete, or old enough), each once.
    pub(crate) fn due(&mut self, now_ms: u64) -> Vec<AnnouncementSummary> {
        self.recent
            .iter_mut()
            .filter_map(|a| a.due(now_ms))
            .collect()
    }

    /// When the next summary is due by the clock.
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.recent
            .iter()
            .filter(|a| !a.reported)
            .map(Announcement::deadline)
            .min()
    }

    fn latest(&self) -> Option<AnnouncementSummary> {
        self.recent.back().map(Announcement::summary)
    }
}

impl Room {
    /// Operator `/announce TEXT`: the room event `ANNOUNCE`; the members
    /// of this moment are counted as they confirm. Err if the text breaks
    /// the text rules. Returns its event number.
    pub fn announce(
        &mut self,
        now: Instant,
        text: &str,
        out: &mut Outputs,
    ) -> Result<u64, ParseError> {
        let now_ms = self.touch(now);
        let text = Text::new(text)?;
        let seq = self.room_event(RoomEvent::Announce(text), out);
        let members = self.roster.iter().map(|(addr, m)| (*addr, m.dialect));
        self.announcements.made(seq, now_ms, members);
        self.report_announcements(now_ms, out);
        Ok(seq)
    }

    /// How many announcements are being counted (at most
    /// [`ANNOUNCEMENTS_KEPT`]).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn announcements_kept(&self) -> usize {
        self.announcements.recent.len()
    }

    /// Operator `/announce` without text: who has seen the latest
    /// announcement so far (`None`: there was none).
    pub fn announcement(&self) -> Option<AnnouncementSummary> {
        self.announcements.latest()
    }

    /// `SEEN seq` from the sender of `ctx`: counted if it is a structured
    /// member of that announcement that had not confirmed yet. Never
    /// answered.
    pub(crate) fn handle_seen(&mut self, ctx: Context, seq: u64, out: &mut Outputs) {
        if self.roster.get(&ctx.from).is_none() || !self.announcements.seen(ctx.from, seq) {
            out.events.push(Event::Dropped {
                addr: ctx.from,
                why: "SEEN that counts nothing (not a member of that announcement, or again)",
            });
            return;
        }
        self.report_announcements(ctx.now_ms, out);
    }

    /// Reports the announcement summaries that are due.
    pub(crate) fn report_announcements(&mut self, now_ms: u64, out: &mut Outputs) {
        for summary in self.announcements.due(now_ms) {
            out.events.push(Event::Announcement(summary));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AnnouncementSummary, ANNOUNCEMENTS_KEPT, SUMMARY_AFTER_MS};
    use crate::testing::{addr, to, Harness};
    use crate::Event;

    fn summaries(h: &Harness) -> Vec<AnnouncementSummary> {
        h.out
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Announcement(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    fn announce(h: &mut Harness, text: &str) -> u64 {
        h.out.clear();
        let now = h.now();
        h.room.announce(now, text, &mut h.out).unwrap()
    }

    /// alice and bob structured, carol classic.
    fn three() -> Harness {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.join_classic(3, "carol");
        h
    }

    #[test]
    fn an_announcement_is_a_room_event_in_both_dialects() {
        let mut h = three();
        let seq = announce(&mut h, "test on Friday");
        assert_eq!(seq, 4);
        assert_eq!(to(&h.sent(), 1), ["EVENT 4 live ANNOUNCE test on Friday"]);
        assert_eq!(to(&h.sent(), 3), ["[announcement] test on Friday"]);
        let now = h.now();
        assert!(h.room.announce(now, "a\u{7}b", &mut h.out).is_err());
    }

    #[test]
    fn the_summary_comes_when_every_structured_member_confirmed() {
        let mut h = three();
        let seq = announce(&mut h, "test on Friday");
        assert!(summaries(&h).is_empty());
        assert_eq!(h.send(1, &format!("SEEN {seq}")), []);
        assert!(summaries(&h).is_empty());
        h.send(2, &format!("SEEN {seq}"));
        let want = AnnouncementSummary {
            seq,
            seen: 2,
            members: 3,
            classic: 1,
            left: 0,
            complete: true,
        };
        assert_eq!(summaries(&h), std::slice::from_ref(&want));
        // Once by itself; on request again.
        h.advance_ms(SUMMARY_AFTER_MS);
        h.timeout();
        assert!(summaries(&h).is_empty());
        assert_eq!(h.room.announcement(), Some(want));
    }

    #[test]
    fn the_summary_comes_after_ten_seconds_if_some_never_confirm() {
        let mut h = three();
        let seq = announce(&mut h, "test on Friday");
        h.send(1, &format!("SEEN {seq}"));
        h.advance_ms(SUMMARY_AFTER_MS - 1);
        assert_eq!(
            h.room.poll_timeout(),
            Some(h.now() + std::time::Duration::from_millis(1))
        );
        h.timeout();
        assert!(summaries(&h).is_empty());
        h.advance_ms(1);
        h.timeout();
        assert_eq!(
            summaries(&h),
            [AnnouncementSummary {
                seq,
                seen: 1,
                members: 3,
                classic: 1,
                left: 0,
                complete: false,
            }]
        );
        // A late confirmation still counts (and completes it, silently).
        h.send(2, &format!("SEEN {seq}"));
        assert!(summaries(&h).is_empty());
        assert_eq!(
            h.room.announcement().map(|s| (s.seen, s.complete)),
            Some((2, true))
        );
    }

    #[test]
    fn repeated_forged_and_classic_seen_count_nothing() {
        let mut h = three();
        let seq = announce(&mut h, "test on Friday");
        for (n, datagram) in [
            (1, format!("SEEN {seq}")),
            (1, format!("SEEN {seq}")),
            (1, format!("SEEN {}", seq + 1)),
            (1, format!("SEEN {}", seq - 1)),
            (3, format!("SEEN {seq}")),
            (9, format!("SEEN {seq}")),
        ] {
            assert_eq!(h.send(n, &datagram), [], "{n} {datagram}");
        }
        assert_eq!(h.room.announcement().map(|s| s.seen), Some(1));
        // A member who joined after the announcement counts nothing either.
        h.join_structured(4, "dave");
        h.send(4, &format!("SEEN {seq}"));
        let s = h.room.announcement().unwrap();
        assert_eq!((s.seen, s.members), (1, 3));
    }

    #[test]
    fn a_keyed_members_seen_without_its_key_counts_nothing() {
        let mut h = Harness::new();
        let cookie = h.cookie(1);
        let sent = h.send(
            1,
            &format!("HELLO udpchat/1 alice {cookie} key=0123456789abcdef"),
        );
        let welcome = &sent[0].1;
        let relay_key = welcome.rsplit(' ').next().unwrap().to_owned();
        let seq = announce(&mut h, "hi");
        assert_eq!(h.send(1, &format!("SEEN {seq}")), []);
        assert_eq!(h.room.announcement().map(|s| s.seen), Some(0));
        h.send(1, &format!("@{relay_key} SEEN {seq}"));
        assert_eq!(h.room.announcement().map(|s| s.seen), Some(1));
        assert_eq!(summaries(&h).len(), 1);
    }

    #[test]
    fn a_member_leaving_before_confirming_counts_as_left_and_does_not_hold_the_summary() {
        let mut h = three();
        let seq = announce(&mut h, "test on Friday");
        h.send(1, &format!("SEEN {seq}"));
        h.send(2, "Q bob");
        assert_eq!(
            summaries(&h),
            [AnnouncementSummary {
                seq,
                seen: 1,
                members: 3,
                classic: 1,
                left: 1,
                complete: true,
            }]
        );
        // Back at the same address: a new member, not of that announcement.
        h.join_structured(2, "bob");
        h.send(2, &format!("SEEN {seq}"));
        assert_eq!(h.room.announcement().map(|s| s.seen), Some(1));
    }

    #[test]
    fn a_room_without_structured_members_is_summed_up_at_once() {
        let mut h = Harness::new();
        h.join_classic(3, "carol");
        announce(&mut h, "hello");
        assert_eq!(
            summaries(&h)
                .iter()
                .map(|s| (s.seen, s.members, s.classic))
                .collect::<Vec<_>>(),
            [(0, 1, 1)]
        );
    }

    #[test]
    fn only_the_latest_few_announcements_are_counted() {
        let mut h = three();
        let first = announce(&mut h, "one");
        for i in 0..ANNOUNCEMENTS_KEPT {
            announce(&mut h, &format!("more {i}"));
        }
        h.send(1, &format!("SEEN {first}"));
        let latest = h.room.last_seq();
        h.send(1, &format!("SEEN {latest}"));
        assert_eq!(
            h.room.announcement().map(|s| (s.seq, s.seen)),
            Some((latest, 1))
        );
        assert_eq!(h.room.announcements.recent.len(), ANNOUNCEMENTS_KEPT);
        let _ = addr(1);
    }
}
