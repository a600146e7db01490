//! udpchat's socket layer: everything the relay and the benchmark need from
//! the operating system that neither std nor mio wraps, behind one portable
//! API, and the only crate of the workspace with `unsafe` code.
//!
//! - [`RecvBatch`] and [`SendBatch`]: many datagrams per system call
//!   (Linux `recvmmsg`/`sendmmsg`), one `recv_from`/`send_to` at a time
//!   elsewhere, with the same results.
//! - [`enable_unreachable_reports`] and [`drain_error_queue`]: learn that a
//!   peer's port is closed (Linux `IP_RECVERR` and the socket error queue),
//!   and who says so ([`UnreachableReport`]).
//! - [`set_receive_buffer`], [`set_send_buffer`]: large socket buffers
//!   (Linux `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` where permitted).
//! - [`set_blocked_sources`]: make the kernel drop a flooder's datagrams
//!   (a classic BPF socket filter on Linux).
//! - [`raw`]: forged loopback packets (UDP from any 127.x address, ICMP
//!   port unreachable) for the hostile test suite; root only, Linux only.
//! - [`host`]: process tuning for the benchmark (CPU pinning, file limit,
//!   clock ticks).
//! - For the relay's start and its transcript: [`interface_addresses`]
//!   (where students can reach it, `getifaddrs`), [`stdin_terminal`] and
//!   [`ignore_terminal_stops`] (no SIGTTIN stop in the background),
//!   [`local_offset_seconds`] (`localtime_r`), [`open_private_append`]
//!   (mode 0600, `O_NOFOLLOW`).
//! - [`classify_receive_error`]: what a failed receive means on every
//!   platform (Windows' `WSAECONNRESET` after a closed port is not fatal),
//!   and [`ignore_connection_resets`] (Windows `SIO_UDP_CONNRESET` off).
//!
//! One convention throughout, the one std and mio use: a call that would
//! block returns `Err` of kind [`std::io::ErrorKind::WouldBlock`]; no
//! function turns it into `Ok(0)`. Where a platform lacks a feature, the
//! function does nothing (or says `Unsupported`) and the callers' portable
//! fallbacks apply, so the relay and client build on Windows and macOS.
//!
//! Every `unsafe` block carries a `SAFETY:` comment (enforced by
//! `clippy::undocumented_unsafe_blocks`).

mod batch;
mod errqueue;
mod filter;
pub mod host;
mod interfaces;
#[cfg(target_os = "linux")]
mod linux;
mod localtime;
mod options;
mod private_file;
pub mod raw;
mod receive_error;
#[cfg(unix)]
mod sockopt;
mod terminal;

pub use batch::{RecvBatch, SendBatch};
pub use errqueue::{drain_error_queue, enable_unreachable_reports, UnreachableReport};
pub use filter::{set_blocked_sources, MAX_BLOCKED};
pub use interfaces::{interface_addresses, ipv6_only, InterfaceAddr};
pub use localtime::local_offset_seconds;
pub use options::{set_receive_buffer, set_send_buffer, Buffer};
pub use private_file::{open_private_append, PrivateFile};
pub use receive_error::{classify_receive_error, ignore_connection_resets, ReceiveError};
pub use terminal::{
    ignore_terminal_stops, save_terminal_mode, stdin_terminal, StdinTerminal, TerminalMode,
};

use std::io;
use std::net::SocketAddr;

/// A UDP socket this crate can work on: std's and mio's. The methods are
/// the sockets' own; on Unix the raw descriptor is what the batched and
/// option calls need.
pub trait Socket {
    /// Receives one datagram and its source.
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// Sends one datagram to `to`.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// Sends one datagram to the connected peer.
    fn send(&self, buf: &[u8]) -> io::Result<usize>;
    /// The file descriptor.
    #[cfg(unix)]
    fn fd(&self) -> std::os::fd::RawFd;
}

macro_rules! impl_socket {
    ($ty:ty) => {
        impl Socket for $ty {
            fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
                <$ty>::recv_from(self, buf)
            }
            fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
                <$ty>::send_to(self, buf, to)
            }
            fn send(&self, buf: &[u8]) -> io::Result<usize> {
                <$ty>::send(self, buf)
            }
            #[cfg(unix)]
            fn fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(self)
            }
        }
    };
}

impl_socket!(std::net::UdpSocket);
impl_socket!(mio::net::UdpSocket);
