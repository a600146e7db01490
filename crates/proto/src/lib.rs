//! The udpchat wire format: parsing and encoding of every datagram, in both
//! directions, and the human-readable lines of the classic dialect.
//!
//! Contract: no I/O, no clock, no allocation beyond the values returned.
//! [`ClientMsg::parse`] and [`RelayMsg::parse`] accept any bytes and never
//! panic; every value they return re-encodes to an equivalent datagram.
//! Field types are validated newtypes ([`Nick`], [`Text`], [`Token`]): a value
//! of one of them always holds something that is legal on the wire, so an
//! encoder can never produce a datagram the spec forbids.
//!
//! PROTOCOL.md at the top of the repository is the normative description; the
//! tests in this crate check its worked examples.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod classic;
mod client;
mod error;
mod fields;
#[doc(hidden)]
pub mod fuzzing;
mod lookalike;
mod relay;
mod session_key;

pub use client::ClientMsg;
pub use error::{ErrorCode, ParseError};
pub use fields::{
    check_text_char, is_default_ignorable, is_invisible, strip_line_ending, Cookie, JoinCode,
    LineEnding, Nick, Text, Token,
};
pub use lookalike::{check_action, check_text_content, MAX_SPACE_RUN};
pub use relay::{ByeCode, HandNotice, LeaveReason, Origin, RelayMsg, RoomEvent};
pub use session_key::{split_key_prefix, SessionKey, KEY_PREFIX_LEN};

/// The UDP port a relay listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 10024;

/// The largest datagram a relay ever sends, and the largest a client may send.
///
/// Classic clients read with a 1024-byte buffer and decode strictly, so a
/// longer datagram would be cut inside a character and crash them.
pub const MAX_DATAGRAM: usize = 1024;

/// The most Unicode scalar values a nickname may have.
pub const MAX_NICK_CHARS: usize = 24;

/// The most UTF-8 bytes a nickname may have.
pub const MAX_NICK_BYTES: usize = 64;

/// The most UTF-8 bytes of message text (chat, private, host).
///
/// Chosen so that the longest rendering of any message, in either dialect and
/// with the longest nicknames and sequence numbers, stays within
/// [`MAX_DATAGRAM`]: a message is accepted whole or refused, never truncated.
pub const MAX_TEXT_BYTES: usize = 800;

/// The version token of the structured dialect this crate speaks.
pub const VERSION: &str = "udpchat/1";

/// A `HELLO` without a cookie must be at least this long (padded), so that the
/// relay's `COOKIE` answer is never larger than the request that caused it.
pub const MIN_HELLO_LEN: usize = 64;

/// The language of the human-readable lines the relay sends to classic
/// clients, and of the reasons in error replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

/// How many recent `SAY`/`PMSG` ids the relay remembers per member to drop repeats.
pub const ID_WINDOW: usize = 64;
/// The most events one `RESEND` may ask for; the relay answers at most this many.
pub const MAX_RESEND: u64 = 64;

mod datagram;
pub use datagram::{check_relay_datagram, DatagramFault};
