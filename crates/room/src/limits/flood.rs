//! Flood blocking: which addresses send so far past their rate limit that
//! the shell should have the kernel drop their datagrams for a while.
//!
//! The room drops a flooder's excess anyway, but each datagram costs the
//! relay a wake-up and a copy first: at a few hundred thousand a second,
//! half a core that honest fan-out needs. An address with [`TRIGGER`]
//! datagrams over its limit within [`WINDOW_MS`] (a member never comes
//! close: the default limit is 5 a second) is blocked for as long as its
//! bucket takes to refill completely, at most [`MAX_BLOCK_MS`]. Its bucket
//! refills meanwhile, so the datagrams it gets accepted per second stay what
//! the rate limit allows; only the ones that would be dropped are dropped
//! earlier. The decisions leave the room as [`Event::Block`] and
//! [`Event::Unblock`](crate::Event::Unblock).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::{Config, Event};

/// Excess datagrams within one window that block an address.
pub(crate) const TRIGGER: u32 = 100;
/// The counting window.
pub(crate) const WINDOW_MS: u64 = 100;
/// The longest block.
pub(crate) const MAX_BLOCK_MS: u64 = 1_000;
/// Addresses counted per window at most (a spoofed flood from many
/// addresses cannot grow the table).
const MAX_COUNTED: usize = 1024;
/// Addresses blocked at once at most (the kernel filter grows with each).
pub const MAX_BLOCKED: usize = 64;

/// Counts each address's excess per window and holds the current blocks.
#[derive(Debug)]
pub(crate) struct FloodGuard {
    window_start_ms: u64,
    excess: HashMap<SocketAddr, u32>,
    /// Blocked addresses and when their block ends.
    blocked: Vec<(SocketAddr, u64)>,
    block_ms: u64,
}

impl FloodGuard {
    pub(crate) fn new(config: &Config) -> FloodGuard {
        let refill_ms = u64::from(config.rate_burst) * 1000 / u64::from(config.rate_per_sec.max(1));
        FloodGuard {
            window_start_ms: 0,
            excess: HashMap::new(),
            blocked: Vec::new(),
            block_ms: refill_ms.min(MAX_BLOCK_MS),
        }
    }

    /// Counts one datagram from `addr` dropped by the rate limit; emits
    /// [`Event::Block`] if that makes `addr` blocked.
    pub(crate) fn over_limit(&mut self, now_ms: u64, addr: SocketAddr, events: &mut Vec<Event>) {
        if now_ms.saturating_sub(self.window_start_ms) >= WINDOW_MS {
            self.window_start_ms = now_ms;
            self.excess.clear();
            self.excess.shrink_to(MAX_COUNTED);
        }
        if self.excess.len() >= MAX_COUNTED && !self.excess.contains_key(&addr) {
            return;
        }
        let count = self.excess.entry(addr).or_insert(0);
        *count += 1;
        if *count != TRIGGER
            || self.block_ms == 0
            || self.blocked.len() >= MAX_BLOCKED
            || self.blocked.iter().any(|(a, _)| *a == addr)
        {
            return;
        }
        self.blocked.push((addr, now_ms + self.block_ms));
        events.push(Event::Block {
            addr,
            duration: Duration::from_millis(self.block_ms),
        });
    }

    /// Ends the blocks that are over, with an [`Event::Unblock`] each;
    /// returns their addresses (whose buckets the room then drains).
    pub(crate) fn handle_timeout(
        &mut self,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Vec<SocketAddr> {
        let mut ended = Vec::new();
        self.blocked.retain(|&(addr, until)| {
            let over = until <= now_ms;
            if over {
                events.push(Event::Unblock { addr });
                ended.push(addr);
            }
            !over
        });
        ended
    }

    /// When the next block ends.
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.blocked.iter().map(|&(_, until)| until).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(rate_burst: u32, rate_per_sec: u32) -> FloodGuard {
        FloodGuard::new(&Config {
            rate_burst,
            rate_per_sec,
            ..Config::default()
        })
    }

    #[test]
    fn an_address_far_over_its_limit_is_blocked_until_its_bucket_refills() {
        let flooder: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
        // Default limit: burst 20 at 5/s refills in 4 s; blocks last 1 s.
        let mut f = guard(20, 5);
        let mut events = Vec::new();
        for _ in 1..TRIGGER {
            f.over_limit(0, flooder, &mut events);
        }
        f.over_limit(0, other, &mut events);
        assert!(events.is_empty());
        f.over_limit(0, flooder, &mut events);
        assert_eq!(
            events,
            [Event::Block {
                addr: flooder,
                duration: Duration::from_secs(1)
            }]
        );
        events.clear();
        f.over_limit(0, flooder, &mut events);
        assert!(events.is_empty(), "blocked once");
        assert_eq!(f.deadline(), Some(1_000));
        f.handle_timeout(999, &mut events);
        assert!(events.is_empty());
        f.handle_timeout(1_000, &mut events);
        assert_eq!(events, [Event::Unblock { addr: flooder }]);
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn excess_spread_over_windows_does_not_block() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut f = guard(20, 5);
        let mut events = Vec::new();
        // 99 excess datagrams per window, window after window.
        for w in 0..10u64 {
            for _ in 1..TRIGGER {
                f.over_limit(w * WINDOW_MS, addr, &mut events);
            }
        }
        assert!(events.is_empty());
        // A limit that refills quickly blocks only that long.
        assert_eq!(guard(1, 1000).block_ms, 1);
    }

    #[test]
    fn at_most_max_blocked_addresses_are_blocked_at_once() {
        let mut f = guard(20, 5);
        let mut events = Vec::new();
        for port in 0..(MAX_BLOCKED as u16 + 5) {
            let addr = SocketAddr::from(([127, 0, 0, 1], 1000 + port));
            for _ in 0..TRIGGER {
                f.over_limit(0, addr, &mut events);
            }
        }
        assert_eq!(events.len(), MAX_BLOCKED);
    }
}
