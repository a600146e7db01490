//! The benchmark's sockets: loopback UDP sockets with large buffers, and
//! one readiness set over all of them. The system calls are the relay's own
//! (`udpchat-udp`), so both sides of a measurement pay the same costs;
//! readiness comes from mio, as in the relay.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

pub use udpchat_udp::{RecvBatch, SendBatch};

/// Room for the largest datagram a relay sends ([`udpchat_proto::MAX_DATAGRAM`])
/// with margin, so an over-long datagram shows up as long instead of cut.
pub const SLOT: usize = 2048;

/// Datagrams per `recvmmsg` / `sendmmsg` call.
pub const BATCH: usize = SendBatch::MAX;

/// A receive batch of [`BATCH`] slots of [`SLOT`] bytes.
pub fn recv_batch() -> RecvBatch {
    RecvBatch::new(BATCH, SLOT)
}

/// Opens a non-blocking UDP socket on 127.0.0.1 (or ::1) with an OS-chosen
/// port, connected to `peer`, with a receive buffer of `rcvbuf` bytes where
/// the kernel grants it. Returns the socket and the buffer it got.
///
/// Connecting means the socket only accepts datagrams from `peer`, `send`
/// needs no address, and an ICMP port unreachable shows up as an error.
pub fn client_socket(peer: SocketAddr, rcvbuf: usize) -> io::Result<(UdpSocket, usize)> {
    let bind: SocketAddr = match peer {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
    };
    open_socket(bind, peer, rcvbuf)
}

/// Like [`client_socket`], for simulated member number `index`: towards an
/// IPv4 loopback relay it binds its own loopback IP address
/// ([`member_ip`]), so that the members look like separate computers and
/// the relay's per-IP limits (default `--max-per-ip 4`) apply as in a
/// classroom, without raising them.
pub fn member_socket(
    peer: SocketAddr,
    rcvbuf: usize,
    index: usize,
) -> io::Result<(UdpSocket, usize)> {
    match peer {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => {
            open_socket((member_ip(index), 0).into(), peer, rcvbuf)
        }
        _ => client_socket(peer, rcvbuf),
    }
}

/// The loopback IP address of simulated member `index`: 127.1.x.y, one per
/// member (any 127.0.0.0/8 address can be bound on Linux), distinct for
/// the first 65,000 members.
pub fn member_ip(index: usize) -> std::net::Ipv4Addr {
    let n = index % 65_000;
    std::net::Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250 + 1) as u8)
}

fn open_socket(
    bind: SocketAddr,
    peer: SocketAddr,
    rcvbuf: usize,
) -> io::Result<(UdpSocket, usize)> {
    let socket = UdpSocket::bind(bind)?;
    let granted = udpchat_udp::set_receive_buffer(&socket, rcvbuf)?;
    socket.connect(peer)?;
    socket.set_nonblocking(true)?;
    Ok((socket, granted.bytes))
}

/// Readiness of many sockets, each known by its index. mio is
/// edge-triggered: after an index is reported, read its socket until
/// `WouldBlock`, or no further event comes for what is left.
pub struct Readiness {
    poll: Poll,
    events: Events,
}

impl Readiness {
    /// A set reporting up to `capacity` ready sockets per wait.
    pub fn new(capacity: usize) -> io::Result<Readiness> {
        Ok(Readiness {
            poll: Poll::new()?,
            events: Events::with_capacity(capacity.max(1)),
        })
    }

    /// Watches `socket` for readability, reporting it as `index`.
    pub fn add(&self, socket: &UdpSocket, index: usize) -> io::Result<()> {
        self.poll.registry().register(
            &mut SourceFd(&socket.as_raw_fd()),
            Token(index),
            Interest::READABLE,
        )
    }

    /// Waits up to `timeout` (zero: just looks) and returns the indices of
    /// the sockets that became readable. An interrupted wait reports none.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<impl Iterator<Item = usize> + '_> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(e),
        }
        Ok(self.events.iter().map(|e| e.token().0))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_get_distinct_loopback_ips_that_can_be_bound() {
        let ips: std::collections::HashSet<_> = (0..1000).map(super::member_ip).collect();
        assert_eq!(ips.len(), 1000);
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, _) = super::member_socket(relay.local_addr().unwrap(), 1 << 16, 0).unwrap();
        let (b, _) = super::member_socket(relay.local_addr().unwrap(), 1 << 16, 1).unwrap();
        assert_ne!(a.local_addr().unwrap().ip(), b.local_addr().unwrap().ip());
        a.send(b"x").unwrap();
        let mut buf = [0u8; 4];
        let (_, from) = relay.recv_from(&mut buf).unwrap();
        assert_eq!(from.ip(), super::member_ip(0));
    }

    use super::*;

    #[test]
    fn a_batch_sent_to_a_watched_socket_is_reported_and_read_whole() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (b, _) = client_socket(a.local_addr().unwrap(), 1 << 20).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10).map(|i| format!("dgram {i}").into_bytes()).collect();
        let sent = SendBatch::default()
            .send_connected(&a, payloads.iter().map(|p| &p[..]))
            .unwrap();
        assert_eq!(sent, 10);
        let mut ready = Readiness::new(8).unwrap();
        ready.add(&b, 7).unwrap();
        let got: Vec<usize> = ready.wait(Duration::from_secs(2)).unwrap().collect();
        assert_eq!(got, vec![7]);
        let mut batch = recv_batch();
        let mut got = Vec::new();
        loop {
            match batch.receive(&b) {
                Ok(n) => (0..n).for_each(|i| got.push(batch.bytes(i).unwrap().to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, payloads);
    }
}
