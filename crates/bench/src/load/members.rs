//! The load run's members: each client socket's join state, and everything
//! the receive path counts (deliveries, duplicates, latency, flood copies,
//! errors).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use udpchat_proto::{split_key_prefix, RelayMsg, SessionKey};

use super::Dialect;
use crate::hist::Histogram;
use crate::wire::{self, Incoming, TAG_MEASURED};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinState {
    New,
    Waiting,
    Joined,
}

pub(super) struct Client {
    pub(super) socket: UdpSocket,
    pub(super) nick: String,
    pub(super) state: JoinState,
    pub(super) attempts: u32,
    pub(super) next_retry: Instant,
    pub(super) last_send: Instant,
    /// Our session key (structured: sent in `HELLO key=`).
    pub(super) key: SessionKey,
    /// The relay's key from `WELCOME`: what we send goes behind it.
    pub(super) relay_key: Option<SessionKey>,
}

impl Client {
    /// `datagram`, behind the relay's key if the relay gave us one.
    pub(super) fn sealed<'a>(&self, datagram: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        match self.relay_key {
            Some(key) => {
                scratch.clear();
                scratch.extend_from_slice(&key.prefix());
                scratch.extend_from_slice(datagram);
                scratch
            }
            None => datagram,
        }
    }
}

/// A session key for client `index` of a run: distinct per client, not
/// secret (the benchmark measures the relay, it does not defend itself).
pub(super) fn client_key(epoch_ns: u64, index: usize) -> SessionKey {
    SessionKey::from_u64(
        epoch_ns.rotate_left(17) ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    )
}

/// Structured members that send nothing for this long get a PING, so the
/// relay's idle timeout (60 s by default, pings every 15 s) never evicts them.
pub(super) const KEEPALIVE: Duration = Duration::from_secs(10);

/// Everything the receive path updates.
pub(super) struct State {
    pub(super) epoch: Instant,
    pub(super) dialect: Dialect,
    pub(super) clients: Vec<Client>,
    pub(super) members: u32,
    pub(super) buf: Vec<u8>,
    // Join phase.
    pub(super) joined: usize,
    pub(super) join_refused: Option<(String, String)>,
    pub(super) last_join: Option<Instant>,
    // Measured messages, indexed by id; ids before `round_base` belong to an
    // earlier round and their late copies are not counted in this one.
    pub(super) round_base: u64,
    pub(super) copies: Vec<u32>,
    pub(super) settled: Vec<bool>,
    pub(super) in_flight: usize,
    pub(super) delivered: u64,
    pub(super) duplicates: u64,
    pub(super) hist: Histogram,
    pub(super) first_send: Option<Instant>,
    pub(super) last_delivery: Option<Instant>,
    // Flood messages: bit set of ids seen.
    pub(super) flood_seen: Vec<u64>,
    pub(super) flood_accepted: u64,
    // Everything else.
    pub(super) other: u64,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) datagrams: u64,
    pub(super) last_datagram: Instant,
    pub(super) refused: u64,
}

impl State {
    /// Nothing received yet; `flood_words` 64-bit words for the flood ids
    /// seen (0 without flooders).
    pub(super) fn new(
        epoch: Instant,
        dialect: Dialect,
        clients: Vec<Client>,
        flood_words: usize,
    ) -> State {
        State {
            epoch,
            dialect,
            members: clients.len() as u32,
            clients,
            buf: Vec::with_capacity(1024),
            joined: 0,
            join_refused: None,
            last_join: None,
            round_base: 0,
            copies: Vec::new(),
            settled: Vec::new(),
            in_flight: 0,
            delivered: 0,
            duplicates: 0,
            hist: Histogram::new(),
            first_send: None,
            last_delivery: None,
            flood_seen: vec![0; flood_words],
            flood_accepted: 0,
            other: 0,
            errors: BTreeMap::new(),
            datagrams: 0,
            last_datagram: epoch,
            refused: 0,
        }
    }

    pub(super) fn handle(&mut self, index: usize, d: &[u8], now: Instant, now_ns: u64) {
        self.datagrams += 1;
        self.last_datagram = now;
        // Keyed structured members get everything behind their key.
        let d = split_key_prefix(d).1;
        match wire::classify(d) {
            Incoming::Chat {
                tag: TAG_MEASURED,
                id,
                sent_ns,
            } => {
                let Some(count) = self.copies.get_mut(id as usize) else {
                    self.other += 1;
                    return;
                };
                if id < self.round_base {
                    *count += 1;
                    self.other += 1;
                    return;
                }
                *count += 1;
                if *count > self.members {
                    self.duplicates += 1;
                    return;
                }
                self.delivered += 1;
                self.hist.record(now_ns.saturating_sub(sent_ns));
                self.last_delivery = Some(now);
                if *count == self.members {
                    if let Some(settled) = self.settled.get_mut(id as usize) {
                        if !*settled {
                            *settled = true;
                            self.in_flight -= 1;
                        }
                    }
                }
            }
            Incoming::Chat { id, .. } => {
                let word = (id / 64) as usize;
                if let Some(bits) = self.flood_seen.get_mut(word) {
                    let bit = 1u64 << (id % 64);
                    if *bits & bit == 0 {
                        *bits |= bit;
                        self.flood_accepted += 1;
                    }
                }
            }
            Incoming::Joined => {
                let client = &mut self.clients[index];
                if let Ok(RelayMsg::Welcome { key, .. }) = RelayMsg::parse(d) {
                    client.relay_key = key;
                }
                if client.state == JoinState::Waiting {
                    client.state = JoinState::Joined;
                    self.joined += 1;
                    self.last_join = Some(now);
                }
            }
            Incoming::Cookie(cookie) => {
                let client = &mut self.clients[index];
                if self.dialect == Dialect::Structured && client.state == JoinState::Waiting {
                    self.buf.clear();
                    let _ = write!(
                        self.buf,
                        "HELLO {} {} {cookie} key={}",
                        udpchat_proto::VERSION,
                        client.nick,
                        client.key
                    );
                    // A lost HELLO is sent again by the join retry.
                    let _ = client.socket.send(&self.buf);
                    client.last_send = now;
                }
            }
            Incoming::Error(code) => {
                *self.errors.entry(code.to_owned()).or_default() += 1;
                let client = &self.clients[index];
                if client.state == JoinState::Waiting
                    && code != "rate-limited"
                    && self.join_refused.is_none()
                {
                    self.join_refused = Some((client.nick.clone(), code.to_owned()));
                }
            }
            Incoming::Other => self.other += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net;
    use crate::wire::TAG_FLOOD;
    use std::net::SocketAddr;

    fn state(clients: usize) -> State {
        let epoch = Instant::now();
        let relay: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let clients = (0..clients)
            .map(|i| Client {
                socket: net::member_socket(relay, 1 << 16, i).unwrap().0,
                nick: format!("t{i}"),
                state: JoinState::Waiting,
                attempts: 1,
                next_retry: epoch,
                last_send: epoch,
                key: client_key(0, i),
                relay_key: None,
            })
            .collect();
        State::new(epoch, Dialect::Classic, clients, 4)
    }

    fn line(id: u64, tag: u8) -> Vec<u8> {
        let mut out = Vec::new();
        wire::chat(&mut out, "t0", tag, id, 1_000, 64);
        // What the relay fans out: "t0: <text>".
        let text = out[5..].to_vec();
        [b"t0: ".as_slice(), &text].concat()
    }

    fn sent(st: &mut State, n: u64) {
        for _ in 0..n {
            st.copies.push(0);
            st.settled.push(false);
            st.in_flight += 1;
        }
    }

    #[test]
    fn a_message_settles_when_every_member_has_it() {
        let mut st = state(3);
        sent(&mut st, 2);
        let now = Instant::now();
        for member in 0..3 {
            st.handle(member, &line(1, TAG_MEASURED), now, 5_000);
        }
        assert_eq!(st.delivered, 3);
        assert_eq!(st.in_flight, 1, "message 1 settled, message 0 not");
        assert_eq!(st.copies, vec![0, 3]);
        assert_eq!(st.hist.quantiles().max_us, 4.0);
        st.handle(0, &line(1, TAG_MEASURED), now, 5_000);
        assert_eq!(st.duplicates, 1);
        assert_eq!(st.delivered, 3);
    }

    #[test]
    fn copies_of_unknown_or_earlier_round_ids_are_not_deliveries() {
        let mut st = state(2);
        sent(&mut st, 2);
        st.round_base = 1;
        let now = Instant::now();
        st.handle(0, &line(0, TAG_MEASURED), now, 5_000);
        st.handle(0, &line(7, TAG_MEASURED), now, 5_000);
        assert_eq!(st.delivered, 0);
        assert_eq!(st.other, 2);
    }

    #[test]
    fn flood_copies_count_each_accepted_message_once() {
        let mut st = state(2);
        let now = Instant::now();
        for member in 0..2 {
            st.handle(member, &line(5, TAG_FLOOD), now, 5_000);
            st.handle(member, &line(6, TAG_FLOOD), now, 5_000);
        }
        assert_eq!(st.flood_accepted, 2);
        assert_eq!(st.delivered, 0);
    }

    #[test]
    fn join_answers_and_refusals() {
        let mut st = state(3);
        let now = Instant::now();
        st.handle(0, b"OK", now, 0);
        st.handle(0, b"OK", now, 0);
        assert_eq!(st.joined, 1, "a repeated OK counts once");
        st.handle(1, b"ERROR rate-limited: slow down", now, 0);
        assert!(st.join_refused.is_none(), "rate-limited joins are retried");
        st.handle(2, b"ERROR room-full: the room is full", now, 0);
        assert_eq!(st.join_refused, Some(("t2".into(), "room-full".into())));
        assert_eq!(st.errors.get("rate-limited"), Some(&1));
    }
}
