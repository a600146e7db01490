//! Operating-system specifics that neither std nor mio wrap: learning that a
//! client's port is unreachable (Linux `IP_RECVERR` and the socket error
//! queue), a large receive buffer (`SO_RCVBUF`, Linux `SO_RCVBUFFORCE`),
//! and sending a fan-out or draining the socket in one system call (Linux
//! `sendmmsg` and `recvmmsg`).
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

#[cfg(unix)]
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

/// The receive buffer the kernel granted, as [`set_receive_buffer`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveBuffer {
    /// Bytes of datagram data the buffer holds (Linux reports twice this,
    /// counting its bookkeeping; this is the figure comparable to the request).
    pub bytes: usize,
    /// Whether `SO_RCVBUFFORCE` was allowed (root or `CAP_NET_ADMIN`), so
    /// `net.core.rmem_max` did not cap the size.
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
#[cfg(unix)]
pub fn set_receive_buffer(
    socket: &impl std::os::fd::AsRawFd,
    bytes: usize,
) -> io::Result<ReceiveBuffer> {
    let fd = socket.as_raw_fd();
    // The kernel doubles the value; keep the doubled one within an int.
    let value = libc::c_int::try_from(bytes)
        .unwrap_or(libc::c_int::MAX)
        .min(libc::c_int::MAX / 2);
    #[cfg(target_os = "linux")]
    let forced = set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, value).is_ok();
    #[cfg(not(target_os = "linux"))]
    let forced = false;
    if !forced {
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, value)?;
    }
    let granted = usize::try_from(int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)?).unwrap_or(0);
    // Linux reports the doubled value (see socket(7)).
    let bytes = if cfg!(target_os = "linux") {
        granted / 2
    } else {
        granted
    };
    Ok(ReceiveBuffer { bytes, forced })
}

/// Not Unix: the operating system's default buffer stays.
#[cfg(not(unix))]
pub fn set_receive_buffer<S>(_socket: &S, _bytes: usize) -> io::Result<ReceiveBuffer> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "setting the receive buffer is implemented for Unix only",
    ))
}

#[cfg(unix)]
fn int_option(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals and `len` is value's size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
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

/// One `sendmmsg`/`recvmmsg` slot: the address `name` (of `len` bytes) and
/// one buffer. The pointers must stay valid until the system call returns.
#[cfg(target_os = "linux")]
fn mmsghdr(
    name: &mut libc::sockaddr_storage,
    len: libc::socklen_t,
    iov: &mut libc::iovec,
) -> libc::mmsghdr {
    // SAFETY: all-zero is a valid msghdr; the fields that matter are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_name = (name as *mut libc::sockaddr_storage).cast();
    header.msg_namelen = len;
    header.msg_iov = iov;
    header.msg_iovlen = 1;
    libc::mmsghdr {
        msg_hdr: header,
        msg_len: 0,
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
            let (name, len) = &mut self.names[i];
            self.headers.push(mmsghdr(name, *len, &mut self.iovecs[i]));
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
pub fn set_blocked_sources(socket: &impl RawSocket, blocked: &[SocketAddr]) -> io::Result<()> {
    let fd = socket.as_raw_fd();
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
pub fn set_blocked_sources<S>(_socket: &S, _blocked: &[SocketAddr]) -> io::Result<()> {
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

/// Receives many datagrams per system call with `recvmmsg` (Linux only).
///
/// Under a flood the socket must be drained faster than one address can
/// fill it; one `recvmmsg` per [`BatchReceiver::SLOTS`] datagrams instead
/// of one `recvfrom` each cuts the per-datagram system-call cost. Each slot
/// holds [`BatchReceiver::SLOT_BYTES`], twice the protocol's largest
/// datagram: a longer one arrives cut to that size (and flagged), which the
/// room refuses as too long exactly as it would the whole one, so the
/// buffers stay as small as the single 64 KiB one they replace.
#[cfg(target_os = "linux")]
pub struct BatchReceiver {
    data: Box<[u8]>,
    names: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
}

#[cfg(target_os = "linux")]
impl Default for BatchReceiver {
    fn default() -> Self {
        BatchReceiver {
            data: vec![0; Self::SLOTS * Self::SLOT_BYTES].into_boxed_slice(),
            // SAFETY: all-zero is a valid sockaddr_storage.
            names: vec![unsafe { std::mem::zeroed() }; Self::SLOTS],
            iovecs: Vec::with_capacity(Self::SLOTS),
            headers: Vec::with_capacity(Self::SLOTS),
            received: 0,
        }
    }
}

#[cfg(target_os = "linux")]
impl BatchReceiver {
    /// Most datagrams per call.
    pub const SLOTS: usize = 32;
    /// Bytes kept of each datagram.
    pub const SLOT_BYTES: usize = 2 * udpchat_proto::MAX_DATAGRAM;

    /// Reads up to [`SLOTS`](Self::SLOTS) datagrams without blocking.
    /// Returns how many arrived (at least one), or the error of the first
    /// read (`WouldBlock` when the socket is empty). Read them with
    /// [`datagram`](Self::datagram).
    pub fn receive(&mut self, socket: &impl RawSocket) -> io::Result<usize> {
        self.received = 0;
        self.iovecs.clear();
        self.headers.clear();
        for slot in self.data.chunks_exact_mut(Self::SLOT_BYTES) {
            self.iovecs.push(libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            });
        }
        // Pointers are taken after every push (capacity is SLOTS anyway).
        for i in 0..Self::SLOTS {
            let len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            self.headers
                .push(mmsghdr(&mut self.names[i], len, &mut self.iovecs[i]));
        }
        // SAFETY: `headers` holds SLOTS initialised mmsghdr whose pointers
        // are valid, writable buffers of the stated lengths for the call.
        let rc = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                Self::SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = (rc as usize).min(Self::SLOTS);
        Ok(self.received)
    }

    /// The `i`-th datagram of the last [`receive`](Self::receive): its
    /// source and bytes (cut to [`SLOT_BYTES`](Self::SLOT_BYTES) if it was
    /// longer). `None` past the end or for a source that is not IPv4/IPv6.
    pub fn datagram(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.received {
            return None;
        }
        let header = &self.headers[i];
        let from = sockaddr_to_std(&self.names[i], header.msg_hdr.msg_namelen)?;
        let len = (header.msg_len as usize).min(Self::SLOT_BYTES);
        let start = i * Self::SLOT_BYTES;
        Some((from, &self.data[start..start + len]))
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
        // Converted to sockaddr and back only; nothing is sent to them.
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
    fn receive_buffer_is_what_was_asked_or_the_system_cap() {
        use std::os::fd::AsRawFd;
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let default = int_option(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap();
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
    fn batch_receive_reads_many_in_order_and_cuts_long_ones() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        relay.set_nonblocking(true).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = relay.local_addr().unwrap();
        let mut sent = Vec::new();
        for i in 0..50u8 {
            let bytes = vec![b'a' + i % 26; 1 + usize::from(i) * 20];
            a.send_to(&bytes, to).unwrap();
            sent.push((a.local_addr().unwrap(), bytes));
        }
        a.send_to(&[b'z'; 5000], to).unwrap();
        sent.push((
            a.local_addr().unwrap(),
            vec![b'z'; BatchReceiver::SLOT_BYTES],
        ));
        let mut inbox = BatchReceiver::default();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < sent.len() && Instant::now() < deadline {
            match inbox.receive(&relay) {
                Ok(n) => {
                    assert!((1..=BatchReceiver::SLOTS).contains(&n));
                    for i in 0..n {
                        let (from, bytes) = inbox.datagram(i).unwrap();
                        got.push((from, bytes.to_vec()));
                    }
                    assert!(inbox.datagram(n).is_none());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("recvmmsg: {e}"),
            }
        }
        assert_eq!(got, sent);
        assert!(got.last().unwrap().1.len() > udpchat_proto::MAX_DATAGRAM);
        let e = inbox.receive(&relay).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

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
