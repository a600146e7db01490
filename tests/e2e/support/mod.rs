//! Everything the end-to-end tests share: the real binaries as child
//! processes, raw UDP members, line readers and deadlines.
//!
//! Rules these helpers enforce, so tests cannot hang or leak processes:
//! - every wait has a deadline ([`WAIT`] unless said otherwise) and panics
//!   with what was seen instead of hanging; a passing test never waits that
//!   long, so it can be generous for a loaded machine;
//! - a started relay or client is killed when dropped (also when the test
//!   panics);
//! - traffic goes only to loopback addresses.
//!
//! Typical use:
//! ```ignore
//! let relay = Relay::start(&[]);                  // --bind 127.0.0.1:0 is added
//! let alice = Member::new(relay.addr);            // a raw UDP socket
//! alice.send("N alice");
//! assert_eq!(alice.recv_text(), "OK");
//! let bob = Client::joined(&relay.addr.to_string(), "bob"); // the real udpchat
//! ```
#![allow(dead_code)]

pub mod broken_relay;
pub mod client;
pub mod drop_proxy;
pub mod lines;
pub mod member;
pub mod process;
pub mod relay;
pub mod tmux;

use std::time::Duration;

pub use client::Client;
pub use lines::Lines;
pub use member::{
    check_datagram, loopback_ip, loopback_socket, loopback_socket_on, Ending, Member, Recorder,
};
pub use process::{eventually, ipv6_loopback_available, kill_9, kill_term, rss_kib, TempFile};
pub use relay::{run_relay_to_exit, Relay, LISTENING_PREFIX};
pub use tmux::Tmux;

/// The one deadline for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);
