//! A deterministic network simulator for udpchat: the sans-IO room
//! ([`udpchat_room::Room`]) and the client's sans-IO session
//! ([`udpchat_cli::session::Session`]) talk through simulated links, on a
//! virtual clock, with seeded faults.
//!
//! Contract: no sockets, no threads, no sleeping, and no reading of the
//! real clock after [`Sim::new`]. Every random choice (losses, duplicates,
//! holds, the room's cookie key) comes from the seed, so the same seed and
//! the same calls give the same run, datagram for datagram
//! ([`Sim::trace`]), however loaded the machine is. A failing seed
//! reproduces exactly.
//!
//! ```
//! use std::time::Duration;
//! use udpchat_netsim::{ClientKind, LinkConfig, Sim};
//!
//! let mut sim = Sim::new(7, udpchat_room::Config::default());
//! let lossy = LinkConfig::lossy(0.2);
//! let ann = sim.add_client(ClientKind::Structured, "ann", lossy, lossy);
//! assert!(sim.run_until(Duration::from_secs(30), |s| s.client(ann).is_joined()));
//! sim.type_lines(ann, ["hello"], Duration::ZERO);
//! assert!(sim.run_until(Duration::from_secs(60), |s| s.client(ann).chats().len() == 1));
//! ```
//!
//! Pieces:
//! - [`Sim`]: the event queue and the virtual clock. Datagrams arrive at
//!   their arrival time; the room's `handle_timeout` runs at its
//!   `poll_timeout`; each client is woken when it asks.
//! - [`LinkConfig`], [`Link`]: one direction of one client's path: delay,
//!   jitter, independent or burst ([`Loss::Burst`], Gilbert-Elliott) loss,
//!   duplication, reordering; counters in [`WireStats`].
//! - [`StructuredClient`] (the real session, driven like the binary's
//!   piped mode), [`ClassicClient`], [`NaiveClient`] (no repair at all).
//! - [`SplitMix64`]: the seeded generator.

mod client;
mod link;
mod rng;
mod sim;

pub use client::{Chat, ClassicClient, NaiveClient, Shown, StructuredClient};
pub use link::{Link, LinkConfig, Loss, WireStats};
pub use rng::SplitMix64;
pub use sim::{Client, ClientId, ClientKind, Numbered, Sim, TraceRecord, Wire};
