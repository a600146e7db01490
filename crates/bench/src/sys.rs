//! The few Linux system calls the benchmark needs, wrapped: loopback UDP
//! sockets with large receive buffers, epoll, `recvmmsg` and `sendmmsg`.
//!
//! This is the only file with `unsafe`. Every call checks its return value and
//! turns `-1` into `io::Error::last_os_error()`.

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;

/// Room for the largest datagram a relay sends ([`udpchat_proto::MAX_DATAGRAM`])
/// with margin, so an over-long datagram shows up as long instead of cut.
pub const SLOT: usize = 2048;

/// Datagrams per `recvmmsg` / `sendmmsg` call.
pub const BATCH: usize = 64;

/// Opens a non-blocking UDP socket on 127.0.0.1 with an OS-chosen port,
/// connected to `peer`, with a receive buffer of at least `rcvbuf` bytes.
///
/// Connecting means the socket only accepts datagrams from `peer`, `send`
/// needs no address, and an ICMP port unreachable shows up as an error.
pub fn client_socket(peer: SocketAddr, rcvbuf: usize) -> io::Result<UdpSocket> {
    let bind: SocketAddr = match peer {
        SocketAddr::V4(_) => "127.0.0.1:0".parse().expect("literal address"),
        SocketAddr::V6(_) => "[::1]:0".parse().expect("literal address"),
    };
    let socket = UdpSocket::bind(bind)?;
    set_rcvbuf(&socket, rcvbuf)?;
    socket.connect(peer)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Sets the receive buffer, with `SO_RCVBUFFORCE` (allowed to root, ignores
/// `net.core.rmem_max`) and falling back to `SO_RCVBUF`. Returns the size the
/// kernel reports (it doubles the request for bookkeeping).
pub fn set_rcvbuf(socket: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let fd = socket.as_raw_fd();
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if setsockopt_int(fd, libc::SO_RCVBUFFORCE, value).is_err() {
        setsockopt_int(fd, libc::SO_RCVBUF, value)?;
    }
    getsockopt_int(fd, libc::SO_RCVBUF).map(|v| v.max(0) as usize)
}

/// Sets the send buffer the same way as [`set_rcvbuf`].
pub fn set_sndbuf(socket: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let fd = socket.as_raw_fd();
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if setsockopt_int(fd, libc::SO_SNDBUFFORCE, value).is_err() {
        setsockopt_int(fd, libc::SO_SNDBUF, value)?;
    }
    getsockopt_int(fd, libc::SO_SNDBUF).map(|v| v.max(0) as usize)
}

fn setsockopt_int(fd: RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is an open socket; the option value is a c_int we own.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt_int(fd: RawFd, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Raises the soft limit on open files to the hard limit (10,000 clients need
/// 10,000 descriptors). Returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: lim is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    Ok(lim.rlim_cur as u64)
}

/// Pins the calling thread to `cpu` (`None`: allows every CPU again).
pub fn pin_current_thread(cpu: Option<usize>) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET stays in bounds
    // for cpu < CPU_SETSIZE, checked below.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    let cpus = match cpu {
        Some(c) => c..c + 1,
        None => {
            0..std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .max(1024)
        }
    };
    for c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "CPU number too large",
            ));
        }
        // SAFETY: c < CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t; pid 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An epoll instance, level-triggered, readable interest only. The `u64` data
/// of each registration is the caller's socket index.
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// Creates the instance with room for `capacity` events per wait.
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain system call.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
        })
    }

    /// Watches `fd` for readability, tagging its events with `index`.
    pub fn add(&self, fd: RawFd, index: usize) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: index as u64,
        };
        // SAFETY: both descriptors are open; event is valid.
        if unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut event) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (0 = poll) and returns the indices of the
    /// ready sockets. `EINTR` counts as "nothing ready".
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<impl Iterator<Item = usize> + '_> {
        // SAFETY: events has room for events.len() entries.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                timeout_ms,
            )
        };
        let n = if n == -1 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
            0
        } else {
            n as usize
        };
        Ok(self.events[..n].iter().map(|e| e.u64 as usize))
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own fd.
        unsafe { libc::close(self.fd) };
    }
}

/// Buffers for one `recvmmsg` call of up to [`BATCH`] datagrams.
pub struct RecvBatch {
    buf: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    lens: [usize; BATCH],
    count: usize,
}

// SAFETY: the raw pointers in iovecs/headers point into `buf` and `iovecs`,
// which the batch owns and moves with it; nothing else aliases them.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Allocates the batch.
    pub fn new() -> RecvBatch {
        let mut batch = RecvBatch {
            buf: vec![0u8; SLOT * BATCH],
            iovecs: Vec::with_capacity(BATCH),
            headers: Vec::with_capacity(BATCH),
            lens: [0; BATCH],
            count: 0,
        };
        for i in 0..BATCH {
            batch.iovecs.push(libc::iovec {
                // SAFETY: i * SLOT is inside buf.
                iov_base: unsafe { batch.buf.as_mut_ptr().add(i * SLOT) }.cast(),
                iov_len: SLOT,
            });
        }
        for i in 0..BATCH {
            // SAFETY: an all-zero mmsghdr is valid (null name, no control).
            let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
            // SAFETY: i is inside iovecs, which never reallocates.
            header.msg_hdr.msg_iov = unsafe { batch.iovecs.as_mut_ptr().add(i) };
            header.msg_hdr.msg_iovlen = 1;
            batch.headers.push(header);
        }
        batch
    }

    /// Receives up to [`BATCH`] datagrams from `fd` without blocking. Returns
    /// how many; `Ok(0)` when none was waiting. `ECONNREFUSED` (the peer's
    /// port is closed) is returned as an error for the caller to judge.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for h in &mut self.headers {
            h.msg_len = 0;
        }
        // SAFETY: headers point to BATCH valid iovecs into buf.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if n == -1 {
            self.count = 0;
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        let n = n as usize;
        for i in 0..n {
            self.lens[i] = (self.headers[i].msg_len as usize).min(SLOT);
        }
        self.count = n;
        Ok(n)
    }

    /// The `i`-th datagram of the last [`RecvBatch::recv`].
    pub fn datagram(&self, i: usize) -> &[u8] {
        debug_assert!(i < self.count);
        &self.buf[i * SLOT..i * SLOT + self.lens[i]]
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

/// Sends `datagrams` in one `sendmmsg` call on `fd`: with `to = Some((addrs,
/// first))`, datagram `i` goes to `addrs[(first + i) % addrs.len()]` (an
/// unconnected socket); with `None`, to the connected peer. Returns how many
/// the kernel took (it may take fewer than offered; `WouldBlock` gives 0).
pub fn send_batch(
    fd: RawFd,
    datagrams: &[&[u8]],
    to: Option<(&[SockAddr], usize)>,
) -> io::Result<usize> {
    let n = datagrams.len().min(BATCH);
    let mut iovecs: [libc::iovec; BATCH] = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: an all-zero mmsghdr is valid.
    let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
    for i in 0..n {
        iovecs[i].iov_base = datagrams[i].as_ptr() as *mut libc::c_void;
        iovecs[i].iov_len = datagrams[i].len();
        headers[i].msg_hdr.msg_iov = &mut iovecs[i];
        headers[i].msg_hdr.msg_iovlen = 1;
        if let Some((addrs, first)) = to {
            let addr = &addrs[(first + i) % addrs.len()];
            headers[i].msg_hdr.msg_name =
                (&addr.storage as *const libc::sockaddr_storage) as *mut libc::c_void;
            headers[i].msg_hdr.msg_namelen = addr.len;
        }
    }
    // SAFETY: headers[..n] point to valid iovecs and addresses that outlive
    // the call; the kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), n as libc::c_uint, 0) };
    if sent == -1 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(err),
        };
    }
    Ok(sent as usize)
}

/// A socket address in the form the kernel takes, built once.
#[derive(Clone, Copy)]
pub struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddr {
    /// Converts a std address.
    pub fn new(addr: SocketAddr) -> SockAddr {
        // SAFETY: all-zero sockaddr_storage is valid.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in and
                // suitably aligned.
                unsafe { ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
                mem::size_of::<libc::sockaddr_in>()
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
                // SAFETY: as above, for sockaddr_in6.
                unsafe { ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        SockAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// Sends one datagram with `sendto` on an unconnected socket.
pub fn send_to(fd: RawFd, datagram: &[u8], to: &SockAddr) -> io::Result<bool> {
    // SAFETY: datagram and to are valid for the call.
    let rc = unsafe {
        libc::sendto(
            fd,
            datagram.as_ptr().cast(),
            datagram.len(),
            0,
            (&to.storage as *const libc::sockaddr_storage).cast(),
            to.len,
        )
    };
    if rc == -1 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(false),
            _ => Err(err),
        };
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recvmmsg_batch_receives_what_sendmmsg_sent() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = client_socket(a.local_addr().unwrap(), 1 << 20).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10).map(|i| format!("dgram {i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let sent = send_batch(a.as_raw_fd(), &refs, None).unwrap();
        assert_eq!(sent, 10);
        let mut epoll = Epoll::new(8).unwrap();
        epoll.add(b.as_raw_fd(), 7).unwrap();
        let ready: Vec<usize> = epoll.wait(2000).unwrap().collect();
        assert_eq!(ready, vec![7]);
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = batch.recv(b.as_raw_fd()).unwrap();
            for i in 0..n {
                got.push(batch.datagram(i).to_vec());
            }
            if got.len() == 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got, payloads);
    }

    #[test]
    fn sendto_reaches_an_unconnected_address() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = SockAddr::new(rx.local_addr().unwrap());
        assert!(send_to(tx.as_raw_fd(), b"hello", &to).unwrap());
        let mut buf = [0u8; 16];
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, tx.local_addr().unwrap());
    }
}
