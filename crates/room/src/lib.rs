//! The udpchat relay core: one chat room, sans I/O.
//!
//! Contract: no I/O, no clock: bytes, address and time in; datagrams and
//! events out.
#![forbid(unsafe_code)]

mod bucket;
mod cookie;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod history;
mod room;

pub use room::*;
