//! The data path: the one UDP socket, batched receive and send, the bounded
//! send queue, ICMP unreachable reports and the kernel's flood filter. It
//! knows nothing of the room: the event loop hands it datagrams to send and
//! takes from it what arrived.
//!
//! If the kernel's send buffer is full, the rest waits in a bounded queue
//! until the socket is writable again (`WRITABLE` interest is asked for only
//! while something waits, so an idle relay never spins); what the bound
//! forces out is counted and logged, never lost silently.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
#[cfg(doc)]
use udpchat_udp::UnreachableReport;
use udpchat_udp::{RecvBatch, SendBatch};

use crate::Transmit;
use udpchat_proto::KEY_PREFIX_LEN;

/// Datagrams read per `recvmmsg` (one `recv_from` each where there is none).
const RECV_BATCH: usize = 32;

/// Bytes kept of each received datagram: twice the protocol's largest, so a
/// longer one arrives cut to this size and is refused as too long exactly as
/// the whole one would be, and the buffers stay small.
const RECV_SLOT: usize = 2 * udpchat_proto::MAX_DATAGRAM;

/// Capacity the send queue keeps once drained: beyond it, it is shrunk, so
/// one burst does not hold its peak memory forever.
const KEEP_CAPACITY: usize = 4096;

/// Counters of the data path.
#[derive(Debug, Default, Clone)]
pub struct DataStats {
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Datagrams dropped because the send queue was full.
    pub queue_drops: u64,
    /// Sends that failed for a reason other than a full buffer.
    pub send_errors: u64,
    /// ICMP port-unreachable reports read from the error queue (believed
    /// or not).
    pub unreachable_reports: u64,
    /// Of those, the ones ignored because the ICMP did not come from the
    /// reported address's own IP (forged, or a router's opinion).
    pub unreachable_ignored: u64,
}

/// The socket and everything that moves datagrams through it.
pub(crate) struct DataPath {
    socket: UdpSocket,
    token: Token,
    registry: Registry,
    inbox: RecvBatch,
    batch: SendBatch,
    /// The key prefixes of the batch being sent (`@<key> `, or nothing).
    heads: Vec<[u8; KEY_PREFIX_LEN]>,
    /// A keyed datagram put together for a single send.
    joined: Vec<u8>,
    queue: VecDeque<Transmit>,
    queue_limit: usize,
    writable_interest: bool,
    /// The socket may hold unread datagrams (readable and not yet drained to
    /// `WouldBlock`): mio is edge-triggered, so no new event would say so.
    pub(crate) readable: bool,
    unreachable: Vec<SocketAddr>,
    blocked: Vec<SocketAddr>,
    blocked_changed: bool,
    pub(crate) stats: DataStats,
}

/// Why the data path could not be set up.
#[derive(Debug)]
pub(crate) enum SetupError {
    /// Binding the address.
    Bind(io::Error),
    /// Registering the socket with the event loop.
    Register(io::Error),
}

impl DataPath {
    /// Binds `addr` with a receive buffer of `recv_buffer` bytes (0: the
    /// system's default) and registers it as `token`, readable.
    pub(crate) fn bind(
        addr: SocketAddr,
        recv_buffer: usize,
        queue_limit: usize,
        registry: &Registry,
        token: Token,
    ) -> Result<DataPath, SetupError> {
        let mut socket = UdpSocket::bind(addr).map_err(SetupError::Bind)?;
        let local_addr = socket.local_addr().map_err(SetupError::Bind)?;
        // Windows: a student's closed port must not fail our next receive.
        if let Err(e) = udpchat_udp::ignore_connection_resets(&socket) {
            log::debug!("SIO_UDP_CONNRESET: {e}");
        }
        if let Err(e) = udpchat_udp::enable_unreachable_reports(&socket, local_addr.is_ipv6()) {
            log::warn!("cannot enable ICMP error reports ({e}); closed clients leave only at their idle timeout");
        }
        if recv_buffer > 0 {
            match udpchat_udp::set_receive_buffer(&socket, recv_buffer) {
                Ok(got) if got.bytes >= recv_buffer => {
                    log::info!("receive buffer: {} bytes", got.bytes)
                }
                Ok(got) => log::warn!(
                    "receive buffer: {} bytes of the {} asked for{}; a flood may crowd out honest datagrams",
                    got.bytes,
                    recv_buffer,
                    if got.forced {
                        ""
                    } else {
                        " (capped by net.core.rmem_max; run as root or raise it with sysctl)"
                    }
                ),
                Err(e) => log::warn!("cannot set the receive buffer ({e}); the system's default stays"),
            }
        }
        registry
            .register(&mut socket, token, Interest::READABLE)
            .map_err(SetupError::Register)?;
        Ok(DataPath {
            socket,
            token,
            registry: registry.try_clone().map_err(SetupError::Register)?,
            inbox: RecvBatch::new(RECV_BATCH, RECV_SLOT),
            batch: SendBatch::default(),
            heads: Vec::with_capacity(SendBatch::MAX),
            joined: Vec::new(),
            queue: VecDeque::new(),
            queue_limit: queue_limit.max(1),
            writable_interest: false,
            readable: false,
            unreachable: Vec::new(),
            blocked: Vec::new(),
            blocked_changed: false,
            stats: DataStats::default(),
        })
    }

    /// Whether the socket takes IPv6 only (`IPV6_V6ONLY`).
    pub(crate) fn ipv6_only(&self) -> bool {
        udpchat_udp::ipv6_only(&self.socket)
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Reads one batch (one `recvmmsg` on Linux). Returns how many arrived,
    /// or the error of the first read; read them with [`DataPath::datagram`].
    pub(crate) fn receive(&mut self) -> io::Result<usize> {
        self.inbox.receive(&self.socket)
    }

    /// The `i`-th datagram of the last [`DataPath::receive`].
    pub(crate) fn datagram(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        self.inbox.datagram(i)
    }

    /// Datagrams waiting for the socket to become writable.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Sends (or queues) every datagram of `transmits`, in order, and
    /// empties it.
    pub(crate) fn send_all(&mut self, transmits: &mut Vec<Transmit>) {
        let mut next = 0;
        // If earlier datagrams are still queued, these go behind them.
        while self.queue.is_empty() && next < transmits.len() {
            match self.send_some(&transmits[next..]) {
                Some(sent) => next += sent,
                None => break, // the send buffer is full
            }
        }
        for transmit in transmits.drain(next..) {
            self.enqueue(transmit);
        }
        transmits.clear();
        if !self.queue.is_empty() && !self.writable_interest {
            self.set_writable_interest(true);
        }
    }

    /// Sends at least the first of `transmits` (maybe more, with one
    /// `sendmmsg` on Linux); returns how many are done, or `None` if the
    /// send buffer is full.
    fn send_some(&mut self, transmits: &[Transmit]) -> Option<usize> {
        if transmits.len() > 1 {
            let transmits = &transmits[..transmits.len().min(SendBatch::MAX)];
            self.heads.clear();
            self.heads.extend(
                transmits
                    .iter()
                    .map(|t| t.key.map_or([0; KEY_PREFIX_LEN], |k| k.prefix())),
            );
            let batch = transmits.iter().zip(&self.heads).map(|(t, head)| {
                let head = if t.key.is_some() { &head[..] } else { &[][..] };
                (t.to, head, &t.bytes[..])
            });
            match self.batch.send_with_heads(&self.socket, batch) {
                Ok(sent) if sent > 0 => {
                    self.stats.sent += sent as u64;
                    return Some(sent);
                }
                Ok(_) => return None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                // The first datagram failed (e.g. a pending ICMP error):
                // send it alone, which reads the error queue and retries.
                Err(_) => {}
            }
        }
        match self.try_send(&transmits[0]) {
            SendOutcome::Done => Some(1),
            SendOutcome::WouldBlock => None,
        }
    }

    fn try_send(&mut self, transmit: &Transmit) -> SendOutcome {
        // A send can fail with the pending ICMP error of an earlier datagram
        // (Linux, IP_RECVERR) without sending this one: read the error queue
        // and try again, a bounded number of times (`send_one`).
        // Taken out while sending (the error queue needs `self`), put back
        // after, so its allocation is reused.
        let mut joined = std::mem::take(&mut self.joined);
        let bytes = match transmit.key {
            Some(key) => {
                joined.clear();
                joined.extend_from_slice(&key.prefix());
                joined.extend_from_slice(&transmit.bytes);
                &joined[..]
            }
            None => &transmit.bytes[..],
        };
        let outcome = self.send_one(bytes, transmit.to);
        self.joined = joined;
        outcome
    }

    fn send_one(&mut self, bytes: &[u8], to: SocketAddr) -> SendOutcome {
        for _ in 0..4 {
            match self.socket.send_to(bytes, to) {
                Ok(_) => {
                    self.stats.sent += 1;
                    return SendOutcome::Done;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return SendOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("send to {to}: {e}");
                    if self.drain_error_queue() == 0 {
                        // Not a queued ICMP error: this datagram itself failed.
                        self.stats.send_errors += 1;
                        return SendOutcome::Done;
                    }
                }
            }
        }
        self.stats.send_errors += 1;
        SendOutcome::Done
    }

    fn enqueue(&mut self, transmit: Transmit) {
        if self.queue.len() >= self.queue_limit {
            // Drop the newest: the queued datagrams are older and already
            // promised in order. Counted, and logged at most once per stats line.
            if self.stats.queue_drops == 0 || self.stats.queue_drops.is_power_of_two() {
                log::warn!(
                    "send queue full ({} datagrams); dropped {} so far (raise --send-queue?)",
                    self.queue.len(),
                    self.stats.queue_drops + 1
                );
            }
            self.stats.queue_drops += 1;
            return;
        }
        self.queue.push_back(transmit);
    }

    /// Sends queued datagrams until the queue is empty or the socket is full.
    pub(crate) fn flush_queue(&mut self) {
        while let Some(transmit) = self.queue.pop_front() {
            if let SendOutcome::WouldBlock = self.try_send(&transmit) {
                self.queue.push_front(transmit);
                return;
            }
        }
        self.queue.shrink_to(KEEP_CAPACITY);
        if self.writable_interest {
            self.set_writable_interest(false);
        }
    }

    fn set_writable_interest(&mut self, writable: bool) {
        let interest = if writable {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match self
            .registry
            .reregister(&mut self.socket, self.token, interest)
        {
            Ok(()) => self.writable_interest = writable,
            Err(e) => log::error!("cannot change socket interest: {e}"),
        }
    }

    /// Reads the socket's error queue; remembers unreachable peers for
    /// [`DataPath::take_unreachable`]. Returns how many errors were read.
    ///
    /// A report is believed only if the ICMP came from the reported
    /// address's own IP ([`UnreachableReport::from_destination`]): anyone
    /// can send an ICMP quoting a made-up header, and a stranger's claim
    /// that a member's port is closed must not cost the member anything.
    pub(crate) fn drain_error_queue(&mut self) -> usize {
        let unreachable = &mut self.unreachable;
        let stats = &mut self.stats;
        udpchat_udp::drain_error_queue(&self.socket, |report| {
            stats.unreachable_reports += 1;
            if !report.from_destination() {
                stats.unreachable_ignored += 1;
                log::debug!(
                    "ignored an ICMP port unreachable for {} from {:?}: not from that address",
                    report.destination,
                    report.offender
                );
                return;
            }
            let addr = report.destination;
            if !unreachable.contains(&addr) {
                unreachable.push(addr);
            }
        })
    }

    /// The peers reported unreachable since the last call.
    pub(crate) fn take_unreachable(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.unreachable)
    }

    /// Has the kernel drop `addr`'s datagrams (from the next
    /// [`DataPath::update_kernel_blocks`]).
    pub(crate) fn block(&mut self, addr: SocketAddr) {
        if !self.blocked.contains(&addr) {
            self.blocked.push(addr);
            self.blocked_changed = true;
        }
    }

    /// Lets `addr`'s datagrams through again.
    pub(crate) fn unblock(&mut self, addr: SocketAddr) {
        let before = self.blocked.len();
        self.blocked.retain(|a| *a != addr);
        self.blocked_changed |= self.blocked.len() != before;
    }

    /// Hands the kernel the current list of blocked flooders, if it changed.
    pub(crate) fn update_kernel_blocks(&mut self) {
        if !std::mem::take(&mut self.blocked_changed) {
            return;
        }
        if let Err(e) = udpchat_udp::set_blocked_sources(&self.socket, &self.blocked) {
            // Not fatal: the room's rate limit still drops their excess.
            log::warn!("cannot filter flooders in the kernel ({e}); the rate limit still applies");
        }
    }
}

enum SendOutcome {
    /// Sent, or failed for good (counted).
    Done,
    /// The send buffer is full: try again when writable.
    WouldBlock,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::Poll;

    fn transmit(to: SocketAddr, i: u8) -> Transmit {
        Transmit::new(to, std::rc::Rc::from(vec![i; 8].into_boxed_slice()))
    }

    #[test]
    fn full_send_queue_drops_the_newest_counts_them_and_flushes_in_order() {
        let poll = Poll::new().unwrap();
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut net = DataPath::bind(addr, 0, 3, poll.registry(), Token(0))
            .unwrap_or_else(|_| panic!("bind"));
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = peer.local_addr().unwrap();
        // Pretend the socket was full: one datagram is already queued.
        net.queue.push_back(transmit(to, 0));
        let mut batch: Vec<Transmit> = (1..5).map(|i| transmit(to, i)).collect();
        net.send_all(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(net.queue.len(), 3);
        assert_eq!(net.stats.queue_drops, 2);
        assert_eq!(net.stats.sent, 0);
        assert!(net.writable_interest);
        net.flush_queue();
        assert!(net.queue.is_empty());
        assert!(!net.writable_interest);
        assert_eq!(net.stats.sent, 3);
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        for i in 0..3u8 {
            let n = peer.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 8]);
        }
    }

    #[test]
    fn blocks_are_handed_to_the_kernel_once_per_change() {
        let poll = Poll::new().unwrap();
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut net = DataPath::bind(addr, 0, 3, poll.registry(), Token(0))
            .unwrap_or_else(|_| panic!("bind"));
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        net.block(a);
        net.block(a);
        assert_eq!(net.blocked, [a]);
        assert!(net.blocked_changed);
        net.update_kernel_blocks();
        assert!(!net.blocked_changed);
        net.unblock(a);
        assert!(net.blocked.is_empty() && net.blocked_changed);
        net.update_kernel_blocks();
    }
}
