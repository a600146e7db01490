//! Many datagrams per system call: `recvmmsg` and `sendmmsg` on Linux, a
//! loop of `recv_from`/`send_to` elsewhere, behind the same two types.
//!
//! Why: a chat line to a room of N members is N datagrams, and under a flood
//! the socket must be drained faster than one address can fill it. One call
//! per batch instead of one per datagram cuts the system-call cost, which is
//! most of a relay's CPU. The buffers are allocated once and reused.

use std::io;
use std::net::SocketAddr;

use crate::Socket;

/// Buffers for receiving up to `slots` datagrams in one call, each kept up
/// to `slot_bytes` long (a longer one arrives cut to that size, so make the
/// slot larger than anything legal to tell "too long" from "just fits").
pub struct RecvBatch {
    data: Box<[u8]>,
    slot_bytes: usize,
    lens: Vec<usize>,
    sources: Vec<Option<SocketAddr>>,
    #[cfg(target_os = "linux")]
    names: Vec<libc::sockaddr_storage>,
    #[cfg(target_os = "linux")]
    iovecs: Vec<libc::iovec>,
    #[cfg(target_os = "linux")]
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovecs` and `headers` are rebuilt before each
// system call from buffers the batch owns (`data`, `names`, `iovecs`) and
// are never read outside that call; nothing else aliases them.
#[cfg(target_os = "linux")]
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Allocates `slots` buffers of `slot_bytes` each.
    pub fn new(slots: usize, slot_bytes: usize) -> RecvBatch {
        let slots = slots.max(1);
        RecvBatch {
            data: vec![0; slots * slot_bytes].into_boxed_slice(),
            slot_bytes,
            lens: Vec::with_capacity(slots),
            sources: Vec::with_capacity(slots),
            #[cfg(target_os = "linux")]
            names: vec![crate::linux::empty_sockaddr(); slots],
            #[cfg(target_os = "linux")]
            iovecs: Vec::with_capacity(slots),
            #[cfg(target_os = "linux")]
            headers: Vec::with_capacity(slots),
        }
    }

    /// Most datagrams one [`receive`](Self::receive) reads.
    pub fn slots(&self) -> usize {
        self.data.len() / self.slot_bytes.max(1)
    }

    /// Reads as many waiting datagrams as fit, without blocking. Returns how
    /// many arrived (at least one), or the error of the first read:
    /// `WouldBlock` when nothing is waiting, `ConnectionRefused` on a
    /// connected socket whose peer's port is closed.
    pub fn receive(&mut self, socket: &impl Socket) -> io::Result<usize> {
        self.lens.clear();
        self.sources.clear();
        self.receive_into(socket)
    }

    #[cfg(target_os = "linux")]
    fn receive_into(&mut self, socket: &impl Socket) -> io::Result<usize> {
        let slots = self.slots();
        self.iovecs.clear();
        self.headers.clear();
        for slot in self.data.chunks_exact_mut(self.slot_bytes) {
            self.iovecs.push(libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            });
        }
        // Pointers are taken after every push (capacity is `slots` anyway),
        // so no reallocation moves what they point to.
        let len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        for (name, iov) in self.names.iter_mut().zip(self.iovecs.iter_mut()) {
            self.headers.push(crate::linux::mmsghdr(
                Some(name),
                len,
                std::slice::from_mut(iov),
            ));
        }
        // SAFETY: `headers` was just built from `names`, `iovecs` and `data`,
        // which this batch owns and which are not touched until the call
        // returns.
        let n = unsafe { crate::linux::recvmmsg(socket.fd(), &mut self.headers[..slots]) }?;
        for (header, name) in self.headers[..n].iter().zip(&self.names) {
            self.lens
                .push((header.msg_len as usize).min(self.slot_bytes));
            self.sources.push(crate::linux::sockaddr_to_std(
                name,
                header.msg_hdr.msg_namelen,
            ));
        }
        Ok(n)
    }

    #[cfg(not(target_os = "linux"))]
    fn receive_into(&mut self, socket: &impl Socket) -> io::Result<usize> {
        let slots = self.slots();
        for slot in self.data.chunks_exact_mut(self.slot_bytes).take(slots) {
            match socket.recv_from(slot) {
                Ok((len, from)) => {
                    self.lens.push(len.min(self.slot_bytes));
                    self.sources.push(Some(from));
                }
                Err(e) if self.lens.is_empty() => return Err(e),
                // The next call reports it (WouldBlock, or a stray error):
                // either way this batch is done.
                Err(_) => break,
            }
        }
        Ok(self.lens.len())
    }

    /// How many datagrams the last [`receive`](Self::receive) read.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether the last receive read nothing.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The `i`-th datagram of the last [`receive`](Self::receive): its
    /// source and bytes (cut to the slot size if it was longer). `None` past
    /// the end or for a source that is not IPv4/IPv6.
    pub fn datagram(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        let from = (*self.sources.get(i)?)?;
        Some((from, self.bytes(i)?))
    }

    /// The bytes of the `i`-th datagram, whatever its source.
    pub fn bytes(&self, i: usize) -> Option<&[u8]> {
        let len = *self.lens.get(i)?;
        let start = i * self.slot_bytes;
        Some(&self.data[start..start + len])
    }
}

/// Sends up to [`SendBatch::MAX`] datagrams in one call.
pub struct SendBatch {
    #[cfg(target_os = "linux")]
    headers: Vec<libc::mmsghdr>,
    /// Per datagram: its head (empty if none) and its body.
    #[cfg(target_os = "linux")]
    iovecs: Vec<[libc::iovec; 2]>,
    #[cfg(target_os = "linux")]
    names: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    /// Where a datagram with a head is put together (not Linux).
    #[cfg(not(target_os = "linux"))]
    joined: Vec<u8>,
}

// SAFETY: as for RecvBatch: the pointers are rebuilt for each call from
// buffers the caller lends for that call only, and never read afterwards.
#[cfg(target_os = "linux")]
unsafe impl Send for SendBatch {}

#[cfg_attr(not(target_os = "linux"), allow(clippy::derivable_impls))]
impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            #[cfg(target_os = "linux")]
            headers: Vec::with_capacity(Self::MAX),
            #[cfg(target_os = "linux")]
            iovecs: Vec::with_capacity(Self::MAX),
            #[cfg(target_os = "linux")]
            names: Vec::with_capacity(Self::MAX),
            #[cfg(not(target_os = "linux"))]
            joined: Vec::new(),
        }
    }
}

impl SendBatch {
    /// Most datagrams per call.
    pub const MAX: usize = 64;

    /// Sends the first up-to-[`MAX`](Self::MAX) of `datagrams` in order, each
    /// to its address. Returns how many were sent (at least one), or the
    /// error of the first, which was not sent (`WouldBlock` when the send
    /// buffer is full).
    pub fn send<'a>(
        &mut self,
        socket: &impl Socket,
        datagrams: impl IntoIterator<Item = (SocketAddr, &'a [u8])>,
    ) -> io::Result<usize> {
        let datagrams = datagrams.into_iter().map(|(to, b)| (Some(to), &[][..], b));
        self.send_inner(socket, datagrams)
    }

    /// Like [`send`](Self::send), each datagram made of a head and a body
    /// sent as one (the head first; it may be empty): the relay sends one
    /// shared rendering of an event behind each member's own key prefix
    /// without copying it (two `iovec`s per datagram on Linux).
    pub fn send_with_heads<'a>(
        &mut self,
        socket: &impl Socket,
        datagrams: impl IntoIterator<Item = (SocketAddr, &'a [u8], &'a [u8])>,
    ) -> io::Result<usize> {
        let datagrams = datagrams
            .into_iter()
            .map(|(to, head, body)| (Some(to), head, body));
        self.send_inner(socket, datagrams)
    }

    /// Like [`send`](Self::send), to the peer of a connected socket.
    pub fn send_connected<'a>(
        &mut self,
        socket: &impl Socket,
        datagrams: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        self.send_inner(socket, datagrams.into_iter().map(|b| (None, &[][..], b)))
    }

    #[cfg(target_os = "linux")]
    fn send_inner<'a>(
        &mut self,
        socket: &impl Socket,
        datagrams: impl Iterator<Item = (Option<SocketAddr>, &'a [u8], &'a [u8])>,
    ) -> io::Result<usize> {
        self.headers.clear();
        self.iovecs.clear();
        self.names.clear();
        let mut connected = false;
        // sendmmsg only reads through these pointers.
        let iovec = |bytes: &[u8]| libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        for (to, head, body) in datagrams.take(Self::MAX) {
            match to {
                Some(to) => self.names.push(crate::linux::sockaddr_from_std(to)),
                None => connected = true,
            }
            self.iovecs.push([iovec(head), iovec(body)]);
        }
        let n = self.iovecs.len();
        if n == 0 {
            return Ok(0);
        }
        // Pointers are taken after every push (capacity is MAX anyway).
        for i in 0..n {
            // No head: the body's iovec alone.
            let parts = &mut self.iovecs[i];
            let iov = if parts[0].iov_len == 0 {
                &mut parts[1..]
            } else {
                &mut parts[..]
            };
            let header = match self.names.get_mut(i) {
                Some((name, len)) if !connected => crate::linux::mmsghdr(Some(name), *len, iov),
                _ => crate::linux::mmsghdr(None, 0, iov),
            };
            self.headers.push(header);
        }
        // SAFETY: `headers` points into `names` and `iovecs` (owned here,
        // untouched until the call returns), each header at one or two
        // iovecs of its own datagram, and those into the caller's heads and
        // bodies, borrowed for this call.
        unsafe { crate::linux::sendmmsg(socket.fd(), &mut self.headers) }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_inner<'a>(
        &mut self,
        socket: &impl Socket,
        datagrams: impl Iterator<Item = (Option<SocketAddr>, &'a [u8], &'a [u8])>,
    ) -> io::Result<usize> {
        let mut sent = 0;
        for (to, head, body) in datagrams.take(Self::MAX) {
            let bytes = if head.is_empty() {
                body
            } else {
                self.joined.clear();
                self.joined.extend_from_slice(head);
                self.joined.extend_from_slice(body);
                &self.joined[..]
            };
            let result = match to {
                Some(to) => socket.send_to(bytes, to),
                None => socket.send(bytes),
            };
            match result {
                Ok(_) => sent += 1,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    #[test]
    fn batch_receive_reads_many_in_order_and_cuts_long_ones() {
        const SLOT: usize = 2048;
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
        sent.push((a.local_addr().unwrap(), vec![b'z'; SLOT]));
        let mut inbox = RecvBatch::new(32, SLOT);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < sent.len() && Instant::now() < deadline {
            match inbox.receive(&relay) {
                Ok(n) => {
                    assert!((1..=inbox.slots()).contains(&n));
                    assert_eq!(n, inbox.len());
                    for i in 0..n {
                        let (from, bytes) = inbox.datagram(i).unwrap();
                        got.push((from, bytes.to_vec()));
                    }
                    assert!(inbox.datagram(n).is_none());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("receive: {e}"),
            }
        }
        assert_eq!(got, sent);
        let e = inbox.receive(&relay).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(inbox.is_empty());
    }

    #[test]
    fn batch_sends_every_datagram_in_order() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut datagrams = Vec::new();
        for i in 0..100u8 {
            let to = if i % 2 == 0 { &a } else { &b };
            datagrams.push((to.local_addr().unwrap(), vec![i; 10 + i as usize]));
        }
        let mut sender = SendBatch::default();
        let mut next = 0;
        while next < datagrams.len() {
            let batch = datagrams[next..].iter().map(|(to, b)| (*to, &b[..]));
            let n = sender.send(&relay, batch).unwrap();
            assert!((1..=SendBatch::MAX).contains(&n));
            next += n;
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

    #[test]
    fn heads_and_bodies_arrive_as_one_datagram_each() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = a.local_addr().unwrap();
        let body = b"EVENT 5 live CHAT bob hi".to_vec();
        let heads = [&b"@0123456789abcdef "[..], b"", b"@fedcba9876543210 "];
        let mut sender = SendBatch::default();
        let batch = heads.iter().map(|head| (to, *head, &body[..]));
        assert_eq!(sender.send_with_heads(&relay, batch).unwrap(), 3);
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        for head in heads {
            let (n, _) = a.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], [head, &body[..]].concat().as_slice());
        }
    }

    #[test]
    fn connected_batch_reaches_the_peer_and_mio_sockets_work_too() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10).map(|i| format!("dgram {i}").into_bytes()).collect();
        let sent = SendBatch::default()
            .send_connected(&tx, payloads.iter().map(|p| &p[..]))
            .unwrap();
        assert_eq!(sent, 10);
        let mut inbox = RecvBatch::new(64, 2048);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 10 && Instant::now() < deadline {
            match inbox.receive(&rx) {
                Ok(n) => (0..n).for_each(|i| got.push(inbox.bytes(i).unwrap().to_vec())),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        assert_eq!(got, payloads);
    }

    #[test]
    fn sending_nothing_sends_nothing() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let none: [(SocketAddr, &[u8]); 0] = [];
        assert_eq!(SendBatch::default().send(&s, none).unwrap(), 0);
    }
}
