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
