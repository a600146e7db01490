//! Learning that a peer's port is closed (Linux `IP_RECVERR` and the socket
//! error queue).
//!
//! Why: an unconnected UDP socket hears nothing about the ICMP "port
//! unreachable" a closed client's host sends back, unless `IP_RECVERR` is on;
//! then each such error is queued on the socket with the destination of the
//! datagram that caused it, and the relay can remove that member at once
//! instead of sending to it until its idle timeout (two hours for classic
//! clients). Elsewhere these functions do nothing and the idle timeout does
//! the job.

use std::io;
use std::net::SocketAddr;

#[cfg(target_os = "linux")]
use crate::linux::{set_int_option, sockaddr_to_std};
use crate::Socket;

/// Turns on error-queue reporting of ICMP errors (Linux only; elsewhere a
/// no-op). `ipv6` says whether the socket is an IPv6 socket.
#[cfg(target_os = "linux")]
pub fn enable_unreachable_reports(socket: &impl Socket, ipv6: bool) -> io::Result<()> {
    let fd = socket.fd();
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
pub fn enable_unreachable_reports(_socket: &impl Socket, _ipv6: bool) -> io::Result<()> {
    Ok(())
}

/// Reads everything on the socket's error queue without blocking, and calls
/// `unreachable` with the destination of every datagram that drew an ICMP
/// "port unreachable". Returns how many queued errors were read.
#[cfg(target_os = "linux")]
pub fn drain_error_queue(socket: &impl Socket, mut unreachable: impl FnMut(SocketAddr)) -> usize {
    // Linux's SO_EE_ORIGIN_* values (linux/errqueue.h).
    const SO_EE_ORIGIN_ICMP: u8 = 2;
    const SO_EE_ORIGIN_ICMP6: u8 = 3;
    // Bounded so a storm of errors cannot starve the rest of the loop; the
    // next readable/error event or failed send drains the rest.
    const MAX_PER_CALL: usize = 4096;

    let fd = socket.fd();
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
pub fn drain_error_queue(_socket: &impl Socket, _unreachable: impl FnMut(SocketAddr)) -> usize {
    0
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
}
