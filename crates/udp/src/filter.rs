//! Making the kernel drop a flooder's datagrams (a classic BPF socket
//! filter on Linux).

use std::io;
use std::net::SocketAddr;

#[cfg(target_os = "linux")]
use crate::linux::set_int_option;
use crate::Socket;

/// Makes the kernel drop every datagram from `blocked` before it is queued
/// on the socket (Linux: a classic BPF socket filter, replaced whole on each
/// call; an empty list removes it). At most [`MAX_BLOCKED`] addresses are
/// used.
///
/// Why: a flooder's datagrams past its rate limit are dropped by the room
/// anyway, but only after the relay was woken and copied each one out of the
/// socket, which at a few hundred thousand a second takes half a core that
/// honest members' fan-out needs. Filtered, they cost the relay nothing.
#[cfg(target_os = "linux")]
pub fn set_blocked_sources(socket: &impl Socket, blocked: &[SocketAddr]) -> io::Result<()> {
    let fd = socket.fd();
    if blocked.is_empty() {
        // SO_DETACH_FILTER ignores its value, but the kernel wants an int.
        let Err(e) = set_int_option(fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, 0) else {
            return Ok(());
        };
        // ENOENT: no filter was attached.
        return if e.raw_os_error() == Some(libc::ENOENT) {
            Ok(())
        } else {
            Err(e)
        };
    }
    let mut program = block_program(&blocked[..blocked.len().min(MAX_BLOCKED)]);
    let fprog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, alive for the call; the kernel
    // copies and validates it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Not Linux: nothing is filtered (the room's rate limit still applies).
#[cfg(not(target_os = "linux"))]
pub fn set_blocked_sources(_socket: &impl Socket, _blocked: &[SocketAddr]) -> io::Result<()> {
    Ok(())
}

/// Most addresses [`set_blocked_sources`] filters (the program grows by at
/// most 11 instructions each; the kernel allows 4096).
pub const MAX_BLOCKED: usize = 64;

/// The filter: on a UDP socket the program sees the UDP header at offset 0
/// (source port in its first 16 bits) and the IP header at `SKF_NET_OFF`.
/// IPv4 sources (and v4-mapped ones, which arrive as IPv4 packets on a
/// dual-stack socket) are matched on the IPv4 header; IPv6 ones on the IPv6
/// header. Each entry ends in `ret 0` (drop) if it matches; falling off the
/// end accepts the datagram whole.
#[cfg(target_os = "linux")]
fn block_program(blocked: &[SocketAddr]) -> Vec<libc::sock_filter> {
    // Classic BPF opcodes (linux/filter.h): class | size | mode.
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const LD_MEM: u16 = 0x60; // BPF_LD | BPF_MEM
    const ST: u16 = 0x02; // BPF_ST
    const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JA: u16 = 0x05; // BPF_JMP | BPF_JA
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let net = |offset: i32| (libc::SKF_NET_OFF + offset) as u32;
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };

    let mut v4: Vec<(u32, u16)> = Vec::new();
    let mut v6: Vec<([u32; 4], u16)> = Vec::new();
    for addr in blocked {
        match addr {
            SocketAddr::V4(a) => v4.push((u32::from(*a.ip()), a.port())),
            SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                Some(ip) => v4.push((u32::from(ip), a.port())),
                None => {
                    let o = a.ip().octets();
                    let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                    v6.push(([word(0), word(4), word(8), word(12)], a.port()));
                }
            },
        }
    }
    let mut v4_code = Vec::new();
    for (ip, port) in &v4 {
        // M[0] = source IPv4 address, M[4] = source port.
        v4_code.push(op(LD_MEM, 0, 0, 0));
        v4_code.push(op(JEQ_K, 0, 3, *ip));
        v4_code.push(op(LD_MEM, 0, 0, 4));
        v4_code.push(op(JEQ_K, 0, 1, u32::from(*port)));
        v4_code.push(op(RET_K, 0, 0, 0));
    }
    let mut v6_code = Vec::new();
    for (words, port) in &v6 {
        // M[0..4] = source IPv6 address words, M[4] = source port.
        for (i, word) in words.iter().enumerate() {
            let skip = (4 - i) as u8 * 2 + 1; // to the next entry
            v6_code.push(op(LD_MEM, 0, 0, i as u32));
            v6_code.push(op(JEQ_K, 0, skip, *word));
        }
        v6_code.push(op(LD_MEM, 0, 0, 4));
        v6_code.push(op(JEQ_K, 0, 1, u32::from(*port)));
        v6_code.push(op(RET_K, 0, 0, 0));
    }
    let accept = op(RET_K, 0, 0, u32::MAX);
    let mut p = vec![
        // M[4] = source port (the first 16 bits of the UDP header).
        op(LD_H_ABS, 0, 0, 0),
        op(ST, 0, 0, 4),
        // IP version: the high nibble of the IP header's first byte.
        op(LD_B_ABS, 0, 0, net(0)),
        op(ALU_AND_K, 0, 0, 0xf0),
        // IPv4 skips the next instruction; anything else takes it, a jump
        // to the IPv6 part (an unconditional jump: conditional offsets are
        // only 8 bits). Patched below once the IPv4 part's length is known.
        op(JEQ_K, 1, 0, 0x40),
        op(JA, 0, 0, 0),
        // M[0] = source IPv4 address.
        op(LD_W_ABS, 0, 0, net(12)),
        op(ST, 0, 0, 0),
    ];
    p.extend(v4_code);
    p.push(accept);
    p[5].k = (p.len() - 6) as u32;
    // M[0..4] = source IPv6 address words.
    for (i, offset) in [8, 12, 16, 20].into_iter().enumerate() {
        p.push(op(LD_W_ABS, 0, 0, net(offset)));
        p.push(op(ST, 0, 0, i as u32));
    }
    p.extend(v6_code);
    p.push(accept);
    p
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Sends one datagram from each of `senders` to `relay`; returns the
    /// sources that arrived.
    fn arrivals(relay: &UdpSocket, senders: &[&UdpSocket]) -> Vec<SocketAddr> {
        let to = relay.local_addr().unwrap();
        for s in senders {
            s.send_to(b"x", to).unwrap();
        }
        // Loopback delivers (or filters) during send_to: all are queued now.
        relay.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while let Ok((_, from)) = relay.recv_from(&mut buf) {
            got.push(from);
        }
        got
    }

    #[test]
    fn blocked_sources_are_dropped_by_the_kernel_and_unblocked_again() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // Same IP, other port: only the exact address is blocked. Many
        // entries: the filter still fits and still matches the last one.
        let mut blocked: Vec<SocketAddr> = (1..MAX_BLOCKED as u16)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        blocked.push(a_addr);
        set_blocked_sources(&relay, &blocked).unwrap();
        assert_eq!(arrivals(&relay, &[&a, &b]), [b_addr]);
        set_blocked_sources(&relay, &[]).unwrap();
        assert_eq!(arrivals(&relay, &[&a, &b]), [a_addr, b_addr]);
        // Removing a filter that is not there is fine.
        set_blocked_sources(&relay, &[]).unwrap();
    }

    #[test]
    fn blocked_sources_work_on_ipv6_and_dual_stack_sockets() {
        let Ok(relay) = UdpSocket::bind("[::]:0") else {
            return; // no IPv6 here
        };
        let port = relay.local_addr().unwrap().port();
        let Ok(a) = UdpSocket::bind("[::1]:0") else {
            return;
        };
        let b = UdpSocket::bind("[::1]:0").unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        let d = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mapped = |s: &UdpSocket| match s.local_addr().unwrap() {
            SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
            v6 => v6,
        };
        let send_all = |senders: &[&UdpSocket]| {
            for s in senders {
                let to: SocketAddr = if s.local_addr().unwrap().is_ipv4() {
                    ([127, 0, 0, 1], port).into()
                } else {
                    (std::net::Ipv6Addr::LOCALHOST, port).into()
                };
                s.send_to(b"x", to).unwrap();
            }
            relay.set_nonblocking(true).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while let Ok((_, from)) = relay.recv_from(&mut buf) {
                got.push(from);
            }
            got
        };
        // v4 senders appear v4-mapped on a dual-stack socket.
        set_blocked_sources(&relay, &[mapped(&a), mapped(&c)]).unwrap();
        assert_eq!(send_all(&[&a, &b, &c, &d]), [mapped(&b), mapped(&d)]);
        set_blocked_sources(&relay, &[mapped(&b), mapped(&d)]).unwrap();
        assert_eq!(send_all(&[&a, &b, &c, &d]), [mapped(&a), mapped(&c)]);
    }
}
