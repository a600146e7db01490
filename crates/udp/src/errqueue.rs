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
//!
//! Anyone on the network can send an ICMP error quoting a made-up header,
//! so each report also carries the ICMP's sender (the kernel's
//! `SO_EE_OFFENDER`): [`UnreachableReport::from_destination`] says whether
//! it came from the very host the quoted datagram went to, the only host
//! whose "port closed" is worth believing.

use std::io;
use std::net::{IpAddr, SocketAddr};

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

/// One ICMP "port unreachable" read from the error queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreachableReport {
    /// Where the datagram that drew it was sent (taken from the header the
    /// ICMP quotes, so the ICMP's sender chose it).
    pub destination: SocketAddr,
    /// Who sent the ICMP (`SO_EE_OFFENDER`), if the kernel said. On a
    /// dual-stack socket an IPv4 sender comes v4-mapped.
    pub offender: Option<IpAddr>,
}

impl UnreachableReport {
    /// Whether the ICMP came from the destination's own IP address (v4-mapped
    /// and plain IPv4 compare equal). Only such a report says anything about
    /// the destination's port: a report from any other address, or without
    /// a known sender, is somebody else's claim.
    pub fn from_destination(&self) -> bool {
        self.offender
            .is_some_and(|ip| ip.to_canonical() == self.destination.ip().to_canonical())
    }
}

/// Reads everything on the socket's error queue without blocking, and calls
/// `unreachable` with every ICMP "port unreachable" (destination and
/// sender; the caller decides whether to believe it). Returns how many
/// queued errors were read.
#[cfg(target_os = "linux")]
pub fn drain_error_queue(
    socket: &impl Socket,
    mut unreachable: impl FnMut(UnreachableReport),
) -> usize {
    // Linux's SO_EE_ORIGIN_* values (linux/errqueue.h).
    const SO_EE_ORIGIN_ICMP: u8 = 2;
    const SO_EE_ORIGIN_ICMP6: u8 = 3;
    // Bounded so a storm of errors cannot starve the rest of the loop; the
    // next readable/error event or failed send drains the rest.
    const MAX_PER_CALL: usize = 4096;
    // The offender `sockaddr` follows the `sock_extended_err` in the data.
    const EE_LEN: usize = std::mem::size_of::<libc::sock_extended_err>();

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
                let data_len =
                    (header.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                if is_recverr && data_len >= EE_LEN {
                    let data = libc::CMSG_DATA(cmsg);
                    let ee: libc::sock_extended_err = std::ptr::read_unaligned(data.cast());
                    let offender = offender_ip(data.add(EE_LEN), data_len - EE_LEN);
                    let from_icmp =
                        ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6;
                    // ECONNREFUSED is what both ICMP and ICMPv6 "port
                    // unreachable" map to.
                    match destination {
                        Some(destination)
                            if from_icmp && ee.ee_errno == libc::ECONNREFUSED as u32 =>
                        {
                            unreachable(UnreachableReport {
                                destination,
                                offender,
                            })
                        }
                        _ => log::debug!(
                            "socket error queue: errno {} origin {} type {} code {} for {destination:?} from {offender:?}",
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

/// The IP address in the offender `sockaddr` at `ptr` (`len` bytes of the
/// control message left), if it is IPv4 or IPv6 (`AF_UNSPEC`: the kernel
/// did not know).
///
/// # Safety
/// `ptr` must point to at least `len` readable bytes.
#[cfg(target_os = "linux")]
unsafe fn offender_ip(ptr: *const u8, len: usize) -> Option<IpAddr> {
    let mut storage = crate::linux::empty_sockaddr();
    let len = len.min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: the caller vouches for `len` bytes at `ptr`; the storage is
    // at least that large.
    unsafe {
        std::ptr::copy_nonoverlapping(
            ptr,
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        )
    };
    sockaddr_to_std(&storage, len as libc::socklen_t).map(|addr| addr.ip())
}

/// Not Linux: there is no error queue.
#[cfg(not(target_os = "linux"))]
pub fn drain_error_queue(
    _socket: &impl Socket,
    _unreachable: impl FnMut(UnreachableReport),
) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    /// The first reports the error queue of `socket` yields (none after 5 s).
    fn first_reports(socket: &UdpSocket) -> Vec<UnreachableReport> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while seen.is_empty() && Instant::now() < deadline {
            drain_error_queue(socket, |report| seen.push(report));
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    }

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
        let seen = first_reports(&socket);
        assert_eq!(
            seen,
            [UnreachableReport {
                destination: dead,
                offender: Some(dead.ip()),
            }]
        );
        assert!(seen[0].from_destination());
    }

    #[test]
    fn port_unreachable_over_ipv6_names_its_sender() {
        let Ok(socket) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback here
        };
        enable_unreachable_reports(&socket, true).unwrap();
        let dead = UdpSocket::bind("[::1]:0").unwrap().local_addr().unwrap();
        socket.send_to(b"x", dead).unwrap();
        let seen = first_reports(&socket);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].destination.port(), dead.port());
        assert_eq!(seen[0].offender, Some(dead.ip()));
        assert!(seen[0].from_destination());
    }

    #[test]
    fn ipv4_port_unreachable_on_a_dual_stack_socket_comes_v4_mapped() {
        let Ok(socket) = UdpSocket::bind("[::]:0") else {
            return; // no IPv6 here
        };
        enable_unreachable_reports(&socket, true).unwrap();
        let dead = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mapped = SocketAddr::new(
            match dead.ip() {
                IpAddr::V4(ip) => IpAddr::V6(ip.to_ipv6_mapped()),
                ip => ip,
            },
            dead.port(),
        );
        if socket.send_to(b"x", mapped).is_err() {
            return; // a v6-only socket
        }
        let seen = first_reports(&socket);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].destination.port(), dead.port());
        assert!(seen[0].from_destination(), "{seen:?}");
    }
    /// Sends, from a raw socket, an ICMP port unreachable with source
    /// `offender` quoting a datagram from `from` to `dead` (all IPv4
    /// loopback). False if raw sockets are not allowed (not root).
    fn forge_port_unreachable(
        offender: std::net::Ipv4Addr,
        from: SocketAddr,
        dead: SocketAddr,
    ) -> bool {
        let (SocketAddr::V4(from), SocketAddr::V4(dead)) = (from, dead) else {
            return false;
        };
        fn checksum(bytes: &[u8]) -> u16 {
            let mut sum: u32 = bytes
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            !(sum as u16)
        }
        fn ipv4_header(
            src: std::net::Ipv4Addr,
            dst: std::net::Ipv4Addr,
            proto: u8,
            len: usize,
        ) -> Vec<u8> {
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
            h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            h.extend_from_slice(&src.octets());
            h.extend_from_slice(&dst.octets());
            let sum = checksum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            h
        }
        // The quoted datagram: its IP header and 8 bytes of UDP header.
        let mut quoted = ipv4_header(*from.ip(), *dead.ip(), libc::IPPROTO_UDP as u8, 20 + 9);
        quoted.extend_from_slice(&from.port().to_be_bytes());
        quoted.extend_from_slice(&dead.port().to_be_bytes());
        quoted.extend_from_slice(&9u16.to_be_bytes());
        quoted.extend_from_slice(&[0, 0]);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut packet = ipv4_header(
            offender,
            *from.ip(),
            libc::IPPROTO_ICMP as u8,
            20 + icmp.len(),
        );
        packet.extend_from_slice(&icmp);
        // SAFETY: plain system calls on a descriptor this function owns;
        // the buffers outlive them.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
            if fd < 0 {
                return false;
            }
            let (to, len) = crate::linux::sockaddr_from_std(SocketAddr::V4(from));
            let sent = libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_storage).cast(),
                len,
            );
            libc::close(fd);
            sent == packet.len() as isize
        }
    }

    #[test]
    fn a_forged_port_unreachable_names_its_real_sender() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_unreachable_reports(&socket, false).unwrap();
        let from = socket.local_addr().unwrap();
        // A member's address, alive: only the ICMP claims it is closed.
        let member: SocketAddr = "127.0.0.1:40999".parse().unwrap();
        let forger = std::net::Ipv4Addr::new(127, 0, 0, 66);
        if !forge_port_unreachable(forger, from, member) {
            eprintln!("skipped: raw sockets need root");
            return;
        }
        let seen = first_reports(&socket);
        assert_eq!(
            seen,
            [UnreachableReport {
                destination: member,
                offender: Some(IpAddr::V4(forger)),
            }]
        );
        assert!(!seen[0].from_destination());
    }
}

#[cfg(test)]
mod report_tests {
    use super::UnreachableReport;

    fn report(destination: &str, offender: Option<&str>) -> UnreachableReport {
        UnreachableReport {
            destination: destination.parse().unwrap(),
            offender: offender.map(|ip| ip.parse().unwrap()),
        }
    }

    #[test]
    fn a_report_counts_only_from_the_destinations_own_ip() {
        assert!(report("127.0.0.1:40000", Some("127.0.0.1")).from_destination());
        assert!(report("[::1]:40000", Some("::1")).from_destination());
        // Another host (a student's machine) claims the port is closed.
        assert!(!report("127.0.0.1:40000", Some("127.0.0.2")).from_destination());
        assert!(!report("[::1]:40000", Some("::2")).from_destination());
        // The kernel did not say who sent it.
        assert!(!report("127.0.0.1:40000", None).from_destination());
    }

    #[test]
    fn v4_mapped_and_plain_ipv4_are_the_same_sender() {
        assert!(report("[::ffff:127.0.0.1]:40000", Some("::ffff:127.0.0.1")).from_destination());
        assert!(report("[::ffff:127.0.0.1]:40000", Some("127.0.0.1")).from_destination());
        assert!(report("127.0.0.1:40000", Some("::ffff:127.0.0.1")).from_destination());
        assert!(!report("[::ffff:127.0.0.1]:40000", Some("::ffff:127.0.0.3")).from_destination());
    }
}
