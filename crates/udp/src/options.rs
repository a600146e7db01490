//! Socket buffer sizes beyond the system's default cap.

use std::io;

use crate::Socket;

/// A socket buffer the kernel granted, as [`set_receive_buffer`] or
/// [`set_send_buffer`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes of datagram data the buffer holds (Linux reports twice this,
    /// counting its bookkeeping; this is the figure comparable to the request).
    pub bytes: usize,
    /// Whether `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` was allowed (root or
    /// `CAP_NET_ADMIN`), so `net.core.rmem_max`/`wmem_max` did not cap it.
    pub forced: bool,
}

/// Asks for a receive buffer of `bytes`: with `SO_RCVBUFFORCE` where
/// permitted (it ignores `net.core.rmem_max`), else `SO_RCVBUF`, which the
/// kernel caps at `net.core.rmem_max`. Returns what the kernel granted.
///
/// Why: under a flood the socket's buffer is the only thing between the
/// kernel and honest members' datagrams. The default (about 208 KiB, a few
/// hundred small datagrams) fills whenever the relay is descheduled for a
/// couple of milliseconds, and then the kernel drops whatever arrives,
/// honest or not, before the rate limit ever sees it.
pub fn set_receive_buffer(socket: &impl Socket, bytes: usize) -> io::Result<Buffer> {
    imp::set_buffer(socket, bytes, imp::Direction::Receive)
}

/// Like [`set_receive_buffer`], for the send buffer (`SO_SNDBUFFORCE`,
/// `SO_SNDBUF`): the benchmark's sender keeps the kernel busy with it.
pub fn set_send_buffer(socket: &impl Socket, bytes: usize) -> io::Result<Buffer> {
    imp::set_buffer(socket, bytes, imp::Direction::Send)
}

#[cfg(unix)]
mod imp {
    use super::*;

    pub(super) enum Direction {
        Receive,
        Send,
    }

    pub(super) fn set_buffer(
        socket: &impl Socket,
        bytes: usize,
        direction: Direction,
    ) -> io::Result<Buffer> {
        let fd = socket.fd();
        let (plain, _force) = match direction {
            Direction::Receive => (libc::SO_RCVBUF, force_option(true)),
            Direction::Send => (libc::SO_SNDBUF, force_option(false)),
        };
        // The kernel doubles the value; keep the doubled one within an int.
        let value = libc::c_int::try_from(bytes)
            .unwrap_or(libc::c_int::MAX)
            .min(libc::c_int::MAX / 2);
        #[cfg(target_os = "linux")]
        let forced = set_int_option(fd, libc::SOL_SOCKET, _force, value).is_ok();
        #[cfg(not(target_os = "linux"))]
        let forced = false;
        if !forced {
            set_int_option(fd, libc::SOL_SOCKET, plain, value)?;
        }
        let granted = usize::try_from(int_option(fd, libc::SOL_SOCKET, plain)?).unwrap_or(0);
        // Linux reports the doubled value (see socket(7)).
        let bytes = if cfg!(target_os = "linux") {
            granted / 2
        } else {
            granted
        };
        Ok(Buffer { bytes, forced })
    }

    #[cfg(target_os = "linux")]
    fn force_option(receive: bool) -> libc::c_int {
        if receive {
            libc::SO_RCVBUFFORCE
        } else {
            libc::SO_SNDBUFFORCE
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn force_option(_receive: bool) -> libc::c_int {
        0
    }

    use crate::sockopt::{int_option, set_int_option};
}

#[cfg(not(unix))]
mod imp {
    use super::*;

    pub(super) enum Direction {
        Receive,
        Send,
    }

    /// Not Unix: the operating system's default buffer stays.
    pub(super) fn set_buffer(
        _socket: &impl Socket,
        _bytes: usize,
        _direction: Direction,
    ) -> io::Result<Buffer> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "setting socket buffers is implemented for Unix only",
        ))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn receive_buffer_is_what_was_asked_or_the_system_cap() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let default =
            crate::sockopt::int_option(socket.fd(), libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap();
        let asked = 8 * 1024 * 1024;
        assert!(asked > default as usize, "the default is already {default}");
        let got = set_receive_buffer(&socket, asked).unwrap();
        if got.forced {
            assert_eq!(got.bytes, asked);
        } else {
            let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert_eq!(got.bytes, asked.min(max));
        }
    }

    #[test]
    fn send_buffer_grows_too() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before =
            crate::sockopt::int_option(socket.fd(), libc::SOL_SOCKET, libc::SO_SNDBUF).unwrap();
        let got = set_send_buffer(&socket, 4 << 20).unwrap();
        assert!(got.bytes * 2 >= before as usize, "{got:?} vs {before}");
        if got.forced {
            assert_eq!(got.bytes, 4 << 20);
        }
    }
}
