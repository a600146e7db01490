//! The flood thread: chat as fast as `sendmmsg` takes it, from the
//! flooding members' sockets, for the overload runs.

use std::net::UdpSocket;

use std::thread;
use std::time::Instant;
use udpchat_proto::SessionKey;

use super::nanos_since;
use crate::net::{self, SendBatch};
use crate::wire;

/// Sends chat messages round robin from `sockets` in batches of
/// [`net::BATCH`], as fast as `sendmmsg` takes them, until `end` or `max`
/// messages. Ids are consecutive from 0 and only advance for datagrams the
/// kernel took. Returns (sent, seconds).
pub(super) fn flood(
    sockets: &[(UdpSocket, String, Option<SessionKey>)],
    tag: u8,
    max: u64,
    epoch: Instant,
    end: Instant,
    payload: usize,
) -> (u64, f64) {
    let start = Instant::now();
    let mut bufs: Vec<Vec<u8>> = (0..net::BATCH).map(|_| Vec::with_capacity(256)).collect();
    let mut batch = SendBatch::default();
    let mut next: u64 = 0;
    let mut turn = 0;
    while next < max {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let (socket, nick, relay_key) = &sockets[turn % sockets.len()];
        turn += 1;
        let n = (max - next).min(net::BATCH as u64) as usize;
        let ns = nanos_since(epoch, now);
        for (k, buf) in bufs.iter_mut().take(n).enumerate() {
            wire::chat(buf, nick, tag, next + k as u64, ns, payload);
            if let Some(key) = relay_key {
                buf.splice(0..0, key.prefix());
            }
        }
        match batch.send_connected(socket, bufs[..n].iter().map(|b| b.as_slice())) {
            Ok(k) => next += k as u64,
            // A full send buffer (WouldBlock), or an ICMP error surfacing
            // here: keep flooding until the deadline.
            Err(_) => thread::yield_now(),
        }
    }
    (next, start.elapsed().as_secs_f64())
}
