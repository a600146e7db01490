//! The structured dialect (PROTOCOL.md section 8), with session keys.
//! Run only when the relay answers a `HELLO` with a `COOKIE`; otherwise
//! the runner skips the whole group with one line.

use crate::check::Check;

/// The structured checks, in report order.
pub const CHECKS: &[Check] = &[];
