//! Operating-system specifics that neither std nor mio wrap: learning that a
//! client's port is unreachable (Linux `IP_RECVERR` and the socket error
//! queue), and sending a fan-out in one system call (Linux `sendmmsg`).
//!
//! Why: an unconnected UDP socket hears nothing about the ICMP "port
//! unreachable" a closed client's host sends back, unless `IP_RECVERR` is on;
//! then each such error is queued on the socket with the destination of the
//! datagram that caused it, and we can remove that member at once instead of
//! sending to it until its idle timeout (two hours for classic clients).
//! Elsewhere these functions do nothing and the idle timeout does the job.

use std::io;
use std::net::SocketAddr;

/// Something that exposes a raw socket handle (Linux: a file descriptor).
#[cfg(target_os = "linux")]
pub use std::os::fd::AsRawFd as RawSocket;

/// Turns on error-queue reporting of ICMP errors (Linux only; elsewhere a
/// no-op). `ipv6` says whether the socket is an IPv6 socket.
#[cfg(target_os = "linux")]
pub fn enable_unreachable_reports(socket: &impl RawSocket, ipv6: bool) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    if ipv6 {
        set_int_option(fd, libc::SOL_IPV6, libc::IPV6_RECVERR, 1)?;
        // IPv4 clients of a dual-stack socket come in as v4-mapped addresses
        // and their ICMP errors are IPv4 ones: ask for those too. A v6-only
        // socket may refuse; that costs nothing.
        let _ = set_int_option(fd, libc::SOL_IP, libc::IP_RECVERR, 1);
        Ok(())
    } else {
        set_int_option(fd, libc::SOL_IP, libc::IP_RECVERR, 1)
    }
}

/// Not Linux: nothing to turn on.
#[cfg(not(target_os = "linux"))]
pub fn enable_unreachable_reports<S>(_socket: &S, _ipv6: bool) -> io::Result<()> {
    Ok(())
}

/// Asks for a receive buffer of `bytes` (Linux: `SO_RCVBUFFORCE`, which
/// root may use beyond `net.core.rmem_max`, else `SO_RCVBUF`, which the
/// kernel caps there) and returns the size the kernel granted.
///
/// Why: the default (about 208 KiB, a few hundred small datagrams) fills
/// whenever a flood keeps the relay busy for a couple of milliseconds, and
/// then the kernel drops honest datagrams before the relay ever sees them,
/// so the per-address rate limit cannot protect anyone. With room for
/// thousands of datagrams, the relay reads the flood and refuses its excess
/// cheaply (the rate limit comes first) while honest datagrams wait their turn.
#[cfg(target_os = "linux")]
pub fn enlarge_receive_buffer(socket: &impl RawSocket, bytes: usize) -> io::Result<usize> {
    let fd = socket.as_raw_fd();
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want).is_err() {
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, want)?;
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `got` and `len` are live and `len` is the exact size of `got`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(got).unwrap_or(0))
}

/// Not Linux: the default buffer stays.
#[cfg(not(target_os = "linux"))]
pub fn enlarge_receive_buffer<S>(_socket: &S, _bytes: usize) -> io::Result<usize> {
    Ok(0)
}

#[cfg(target_os = "linux")]
fn set_int_option(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and we pass its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads everything on the socket's error queue without blocking, and calls
/// `unreachable` with the destination of every datagram that drew an ICMP
/// "port unreachable". Returns how many queued errors were read.
#[cfg(target_os = "linux")]
pub fn drain_error_queue(
    socket: &impl RawSocket,
    mut unreachable: impl FnMut(SocketAddr),
) -> usize {
    // Linux's SO_EE_ORIGIN_* values (linux/errqueue.h).
    const SO_EE_ORIGIN_ICMP: u8 = 2;
    const SO_EE_ORIGIN_ICMP6: u8 = 3;
    // Bounded so a storm of errors cannot starve the rest of the loop; the
    // next readable/error event or failed send drains the rest.
    const MAX_PER_CALL: usize = 4096;

    let fd = socket.as_raw_fd();
    let mut count = 0;
    while count < MAX_PER_CALL {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut data = [0u8; 64];
        // u64 elements keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: every pointer in `msg` refers to a live local buffer of the
        // stated length.
        let rc = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // WouldBlock: the queue is empty. Anything else: nothing we can do.
            break;
        }
        count += 1;
        let destination = sockaddr_to_std(&name, msg.msg_namelen);
        // SAFETY: CMSG_* walk the control buffer the kernel just filled, within
        // msg_controllen; each cmsg's data is read unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let header = &*cmsg;
                let is_recverr = (header.cmsg_level == libc::SOL_IP
                    && header.cmsg_type == libc::IP_RECVERR)
                    || (header.cmsg_level == libc::SOL_IPV6
                        && header.cmsg_type == libc::IPV6_RECVERR);
                if is_recverr {
                    let ee: libc::sock_extended_err =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    let from_icmp =
                        ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6;
                    // ECONNREFUSED is what both ICMP and ICMPv6 "port
                    // unreachable" map to.
                    match destination {
                        Some(addr) if from_icmp && ee.ee_errno == libc::ECONNREFUSED as u32 => {
                            unreachable(addr)
                        }
                        _ => log::debug!(
                            "socket error queue: errno {} origin {} type {} code {} for {destination:?}",
                            ee.ee_errno,
                            ee.ee_origin,
                            ee.ee_type,
                            ee.ee_code
                        ),
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
    count
}

/// Not Linux: there is no error queue.
#[cfg(not(target_os = "linux"))]
pub fn drain_error_queue<S>(_socket: &S, _unreachable: impl FnMut(SocketAddr)) -> usize {
    0
}

#[cfg(target_os = "linux")]
fn sockaddr_to_std(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe {
                std::ptr::read_unaligned((storage as *const libc::sockaddr_storage).cast())
            };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe {
                std::ptr::read_unaligned((storage as *const libc::sockaddr_storage).cast())
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sends many datagrams per system call with `sendmmsg` (Linux only).
///
/// A chat line to a room of N members is N datagrams; one `sendmmsg` per up
/// to [`BatchSender::MAX`] of them instead of one `sendto` each. The buffers
/// are allocated once and reused, so a send allocates nothing.
#[cfg(target_os = "linux")]
pub struct BatchSender {
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    names: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
}

#[cfg(target_os = "linux")]
impl Default for BatchSender {
    fn default() -> Self {
        BatchSender {
            headers: Vec::with_capacity(Self::MAX),
            iovecs: Vec::with_capacity(Self::MAX),
            names: Vec::with_capacity(Self::MAX),
        }
    }
}

#[cfg(target_os = "linux")]
impl BatchSender {
    /// Most datagrams per call.
    pub const MAX: usize = 64;

    /// Sends the first up-to-[`MAX`](Self::MAX) of `transmits` in order.
    /// Returns how many the kernel took (at least one), or the error of the
    /// first one (`WouldBlock` when the send buffer is full), which was not
    /// sent.
    pub fn send(
        &mut self,
        socket: &impl RawSocket,
        transmits: &[crate::Transmit],
    ) -> io::Result<usize> {
        let n = transmits.len().min(Self::MAX);
        if n == 0 {
            return Ok(0);
        }
        self.headers.clear();
        self.iovecs.clear();
        self.names.clear();
        for t in &transmits[..n] {
            self.names.push(sockaddr_from_std(t.to));
            self.iovecs.push(libc::iovec {
                // sendmmsg only reads through this pointer.
                iov_base: t.bytes.as_ptr() as *mut libc::c_void,
                iov_len: t.bytes.len(),
            });
        }
        // Pointers are taken after every push, so no reallocation can move
        // what they point to (and capacity is MAX anyway).
        for i in 0..n {
            // SAFETY: all-zero is a valid msghdr; the fields set below point
            // into self.names/self.iovecs, which outlive the call.
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            header.msg_name = (&mut self.names[i].0 as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = self.names[i].1;
            header.msg_iov = &mut self.iovecs[i];
            header.msg_iovlen = 1;
            self.headers.push(libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            });
        }
        // SAFETY: `headers` holds n initialised mmsghdr whose pointers are
        // valid for the duration of the call.
        let rc = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                n as libc::c_uint,
                0,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }
}

#[cfg(target_os = "linux")]
fn sockaddr_from_std(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    #[test]
    fn port_unreachable_is_reported_with_the_destination() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_unreachable_reports(&socket, false).unwrap();
        // A port that was just ours and is now closed.
        let dead = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        socket.send_to(b"x", dead).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while seen.is_empty() && Instant::now() < deadline {
            drain_error_queue(&socket, |addr| seen.push(addr));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(seen, [dead]);
    }

    #[test]
    fn sockaddr_conversion_round_trips() {
        for addr in [
            "127.0.0.1:5",
            "[::1]:6",
            "[::ffff:10.0.0.1]:7",
            "[fe80::1%2]:8",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let (storage, len) = sockaddr_from_std(addr);
            assert_eq!(sockaddr_to_std(&storage, len), Some(addr));
        }
    }

    #[test]
    fn batch_sends_every_datagram_in_order() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut transmits = Vec::new();
        for i in 0..100u8 {
            let to = if i % 2 == 0 { &a } else { &b };
            transmits.push(crate::Transmit {
                to: to.local_addr().unwrap(),
                bytes: std::rc::Rc::from(vec![i; 10 + i as usize].into_boxed_slice()),
            });
        }
        let mut sender = BatchSender::default();
        let mut next = 0;
        while next < transmits.len() {
            next += sender.send(&relay, &transmits[next..]).unwrap();
        }
        let mut buf = [0u8; 256];
        for i in 0..100u8 {
            let to = if i % 2 == 0 { &a } else { &b };
            to.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (n, from) = to.recv_from(&mut buf).unwrap();
            assert_eq!(from, relay.local_addr().unwrap());
            assert_eq!(&buf[..n], &vec![i; 10 + i as usize][..]);
        }
    }
}
