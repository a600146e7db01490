//! What a failed UDP receive means, the same on every platform, and (on
//! Windows) switching off the report that makes one fail after a peer's
//! port was closed.
//!
//! Windows reports `WSAECONNRESET` (10054, [`io::ErrorKind::ConnectionReset`])
//! on the next receive of a UDP socket after one of its datagrams met a
//! closed port (an ICMP port unreachable came back); Linux reports
//! `ECONNREFUSED` on a connected socket, and wine reports a timeout (10060)
//! instead. None of these says anything about the socket itself: the
//! datagram that failed is gone, the next one may arrive. A client that
//! took them as fatal would die exactly when the relay restarts, which is
//! when rejoining should work (the same bug bit tokio, Go and others).

use std::io;

/// What a failed receive means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveError {
    /// Nothing arrived in time (or the wait was interrupted): try again.
    NothingYet,
    /// A datagram we sent earlier met a closed port or an unreachable host
    /// (ICMP): the peer may be restarting; nothing arrived, keep going.
    PeerUnreachable,
    /// Anything else: not expected, but not a reason to stop either; the
    /// caller logs it and pauses briefly so it cannot spin.
    Unexpected,
}

impl ReceiveError {
    /// Whether the receive just found nothing, as opposed to an error
    /// worth logging.
    pub fn is_nothing_received(self) -> bool {
        matches!(
            self,
            ReceiveError::NothingYet | ReceiveError::PeerUnreachable
        )
    }
}

/// Windows Sockets codes (winerror.h) that std may not map to the kinds
/// below on every version.
mod wsa {
    pub const EINTR: i32 = 10004;
    pub const EWOULDBLOCK: i32 = 10035;
    pub const ENETRESET: i32 = 10052;
    pub const ECONNRESET: i32 = 10054;
    pub const ETIMEDOUT: i32 = 10060;
    pub const ECONNREFUSED: i32 = 10061;
    pub const EHOSTUNREACH: i32 = 10065;
}

/// Classifies the error of a UDP `recv`/`recv_from`.
///
/// Read timeouts are `WouldBlock` on Unix and `TimedOut` on Windows (and
/// wine's answer after a closed port); `ConnectionReset` is Windows'
/// report of a closed port, `ConnectionRefused` Linux's; unreachable hosts
/// and networks are ICMP reports too.
pub fn classify_receive_error(e: &io::Error) -> ReceiveError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
            return ReceiveError::NothingYet
        }
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => return ReceiveError::PeerUnreachable,
        _ => {}
    }
    // The raw codes are Windows' own; elsewhere the same numbers mean
    // nothing (or something else), so they are looked at only there.
    if cfg!(windows) {
        match e.raw_os_error() {
            Some(wsa::EINTR | wsa::EWOULDBLOCK | wsa::ETIMEDOUT) => {
                return ReceiveError::NothingYet
            }
            Some(wsa::ECONNRESET | wsa::ENETRESET | wsa::ECONNREFUSED | wsa::EHOSTUNREACH) => {
                return ReceiveError::PeerUnreachable
            }
            _ => {}
        }
    }
    ReceiveError::Unexpected
}

/// `SIO_UDP_CONNRESET` (mstcpip.h): `_WSAIOW(IOC_VENDOR, 12)`.
#[cfg(windows)]
const SIO_UDP_CONNRESET: u32 = 0x9800_000C;

#[cfg(windows)]
#[link(name = "ws2_32")]
extern "system" {
    // int WSAIoctl(SOCKET, DWORD, LPVOID, DWORD, LPVOID, DWORD, LPDWORD,
    //              LPWSAOVERLAPPED, LPWSAOVERLAPPED_COMPLETION_ROUTINE)
    fn WSAIoctl(
        socket: usize,
        code: u32,
        in_buffer: *const std::ffi::c_void,
        in_len: u32,
        out_buffer: *mut std::ffi::c_void,
        out_len: u32,
        returned: *mut u32,
        overlapped: *mut std::ffi::c_void,
        completion: *const std::ffi::c_void,
    ) -> i32;
}

/// Asks Windows not to report a closed peer port on the next receive
/// (`SIO_UDP_CONNRESET` off). The errors are handled anyway
/// ([`classify_receive_error`]); this only spares the failed receives.
/// Does nothing elsewhere. An error means the option is not supported
/// (wine accepts it or not depending on the version): harmless.
#[cfg(windows)]
pub fn ignore_connection_resets(socket: &impl std::os::windows::io::AsRawSocket) -> io::Result<()> {
    let off: i32 = 0; // BOOL FALSE
    let mut returned: u32 = 0;
    // SAFETY: the socket handle is valid for the call (borrowed); the input
    // buffer is a live BOOL of the size given; no output buffer, no
    // overlapped I/O (a synchronous call), and `returned` outlives it.
    let rc = unsafe {
        WSAIoctl(
            socket.as_raw_socket() as usize,
            SIO_UDP_CONNRESET,
            std::ptr::from_ref(&off).cast(),
            std::mem::size_of::<i32>() as u32,
            std::ptr::null_mut(),
            0,
            &mut returned,
            std::ptr::null_mut(),
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Does nothing: only Windows reports closed ports on a later receive.
#[cfg(not(windows))]
pub fn ignore_connection_resets<S>(_socket: &S) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(k: io::ErrorKind) -> ReceiveError {
        classify_receive_error(&io::Error::from(k))
    }

    #[test]
    fn timeouts_and_interruptions_are_nothing_yet() {
        assert_eq!(kind(io::ErrorKind::WouldBlock), ReceiveError::NothingYet);
        assert_eq!(kind(io::ErrorKind::TimedOut), ReceiveError::NothingYet);
        assert_eq!(kind(io::ErrorKind::Interrupted), ReceiveError::NothingYet);
    }

    #[test]
    fn closed_ports_and_unreachable_hosts_are_not_fatal() {
        for k in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::NetworkUnreachable,
        ] {
            assert_eq!(kind(k), ReceiveError::PeerUnreachable, "{k:?}");
            assert!(kind(k).is_nothing_received());
        }
    }

    #[test]
    fn other_errors_are_unexpected() {
        for k in [
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::InvalidInput,
            io::ErrorKind::Other,
        ] {
            assert_eq!(kind(k), ReceiveError::Unexpected, "{k:?}");
            assert!(!kind(k).is_nothing_received());
        }
        assert_eq!(
            classify_receive_error(&io::Error::other("strange")),
            ReceiveError::Unexpected
        );
    }

    #[cfg(unix)]
    #[test]
    fn linux_codes_mean_what_they_say() {
        let raw = |code| classify_receive_error(&io::Error::from_raw_os_error(code));
        assert_eq!(raw(libc::EAGAIN), ReceiveError::NothingYet);
        assert_eq!(raw(libc::ECONNREFUSED), ReceiveError::PeerUnreachable);
        assert_eq!(raw(libc::EHOSTUNREACH), ReceiveError::PeerUnreachable);
        assert_eq!(raw(libc::EBADF), ReceiveError::Unexpected);
        // Windows' numbers are not errno values: 10054 means nothing here.
        assert_eq!(raw(10054), ReceiveError::Unexpected);
    }

    /// The real thing on Linux: a connected socket whose datagram met a
    /// closed port fails its next receive, and that is "keep going".
    #[cfg(target_os = "linux")]
    #[test]
    fn a_closed_port_on_loopback_is_peer_unreachable() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = closed.local_addr().unwrap();
        drop(closed);
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(to).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        socket.send(b"anyone?").unwrap();
        let mut buf = [0u8; 8];
        let e = socket.recv(&mut buf).unwrap_err();
        assert_eq!(
            classify_receive_error(&e),
            ReceiveError::PeerUnreachable,
            "{e}"
        );
    }

    #[cfg(windows)]
    #[test]
    fn windows_codes_after_a_closed_port_are_not_fatal() {
        let raw = |code| classify_receive_error(&io::Error::from_raw_os_error(code));
        assert_eq!(raw(10054), ReceiveError::PeerUnreachable); // WSAECONNRESET
        assert_eq!(raw(10052), ReceiveError::PeerUnreachable); // WSAENETRESET
        assert_eq!(raw(10060), ReceiveError::NothingYet); // WSAETIMEDOUT (wine)
        assert_eq!(raw(10035), ReceiveError::NothingYet); // WSAEWOULDBLOCK
        assert_eq!(raw(10038), ReceiveError::Unexpected); // WSAENOTSOCK
    }

    /// Windows (and wine) accept `SIO_UDP_CONNRESET` on a UDP socket.
    #[cfg(windows)]
    #[test]
    fn windows_takes_sio_udp_connreset() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        ignore_connection_resets(&socket).unwrap();
    }

    #[test]
    fn turning_resets_off_is_harmless_on_a_real_socket() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Supported on Windows, a no-op elsewhere: either way the socket
        // still works afterwards.
        let _ = ignore_connection_resets(&socket);
        let to = socket.local_addr().unwrap();
        socket.send_to(b"ping", to).unwrap();
        let mut buf = [0u8; 8];
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
    }
}
