//! The discrete-event loop: one room, its clients, a link each way per
//! client, and a queue of what happens when.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use udpchat_proto::{Nick, RoomEvent};
use udpchat_room::{Config, Event, Outputs, Room};

use crate::client::{Chat, ClassicClient, NaiveClient, StructuredClient};
use crate::link::{Link, LinkConfig, WireStats};
use crate::rng::SplitMix64;

/// Which simulated client (the order they were added, from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub usize);

/// What kind of client to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// The real client's session, with loss repair.
    Structured,
    /// The real client's session without repair (`--no-repair`).
    StructuredWithoutRepair,
    /// An `nc`-style classic client.
    Classic,
    /// A structured client that never repairs anything.
    Naive,
}

/// One simulated client, whatever its kind.
#[derive(Debug)]
// A handful of clients per simulation: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Client {
    /// See [`StructuredClient`].
    Structured(StructuredClient),
    /// See [`ClassicClient`].
    Classic(ClassicClient),
    /// See [`NaiveClient`].
    Naive(NaiveClient),
}

impl Client {
    /// The structured client, if it is one.
    pub fn structured(&self) -> Option<&StructuredClient> {
        match self {
            Client::Structured(c) => Some(c),
            _ => None,
        }
    }

    /// The classic client, if it is one.
    pub fn classic(&self) -> Option<&ClassicClient> {
        match self {
            Client::Classic(c) => Some(c),
            _ => None,
        }
    }

    /// The naive client, if it is one.
    pub fn naive(&self) -> Option<&NaiveClient> {
        match self {
            Client::Naive(c) => Some(c),
            _ => None,
        }
    }

    /// True once the client's join was answered.
    pub fn is_joined(&self) -> bool {
        match self {
            Client::Structured(c) => c.joined_at().is_some(),
            Client::Classic(c) => c.is_joined(),
            Client::Naive(c) => c.is_joined(),
        }
    }

    /// The distinct chat messages a structured or naive client showed, in
    /// order (empty for a classic client, which has no structure to parse).
    pub fn chats(&self) -> Vec<Chat> {
        match self {
            Client::Structured(c) => c.chats(),
            Client::Naive(c) => c.chats(),
            Client::Classic(_) => Vec::new(),
        }
    }

    fn handle_datagram(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        match self {
            Client::Structured(c) => c.handle_datagram(now, bytes, out),
            Client::Classic(c) => c.handle_datagram(now, bytes, out),
            Client::Naive(c) => c.handle_datagram(now, bytes, out),
        }
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        match self {
            Client::Structured(c) => c.handle_timeout(now, out),
            Client::Classic(c) => c.handle_timeout(now, out),
            Client::Naive(c) => c.handle_timeout(now, out),
        }
    }

    fn handle_line(&mut self, now: Instant, line: &str, out: &mut Vec<Vec<u8>>) {
        match self {
            Client::Structured(c) => c.handle_line(now, line, out),
            Client::Classic(c) => c.handle_line(now, line, out),
            Client::Naive(c) => c.handle_line(now, line, out),
        }
    }

    fn end_input(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        match self {
            Client::Structured(c) => c.end_input(now, out),
            Client::Classic(c) => c.end_input(now, out),
            Client::Naive(c) => c.end_input(now, out),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Client::Structured(c) => c.poll_timeout(),
            Client::Classic(c) => c.poll_timeout(),
            Client::Naive(c) => c.poll_timeout(),
        }
    }

    /// True once the client stopped listening (its socket is closed).
    fn is_stopped(&self) -> bool {
        match self {
            Client::Structured(c) => c.stopped_at().is_some(),
            Client::Classic(c) => c.stopped_at().is_some(),
            Client::Naive(c) => c.stopped_at().is_some(),
        }
    }
}

/// One datagram delivered, for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// Virtual time since the start.
    pub at: Duration,
    /// Sender.
    pub from: SocketAddr,
    /// Receiver.
    pub to: SocketAddr,
    /// The datagram.
    pub bytes: Rc<[u8]>,
}

/// Wire counters of the whole simulation, per direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    /// Client to room, summed over the clients.
    pub to_room: WireStats,
    /// Room to clients, summed over the clients.
    pub to_clients: WireStats,
}

impl Wire {
    /// Datagrams the senders put on the wire, both directions.
    pub fn datagrams_sent(&self) -> u64 {
        self.to_room.datagrams_sent + self.to_clients.datagrams_sent
    }

    /// Their bytes.
    pub fn bytes_sent(&self) -> u64 {
        self.to_room.bytes_sent + self.to_clients.bytes_sent
    }
}

/// A room event as the room numbered it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// Virtual time since the start.
    pub at: Duration,
    /// Its sequence number.
    pub seq: u64,
    /// What happened.
    pub event: RoomEvent,
}

#[derive(Debug)]
enum Happening {
    /// A datagram arrives at the room.
    AtRoom { from: ClientId, bytes: Rc<[u8]> },
    /// A datagram arrives at a client.
    AtClient { to: ClientId, bytes: Rc<[u8]> },
    /// A client asked to be woken at this time.
    Wake(ClientId),
    /// A line is typed.
    Type { client: ClientId, line: String },
    /// Input ends (stdin closed).
    EndInput(ClientId),
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    /// Ties at the same instant go in the order scheduled.
    order: u64,
    what: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

/// A client with its address, its two links and its wake-up time.
#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    up: Link,
    down: Link,
    client: Client,
    /// The wake-up in the queue, if any (others there are stale).
    wake: Option<Instant>,
    /// When its last scheduled line is typed.
    typing_until: Instant,
}

/// The simulation: a virtual clock, the room, the clients, the links and
/// the event queue. Same seed and same calls, same run.
pub struct Sim {
    seed: u64,
    /// The virtual clock: `start` plus the time simulated so far. The real
    /// clock is read once, in [`Sim::new`], only to have an `Instant` to
    /// add to.
    start: Instant,
    now: Instant,
    room_addr: SocketAddr,
    room: Room,
    room_out: Outputs,
    room_events: Vec<(Duration, Event)>,
    peers: Vec<Peer>,
    by_addr: HashMap<SocketAddr, ClientId>,
    queue: BinaryHeap<Scheduled>,
    next_order: u64,
    trace: Vec<TraceRecord>,
    /// Datagrams the room sent to addresses of no client.
    misaddressed: u64,
}

impl Sim {
    /// A simulation whose every random choice derives from `seed`, with a
    /// room configured by `config`.
    pub fn new(seed: u64, config: Config) -> Sim {
        let start = Instant::now();
        let mut keys = SplitMix64::stream(seed, u64::MAX);
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&keys.next_u64().to_le_bytes());
        key[8..].copy_from_slice(&keys.next_u64().to_le_bytes());
        Sim {
            seed,
            start,
            now: start,
            room_addr: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 10024)),
            room: Room::new(config, key, start),
            room_out: Outputs::default(),
            room_events: Vec::new(),
            peers: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            next_order: 0,
            trace: Vec::new(),
            misaddressed: 0,
        }
    }

    /// Adds a client that starts joining now, behind links `up` (to the
    /// room) and `down` (from it).
    pub fn add_client(
        &mut self,
        kind: ClientKind,
        nick: &str,
        up: LinkConfig,
        down: LinkConfig,
    ) -> ClientId {
        let id = ClientId(self.peers.len());
        let nick = Nick::new(nick).expect("a valid nickname");
        let now = self.now;
        let client = match kind {
            ClientKind::Structured | ClientKind::StructuredWithoutRepair => {
                // Distinct SAY ids per client, as the binary's clock seed gives.
                let first_id = 1 + 1_000_000 * id.0 as u64;
                Client::Structured(StructuredClient::new(
                    nick,
                    now,
                    first_id,
                    kind == ClientKind::Structured,
                ))
            }
            ClientKind::Classic => Client::Classic(ClassicClient::new(nick, now)),
            ClientKind::Naive => Client::Naive(NaiveClient::new(nick, now)),
        };
        let n = id.0 as u64;
        let addr = SocketAddr::from((
            Ipv4Addr::new(10, 0, 1 + (n / 250) as u8, 1 + (n % 250) as u8),
            40_000 + (n % 20_000) as u16,
        ));
        self.peers.push(Peer {
            addr,
            up: Link::new(up, SplitMix64::stream(self.seed, 2 * n)),
            down: Link::new(down, SplitMix64::stream(self.seed, 2 * n + 1)),
            client,
            wake: None,
            typing_until: now,
        });
        self.by_addr.insert(addr, id);
        self.reschedule(id);
        id
    }

    /// Changes a client's links from now on.
    pub fn set_links(&mut self, id: ClientId, up: LinkConfig, down: LinkConfig) {
        let peer = &mut self.peers[id.0];
        peer.up.set_config(up);
        peer.down.set_config(down);
    }

    /// Types `lines` into a client, the first now (or after the lines
    /// already scheduled) and then one every `interval` (zero: all at once,
    /// like a pipe).
    pub fn type_lines<S: Into<String>>(
        &mut self,
        id: ClientId,
        lines: impl IntoIterator<Item = S>,
        interval: Duration,
    ) {
        let mut at = self.peers[id.0].typing_until.max(self.now);
        let mut first = true;
        for line in lines {
            if !first {
                at += interval;
            }
            first = false;
            let line = line.into();
            self.schedule(at, Happening::Type { client: id, line });
        }
        self.peers[id.0].typing_until = at;
    }

    /// Ends a client's input after its typed lines: a structured client
    /// then leaves as piped mode does (once its messages are echoed, or
    /// given up on); the others leave at once.
    pub fn end_input(&mut self, id: ClientId) {
        let at = self.peers[id.0].typing_until.max(self.now);
        self.schedule(at, Happening::EndInput(id));
    }

    /// Runs until `done` holds or `limit` of virtual time has passed since
    /// the start; returns whether `done` held. `done` is checked every
    /// [`Sim::CHECK_EVERY`] of virtual time (so it may be costly), and so
    /// the run may go on that much longer than needed.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let deadline = self.start + limit;
        loop {
            if done(self) {
                return true;
            }
            let until = (self.now + Self::CHECK_EVERY).min(deadline);
            while self.step(until) {}
            if self.now >= deadline
                || (self.now < until && self.queue.is_empty() && self.room.poll_timeout().is_none())
            {
                return done(self);
            }
            self.now = self.now.max(until);
        }
    }

    /// How often [`Sim::run_until`] checks its condition, in virtual time.
    pub const CHECK_EVERY: Duration = Duration::from_millis(100);

    /// Runs for `duration` more of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = self.now + duration;
        while self.step(deadline) {}
        self.now = self.now.max(deadline);
    }

    /// A blind spoofer: `bytes` arrive at client `to` now, as if from the
    /// room's address (the client cannot tell), bypassing the links.
    pub fn forge_to_client(&mut self, to: ClientId, bytes: &[u8]) {
        let at = self.now;
        let bytes: Rc<[u8]> = bytes.into();
        self.schedule(at, Happening::AtClient { to, bytes });
    }

    /// A blind spoofer: `bytes` arrive at the room now, as if from client
    /// `from`'s address, bypassing the links.
    pub fn forge_to_room(&mut self, from: ClientId, bytes: &[u8]) {
        let at = self.now;
        let bytes: Rc<[u8]> = bytes.into();
        self.schedule(at, Happening::AtRoom { from, bytes });
    }

    /// The host's `/announce TEXT` at the relay's console, now; returns
    /// the announcement's sequence number.
    pub fn announce(&mut self, text: &str) -> u64 {
        let now = self.now;
        let seq = self
            .room
            .announce(now, text, &mut self.room_out)
            .expect("a valid announcement text");
        self.flush_room();
        seq
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Virtual time since the start at `at`.
    pub fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    /// The room.
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// Everything the room reported, with when.
    pub fn room_events(&self) -> &[(Duration, Event)] {
        &self.room_events
    }

    /// The numbered room events, in the room's order.
    pub fn numbered(&self) -> Vec<Numbered> {
        self.room_events
            .iter()
            .filter_map(|(at, e)| match e {
                Event::Room { seq, event } => Some(Numbered {
                    at: *at,
                    seq: *seq,
                    event: event.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The room's chat messages in its order: the reference every client
    /// is compared with.
    pub fn room_chats(&self) -> Vec<Chat> {
        self.numbered()
            .into_iter()
            .filter_map(|n| match n.event {
                RoomEvent::Chat { nick, text } => Some(Chat::new(nick.as_str(), text.as_str())),
                _ => None,
            })
            .collect()
    }

    /// A client.
    pub fn client(&self, id: ClientId) -> &Client {
        &self.peers[id.0].client
    }

    /// Every client, in the order added.
    pub fn clients(&self) -> impl Iterator<Item = (ClientId, &Client)> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| (ClientId(i), &p.client))
    }

    /// The room's address.
    pub fn room_addr(&self) -> SocketAddr {
        self.room_addr
    }

    /// A client's address.
    pub fn addr(&self, id: ClientId) -> SocketAddr {
        self.peers[id.0].addr
    }

    /// Wire counters summed over all links.
    pub fn wire(&self) -> Wire {
        let mut wire = Wire::default();
        for peer in &self.peers {
            wire.to_room += peer.up.stats();
            wire.to_clients += peer.down.stats();
        }
        wire
    }

    /// Zeroes every link's counters (to measure from a point on).
    pub fn reset_wire(&mut self) {
        for peer in &mut self.peers {
            peer.up.reset_stats();
            peer.down.reset_stats();
        }
    }

    /// Every datagram delivered so far, in delivery order.
    pub fn trace(&self) -> &[TraceRecord] {
        &self.trace
    }

    /// A fingerprint of [`Sim::trace`] (FNV-1a over times, addresses and
    /// bytes): equal runs have equal digests, in any process, so two runs
    /// can be compared by printing one number.
    pub fn trace_digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for record in &self.trace {
            eat(&record.at.as_nanos().to_le_bytes());
            eat(record.from.to_string().as_bytes());
            eat(record.to.to_string().as_bytes());
            eat(&record.bytes);
        }
        hash
    }

    /// Datagrams the room sent to addresses no client has.
    pub fn misaddressed(&self) -> u64 {
        self.misaddressed
    }

    /// Does the next thing due no later than `deadline`: a room timer or a
    /// scheduled happening (the room first on a tie). False when nothing
    /// is due by then.
    fn step(&mut self, deadline: Instant) -> bool {
        let room_due = self.room.poll_timeout();
        let next = self.queue.peek().map(|s| s.at);
        let room_first = match (room_due, next) {
            (Some(r), Some(n)) => r <= n,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if room_first {
            let due = room_due.expect("checked").max(self.now);
            if due > deadline {
                return false;
            }
            self.now = due;
            self.room.handle_timeout(due, &mut self.room_out);
            self.flush_room();
            return true;
        }
        let Some(at) = next else {
            return false;
        };
        if at > deadline {
            return false;
        }
        let scheduled = self.queue.pop().expect("peeked");
        self.now = self.now.max(scheduled.at);
        let now = self.now;
        match scheduled.what {
            Happening::AtRoom { from, bytes } => {
                let addr = self.peers[from.0].addr;
                self.record(addr, self.room_addr, &bytes);
                self.room
                    .handle_datagram(now, addr, &bytes, &mut self.room_out);
                self.flush_room();
            }
            Happening::AtClient { to, bytes } => {
                let addr = self.peers[to.0].addr;
                self.record(self.room_addr, addr, &bytes);
                if self.peers[to.0].client.is_stopped() {
                    // The process is gone: the OS answers with ICMP port
                    // unreachable, which the relay's shell hands the room.
                    self.room.handle_unreachable(now, addr, &mut self.room_out);
                    self.flush_room();
                } else {
                    self.with_client(to, |c, out| c.handle_datagram(now, &bytes, out));
                }
            }
            Happening::Wake(id) => {
                if self.peers[id.0].wake == Some(scheduled.at) {
                    self.peers[id.0].wake = None;
                    self.with_client(id, |c, out| c.handle_timeout(now, out));
                }
            }
            Happening::Type { client, line } => {
                self.with_client(client, |c, out| c.handle_line(now, &line, out));
            }
            Happening::EndInput(id) => self.with_client(id, |c, out| c.end_input(now, out)),
        }
        true
    }

    /// Lets a client act, then puts what it sent on its uplink and
    /// schedules its next wake-up.
    fn with_client(&mut self, id: ClientId, act: impl FnOnce(&mut Client, &mut Vec<Vec<u8>>)) {
        let mut sent = Vec::new();
        act(&mut self.peers[id.0].client, &mut sent);
        for bytes in sent {
            let bytes: Rc<[u8]> = bytes.into();
            for after in self.peers[id.0].up.carry(bytes.len()) {
                let at = self.now + after;
                let bytes = Rc::clone(&bytes);
                self.schedule(at, Happening::AtRoom { from: id, bytes });
            }
        }
        self.reschedule(id);
    }

    /// Puts the room's transmits on the downlinks and keeps its events.
    fn flush_room(&mut self) {
        let at = self.now - self.start;
        self.room_events
            .extend(self.room_out.events.drain(..).map(|e| (at, e)));
        let mut transmits = std::mem::take(&mut self.room_out.transmits);
        // The room fans out in its member table's (hash) order, which
        // differs between processes; by address, every run draws the same
        // fates in the same order. Stable: one client's datagrams keep
        // their order.
        transmits.sort_by_key(|t| t.to);
        for transmit in transmits.drain(..) {
            let Some(&id) = self.by_addr.get(&transmit.to) else {
                self.misaddressed += 1;
                continue;
            };
            // A keyed datagram is put together here (the relay's shell
            // sends the key and the shared bytes in one system call).
            let whole: Rc<[u8]> = match transmit.key {
                Some(_) => Rc::from(transmit.datagram()),
                None => Rc::clone(&transmit.bytes),
            };
            for after in self.peers[id.0].down.carry(whole.len()) {
                let at = self.now + after;
                let bytes = Rc::clone(&whole);
                self.schedule(at, Happening::AtClient { to: id, bytes });
            }
        }
        self.room_out.transmits = transmits;
    }

    fn reschedule(&mut self, id: ClientId) {
        let want = self.peers[id.0].client.poll_timeout();
        if let Some(at) = want {
            let at = at.max(self.now);
            if self.peers[id.0].wake != Some(at) {
                self.peers[id.0].wake = Some(at);
                self.schedule(at, Happening::Wake(id));
            }
        } else {
            self.peers[id.0].wake = None;
        }
    }

    fn schedule(&mut self, at: Instant, what: Happening) {
        self.queue.push(Scheduled {
            at,
            order: self.next_order,
            what,
        });
        self.next_order += 1;
    }

    fn record(&mut self, from: SocketAddr, to: SocketAddr, bytes: &Rc<[u8]>) {
        self.trace.push(TraceRecord {
            at: self.now - self.start,
            from,
            to,
            bytes: Rc::clone(bytes),
        });
    }
}
