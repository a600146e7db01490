//! The end-to-end tests: the real `udpchat-relay` and `udpchat` binaries,
//! started on loopback ports, driven over UDP, through pipes and in tmux.
//! One test binary (one link, one process) with one support module; the
//! rules of the room are tested in crates/room and loss on the simulator in
//! crates/netsim, so the scenarios here stay short.
//!
//! - `relay_*`: the relay as a process (flags, signals, console, transcript,
//!   where-to-join lines at start, `udpchat-relay &` under tmux), both
//!   dialects on the wire, and moderation (join code, bans);
//! - `hostile_input`, `flood_joins`, `transcript_under_load`: bad and heavy
//!   input against the real relay;
//! - `hostile`: the attacks of a hostile classroom LAN (issue 12: forged
//!   sources and ICMP errors through raw sockets, floods, spoofing), one test
//!   per attack; skipped loudly without root;
//! - `cli_*`: the real client, piped, in tmux, against a misbehaving relay;
//! - `loss_smoke`: both binaries through the seeded loss proxy, briefly;
//! - `conform`: `udpchat-conform relay` against the real relay (every MUST
//!   passes) and against deliberately broken relays (each fails exactly
//!   the checks it should);
//! - `conform_class`: `udpchat-conform class` on a class of our relay and
//!   broken ones: the HTML page, the JSON, the page in headless Chromium;
//! - `conform_lossy`: the checks of repair behind the kit's seeded lossy
//!   path (`--loss --dup --reorder --seed`);
//! - `version`: `--version` of both binaries;
//! - `wine`: the Windows client (cross-built) under wine against the Linux
//!   relay; skipped loudly unless `.ci/run` set `UDPCHAT_WINDOWS_CLIENT`.
//! - `conform_client`: `udpchat-conform client` playing the relay for our
//!   client (every check passes) and for broken clients
//!   (`support/broken_client.py`; each fails exactly its check).

mod support;

mod cli_chat;
mod cli_resume;
mod cli_tmux;
mod cli_tmux_app;
mod cli_untrusted_relay;
mod conform;
mod conform_class;
mod conform_client;
mod conform_lossy;
mod flood_joins;
mod hostile;
mod hostile_input;
mod loss_smoke;
mod relay_attendance;
mod relay_classic;
mod relay_console_tmux;
mod relay_moderation;
mod relay_process;
mod relay_speaking;
mod relay_start;
mod relay_structured;
mod relay_tmux;
mod transcript_under_load;
mod version;
mod wine;
