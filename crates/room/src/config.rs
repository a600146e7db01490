//! The room's configuration: sizes, timeouts, limits and language. The
//! shell fills it from the command line.

use std::time::Duration;

use udpchat_proto::{JoinCode, Lang, Nick};

/// How the relay is configured (the shell fills it from the command line).
#[derive(Debug, Clone)]
pub struct Config {
    /// Most members at once.
    pub max_clients: usize,
    /// Silence after which a structured member is evicted.
    pub idle_timeout: Duration,
    /// Silence after which a classic member is evicted.
    pub classic_idle_timeout: Duration,
    /// Ping interval announced to structured members in `WELCOME`.
    pub ping_interval: Duration,
    /// Whether classic `N` joins are accepted (false with `--no-classic`).
    pub classic: bool,
    /// Language of classic lines and error reasons.
    pub lang: Lang,
    /// Per-address token bucket: burst size.
    pub rate_burst: u32,
    /// Per-address token bucket: tokens added per second.
    pub rate_per_sec: u32,
    /// Most members per IP address (IPv4-mapped IPv6 counted as IPv4);
    /// 0 = no limit.
    pub max_per_ip: usize,
    /// Global budget for replies to non-members, per second.
    pub stranger_replies_per_sec: u32,
    /// Room events kept for `RESEND`.
    pub history: usize,
    /// Room events replayed to a new structured member (0 = off).
    pub history_on_join: usize,
    /// JOIN and LEAVE are announced to the room only while it holds at most
    /// this many members, the joiner or leaver counted (0 = never).
    pub announce_limit: usize,
    /// A classic `N nick` from a new port of the same IP address takes over
    /// `nick`'s classic membership once the old address has been silent this
    /// long (a course client restarted without sending `Q`); zero: never.
    pub classic_reclaim_after: Duration,
    /// A structured member whose port the OS reports unreachable (its
    /// client died) stays a member this long, silent, so that the restarted
    /// client can resume it with its token (`RECONNECT`, no `LEAVE`); zero:
    /// removed at once, like a classic member.
    pub unreachable_grace: Duration,
    /// Let structured clients join without `key=` (older clients, a `HELLO`
    /// typed by hand): such a member is authenticated by its address only,
    /// so a blind spoofer can speak as it. Off by default: a cookie `HELLO`
    /// without `key=` is refused with `key-required`.
    pub allow_keyless: bool,
    /// Nicknames no member may take, nor any look-alike of them (the same
    /// [`Nick::key`]): by default [`RESERVED_NICKS`](crate::RESERVED_NICKS);
    /// `--reserve NAME` adds to them.
    pub reserved: Vec<Nick>,
    /// The room starts locked (`--locked`): no new members.
    pub locked: bool,
    /// The room starts in moderated mode (`--moderated`): only the host
    /// and members with a voice speak to the room.
    pub moderated: bool,
    /// The join code new members need (`--join-code`); `None`: none.
    pub join_code: Option<JoinCode>,
    /// Slow mode (`--slow`): the least time between one member's chat
    /// messages; zero: off.
    pub slow_mode: Duration,
    /// The teacher's roster (`--roster FILE`): the nicknames expected, for
    /// attendance (matched by [`Nick::key`]). Empty: no roster.
    pub roster: Vec<Nick>,
    /// A student whose first join comes later than this after the room
    /// started is *late* in the attendance (`--late-after`).
    pub late_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_clients: 1024,
            idle_timeout: Duration::from_secs(60),
            classic_idle_timeout: Duration::from_secs(2 * 60 * 60),
            ping_interval: Duration::from_secs(15),
            classic: true,
            lang: Lang::En,
            rate_burst: 80,
            rate_per_sec: 40,
            max_per_ip: 4,
            stranger_replies_per_sec: 100,
            history: 1024,
            history_on_join: 20,
            announce_limit: 200,
            classic_reclaim_after: Duration::from_secs(30),
            unreachable_grace: Duration::from_secs(10),
            allow_keyless: false,
            reserved: crate::reserved::default_reserved(),
            locked: false,
            join_code: None,
            slow_mode: Duration::ZERO,
            moderated: false,
            roster: Vec::new(),
            late_after: Duration::from_secs(10 * 60),
        }
    }
}
