//! Rate limits: a token bucket per address (a member's travels with it, a
//! stranger's is kept here), per-IP aggregates on top of them (datagrams,
//! joins, reply bytes, the 3x anti-amplification credit, a `COOKIE` share),
//! members per IP address, and the global budget for replies to
//! non-members. None can be switched off by filling a table: a full table
//! means one shared strict bucket, never "allowed".
//!
//! What happens to a datagram over its limit: the first one since the
//! bucket was full is refused with one `ERROR rate-limited`
//! ([`Refusal::OverRateLimit`](crate::Refusal::OverRateLimit)); later ones
//! are dropped silently and counted by the [`FloodGuard`], which decides
//! when the shell should block the sender in the kernel (see [`flood`]).

mod bucket;
pub(crate) mod flood;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

pub(crate) use bucket::{Bucket, Rate, Take};
pub(crate) use flood::FloodGuard;

use crate::Config;

/// The most rate-limit buckets kept for addresses that are not members.
/// Beyond it, new strangers share one strict overflow bucket (a full table
/// never means "allowed").
pub(crate) const MAX_STRANGERS: usize = 4096;

/// The most IP addresses with their own per-IP state; beyond it, new IP
/// addresses share one overflow state.
pub(crate) const MAX_IPS: usize = 16_384;

/// An IP address's aggregate datagram limit is this many times one
/// address's (`--rate-burst`, `--rate-per-sec`): a classroom behind one NAT
/// chats normally, and a host spraying source ports gains at most this
/// factor.
pub(crate) const IP_FACTOR: u32 = 4;

/// New memberships (joins and take-overs) per IP address: burst (or twice
/// `--max-per-ip` if that is more, so a classroom behind one NAT address
/// joins at once) and refill per second.
pub(crate) const IP_JOIN_BURST: u32 = 8;
/// See [`IP_JOIN_BURST`].
pub(crate) const IP_JOINS_PER_SEC: u32 = 1;

/// Reply bytes a validated (structured) member may draw: burst (a full
/// room's `WHO`, a full `RESEND`, a `WELCOME` with its history each fit)
/// and refill per second. Its IP address gets [`IP_FACTOR`] times as much.
pub(crate) const MEMBER_REPLY_BURST: u32 = 128 * 1024;
/// See [`MEMBER_REPLY_BURST`].
pub(crate) const MEMBER_REPLY_PER_SEC: u32 = 16 * 1024;

/// An unvalidated IP address (strangers, classic members) is sent at most
/// this many times the bytes received from it in replies...
pub(crate) const AMPLIFICATION: u64 = 3;
/// ...of which at most this much is banked (a long-silent sender cannot
/// save up for a flood of replies).
pub(crate) const MAX_CREDIT: u64 = 3 * 64 * 1024;
/// ...plus a small allowance per IP address, in bytes, for one error line
/// (a course client whose `N` is refused reads why)...
pub(crate) const ALLOWANCE_BURST: u32 = 512;
/// ...refilling slowly (bytes per second).
pub(crate) const ALLOWANCE_PER_SEC: u32 = 16;

/// `COOKIE` replies per IP address: burst (or `--max-per-ip` if that is
/// more) and refill per second. They come
/// from the global stranger budget, of which other replies to strangers may
/// use only the part above [`COOKIE_RESERVE_PERCENT`].
pub(crate) const IP_COOKIE_BURST: u32 = 4;
/// See [`IP_COOKIE_BURST`].
pub(crate) const IP_COOKIES_PER_SEC: u32 = 1;
/// The share of the global stranger budget kept for `COOKIE` replies.
pub(crate) const COOKIE_RESERVE_PERCENT: u64 = 50;

/// Wrong join codes per IP address: this many at once, then one every
/// [`CODE_GUESS_EVERY_SECS`] (a bucket of ten tokens a guess, refilling one
/// a second, since buckets refill in whole tokens per second).
pub(crate) const CODE_GUESS_BURST: u32 = 5;
/// See [`CODE_GUESS_BURST`].
pub(crate) const CODE_GUESS_EVERY_SECS: u32 = 10;

/// The most `--max-per-ip` counts for in the join and `COOKIE` bursts.
const MAX_PER_IP_BURST: usize = 256;

/// How often stranger buckets that have refilled are forgotten.
pub(crate) const PRUNE_EVERY_MS: u64 = 10_000;

/// The address an IPv4-mapped IPv6 address stands for; others unchanged.
pub(crate) fn ip_key(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        ip => ip,
    }
}

/// The shapes of the per-IP buckets.
#[derive(Debug, Clone, Copy)]
struct IpRates {
    datagrams: Rate,
    joins: Rate,
    reply_bytes: Rate,
    allowance: Rate,
    cookies: Rate,
    code_guesses: Rate,
}

/// What one IP address (all its ports together) may still do.
#[derive(Debug, Clone, Copy)]
struct IpState {
    datagrams: Bucket,
    joins: Bucket,
    /// Reply bytes to its validated members.
    reply_bytes: Bucket,
    /// The fixed allowance of reply bytes to its unvalidated addresses.
    allowance: Bucket,
    /// Reply bytes its unvalidated addresses have earned:
    /// [`AMPLIFICATION`] times what they sent, less what they got.
    credit: u64,
    cookies: Bucket,
    /// Wrong join codes (see [`CODE_GUESS_BURST`]).
    code_guesses: Bucket,
}

impl IpState {
    fn new(rates: &IpRates, now_ms: u64) -> IpState {
        IpState {
            datagrams: Bucket::full(rates.datagrams, now_ms),
            joins: Bucket::full(rates.joins, now_ms),
            reply_bytes: Bucket::full(rates.reply_bytes, now_ms),
            allowance: Bucket::full(rates.allowance, now_ms),
            credit: 0,
            cookies: Bucket::full(rates.cookies, now_ms),
            code_guesses: Bucket::full(rates.code_guesses, now_ms),
        }
    }

    /// Whether forgetting it changes nothing but (conservatively) the
    /// credit.
    fn is_idle(&self, rates: &IpRates, now_ms: u64) -> bool {
        self.datagrams.is_full(rates.datagrams, now_ms)
            && self.joins.is_full(rates.joins, now_ms)
            && self.reply_bytes.is_full(rates.reply_bytes, now_ms)
            && self.allowance.is_full(rates.allowance, now_ms)
            && self.cookies.is_full(rates.cookies, now_ms)
            && self.code_guesses.is_full(rates.code_guesses, now_ms)
    }
}

/// The rate-limit state that is not a member's own bucket.
pub(crate) struct Limits {
    member_rate: Rate,
    member_reply_rate: Rate,
    /// Buckets of addresses that are not members (or no longer are).
    strangers: HashMap<SocketAddr, Bucket>,
    /// The one bucket every stranger shares while the table is full.
    overflow: Bucket,
    stranger_rate: Rate,
    /// The global budget for replies to non-members.
    stranger_budget: Bucket,
    cookie_reserve: u64,
    ip_rates: IpRates,
    ips: HashMap<IpAddr, IpState>,
    /// The state every IP address shares while `ips` is full.
    ip_overflow: IpState,
    /// Members per IP address (no entry for none).
    members_per_ip: HashMap<IpAddr, u32>,
    next_prune_ms: u64,
}

impl Limits {
    pub(crate) fn new(config: &Config) -> Limits {
        let stranger_rate = Rate::new(
            config.stranger_replies_per_sec,
            config.stranger_replies_per_sec,
        );
        let member_rate = Rate::new(config.rate_burst, config.rate_per_sec);
        // Bursts that grow with --max-per-ip, bounded (0, no limit, counts
        // as the bound).
        let per_ip = match config.max_per_ip {
            0 => MAX_PER_IP_BURST,
            n => n.min(MAX_PER_IP_BURST),
        };
        let per_ip = u32::try_from(per_ip).unwrap_or(0);
        let ip_rates = IpRates {
            datagrams: Rate::new(
                config.rate_burst.saturating_mul(IP_FACTOR),
                config.rate_per_sec.saturating_mul(IP_FACTOR),
            ),
            joins: Rate::new(
                IP_JOIN_BURST.max(per_ip.saturating_mul(2)),
                IP_JOINS_PER_SEC,
            ),
            reply_bytes: Rate::new(
                MEMBER_REPLY_BURST.saturating_mul(IP_FACTOR),
                MEMBER_REPLY_PER_SEC.saturating_mul(IP_FACTOR),
            ),
            allowance: Rate::new(ALLOWANCE_BURST, ALLOWANCE_PER_SEC),
            cookies: Rate::new(IP_COOKIE_BURST.max(per_ip), IP_COOKIES_PER_SEC),
            code_guesses: Rate::new(CODE_GUESS_BURST * CODE_GUESS_EVERY_SECS, 1),
        };
        Limits {
            member_rate,
            member_reply_rate: Rate::new(MEMBER_REPLY_BURST, MEMBER_REPLY_PER_SEC),
            strangers: HashMap::new(),
            overflow: Bucket::full(member_rate, 0),
            stranger_rate,
            stranger_budget: Bucket::full(stranger_rate, 0),
            cookie_reserve: u64::from(config.stranger_replies_per_sec) * COOKIE_RESERVE_PERCENT
                / 100,
            ip_rates,
            ips: HashMap::new(),
            ip_overflow: IpState::new(&ip_rates, 0),
            members_per_ip: HashMap::new(),
            next_prune_ms: PRUNE_EVERY_MS,
        }
    }

    /// The per-IP state of `ip`, created if there is room, else the shared
    /// overflow state.
    fn ip_mut(&mut self, ip: IpAddr, now_ms: u64) -> &mut IpState {
        if !self.ips.contains_key(&ip) {
            if self.ips.len() >= MAX_IPS {
                return &mut self.ip_overflow;
            }
            self.ips.insert(ip, IpState::new(&self.ip_rates, now_ms));
        }
        self.ips.get_mut(&ip).expect("inserted above")
    }

    /// Takes a rate-limit token for a datagram of `len` bytes from `from`:
    /// from `member` (its own bucket) if it is a member, else from its
    /// stranger bucket (the overflow bucket if the table is full), then
    /// from its IP address's aggregate bucket. A datagram from an
    /// unvalidated address (`validated` false) within its address's limit
    /// earns its IP address reply credit.
    pub(crate) fn take(
        &mut self,
        member: Option<&mut Bucket>,
        from: SocketAddr,
        len: usize,
        validated: bool,
        now_ms: u64,
    ) -> Take {
        let rate = self.member_rate;
        let take = match member {
            Some(bucket) => bucket.take(rate, now_ms),
            None => {
                let tracked = self.strangers.contains_key(&from);
                let full = !tracked && !self.make_room(now_ms);
                match self.strangers.get_mut(&from) {
                    Some(bucket) => bucket.take(rate, now_ms),
                    None if full => self.overflow.take(rate, now_ms),
                    None => {
                        let mut bucket = Bucket::full(rate, now_ms);
                        let take = bucket.take(rate, now_ms);
                        self.strangers.insert(from, bucket);
                        take
                    }
                }
            }
        };
        // A datagram over its address's limit costs no more work (a flood
        // is dropped as cheaply as before) and earns no credit.
        if take != Take::Allowed {
            return take;
        }
        let ip_rate = self.ip_rates.datagrams;
        let state = self.ip_mut(ip_key(from), now_ms);
        if !validated {
            let earned = (len as u64).saturating_mul(AMPLIFICATION);
            state.credit = state.credit.saturating_add(earned).min(MAX_CREDIT);
        }
        state.datagrams.take(ip_rate, now_ms)
    }

    /// A fresh reply-byte bucket for a new member.
    pub(crate) fn member_reply_bucket(&self, now_ms: u64) -> Bucket {
        Bucket::full(self.member_reply_rate, now_ms)
    }

    /// Charges `cost` reply bytes to `to`: to its own reply bucket
    /// (`member`, a validated member's) and its IP address's, or, for an
    /// unvalidated address, to its IP address's credit and then allowance.
    /// All or nothing: false (and nothing charged) if it does not fit.
    pub(crate) fn charge_reply(
        &mut self,
        member: Option<&mut Bucket>,
        to: SocketAddr,
        cost: usize,
        now_ms: u64,
    ) -> bool {
        let cost = cost as u64;
        let member_rate = self.member_reply_rate;
        let rates = self.ip_rates;
        let state = self.ip_mut(ip_key(to), now_ms);
        match member {
            Some(bucket) => {
                if !bucket.has(member_rate, now_ms, cost)
                    || !state.reply_bytes.has(rates.reply_bytes, now_ms, cost)
                {
                    return false;
                }
                bucket.try_take_n(member_rate, now_ms, cost);
                state
                    .reply_bytes
                    .try_take_n(rates.reply_bytes, now_ms, cost);
                true
            }
            None => {
                let from_credit = cost.min(state.credit);
                let rest = cost - from_credit;
                if rest > 0 && !state.allowance.try_take_n(rates.allowance, now_ms, rest) {
                    return false;
                }
                state.credit -= from_credit;
                true
            }
        }
    }

    /// Whether `from`'s IP address may start another membership now (its
    /// join bucket).
    pub(crate) fn take_join(&mut self, from: SocketAddr, now_ms: u64) -> bool {
        let rate = self.ip_rates.joins;
        self.ip_mut(ip_key(from), now_ms)
            .joins
            .try_take(rate, now_ms)
    }

    /// Milliseconds until `from`'s IP address may guess a join code again
    /// (0: now). Looking costs nothing; only a wrong guess is charged
    /// ([`Limits::wrong_code`]).
    pub(crate) fn code_guess_wait_ms(&mut self, from: SocketAddr, now_ms: u64) -> u64 {
        let rate = self.ip_rates.code_guesses;
        self.ip_mut(ip_key(from), now_ms).code_guesses.ms_until(
            rate,
            now_ms,
            u64::from(CODE_GUESS_EVERY_SECS),
        )
    }

    /// `from`'s IP address guessed a wrong join code.
    pub(crate) fn wrong_code(&mut self, from: SocketAddr, now_ms: u64) {
        let rate = self.ip_rates.code_guesses;
        self.ip_mut(ip_key(from), now_ms).code_guesses.try_take_n(
            rate,
            now_ms,
            u64::from(CODE_GUESS_EVERY_SECS),
        );
    }

    /// How many members `addr`'s IP address has.
    pub(crate) fn members_on(&self, addr: SocketAddr) -> u32 {
        self.members_per_ip.get(&ip_key(addr)).copied().unwrap_or(0)
    }

    /// A member now uses `addr` (joined, or moved there).
    pub(crate) fn member_added(&mut self, addr: SocketAddr) {
        *self.members_per_ip.entry(ip_key(addr)).or_insert(0) += 1;
    }

    /// A member no longer uses `addr` (left, or moved away).
    pub(crate) fn member_removed(&mut self, addr: SocketAddr) {
        let ip = ip_key(addr);
        if let Some(count) = self.members_per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.members_per_ip.remove(&ip);
            }
        }
    }

    /// Every member is gone (the relay shuts down): nothing is left to
    /// limit.
    pub(crate) fn members_cleared(&mut self) {
        self.members_per_ip.clear();
        self.ips.clear();
    }

    /// The bucket a joining address takes with it: its stranger bucket, so
    /// joining buys nothing; a copy of the overflow bucket if it was
    /// untracked because the table is full (its datagrams were counted
    /// there); else a full one.
    pub(crate) fn bucket_for_joiner(&mut self, addr: SocketAddr, now_ms: u64) -> Bucket {
        if let Some(bucket) = self.strangers.remove(&addr) {
            return bucket;
        }
        if self.strangers.len() >= MAX_STRANGERS {
            return self.overflow;
        }
        Bucket::full(self.member_rate, now_ms)
    }

    /// Keeps a leaver's bucket, so quitting and rejoining buys nothing.
    /// With the table full, a refilled stranger bucket (forgetting it
    /// changes nothing) makes room; failing that, the leaver's state is
    /// merged into the overflow bucket it will use from now on.
    pub(crate) fn keep_leavers_bucket(&mut self, addr: SocketAddr, bucket: Bucket, now_ms: u64) {
        if self.make_room(now_ms) {
            self.strangers.insert(addr, bucket);
        } else {
            self.overflow
                .merge_stricter(bucket, self.member_rate, now_ms);
        }
    }

    /// Whether the stranger table has room for one more bucket, making it
    /// if it is full by forgetting a refilled bucket (which changes
    /// nothing) among the first [`EVICT_PROBES`]: a spray of datagrams
    /// from many ports fills the table with buckets that refill within
    /// 1/rate, so newcomers still get their own bucket; only buckets kept
    /// drained hold the table full.
    fn make_room(&mut self, now_ms: u64) -> bool {
        if self.strangers.len() < MAX_STRANGERS {
            return true;
        }
        let rate = self.member_rate;
        let refilled = self
            .strangers
            .iter()
            .take(EVICT_PROBES)
            .find(|(_, b)| b.is_full(rate, now_ms))
            .map(|(a, _)| *a);
        match refilled {
            Some(victim) => {
                self.strangers.remove(&victim);
                true
            }
            None => false,
        }
    }

    /// Empties the bucket of `addr` if it is a tracked stranger (see
    /// [`Bucket::drain`]).
    pub(crate) fn drain_stranger(&mut self, addr: SocketAddr, now_ms: u64) {
        if let Some(bucket) = self.strangers.get_mut(&addr) {
            bucket.drain(now_ms);
        }
    }

    /// Spends one reply to a non-member from the global budget; false if
    /// it is exhausted. Only a `COOKIE` (`cookie`) may use the reserved
    /// part, and only within its IP address's share.
    pub(crate) fn reply_to_stranger(&mut self, to: SocketAddr, cookie: bool, now_ms: u64) -> bool {
        let rate = self.stranger_rate;
        if !cookie {
            return self
                .stranger_budget
                .try_take_keeping(rate, now_ms, self.cookie_reserve);
        }
        if !self.stranger_budget.has(rate, now_ms, 1) {
            return false;
        }
        let cookies = self.ip_rates.cookies;
        if !self
            .ip_mut(ip_key(to), now_ms)
            .cookies
            .try_take(cookies, now_ms)
        {
            return false;
        }
        self.stranger_budget.try_take(rate, now_ms)
    }

    /// Forgets stranger buckets and per-IP state that have refilled, every
    /// [`PRUNE_EVERY_MS`].
    pub(crate) fn handle_timeout(&mut self, now_ms: u64) {
        if now_ms >= self.next_prune_ms {
            let rate = self.member_rate;
            self.strangers.retain(|_, b| !b.is_full(rate, now_ms));
            let rates = self.ip_rates;
            let members = &self.members_per_ip;
            self.ips
                .retain(|ip, s| members.contains_key(ip) || !s.is_idle(&rates, now_ms));
            self.next_prune_ms = now_ms + PRUNE_EVERY_MS;
        }
    }

    /// When [`Limits::handle_timeout`] has work (none while nothing that
    /// could be forgotten is tracked).
    pub(crate) fn deadline(&self) -> Option<u64> {
        // O(1): an IP address without members is likely among them if
        // there are more IP states than member addresses.
        let prunable = !self.strangers.is_empty() || self.ips.len() > self.members_per_ip.len();
        prunable.then_some(self.next_prune_ms)
    }

    #[cfg(test)]
    pub(crate) fn strangers(&self) -> usize {
        self.strangers.len()
    }
}

/// Stranger buckets looked at for one to evict when a leaver's bucket must
/// be kept in a full table.
const EVICT_PROBES: usize = 64;

#[cfg(test)]
mod hostile_tests;

#[cfg(test)]
mod tests {
    use crate::testing::{to, Harness};
    use crate::Config;

    use super::PRUNE_EVERY_MS;

    #[test]
    fn first_excess_datagram_gets_one_rate_limited_error_then_silence() {
        let mut h = Harness::with(Config {
            rate_burst: 3,
            rate_per_sec: 1,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.send(1, "M alice 1");
        h.send(1, "M alice 2");
        let sent = h.send(1, "M alice 3");
        assert!(sent[0].1.starts_with("ERROR rate-limited: "), "{sent:?}");
        assert!(h.send(1, "M alice 4").is_empty());
        assert_eq!(h.room.stats().rate_limited, 2);
        // A refilled token lets one datagram through.
        h.advance_ms(1_000);
        assert_eq!(to(&h.send(1, "M alice 5"), 1), ["alice: 5"]);
    }

    #[test]
    fn a_flooder_is_blocked_then_unblocked_by_typed_events() {
        use std::time::Duration;
        let mut h = Harness::with(Config {
            rate_burst: 1,
            rate_per_sec: 1,
            ..Config::default()
        });
        let is_block = |e: &crate::Event| matches!(e, crate::Event::Block { .. });
        let mut blocks = Vec::new();
        // One allowed, one refused with an error, then silent excess: the
        // 100th excess datagram blocks the sender for the refill time (1 s).
        for _ in 0..(2 + super::flood::TRIGGER) {
            h.send(1, "PING");
            blocks.extend(h.out.events.iter().filter(|e| is_block(e)).cloned());
        }
        assert_eq!(
            blocks,
            [crate::Event::Block {
                addr: crate::testing::addr(1),
                duration: Duration::from_secs(1)
            }]
        );
        let due = h.room.poll_timeout().expect("the block ends");
        h.out.clear();
        h.room.handle_timeout(due, &mut h.out);
        assert_eq!(
            h.out.events,
            [crate::Event::Unblock {
                addr: crate::testing::addr(1)
            }]
        );
    }

    #[test]
    fn a_flooders_block_ends_without_a_burst_of_its_messages() {
        let mut h = Harness::with(Config {
            rate_burst: 40,
            rate_per_sec: 40,
            ..Config::default()
        });
        h.join_classic(1, "flood");
        h.join_classic(2, "bob");
        // 40 allowed, one refused, then 100 silent: blocked for 1 s.
        for _ in 0..(41 + super::flood::TRIGGER) {
            h.send(1, "M flood x");
        }
        let due = h.room.poll_timeout().expect("the block ends");
        h.out.clear();
        h.room.handle_timeout(due, &mut h.out);
        assert!(h
            .out
            .events
            .iter()
            .any(|e| matches!(e, crate::Event::Unblock { .. })));
        // The bucket refilled 40 tokens during the block; they are gone.
        let wait = due.saturating_duration_since(h.now());
        h.advance_ms(wait.as_millis() as u64 + 1);
        let burst: usize = (0..40).map(|_| to(&h.send(1, "M flood y"), 2).len()).sum();
        assert!(
            burst <= 1,
            "{burst} flood lines reached bob right after the block"
        );
        // Its rate still applies afterwards: one token every 25 ms.
        h.advance_ms(100);
        assert_eq!(to(&h.send(1, "M flood z"), 2), ["flood: z"]);
    }

    #[test]
    fn rate_limit_is_checked_before_parsing() {
        let mut h = Harness::with(Config {
            rate_burst: 2,
            ..Config::default()
        });
        h.send_bytes(1, b"\xff");
        h.send_bytes(1, b"\xff");
        let sent = h.send(1, "N alice");
        assert!(sent[0].1.starts_with("ERROR rate-limited: "), "{sent:?}");
        assert_eq!(h.room.member_count(), 0);
    }

    #[test]
    fn say_is_rate_limited_like_any_datagram() {
        let mut h = Harness::with(Config {
            rate_burst: 4,
            ..Config::default()
        });
        h.join_structured(1, "alice");
        h.send(1, "SAY 1 a");
        h.send(1, "SAY 2 b");
        h.send(1, "SAY 3 c");
        let sent = h.send(1, "SAY 4 d");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.starts_with("ERROR rate-limited "), "{sent:?}");
        // Dropped unseen, so its retransmission is relayed once it fits.
        h.advance_ms(1000);
        assert_eq!(to(&h.send(1, "SAY 4 d"), 1), ["EVENT 5 live CHAT alice d"]);
    }

    #[test]
    fn replies_to_strangers_share_a_global_budget() {
        let mut h = Harness::with(Config {
            stranger_replies_per_sec: 4,
            ..Config::default()
        });
        // Half of it is kept for COOKIE replies.
        let replies: usize = (1..=5).map(|n| h.send(n, "PING").len()).sum();
        assert_eq!(replies, 2);
        assert_eq!(h.room.stats().stranger_replies_dropped, 3);
        let sent = h.send(6, &crate::testing::padded_hello("carol"));
        assert!(sent[0].1.starts_with("COOKIE "), "{sent:?}");
        // Members are not limited by it.
        h.join_classic(10, "alice");
        h.advance_ms(1_000);
        assert_eq!(h.send(1, "PING").len(), 1);
    }

    #[test]
    fn quitting_and_rejoining_keeps_the_rate_limit_state() {
        let mut h = Harness::with(Config {
            rate_burst: 3,
            rate_per_sec: 1,
            ..Config::default()
        });
        h.join_classic(1, "alice");
        h.send(1, "Q alice");
        h.join_classic(1, "alice");
        assert!(h.send(1, "M alice x")[0]
            .1
            .starts_with("ERROR rate-limited"));
    }

    #[test]
    fn stranger_rate_state_is_forgotten_once_refilled() {
        let mut h = Harness::new();
        h.send(1, "PING");
        assert_eq!(h.room.limits.strangers(), 1);
        let due = h.room.poll_timeout().unwrap();
        h.elapsed = due - h.base;
        h.timeout();
        assert_eq!(h.room.limits.strangers(), 0);
        assert_eq!(h.room.poll_timeout(), None);
    }

    #[test]
    fn stranger_rate_state_is_kept_while_not_refilled() {
        let mut h = Harness::with(Config {
            rate_burst: 100,
            rate_per_sec: 1,
            ..Config::default()
        });
        for _ in 0..50 {
            h.send(1, "PING");
        }
        h.advance_ms(PRUNE_EVERY_MS);
        h.timeout();
        assert_eq!(h.room.limits.strangers(), 1);
    }
}
