//! What the room gives back: datagrams to send ([`Transmit`]), things to log
//! ([`Event`]), both collected in [`Outputs`], and the counters ([`Stats`]).

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use udpchat_proto::{ErrorCode, JoinCode, LeaveReason, Nick, RoomEvent, SessionKey, Text};

use crate::{AnnouncementSummary, Dialect};

/// One datagram to send: `@<key> ` (if `key` is set) followed by `bytes`.
/// `bytes` is shared by every recipient of the same rendering: an event is
/// encoded once per dialect/line-ending, never once per recipient, and a
/// keyed member's copy differs only in its key, which the shell sends in
/// front of the shared bytes ([`SessionKey::prefix`]) without copying them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The recipient's session key, sent first as `@<key> `.
    pub key: Option<SessionKey>,
    /// The datagram (after the key prefix, if any).
    pub bytes: Rc<[u8]>,
}

impl Transmit {
    /// `bytes` to `to`, as they are.
    pub fn new(to: SocketAddr, bytes: Rc<[u8]>) -> Transmit {
        Transmit {
            to,
            key: None,
            bytes,
        }
    }

    /// `bytes` to `to`, after `key`'s prefix if there is a key.
    pub fn keyed(to: SocketAddr, key: Option<SessionKey>, bytes: Rc<[u8]>) -> Transmit {
        Transmit { to, key, bytes }
    }

    /// The whole datagram, prefix included.
    pub fn datagram(&self) -> Vec<u8> {
        match self.key {
            Some(key) => key.prefixed(&self.bytes),
            None => self.bytes.to_vec(),
        }
    }

    /// The datagram's length in bytes, prefix included.
    pub fn len(&self) -> usize {
        self.bytes.len() + self.key.map_or(0, |_| udpchat_proto::KEY_PREFIX_LEN)
    }

    /// Whether the datagram is empty (it never is).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the shell logs and writes to the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Every numbered room event.
    Room {
        /// Its sequence number.
        seq: u64,
        /// What happened.
        event: RoomEvent,
    },
    /// A `JOIN` or `LEAVE` that was not announced because the room holds
    /// more than [`Config::announce_limit`](crate::Config::announce_limit) members: no sequence number, not
    /// in history, for the log and the transcript only.
    Unannounced {
        /// What happened.
        event: RoomEvent,
    },
    /// A private message (transcript only with a flag).
    Private {
        /// Sender.
        from: Nick,
        /// Recipient.
        to: Nick,
        /// Message.
        text: Text,
    },
    /// A member joined (info).
    Joined {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
        /// How it joined.
        dialect: Dialect,
    },
    /// A member left (info).
    Left {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
        /// Why.
        reason: LeaveReason,
    },
    /// A request was refused with an error reply (warn; the shell rate-limits the log).
    Refused {
        /// Who asked.
        addr: SocketAddr,
        /// The error code sent (or that would have been sent).
        code: ErrorCode,
        /// Details for the log: the [`Refusal`](crate::Refusal)'s `Display`.
        detail: String,
    },
    /// `addr` floods far past its rate limit: the shell should have the
    /// kernel drop its datagrams for `duration` (until [`Event::Unblock`]).
    /// At most [`MAX_BLOCKED`](crate::MAX_BLOCKED) addresses are blocked at once.
    Block {
        /// The flooder.
        addr: SocketAddr,
        /// How long the block lasts.
        duration: std::time::Duration,
    },
    /// The block of `addr` is over.
    Unblock {
        /// The former flooder.
        addr: SocketAddr,
    },
    /// The OS reported a member's port unreachable: nothing is sent to it
    /// until it speaks again ([`Event::Restored`]) or it leaves (info).
    Muted {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
    },
    /// A muted member spoke again: it gets datagrams again (info).
    Restored {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
    },
    /// The host removed a member (`/kick`, or a ban of its IP address).
    Kicked {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
        /// The host's reason (may be empty).
        reason: String,
    },
    /// The host banned an IP address.
    Banned {
        /// The address.
        ip: IpAddr,
        /// The member banned by nickname, if it was.
        nick: Option<Nick>,
        /// The host's reason (may be empty).
        reason: String,
        /// How long; `None` until lifted.
        duration: Option<Duration>,
    },
    /// The host lifted a ban.
    Unbanned {
        /// The address.
        ip: IpAddr,
    },
    /// The host muted a member (not [`Event::Muted`], which is about an
    /// unreachable port).
    Silenced {
        /// Its nickname.
        nick: Nick,
        /// How long; `None` until unmuted.
        duration: Option<Duration>,
    },
    /// The host unmuted a member.
    Unsilenced {
        /// Its nickname.
        nick: Nick,
    },
    /// The host locked (true) or unlocked (false) the room.
    Locked(bool),
    /// The host set or removed the join code.
    CodeSet(Option<JoinCode>),
    /// The host set slow mode (zero: off).
    SlowMode(Duration),
    /// The host gave a member a voice (`on`) or took it back (moderated
    /// mode; the room event `MODERATED` records the mode itself).
    Voiced {
        /// Its nickname.
        nick: Nick,
        /// Given (true) or taken back.
        on: bool,
    },
    /// Who has seen an announcement: when every structured member of it
    /// confirmed or left, or 10 s after it was made (for the console).
    Announcement(AnnouncementSummary),
    /// A member raised its hand (`HAND`/`H`), or raised it again with a
    /// new question (info; the console shows the queue).
    Hand {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
        /// What it wants to ask.
        question: Option<Text>,
        /// Its place in line, from 1.
        position: usize,
        /// Whether its hand was up already (the question was updated).
        again: bool,
    },
    /// The teacher called on a member (`/next`); its hand is down (info).
    Called {
        /// Its address.
        addr: SocketAddr,
        /// Its nickname.
        nick: Nick,
    },
    /// Input dropped without a reply (debug).
    Dropped {
        /// Who sent it.
        addr: SocketAddr,
        /// Why it was dropped.
        why: &'static str,
    },
}

/// What one call into the room produced. The shell clears and reuses it.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Datagrams to send, in order.
    pub transmits: Vec<Transmit>,
    /// Things to log.
    pub events: Vec<Event>,
}

impl Outputs {
    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.transmits.clear();
        self.events.clear();
    }
}

/// Counters for the operator and the benchmark.
#[derive(Default, Clone, Debug)]
pub struct Stats {
    /// Datagrams handed to [`Room::handle_datagram`](crate::Room::handle_datagram).
    pub datagrams_in: u64,
    /// Transmits produced.
    pub datagrams_out: u64,
    /// Requests refused with an error reply.
    pub refused: u64,
    /// Datagrams dropped by the per-address rate limit.
    pub rate_limited: u64,
    /// Replies to non-members dropped by the global budget.
    pub stranger_replies_dropped: u64,
    /// Replies not sent because they did not fit the recipient's reply
    /// budget (bytes per member and per IP address, or three times what an
    /// unvalidated IP address sent); the request was refused instead.
    pub replies_over_budget: u64,
    /// Successful joins.
    pub joins: u64,
    /// Members that left (any reason).
    pub leaves: u64,
    /// Memberships taken over from a new address (`RECONNECT`).
    pub reconnects: u64,
    /// Datagrams from a keyed member's address without its session key
    /// (not a `HELLO`): dropped without touching the member.
    pub unauthenticated: u64,
}

/// `s` as message text, or `fallback` if `s` breaks the text rules.
pub(crate) fn text_or(s: &str, fallback: &str) -> Text {
    Text::new(s)
        .or_else(|_| Text::new(fallback))
        .unwrap_or_else(|_| Text::new("-").expect("a literal is valid text"))
}
