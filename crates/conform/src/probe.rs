//! One client socket of the kit ([`Probe`]), the pacing every send goes
//! through ([`Pacer`]) and the record of everything sent and received
//! ([`Transcript`]), which is a failed check's evidence.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use udpchat_proto::LineEnding;

use crate::lossy::{Fate, LossyPath};

/// The shortest gap between two datagrams the kit sends, over all its
/// sockets: at most 125 a second, below the per-IP refill of our relay's
/// rate limit (160 a second, PROTOCOL.md section 9), so a conforming relay
/// never rate-limits the kit, and safe to point at any host on a LAN.
pub const SEND_GAP: Duration = Duration::from_millis(8);

/// Keeps the kit's sends at least [`SEND_GAP`] apart.
#[derive(Debug)]
pub struct Pacer {
    last: Cell<Option<Instant>>,
    sent: Cell<u64>,
}

impl Pacer {
    /// A pacer that has sent nothing yet.
    pub fn new() -> Pacer {
        Pacer {
            last: Cell::new(None),
            sent: Cell::new(0),
        }
    }

    /// Sleeps until the next send is allowed, and counts it.
    fn wait_turn(&self) {
        if let Some(last) = self.last.get() {
            let next = last + SEND_GAP;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            }
        }
        self.last.set(Some(Instant::now()));
        self.sent.set(self.sent.get() + 1);
    }

    /// Datagrams sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer::new()
    }
}

/// Which way a datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the kit to the relay.
    Sent,
    /// From the relay to the kit.
    Received,
}

/// One datagram in a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    /// Which way.
    pub direction: Direction,
    /// The kit's socket, by its role (its nickname, or `stranger`).
    pub who: String,
    /// The datagram.
    pub bytes: Vec<u8>,
}

impl TranscriptLine {
    /// The datagram as a short printable string: UTF-8 shown as is with
    /// `\n`, `\r`, `\t`, `\\` and `\xHH` escapes (never a raw control
    /// character on the reader's terminal), cut after `max` characters with
    /// the length added.
    pub fn shown(&self, max: usize) -> String {
        show_bytes(&self.bytes, max)
    }
}

impl fmt::Display for TranscriptLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.direction {
            Direction::Sent => "->",
            Direction::Received => "<-",
        };
        write!(f, "{} {arrow} {}", self.who, self.shown(100))
    }
}

/// `bytes` escaped for a report, cut after `max` characters.
pub fn show_bytes(bytes: &[u8], max: usize) -> String {
    let mut out = String::from("\"");
    let mut shown = 0;
    let mut cut = false;
    for piece in bytes.utf8_chunks() {
        for c in piece.valid().chars() {
            if shown == max {
                cut = true;
                break;
            }
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                c if udpchat_proto::check_text_char(c).is_err() => {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32));
                }
                c => out.push(c),
            }
            shown += 1;
        }
        for b in piece.invalid() {
            if cut || shown == max {
                cut = true;
                break;
            }
            out.push_str(&format!("\\x{b:02x}"));
            shown += 1;
        }
        if cut {
            break;
        }
    }
    out.push('"');
    if cut {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

/// Everything the kit sent and received during one check, in order.
#[derive(Debug, Default)]
pub struct Transcript {
    lines: RefCell<Vec<TranscriptLine>>,
}

impl Transcript {
    fn push(&self, direction: Direction, who: &str, bytes: &[u8]) {
        self.lines.borrow_mut().push(TranscriptLine {
            direction,
            who: who.to_owned(),
            bytes: bytes.to_vec(),
        });
    }

    /// Takes the lines recorded so far, leaving it empty.
    pub fn take(&self) -> Vec<TranscriptLine> {
        std::mem::take(&mut self.lines.borrow_mut())
    }
}

/// A datagram the relay sent to one of the kit's sockets, with what that
/// socket expects of every line (bare, or ending in `\n`).
#[derive(Debug, Clone)]
pub struct Received {
    /// The datagram.
    pub bytes: Vec<u8>,
    /// The role of the socket that received it.
    pub who: String,
    /// The line ending the socket asked for when it joined.
    pub ending: LineEnding,
}

/// One UDP socket of the kit, connected to the relay under test (so
/// datagrams from anyone else are not seen), with a role for the transcript.
pub struct Probe {
    socket: UdpSocket,
    who: RefCell<String>,
    ending: Cell<LineEnding>,
    pacer: Rc<Pacer>,
    transcript: Rc<Transcript>,
    received: Rc<RefCell<Vec<Received>>>,
    refused: Cell<bool>,
    lossy: RefCell<Option<LossyPath>>,
}

/// The address a kit socket binds to for `target`: loopback for a loopback
/// target (the tests, a student's relay on the same computer), the
/// unspecified address of the same family otherwise.
pub fn local_addr_for(target: SocketAddr) -> SocketAddr {
    let ip: IpAddr = match (target.ip().is_loopback(), target.is_ipv4()) {
        (true, true) => Ipv4Addr::LOCALHOST.into(),
        (true, false) => Ipv6Addr::LOCALHOST.into(),
        (false, true) => Ipv4Addr::UNSPECIFIED.into(),
        (false, false) => Ipv6Addr::UNSPECIFIED.into(),
    };
    SocketAddr::new(ip, 0)
}

/// The loopback addresses the kit's sockets take turns on when the
/// target is on 127.0.0.0/8: 127.0.0.2 to 127.0.0.40.
pub const SPREAD: std::ops::RangeInclusive<u8> = 2..=40;

/// For an IPv4 loopback target, the next of [`SPREAD`] (port 0): the kit's
/// members then come from many addresses, as a classroom's would, so a
/// relay's per-address limits (ours: 4 members and 8 joins per address)
/// do not slow the run. `None` for any other target (one address, as
/// before). Where 127.0.0.x cannot be bound (macOS has only 127.0.0.1),
/// [`Probe::new_from`] falls back to [`local_addr_for`].
pub fn spread_addr(target: SocketAddr) -> Option<SocketAddr> {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let IpAddr::V4(ip) = target.ip() else {
        return None;
    };
    if !ip.is_loopback() {
        return None;
    }
    let span = SPREAD.end() - SPREAD.start() + 1;
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % span;
    Some(SocketAddr::new(
        Ipv4Addr::new(127, 0, 0, SPREAD.start() + n).into(),
        0,
    ))
}

impl Probe {
    /// A fresh socket on an ephemeral port, connected to `target`.
    pub fn new(
        target: SocketAddr,
        who: &str,
        pacer: Rc<Pacer>,
        transcript: Rc<Transcript>,
        received: Rc<RefCell<Vec<Received>>>,
    ) -> io::Result<Probe> {
        Probe::new_from(None, target, who, pacer, transcript, received)
    }

    /// Like [`Probe::new`], bound to `local` if given and possible (else
    /// to [`local_addr_for`]).
    pub fn new_from(
        local: Option<SocketAddr>,
        target: SocketAddr,
        who: &str,
        pacer: Rc<Pacer>,
        transcript: Rc<Transcript>,
        received: Rc<RefCell<Vec<Received>>>,
    ) -> io::Result<Probe> {
        let socket = match local {
            Some(addr) => {
                UdpSocket::bind(addr).or_else(|_| UdpSocket::bind(local_addr_for(target)))?
            }
            None => UdpSocket::bind(local_addr_for(target))?,
        };
        socket.connect(target)?;
        Ok(Probe {
            socket,
            who: RefCell::new(who.to_owned()),
            ending: Cell::new(LineEnding::Bare),
            pacer,
            transcript,
            received,
            refused: Cell::new(false),
            lossy: RefCell::new(None),
        })
    }

    /// Whether the relay's host answered "port unreachable" (nothing
    /// listens on that port).
    pub fn was_refused(&self) -> bool {
        self.refused.get()
    }

    /// The socket's role in the transcript.
    pub fn who(&self) -> String {
        self.who.borrow().clone()
    }

    /// Renames the role (after `NICK`).
    pub fn set_who(&self, who: &str) {
        *self.who.borrow_mut() = who.to_owned();
    }

    /// What the socket asked for by its join: bare lines or lines with `\n`.
    pub fn set_ending(&self, ending: LineEnding) {
        self.ending.set(ending);
    }

    /// Sends one datagram, paced (see [`SEND_GAP`]). A send error (the
    /// relay's host reported the port unreachable) is recorded as a lost
    /// datagram: the check then sees no answer.
    pub fn send(&self, bytes: &[u8]) {
        let on_wire = match self.lossy.borrow_mut().as_mut() {
            Some(path) => {
                let (on_wire, fate) = path.outgoing(bytes);
                let who = format!("{}{}", self.who(), fate.note());
                self.transcript.push(Direction::Sent, &who, bytes);
                on_wire
            }
            None => {
                self.transcript.push(Direction::Sent, &self.who(), bytes);
                vec![bytes.to_vec()]
            }
        };
        for datagram in on_wire {
            self.pacer.wait_turn();
            if let Err(e) = self.socket.send(&datagram) {
                log::debug!("{}: send failed: {e}", self.who());
            }
        }
    }

    /// Puts this socket behind a lossy path (both ways), or takes it away.
    pub fn set_lossy(&self, path: Option<LossyPath>) {
        *self.lossy.borrow_mut() = path;
    }

    /// Sends the datagram the lossy path holds back, if any (nothing
    /// came after it to overtake it).
    pub fn release(&self) {
        let held = self
            .lossy
            .borrow_mut()
            .as_mut()
            .and_then(LossyPath::release_out);
        if let Some(datagram) = held {
            self.pacer.wait_turn();
            let _ = self.socket.send(&datagram);
        }
    }

    /// The next datagram the lossy path delivers, recorded.
    fn next_delivered(&self) -> Option<Vec<u8>> {
        let bytes = self.lossy.borrow_mut().as_mut()?.next_delivered()?;
        self.transcript
            .push(Direction::Received, &self.who(), &bytes);
        Some(bytes)
    }

    /// Sends `text` as one datagram.
    pub fn send_str(&self, text: &str) {
        self.send(text.as_bytes());
    }

    /// The next datagram within `timeout`, or `None`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        // 64 KiB: an over-long datagram must be seen whole, not cut at 1024.
        let mut buf = vec![0u8; 65536];
        if let Some(bytes) = self.next_delivered() {
            return Some(bytes);
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            let _ = self.socket.set_read_timeout(Some(left));
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let bytes = buf[..n].to_vec();
                    self.received.borrow_mut().push(Received {
                        bytes: bytes.clone(),
                        who: self.who(),
                        ending: self.ending.get(),
                    });
                    let fate = self
                        .lossy
                        .borrow_mut()
                        .as_mut()
                        .map(|path| path.incoming(bytes.clone()));
                    if let Some(fate) = fate {
                        if fate != Fate::Delivered && fate != Fate::Duplicated {
                            let who = format!("{}{}", self.who(), fate.note());
                            self.transcript.push(Direction::Received, &who, &bytes);
                        }
                        if let Some(bytes) = self.next_delivered() {
                            return Some(bytes);
                        }
                        continue;
                    }
                    self.transcript
                        .push(Direction::Received, &self.who(), &bytes);
                    return Some(bytes);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // Nothing more came: a datagram held back arrives now.
                    if let Some(path) = self.lossy.borrow_mut().as_mut() {
                        path.release_in();
                    }
                    return self.next_delivered();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Linux reports "port unreachable" as refused, Windows
                    // as reset.
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                    ) {
                        self.refused.set(true);
                    }
                    // ICMP port unreachable (nothing listens there) and the
                    // like: no answer, but do not spin on it.
                    log::debug!("{}: receive failed: {e}", self.who());
                    thread::sleep(Duration::from_millis(20).min(left));
                }
            }
        }
    }

    /// Reads datagrams until one satisfies `want` (returned) or `timeout`
    /// passes (`None`); what was read before it is returned too.
    pub fn recv_until(
        &self,
        timeout: Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> (Option<Vec<u8>>, Vec<Vec<u8>>) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(bytes) if want(&bytes) => return (Some(bytes), before),
                Some(bytes) => before.push(bytes),
                None => break,
            }
        }
        (None, before)
    }

    /// Everything that arrives within `period`.
    pub fn drain(&self, period: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + period;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(bytes) => out.push(bytes),
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_spread_over_addresses_and_others_do_not() {
        let target = SocketAddr::from(([127, 0, 0, 1], 10024));
        let ips: std::collections::HashSet<_> = (0..80)
            .map(|_| spread_addr(target).expect("loopback").ip())
            .collect();
        assert_eq!(ips.len(), SPREAD.count());
        assert!(spread_addr(SocketAddr::from(([192, 168, 1, 20], 10024))).is_none());
        assert!(spread_addr("[::1]:10024".parse().expect("addr")).is_none());
    }

    #[test]
    fn the_pacer_keeps_sends_apart() {
        let pacer = Pacer::new();
        let start = Instant::now();
        for _ in 0..6 {
            pacer.wait_turn();
        }
        assert!(start.elapsed() >= SEND_GAP * 5);
        assert_eq!(pacer.sent(), 6);
    }

    #[test]
    fn shown_bytes_escape_controls_and_invalid_utf8_and_are_cut() {
        assert_eq!(show_bytes(b"a\x1b[2J\n", 20), "\"a\\u{1b}[2J\\n\"");
        assert_eq!(show_bytes(b"\xff ok", 20), "\"\\xff ok\"");
        assert_eq!(show_bytes("字字字".as_bytes(), 2), "\"字字\"... (9 bytes)");
        assert_eq!(show_bytes("字字".as_bytes(), 2), "\"字字\"");
    }
}
