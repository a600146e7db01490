//! The members: the one-to-one table of addresses and nicknames, each
//! member's own state, and the idle timers that evict the silent.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

use udpchat_proto::{Nick, SessionKey, Text, ID_WINDOW};

use crate::limits::Bucket;
use crate::outbox::Outbox;
use crate::{Config, Dialect};

/// One member. Kept small: the queues for private messages and recent ids
/// are allocated only when used, and boxed so an unused one costs 8 bytes.
pub(crate) struct Member {
    pub(crate) nick: Nick,
    pub(crate) dialect: Dialect,
    /// Changes when the member (re)joins or switches dialect, making older
    /// idle timers stale.
    generation: u64,
    last_heard_ms: u64,
    /// Its rate limit; it goes back to the stranger table when it leaves.
    pub(crate) bucket: Bucket,
    /// Reply bytes it may still draw (charged only while it is structured,
    /// i.e. validated by a cookie).
    pub(crate) reply_bytes: Bucket,
    /// Unacknowledged `PRIVATE` messages (structured members only).
    pub(crate) outbox: Outbox,
    /// The last [`ID_WINDOW`] `PMSG` and `SAY` ids this member sent. Gone
    /// with the member: a client that joins again starts a fresh ring.
    pub(crate) recent_ids: RecentIds,
    /// The join point: the newest event number when this membership began
    /// (`WELCOME`'s `last-seq`, the same in every repeated `WELCOME`).
    pub(crate) join_seq: u64,
    /// The first event of the history this membership is sent.
    pub(crate) history_from: u64,
    /// Numbers this membership for its resume token (0: none).
    pub(crate) join_id: u64,
    /// The MAC of its resume token, made over the nickname the membership
    /// began with (a rename does not change the token).
    pub(crate) token_mac: u64,
    /// When the OS reported its port unreachable: from then on nothing is
    /// sent to it (it is in its grace period; any command from it clears
    /// this); 0: it was not.
    pub(crate) unreachable_since_ms: u64,
    /// The session keys of a structured member that sent `key=` (none for
    /// classic members and keyless structured ones).
    pub(crate) keys: Option<MemberKeys>,
}

/// A keyed structured member's two session keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberKeys {
    /// The client's key (from `HELLO key=`): every datagram to it starts
    /// with `@<client> `.
    pub(crate) client: SessionKey,
    /// The relay's key for this membership (in `WELCOME`): every datagram
    /// from it must start with `@<relay> `.
    pub(crate) relay: SessionKey,
}

/// What an unreachable report about an address does ([`Roster::mark_unreachable`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Not a member: nothing.
    NotAMember,
    /// The member is muted (nothing is sent to it) until it speaks again or
    /// its grace period ends; `first`: it was not muted before.
    Muted {
        /// Whether this report muted it (it was not muted already).
        first: bool,
    },
    /// The member is to leave now: there is no grace period, or reports
    /// have kept coming for a whole grace period.
    Leave,
}

impl Member {
    /// When the member's address last sent a well-formed command.
    pub(crate) fn last_heard_ms(&self) -> u64 {
        self.last_heard_ms
    }

    /// The key that prefixes every datagram to this member, if any.
    pub(crate) fn client_key(&self) -> Option<SessionKey> {
        self.keys.map(|k| k.client)
    }
}

/// Most `SAY`s a member may have waiting for a missing earlier id.
pub(crate) const SAY_HOLD_MAX: usize = 32;
/// Longest a `SAY` waits for a missing earlier id, in milliseconds (the
/// room's timer checks; a `SAY` or `PMSG` from the member does too). Our
/// client repeats a lost `SAY` within a second at most, several times in
/// this while.
pub(crate) const SAY_HOLD_MS: u64 = 5_000;

/// A member's ring of recent `PMSG`/`SAY` ids (one ring for both: a
/// client keeps its ids unique across the two), with the sequence number
/// of each relayed `SAY`'s `CHAT` event, and the `SAY`s that arrived ahead
/// of a missing id.
#[derive(Default)]
#[allow(clippy::box_collection)]
pub(crate) struct RecentIds(Option<Box<Ids>>);

#[derive(Default)]
pub(crate) struct Ids {
    /// Ids and the `CHAT` event's sequence number (0 for a `PMSG`).
    ring: VecDeque<(u64, u64)>,
    /// The `SAY` id relayed next; `None` before the first.
    pub(crate) expect: Option<u64>,
    /// `SAY`s above `expect`, waiting: id to text and when it came.
    pub(crate) held: BTreeMap<u64, (Text, u64)>,
}

impl RecentIds {
    fn ids(&mut self) -> &mut Ids {
        self.0.get_or_insert_with(Default::default)
    }

    /// Whether `id` is in the window.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.0
            .as_ref()
            .is_some_and(|ids| ids.ring.iter().any(|&(i, _)| i == id))
    }

    /// The sequence number of the `CHAT` event `SAY id` became, if it is in
    /// the window (0 if the id was a `PMSG`).
    pub(crate) fn seq_of(&self, id: u64) -> Option<u64> {
        let ids = self.0.as_ref()?;
        ids.ring
            .iter()
            .find(|&&(i, _)| i == id)
            .map(|&(_, seq)| seq)
    }

    /// How many `SAY`s wait for an earlier id.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn held_len(&self) -> usize {
        self.0.as_ref().map_or(0, |ids| ids.held.len())
    }

    /// Whether `SAY id` is waiting for an earlier id.
    pub(crate) fn is_held(&self, id: u64) -> bool {
        self.0
            .as_ref()
            .is_some_and(|ids| ids.held.contains_key(&id))
    }

    /// Adds `id` (relayed as event `seq`, 0 for a `PMSG`), forgetting the
    /// oldest beyond [`ID_WINDOW`]. False if it was there already.
    pub(crate) fn remember(&mut self, id: u64, seq: u64) -> bool {
        if self.contains(id) {
            return false;
        }
        let ids = self.ids();
        if ids.ring.len() == ID_WINDOW {
            ids.ring.pop_front();
        }
        ids.ring.push_back((id, seq));
        true
    }

    /// Decides about a new `SAY id`: true if it goes to the room now,
    /// false if it waits (held) for a missing earlier id. The first `SAY`
    /// of a membership, a late one below `expect` and one far ahead (a
    /// restarted client's new counter) go at once.
    pub(crate) fn admit(&mut self, id: u64, text: Text, now_ms: u64) -> bool {
        let ids = self.ids();
        match ids.expect {
            Some(expect) if id > expect && id - expect <= ID_WINDOW as u64 => {
                ids.held.insert(id, (text, now_ms));
                false
            }
            _ => true,
        }
    }

    /// Notes `SAY id` relayed: the next one expected follows it.
    pub(crate) fn relayed(&mut self, id: u64) {
        let ids = self.ids();
        if ids.expect.is_none_or(|e| id >= e) {
            ids.expect = Some(id.wrapping_add(1));
        }
    }

    /// The next held `SAY` that may go now, removed: the one at `expect`;
    /// past an id another `PMSG` took; or, when too many wait or the oldest
    /// has waited [`SAY_HOLD_MS`], the lowest held one (the missing one is
    /// given up on; it is relayed late if it ever comes).
    pub(crate) fn release(&mut self, now_ms: u64) -> Option<(u64, Text)> {
        let ids = self.0.as_mut()?;
        loop {
            let expect = ids.expect?;
            let (&first, _) = ids.held.iter().next()?;
            if first <= expect {
                let (text, _) = ids.held.remove(&first)?;
                return Some((first, text));
            }
            if ids.ring.iter().any(|&(i, _)| i == expect) {
                ids.expect = Some(expect.wrapping_add(1));
                continue;
            }
            let oldest = ids.held.values().map(|&(_, at)| at).min().unwrap_or(now_ms);
            if ids.held.len() > SAY_HOLD_MAX || now_ms.saturating_sub(oldest) >= SAY_HOLD_MS {
                let (text, _) = ids.held.remove(&first)?;
                return Some((first, text));
            }
            return None;
        }
    }
}

/// When to check a member for idleness. Lazy: a datagram only updates
/// `last_heard_ms`, and a timer that fires early is pushed back.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct IdleTimer {
    due_ms: u64,
    addr: SocketAddr,
    generation: u64,
}

/// The members and their idle timers.
pub(crate) struct Roster {
    members: HashMap<SocketAddr, Member>,
    /// Nick key to address; ordered so WHO and `members()` come sorted.
    by_nick: BTreeMap<String, SocketAddr>,
    /// [`Nick::look_key`] to address: same-case look-alikes the key misses
    /// (computed on join and rename only, like the key).
    by_look: HashMap<String, SocketAddr>,
    idle_timers: BinaryHeap<Reverse<IdleTimer>>,
    next_generation: u64,
    structured_idle_ms: u64,
    classic_idle_ms: u64,
    unreachable_grace_ms: u64,
    /// Members' runs of unreachable reports: the first and the latest
    /// report (a run goes on while reports come less than the grace period
    /// apart; a command from the member does not end it). Kept apart from
    /// [`Member`], which stays small, and only for members reported.
    report_runs: HashMap<SocketAddr, (u64, u64)>,
}

impl Roster {
    pub(crate) fn new(config: &Config) -> Roster {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2);
        Roster {
            members: HashMap::new(),
            by_nick: BTreeMap::new(),
            by_look: HashMap::new(),
            idle_timers: BinaryHeap::new(),
            next_generation: 1,
            structured_idle_ms: ms(config.idle_timeout),
            classic_idle_ms: ms(config.classic_idle_timeout),
            unreachable_grace_ms: ms(config.unreachable_grace),
            report_runs: HashMap::new(),
        }
    }

    /// Silence after which a member of this dialect is evicted.
    pub(crate) fn idle_timeout_ms(&self, dialect: Dialect) -> u64 {
        match dialect {
            Dialect::Structured => self.structured_idle_ms,
            Dialect::Classic(_) => self.classic_idle_ms,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn get(&self, addr: &SocketAddr) -> Option<&Member> {
        self.members.get(addr)
    }

    pub(crate) fn get_mut(&mut self, addr: &SocketAddr) -> Option<&mut Member> {
        self.members.get_mut(addr)
    }

    /// The member holding the nickname with this key.
    pub(crate) fn addr_of(&self, key: &str) -> Option<SocketAddr> {
        self.by_nick.get(key).copied()
    }

    /// The member whose nickname has this [`Nick::look_key`].
    pub(crate) fn addr_of_look(&self, look_key: &str) -> Option<SocketAddr> {
        self.by_look.get(look_key).copied()
    }

    /// Every member, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SocketAddr, &Member)> {
        self.members.iter()
    }

    /// Every member, sorted by nick key.
    pub(crate) fn sorted(&self) -> impl Iterator<Item = (SocketAddr, &Member)> {
        self.by_nick
            .values()
            .filter_map(|addr| Some((*addr, self.members.get(addr)?)))
    }

    /// A well-formed command from `addr` keeps it alive, and ends its
    /// muting if a port unreachable had muted it: true then (the caller
    /// sends it what waits).
    pub(crate) fn heard(&mut self, addr: SocketAddr, now_ms: u64) -> bool {
        let Some(member) = self.members.get_mut(&addr) else {
            return false;
        };
        member.last_heard_ms = now_ms;
        std::mem::take(&mut member.unreachable_since_ms) != 0
    }

    /// Whether nothing may be sent to `addr` now: it is a member the OS
    /// reported unreachable, silent since.
    pub(crate) fn is_muted(&self, addr: &SocketAddr) -> bool {
        self.members
            .get(addr)
            .is_some_and(|m| m.unreachable_since_ms != 0)
    }

    /// The OS reported `addr` unreachable (the shell checked the report came
    /// from its own IP address). The report is a hint, not a verdict: the
    /// member is muted, and leaves only if it stays silent for the grace
    /// period (by its idle timer) or reports keep coming for a whole grace
    /// period (reports less than the grace period apart, the last at least
    /// the grace period after the first, even if it spoke in between).
    /// Without a grace period it leaves at once.
    pub(crate) fn mark_unreachable(&mut self, addr: SocketAddr, now_ms: u64) -> Unreachable {
        let grace = self.unreachable_grace_ms;
        let Some(member) = self.members.get_mut(&addr) else {
            return Unreachable::NotAMember;
        };
        if grace == 0 {
            return Unreachable::Leave;
        }
        let run = self.report_runs.entry(addr).or_insert((now_ms, now_ms));
        if now_ms.saturating_sub(run.1) >= grace {
            *run = (now_ms, now_ms);
        }
        run.1 = now_ms;
        if now_ms.saturating_sub(run.0) >= grace {
            return Unreachable::Leave;
        }
        let first = member.unreachable_since_ms == 0;
        if first {
            // 0 means "not reported"; the room's clock starts at 0.
            member.unreachable_since_ms = now_ms.max(1);
            let generation = member.generation;
            self.idle_timers.push(Reverse(IdleTimer {
                due_ms: now_ms + grace,
                addr,
                generation,
            }));
        }
        Unreachable::Muted { first }
    }

    /// When the member at `addr` is due for removal.
    fn due_ms(&self, member: &Member) -> u64 {
        let idle = member.last_heard_ms + self.idle_timeout_ms(member.dialect);
        match member.unreachable_since_ms {
            0 => idle,
            since => idle.min(since + self.unreachable_grace_ms),
        }
    }

    /// Adds a member (the caller checked that neither the address nor the
    /// nickname is taken).
    pub(crate) fn insert(
        &mut self,
        addr: SocketAddr,
        nick: Nick,
        dialect: Dialect,
        bucket: Bucket,
        reply_bytes: Bucket,
        now_ms: u64,
    ) {
        let generation = self.next_generation();
        self.by_nick.insert(nick.key(), addr);
        self.by_look.insert(nick.look_key(), addr);
        self.members.insert(
            addr,
            Member {
                nick,
                dialect,
                generation,
                last_heard_ms: now_ms,
                bucket,
                reply_bytes,
                outbox: Outbox::default(),
                recent_ids: RecentIds::default(),
                join_seq: 0,
                history_from: 1,
                join_id: 0,
                token_mac: 0,
                unreachable_since_ms: 0,
                keys: None,
            },
        );
        let due_ms = now_ms + self.idle_timeout_ms(dialect);
        self.idle_timers.push(Reverse(IdleTimer {
            due_ms,
            addr,
            generation,
        }));
        self.compact_idle_timers();
    }

    /// A member re-joined in another dialect (or with another line ending):
    /// it switches, with the idle timeout of the new one.
    pub(crate) fn switch_dialect(&mut self, addr: SocketAddr, dialect: Dialect, now_ms: u64) {
        let due_ms = now_ms + self.idle_timeout_ms(dialect);
        let generation = self.next_generation();
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        member.dialect = dialect;
        // Pending PRIVATEs are structured datagrams; a classic client could
        // neither read nor ACK them.
        if dialect != Dialect::Structured {
            member.outbox.clear();
        }
        member.generation = generation;
        self.idle_timers.push(Reverse(IdleTimer {
            due_ms,
            addr,
            generation,
        }));
    }

    /// Gives the member at `addr` the nickname `new` (the caller checked it
    /// is free or its own); returns the old one.
    pub(crate) fn rename(&mut self, addr: SocketAddr, new: Nick) -> Option<Nick> {
        let member = self.members.get_mut(&addr)?;
        self.by_nick.remove(&member.nick.key());
        self.by_look.remove(&member.nick.look_key());
        self.by_nick.insert(new.key(), addr);
        self.by_look.insert(new.look_key(), addr);
        Some(std::mem::replace(&mut member.nick, new))
    }

    /// Moves the member at `old` to `new` (a restarted client taking over its
    /// membership): same nickname and state, a fresh idle timer in
    /// `dialect`. The caller checked that `new` is not a member.
    pub(crate) fn move_member(
        &mut self,
        old: SocketAddr,
        new: SocketAddr,
        dialect: Dialect,
        now_ms: u64,
    ) -> bool {
        let Some(mut member) = self.members.remove(&old) else {
            return false;
        };
        let generation = self.next_generation();
        member.generation = generation;
        member.last_heard_ms = now_ms;
        member.unreachable_since_ms = 0;
        self.report_runs.remove(&old);
        if member.dialect != dialect && dialect != Dialect::Structured {
            member.outbox.clear();
        }
        member.dialect = dialect;
        self.by_nick.insert(member.nick.key(), new);
        self.by_look.insert(member.nick.look_key(), new);
        self.members.insert(new, member);
        let due_ms = now_ms + self.idle_timeout_ms(dialect);
        self.idle_timers.push(Reverse(IdleTimer {
            due_ms,
            addr: new,
            generation,
        }));
        self.compact_idle_timers();
        true
    }

    /// Removes the member at `addr`.
    pub(crate) fn remove(&mut self, addr: SocketAddr) -> Option<Member> {
        self.report_runs.remove(&addr);
        let member = self.members.remove(&addr)?;
        self.by_nick.remove(&member.nick.key());
        self.by_look.remove(&member.nick.look_key());
        Some(member)
    }

    /// Removes every member; returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let count = self.members.len();
        self.members.clear();
        self.by_nick.clear();
        self.by_look.clear();
        self.idle_timers.clear();
        self.report_runs.clear();
        count
    }

    /// The next member silent past its idle timeout at `now_ms`, if any.
    /// Timers that fired early are pushed back to the member's real due
    /// time; stale ones are dropped.
    pub(crate) fn next_idle(&mut self, now_ms: u64) -> Option<SocketAddr> {
        while let Some(Reverse(timer)) = self.idle_timers.peek() {
            if timer.due_ms > now_ms {
                return None;
            }
            let Reverse(timer) = self.idle_timers.pop()?;
            let Some(member) = self.members.get(&timer.addr) else {
                continue;
            };
            if member.generation != timer.generation {
                continue;
            }
            let due_ms = self.due_ms(member);
            if due_ms > now_ms {
                self.idle_timers
                    .push(Reverse(IdleTimer { due_ms, ..timer }));
            } else {
                return Some(timer.addr);
            }
        }
        None
    }

    /// When [`Roster::next_idle`] may next have someone.
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.idle_timers.peek().map(|Reverse(t)| t.due_ms)
    }

    fn next_generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }

    /// Drops stale idle timers once they outnumber the members, so join
    /// churn cannot grow the heap.
    fn compact_idle_timers(&mut self) {
        if self.idle_timers.len() <= 2 * self.members.len() + 64 {
            return;
        }
        let timers: Vec<Reverse<IdleTimer>> = self
            .members
            .iter()
            .map(|(addr, m)| {
                Reverse(IdleTimer {
                    // The real due time: a muted member's grace ends sooner.
                    due_ms: self.due_ms(m),
                    addr: *addr,
                    generation: m.generation,
                })
            })
            .collect();
        self.idle_timers = BinaryHeap::from(timers);
    }

    /// Whether the address and nickname tables agree (one-to-one, keys
    /// matching): checked by the fuzz oracle after every step.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn is_one_to_one(&self) -> bool {
        self.members.len() == self.by_nick.len()
            && self.members.len() == self.by_look.len()
            && self.by_look.iter().all(|(key, addr)| {
                self.members
                    .get(addr)
                    .is_some_and(|m| m.nick.look_key() == *key)
            })
            && self
                .by_nick
                .iter()
                .all(|(key, addr)| self.members.get(addr).is_some_and(|m| m.nick.key() == *key))
    }
}

/// Nicknames are the same member if their keys match (exact match first,
/// which needs no allocation).
pub(crate) fn same_nick(a: &Nick, b: &Nick) -> bool {
    a == b || a.key() == b.key()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{addr, to, Harness};

    #[test]
    fn classic_join_replies_ok_and_announces_join_to_everyone() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "N bob");
        assert_eq!(to(&sent, 2), ["OK", "* bob joined"]);
        assert_eq!(to(&sent, 1), ["* bob joined"]);
        assert_eq!(h.room.member_count(), 2);
    }

    #[test]
    fn repeated_classic_join_with_same_nick_gets_ok_without_second_join() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(1, "N alice");
        assert_eq!(sent, [(1, "OK".to_string())]);
        assert_eq!(h.room.last_seq(), 2);
    }

    #[test]
    fn classic_join_with_other_nick_from_same_address_is_already_joined() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(1, "N alicia");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR already-joined: "), "{sent:?}");
        assert_eq!(h.room.members()[0].0.as_str(), "alice");
    }

    #[test]
    fn join_with_nick_held_by_another_address_is_nick_taken_case_insensitively() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(2, "N ALICE");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR nick-taken: "), "{sent:?}");
        assert!(sent[0].1.contains("(ALICE)"), "{sent:?}");
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn join_when_room_is_full_is_refused() {
        let mut h = Harness::with(Config {
            max_clients: 2,
            ..Config::default()
        });
        h.join_classic(1, "a");
        h.join_classic(2, "b");
        let sent = h.send(3, "N c");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR room-full: "));
        assert_eq!(h.room.member_count(), 2);
    }

    #[test]
    fn classic_join_is_refused_when_classic_is_disabled() {
        let mut h = Harness::with(Config {
            classic: false,
            ..Config::default()
        });
        let sent = h.send(1, "N alice\n");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR classic-disabled: "));
        assert!(sent[0].1.ends_with('\n'));
        assert_eq!(h.room.member_count(), 0);
        h.join_structured(2, "bob");
    }

    #[test]
    fn hello_with_bad_version_is_refused() {
        let mut h = Harness::new();
        let cookie = h.cookie(1);
        let sent = h.send(1, &format!("HELLO udpchat/2 alice {cookie}"));
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR bad-version "), "{sent:?}");
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn repeated_valid_hello_gets_welcome_without_second_join() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 hi");
        let sent = h.join_structured(1, "alice");
        // The same join point and history range as the first WELCOME, not
        // the newest event: what came since is the client's to repair.
        assert_eq!(to(&sent, 1), ["WELCOME udpchat/1 alice 0 15 60 1 <token>"]);
        assert_eq!(h.room.last_seq(), 2);
    }

    #[test]
    fn hello_from_address_joined_under_other_nick_is_already_joined() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let cookie = h.cookie(1);
        let sent = h.send(1, &format!("HELLO udpchat/1 bob {cookie}"));
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR already-joined "), "{sent:?}");
    }

    #[test]
    fn quit_removes_member_and_tells_the_rest() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        let sent = h.send(1, "Q alice");
        assert_eq!(to(&sent, 1), Vec::<&str>::new());
        assert_eq!(to(&sent, 2), ["EVENT 3 live LEAVE alice quit"]);
        assert_eq!(h.room.member_count(), 1);
        h.join_classic(3, "alice");
    }

    #[test]
    fn rename_announces_and_frees_the_old_nick() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        let sent = h.send(1, "NICK alicia");
        assert_eq!(to(&sent, 1), ["* alice is now known as alicia"]);
        assert_eq!(to(&sent, 2), ["EVENT 3 live RENAME alice alicia"]);
        h.join_classic(3, "alice");
        let sent = h.send(1, "M alicia hi");
        assert_eq!(to(&sent, 3), ["alicia: hi"]);
    }

    #[test]
    fn rename_to_a_taken_nick_is_refused() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        let sent = h.send(1, "NICK Bob");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR nick-taken: "));
    }

    #[test]
    fn rename_changing_only_case_is_allowed() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        let sent = h.send(1, "NICK Alice");
        assert_eq!(to(&sent, 1), ["* alice is now known as Alice"]);
        assert_eq!(h.room.members()[0].0.as_str(), "Alice");
    }

    #[test]
    fn who_lists_members_sorted_in_each_dialect() {
        let mut h = Harness::new();
        h.join_classic(1, "carol");
        h.join_structured(2, "Alice");
        h.join_classic(3, "bob");
        assert_eq!(
            to(&h.send(1, "WHO"), 1),
            ["* online (3): Alice, bob, carol"]
        );
        assert_eq!(to(&h.send(2, "WHO"), 2), ["WHO 1 1 3 Alice bob carol"]);
    }

    #[test]
    fn idle_structured_member_is_evicted_with_bye_and_leave_timeout() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_classic(2, "bob");
        h.advance_ms(59_999);
        assert!(h.timeout().is_empty());
        assert_eq!(
            h.room.poll_timeout(),
            Some(h.base + Duration::from_secs(60))
        );
        h.advance_ms(1);
        let sent = h.timeout();
        assert_eq!(to(&sent, 1), ["BYE timeout no message for 60 s"]);
        assert_eq!(to(&sent, 2), ["* alice left (timed out)"]);
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn classic_member_uses_the_classic_idle_timeout() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.advance_ms(3_600_000);
        assert!(h.timeout().is_empty());
        h.advance_ms(3_600_000);
        let sent = h.timeout();
        assert_eq!(
            to(&sent, 1),
            ["* you were disconnected: no message for 7200 s"]
        );
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn junk_from_a_member_does_not_refresh_its_idle_timer() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.advance_ms(50_000);
        h.send(1, "garbage");
        h.send(1, "* bob joined");
        h.advance_ms(10_000);
        assert!(!h.timeout().is_empty());
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn any_command_from_a_member_refreshes_its_idle_timer() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.advance_ms(50_000);
        h.send(1, "PING");
        h.advance_ms(50_000);
        assert!(h.timeout().is_empty());
        assert_eq!(h.room.member_count(), 1);
        h.advance_ms(10_000);
        assert!(!h.timeout().is_empty());
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn unreachable_member_is_removed_with_leave_unreachable() {
        // A client that really exited: one report, then silence.
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.advance_ms(1_000);
        h.out.clear();
        let now = h.now();
        h.room.handle_unreachable(now, addr(1), &mut h.out);
        assert!(h.sent().is_empty(), "no LEAVE during the grace period");
        h.advance_ms(10_000);
        let sent = h.timeout();
        assert_eq!(to(&sent, 2), ["EVENT 3 live LEAVE alice unreachable"]);
        assert!(to(&sent, 1).is_empty(), "nothing to a closed port");
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn without_a_grace_period_an_unreachable_member_leaves_at_once() {
        let mut h = Harness::with(Config {
            unreachable_grace: Duration::ZERO,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.out.clear();
        let now = h.now();
        h.room.handle_unreachable(now, addr(1), &mut h.out);
        assert_eq!(to(&h.sent(), 2), ["EVENT 3 live LEAVE alice unreachable"]);
    }

    /// Reports `addr(n)` unreachable now; returns what was sent.
    fn report(h: &mut Harness, n: u8) -> Vec<(u8, String)> {
        h.out.clear();
        let now = h.now();
        h.room.handle_unreachable(now, addr(n), &mut h.out);
        h.sent()
    }

    #[test]
    fn a_reported_member_is_sent_nothing_until_it_speaks() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.join_structured(3, "carol");
        assert!(report(&mut h, 1).is_empty());
        assert!(report(&mut h, 2).is_empty());
        // No fan-out to either, the rest of the room as before.
        let sent = h.send(3, "SAY 1 hello");
        assert_eq!(to(&sent, 3), ["EVENT 4 live CHAT carol hello"]);
        assert_eq!(sent.len(), 1, "{sent:?}");
        // No private message either, and no retransmission of it.
        let sent = h.send(3, "PMSG 2 bob psst");
        assert_eq!(to(&sent, 3), ["SENT 2 bob psst"]);
        assert!(to(&sent, 2).is_empty());
        for _ in 0..9 {
            h.advance_ms(1_000);
            assert!(to(&h.timeout(), 2).is_empty());
        }
        // The host's kick sends no BYE to the closed port either.
        h.out.clear();
        let now = h.now();
        h.room.kick(now, "alice", "", &mut h.out).unwrap();
        assert!(to(&h.sent(), 1).is_empty(), "{:?}", h.sent());
    }

    #[test]
    fn a_reported_member_that_speaks_is_restored_and_gets_what_waits() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        h.join_structured(3, "carol");
        report(&mut h, 1);
        report(&mut h, 2);
        h.send(3, "SAY 1 missed");
        h.send(3, "PMSG 2 bob psst");
        h.advance_ms(9_000);
        // Bob speaks: his waiting private message comes at once, and he
        // repairs the missed chat with RESEND like any loss.
        let sent = h.send(2, "PING");
        assert_eq!(to(&sent, 2), ["PRIVATE 1 carol psst", "PONG 4"]);
        assert_eq!(
            to(&h.send(2, "RESEND 4 4"), 2),
            ["EVENT 4 resend ago=9 CHAT carol missed"]
        );
        // Both get the room again.
        h.send(1, "M alice back");
        let sent = h.send(3, "SAY 3 again");
        assert_eq!(to(&sent, 1), ["carol: again"]);
        assert_eq!(to(&sent, 2), ["EVENT 6 live CHAT carol again"]);
        // And stay, well past the grace period.
        h.advance_ms(20_000);
        h.timeout();
        assert_eq!(h.room.member_count(), 3);
        // The private message is retransmitted again until acknowledged.
        h.send(2, "ACK 1");
    }

    #[test]
    fn a_reported_member_that_stays_silent_leaves_after_the_grace() {
        let mut h = Harness::new();
        h.join_structured(1, "alice");
        h.join_structured(2, "bob");
        h.advance_ms(3_000);
        report(&mut h, 1);
        h.advance_ms(9_999);
        assert!(h.timeout().is_empty());
        assert_eq!(h.room.member_count(), 2);
        h.advance_ms(1);
        let sent = h.timeout();
        assert_eq!(to(&sent, 2), ["EVENT 3 live LEAVE alice unreachable"]);
        assert!(to(&sent, 1).is_empty(), "no BYE to a closed port");
        // The grace is silence after the report: speaking restarts it.
        report(&mut h, 2);
        h.advance_ms(6_000);
        h.send(2, "PING");
        h.advance_ms(6_000);
        assert!(h.timeout().is_empty());
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn the_grace_survives_a_compaction_of_the_idle_timers() {
        let mut h = Harness::with(Config {
            rate_burst: 10_000,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.join_classic(2, "bob");
        h.advance_ms(1_000);
        report(&mut h, 1);
        // Join churn rebuilds the timer heap from the members.
        for i in 0..200 {
            h.send(3, &format!("N c{i}"));
            h.send(3, &format!("Q c{i}"));
        }
        h.advance_ms(10_000);
        let sent = h.timeout();
        assert!(
            sent.iter().any(|(_, s)| s == "* alice left (unreachable)"),
            "{sent:?}"
        );
    }

    #[test]
    fn a_burst_of_reports_is_one_report() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        for _ in 0..28_232 {
            report(&mut h, 1);
        }
        h.advance_ms(5_000);
        h.send(1, "WHO");
        h.advance_ms(60_000);
        h.timeout();
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn reports_that_keep_coming_for_the_grace_end_the_membership() {
        // Its port draws a report after every datagram, but something
        // keeps speaking from it: after a grace period of reports (each
        // less than the grace apart) it leaves.
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.join_structured(2, "bob");
        report(&mut h, 1);
        for _ in 0..3 {
            h.advance_ms(3_000);
            h.send(1, "WHO");
            assert!(report(&mut h, 1).is_empty());
        }
        assert_eq!(h.room.member_count(), 2);
        h.advance_ms(1_000);
        h.send(1, "WHO");
        let sent = report(&mut h, 1);
        assert_eq!(to(&sent, 2), ["EVENT 3 live LEAVE alice unreachable"]);
        // Reports far apart are separate runs: no eviction.
        h.join_classic(1, "alice");
        for _ in 0..5 {
            report(&mut h, 1);
            h.advance_ms(10_000);
            h.send(1, "WHO");
        }
        assert_eq!(h.room.member_count(), 2);
    }

    #[test]
    fn unreachable_stranger_changes_nothing() {
        let mut h = Harness::new();
        h.join_classic(1, "alice");
        h.out.clear();
        let now = h.now();
        h.room.handle_unreachable(now, addr(9), &mut h.out);
        assert!(h.out.transmits.is_empty());
        assert_eq!(h.room.member_count(), 1);
    }

    #[test]
    fn members_are_listed_sorted_by_nick_key() {
        let mut h = Harness::new();
        h.join_classic(1, "bob");
        h.join_structured(2, "Alice");
        let members = h.room.members();
        let names: Vec<&str> = members.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["Alice", "bob"]);
        assert_eq!(members[0].2, Dialect::Structured);
    }

    #[test]
    fn member_state_stays_small() {
        // Per member: this struct, its map entries (address + nick key) and
        // one idle timer. The RSS target is about 1 KB per member in all.
        let member = std::mem::size_of::<Member>();
        let timer = std::mem::size_of::<Reverse<IdleTimer>>();
        // 128 before issue 12; the reply-byte bucket added 24, a keyed
        // member's two 64-bit keys (and the option's tag) another 24,
        // inline rather than one more allocation.
        assert!(member <= 176, "Member is {member} bytes");
        assert!(timer <= 64, "IdleTimer is {timer} bytes");
    }
}
