//! Forged loopback packets for the hostile test suite and benchmark
//! (crates/hostile): a UDP datagram from any `127.x.y.z` address and port,
//! and ICMP "port unreachable" errors quoting a made-up UDP header.
//!
//! Why: the attacks the relay must withstand on a classroom LAN (issue 12)
//! are forged datagrams and forged ICMP errors; the only way to test the
//! real relay against them is to forge them, on loopback. Linux only (raw
//! sockets, `IPPROTO_RAW` with the IP header built here); they need root or
//! `CAP_NET_RAW`, and opening one says `PermissionDenied` otherwise, so a
//! test can skip loudly. Elsewhere every call says `Unsupported`.
//!
//! The API refuses to forge anything off loopback: IPv4 source and
//! destination addresses must lie in `127.0.0.0/8`, and IPv6 packets are
//! only sent from `::1` to `::1` (their source is the kernel's, never set
//! here).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// Why a forged packet was refused before anything was sent.
fn off_loopback(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} is not a loopback address (127.0.0.0/8, ::1); refusing to forge it"),
    )
}

fn check_v4(what: &str, ip: Ipv4Addr) -> io::Result<()> {
    if ip.is_loopback() {
        Ok(())
    } else {
        Err(off_loopback(what))
    }
}

fn check_v6(what: &str, ip: Ipv6Addr) -> io::Result<()> {
    if ip == Ipv6Addr::LOCALHOST {
        Ok(())
    } else {
        Err(off_loopback(what))
    }
}

/// The Internet checksum (RFC 1071) of `parts` concatenated.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (20 bytes, no options) for `payload_len` bytes of `protocol`.
fn ipv4_header(from: Ipv4Addr, to: Ipv4Addr, protocol: u8, payload_len: usize) -> [u8; 20] {
    let total = (20 + payload_len) as u16;
    let mut h = [0u8; 20];
    h[0] = 0x45; // version 4, 5 words
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&0x4242u16.to_be_bytes()); // identification
    h[6] = 0x40; // don't fragment
    h[8] = 64; // TTL
    h[9] = protocol;
    h[12..16].copy_from_slice(&from.octets());
    h[16..20].copy_from_slice(&to.octets());
    let sum = checksum(&[&h]);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// A UDP header for `payload` from `from` to `to`, with its checksum.
fn udp_header_v4(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> [u8; 8] {
    let len = (8 + payload.len()) as u16;
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&from.port().to_be_bytes());
    h[2..4].copy_from_slice(&to.port().to_be_bytes());
    h[4..6].copy_from_slice(&len.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&from.ip().octets());
    pseudo[4..8].copy_from_slice(&to.ip().octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&len.to_be_bytes());
    let sum = match checksum(&[&pseudo, &h, payload]) {
        0 => 0xffff,
        sum => sum,
    };
    h[6..8].copy_from_slice(&sum.to_be_bytes());
    h
}

/// The whole IPv4 packet of a UDP datagram `from` -> `to`.
fn udp_packet_v4(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(28 + payload.len());
    packet.extend_from_slice(&ipv4_header(*from.ip(), *to.ip(), 17, 8 + payload.len()));
    packet.extend_from_slice(&udp_header_v4(from, to, payload));
    packet.extend_from_slice(payload);
    packet
}

/// The whole IPv4 packet of an ICMP "port unreachable" from `from` to `to`
/// quoting the IPv4 and UDP headers of a datagram `quoted_from` ->
/// `quoted_to` (which need not have existed).
fn icmp_unreachable_v4(
    from: Ipv4Addr,
    to: Ipv4Addr,
    quoted_from: SocketAddrV4,
    quoted_to: SocketAddrV4,
) -> Vec<u8> {
    // The quoted datagram claims 16 bytes of payload (not included, as
    // routers quote only the first 8 bytes after the IP header).
    let quoted_udp_len: u16 = 8 + 16;
    let quoted_ip = ipv4_header(
        *quoted_from.ip(),
        *quoted_to.ip(),
        17,
        usize::from(quoted_udp_len),
    );
    let mut quoted_udp = [0u8; 8];
    quoted_udp[0..2].copy_from_slice(&quoted_from.port().to_be_bytes());
    quoted_udp[2..4].copy_from_slice(&quoted_to.port().to_be_bytes());
    quoted_udp[4..6].copy_from_slice(&quoted_udp_len.to_be_bytes());
    let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0]; // type 3 code 3, unused
    icmp.extend_from_slice(&quoted_ip);
    icmp.extend_from_slice(&quoted_udp);
    let sum = checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut packet = ipv4_header(from, to, 1, icmp.len()).to_vec();
    packet.extend_from_slice(&icmp);
    packet
}

/// The ICMPv6 message (the kernel adds the IPv6 header and the checksum)
/// "port unreachable", quoting an IPv6 and UDP header `quoted_from` ->
/// `quoted_to`.
fn icmp_unreachable_v6(quoted_from: SocketAddrV6, quoted_to: SocketAddrV6) -> Vec<u8> {
    let quoted_udp_len: u16 = 8 + 16;
    let mut icmp = vec![1u8, 4, 0, 0, 0, 0, 0, 0]; // type 1 code 4, unused
    let mut ip = [0u8; 40];
    ip[0] = 0x60; // version 6
    ip[4..6].copy_from_slice(&quoted_udp_len.to_be_bytes());
    ip[6] = 17; // next header: UDP
    ip[7] = 64; // hop limit
    ip[8..24].copy_from_slice(&quoted_from.ip().octets());
    ip[24..40].copy_from_slice(&quoted_to.ip().octets());
    icmp.extend_from_slice(&ip);
    icmp.extend_from_slice(&quoted_from.port().to_be_bytes());
    icmp.extend_from_slice(&quoted_to.port().to_be_bytes());
    icmp.extend_from_slice(&quoted_udp_len.to_be_bytes());
    icmp.extend_from_slice(&[0, 0]);
    icmp
}

/// A raw IPv4 socket that sends packets whose IP header is built here
/// (`IPPROTO_RAW`, which implies `IP_HDRINCL`): forged UDP datagrams and
/// ICMP errors, only inside `127.0.0.0/8`.
#[derive(Debug)]
pub struct RawV4 {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

impl RawV4 {
    /// Opens the raw socket. `PermissionDenied` without root or
    /// `CAP_NET_RAW`; `Unsupported` off Linux.
    pub fn open() -> io::Result<RawV4> {
        #[cfg(target_os = "linux")]
        {
            Ok(RawV4 {
                fd: imp::open(libc::AF_INET, libc::IPPROTO_RAW)?,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(unsupported())
        }
    }

    /// Sends one UDP datagram carrying `payload` from the forged address
    /// `from` to `to`; both must be in `127.0.0.0/8`.
    pub fn send_udp(&self, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> io::Result<()> {
        check_v4("the forged source", *from.ip())?;
        check_v4("the destination", *to.ip())?;
        let packet = udp_packet_v4(from, to, payload);
        self.send(&packet, *to.ip())
    }

    /// Sends an ICMP "port unreachable" from the forged address `from` to
    /// `to`, quoting a UDP datagram `quoted_from` -> `quoted_to` (e.g. relay
    /// -> member: the relay's kernel then reports `quoted_to` unreachable).
    /// All four addresses must be in `127.0.0.0/8`.
    pub fn send_icmp_port_unreachable(
        &self,
        from: Ipv4Addr,
        to: Ipv4Addr,
        quoted_from: SocketAddrV4,
        quoted_to: SocketAddrV4,
    ) -> io::Result<()> {
        check_v4("the forged source", from)?;
        check_v4("the destination", to)?;
        check_v4("the quoted source", *quoted_from.ip())?;
        check_v4("the quoted destination", *quoted_to.ip())?;
        let packet = icmp_unreachable_v4(from, to, quoted_from, quoted_to);
        self.send(&packet, to)
    }

    #[cfg(target_os = "linux")]
    fn send(&self, packet: &[u8], to: Ipv4Addr) -> io::Result<()> {
        imp::send_to(&self.fd, packet, std::net::SocketAddr::from((to, 0)))
    }

    #[cfg(not(target_os = "linux"))]
    fn send(&self, _packet: &[u8], _to: Ipv4Addr) -> io::Result<()> {
        Err(unsupported())
    }
}

/// A raw ICMPv6 socket that sends ICMPv6 errors from `::1` to `::1`
/// (the kernel picks the source and computes the checksum).
#[derive(Debug)]
pub struct RawV6 {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

impl RawV6 {
    /// Opens the raw socket. `PermissionDenied` without root or
    /// `CAP_NET_RAW`; `Unsupported` off Linux.
    pub fn open() -> io::Result<RawV6> {
        #[cfg(target_os = "linux")]
        {
            Ok(RawV6 {
                fd: imp::open(libc::AF_INET6, libc::IPPROTO_ICMPV6)?,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(unsupported())
        }
    }

    /// Sends an ICMPv6 "port unreachable" from `::1` to `::1` quoting a UDP
    /// datagram `quoted_from` -> `quoted_to`; both must be on `::1`.
    pub fn send_icmp_port_unreachable(
        &self,
        quoted_from: SocketAddrV6,
        quoted_to: SocketAddrV6,
    ) -> io::Result<()> {
        check_v6("the quoted source", *quoted_from.ip())?;
        check_v6("the quoted destination", *quoted_to.ip())?;
        let message = icmp_unreachable_v6(quoted_from, quoted_to);
        self.send(&message)
    }

    #[cfg(target_os = "linux")]
    fn send(&self, message: &[u8]) -> io::Result<()> {
        let to = std::net::SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
        imp::send_to(&self.fd, message, to)
    }

    #[cfg(not(target_os = "linux"))]
    fn send(&self, _message: &[u8]) -> io::Result<()> {
        Err(unsupported())
    }
}

/// Whether this process may open raw sockets: `Ok` or the reason it may
/// not (`PermissionDenied` without root/`CAP_NET_RAW`, `Unsupported` off
/// Linux).
pub fn raw_sockets_permitted() -> io::Result<()> {
    RawV4::open().map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "forged packets (raw sockets) are supported on Linux only",
    )
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::net::SocketAddr;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use crate::linux::sockaddr_from_std;

    /// `socket(family, SOCK_RAW, protocol)`, close-on-exec.
    pub(super) fn open(family: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
        // SAFETY: plain system call with integer arguments; no pointers.
        let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor the kernel just gave us, open and
        // owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `sendto` of one whole packet.
    pub(super) fn send_to(fd: &OwnedFd, packet: &[u8], to: SocketAddr) -> io::Result<()> {
        let (storage, len) = sockaddr_from_std(to);
        // SAFETY: `packet` is valid for reads of its length and `storage`
        // for `len` bytes, both for the duration of the call; the kernel
        // only reads them.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_header_with_its_checksum_is_zero() {
        let h = ipv4_header(
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(127, 9, 0, 1),
            17,
            30,
        );
        assert_eq!(checksum(&[&h]), 0);
    }

    #[test]
    fn forging_off_loopback_is_refused_before_sending() {
        // Only checked, never sent: the check comes before the socket.
        assert!(check_v4("x", Ipv4Addr::new(10, 0, 0, 1)).is_err());
        assert!(check_v4("x", Ipv4Addr::new(127, 200, 1, 1)).is_ok());
        assert!(check_v6("x", "fe80::1".parse().unwrap()).is_err());
        if let Ok(raw) = RawV4::open() {
            let err = raw
                .send_udp(
                    "10.1.2.3:5".parse().unwrap(),
                    "127.0.0.1:9".parse().unwrap(),
                    b"x",
                )
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn a_forged_datagram_arrives_from_the_forged_address() {
        let Ok(raw) = RawV4::open() else {
            eprintln!("SKIPPED: raw sockets need root/CAP_NET_RAW");
            return;
        };
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let to = match receiver.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let from: SocketAddrV4 = "127.77.0.9:4321".parse().unwrap();
        raw.send_udp(from, to, b"forged").unwrap();
        let mut buf = [0u8; 64];
        let (n, source) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"forged");
        assert_eq!(source, std::net::SocketAddr::V4(from));
    }
}
