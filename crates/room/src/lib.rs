//! The udpchat relay core: one chat room, sans I/O.
//!
//! Contract: no I/O, no clock: bytes, address and time in; datagrams and
//! events out. No sockets, no clock reads, no threads. Time comes in as
//! `now`; datagrams come in as bytes and go out as [`Transmit`]s in
//! [`Outputs`], with [`Event`]s for the log and the transcript. The shell
//! (`udpchat-relay`'s server.rs) owns the socket and the clock and calls
//! [`Room::handle_datagram`], [`Room::handle_timeout`] when
//! [`Room::poll_timeout`] passes, and [`Room::handle_unreachable`].
//!
//! Where each rule lives:
//! - [`room`](Room): the facade; decides each datagram's context once and
//!   dispatches to the handlers;
//! - `roster`: the one-to-one address/nickname table, member state, idle
//!   timers;
//! - `limits`: per-address and per-IP token buckets, members per IP
//!   address, reply bytes charged per member and per IP address (three
//!   times the bytes received for unvalidated ones), the budget for
//!   replies to non-members, and what happens past the limit (a [`Refusal`], then
//!   silence, and for a flooder [`Event::Block`] so the shell can have the
//!   kernel drop its datagrams);
//! - `private`: private messages waiting for their `ACK`, and their
//!   retransmission;
//! - `history`: the numbering of room events and the bounded history for
//!   `RESEND` and joiners;
//! - `dialect`: classic or structured, how a datagram is answered, rendering;
//! - `cookie`: the stateless join cookie;
//! - `reserved`: the nicknames kept for the teacher and the relay;
//! - `moderation`: bans, mutes, the lock, the join code, slow mode and the
//!   host's renames (the operator's [`Room::ban`], [`Room::mute`], ...);
//! - `voice`: moderated mode and who has a voice ([`Room::set_moderated`],
//!   [`Room::voice`]); `speech`: chat or a `/me` action, and the checks
//!   every message to the room passes;
//! - `announce`: announcements and who confirmed them (`SEEN`);
//! - `hands`: the queue of raised hands (`HAND`/`H`, the console's `/next`);
//! - `attendance`: who came, when, for how long, how much they said, and
//!   the roster (present, late, absent);
//! - [`Refusal`]: why a datagram was refused, rendered to the wire in one place;
//! - [`Config`], and the outputs ([`Transmit`], [`Outputs`], [`Event`], [`Stats`]).
#![forbid(unsafe_code)]

mod announce;
mod attendance;
mod config;
mod cookie;
#[cfg(test)]
mod corpus_tests;
mod dialect;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod hands;
mod history;
mod limits;
mod moderation;
#[cfg(test)]
mod name_tests;
mod outbox;
mod output;
mod private;
mod refusal;
mod reserved;
mod resume;
mod room;
mod roster;
#[cfg(test)]
mod session_tests;
mod speech;
#[cfg(test)]
mod testing;
mod voice;

pub use announce::{AnnouncementSummary, ANNOUNCEMENTS_KEPT, SUMMARY_AFTER_MS};
pub use attendance::{AttendanceRecord, Presence, WhoEntry};
pub use config::Config;
pub use dialect::Dialect;
pub use hands::RaisedHand;
pub use limits::flood::MAX_BLOCKED;
pub use moderation::{duration_words, BanInfo, ModerationError, MAX_REASON_CHARS};
pub use output::{Event, Outputs, Stats, Transmit};
pub use refusal::Refusal;
pub use reserved::RESERVED_NICKS;
pub use room::Room;
