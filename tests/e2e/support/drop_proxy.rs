//! A UDP proxy on 127.0.0.1 in front of a relay, with one [`Fault`]: what
//! the kit sees through it is our relay with that bug. With
//! `DropFromClient(b"RESEND ")` it is a relay that ignores RESEND. One
//! thread, one upstream socket per client, stopped when dropped. Every
//! fault acts on what a datagram contains, never on timing, so a run
//! through it is as deterministic as one without it.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use udpchat_proto::MIN_HELLO_LEN;

/// The bug the proxy gives the relay behind it.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Drops client datagrams containing this text.
    DropFromClient(&'static [u8]),
    /// Drops relay datagrams containing this text.
    DropFromRelay(&'static [u8]),
    /// Sends relay datagrams containing this text twice.
    DuplicateFromRelay(&'static [u8]),
    /// Passes a relay datagram containing this text once; drops it when
    /// the same bytes come again (the relay's retransmissions).
    DropRepeatsFromRelay(&'static [u8]),
    /// Pads a cookie-less client `HELLO` shorter than the minimum to the
    /// minimum, so the relay answers a `HELLO` it should have dropped.
    PadShortHello,
    /// Puts the relay's key (learnt from the `WELCOME`) in front of a
    /// keyed member's datagrams that lack it, so the relay acts on them.
    KeyUnprefixed,
    /// As `KeyUnprefixed`, and takes the relay's key off the `WELCOME`:
    /// a relay that never sends its key but wants it, as the kit sees it.
    HideRelayKey,
}

/// The running proxy.
pub struct DropProxy {
    /// Where clients send to.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn contains(data: &[u8], needle: &[u8]) -> bool {
    data.windows(needle.len()).any(|w| w == needle)
}

/// The relay's key at the end of a `WELCOME` (`@<client key> WELCOME ...
/// <relay key>`), if the datagram is one.
fn relay_key(data: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(data).ok()?;
    let mut words = text.split(' ');
    words.next()?.strip_prefix('@')?;
    (words.next()? == "WELCOME").then(|| text.rsplit(' ').next().map(|k| k.as_bytes().to_vec()))?
}

impl DropProxy {
    /// Forwards to `relay`, dropping client datagrams that contain `needle`.
    pub fn start(relay: SocketAddr, needle: &'static [u8]) -> DropProxy {
        DropProxy::with_fault(relay, Fault::DropFromClient(needle))
    }

    /// Forwards to `relay` with `fault`.
    pub fn with_fault(relay: SocketAddr, fault: Fault) -> DropProxy {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind the proxy");
        front.set_nonblocking(true).expect("nonblocking");
        let addr = front.local_addr().expect("bound");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut flows: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut keys: HashMap<SocketAddr, Vec<u8>> = HashMap::new();
            let mut passed: HashSet<Vec<u8>> = HashSet::new();
            let mut buf = [0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                let mut busy = false;
                while let Ok((n, client)) = front.recv_from(&mut buf) {
                    busy = true;
                    let mut data = buf[..n].to_vec();
                    match fault {
                        Fault::DropFromClient(needle) if contains(&data, needle) => continue,
                        Fault::PadShortHello
                            if data.starts_with(b"HELLO ")
                                && data.split(|b| *b == b' ').nth(3) == Some(b"-")
                                && data.len() < MIN_HELLO_LEN =>
                        {
                            data.push(b' ');
                            data.resize(MIN_HELLO_LEN, b'=');
                        }
                        Fault::KeyUnprefixed | Fault::HideRelayKey
                            if !data.starts_with(b"@") && !data.starts_with(b"HELLO ") =>
                        {
                            if let Some(key) = keys.get(&client) {
                                let mut keyed = b"@".to_vec();
                                keyed.extend_from_slice(key);
                                keyed.push(b' ');
                                keyed.extend_from_slice(&data);
                                data = keyed;
                            }
                        }
                        _ => {}
                    }
                    let up = flows.entry(client).or_insert_with(|| {
                        let s = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
                        s.connect(relay).expect("connect");
                        s.set_nonblocking(true).expect("nonblocking");
                        s
                    });
                    let _ = up.send(&data);
                }
                for (client, up) in &flows {
                    while let Ok(n) = up.recv(&mut buf) {
                        busy = true;
                        let data = &buf[..n];
                        let copies = match fault {
                            Fault::DropFromRelay(needle) if contains(data, needle) => 0,
                            Fault::DuplicateFromRelay(needle) if contains(data, needle) => 2,
                            Fault::DropRepeatsFromRelay(needle) if contains(data, needle) => {
                                usize::from(passed.insert(data.to_vec()))
                            }
                            Fault::KeyUnprefixed | Fault::HideRelayKey => {
                                if let Some(key) = relay_key(data) {
                                    if matches!(fault, Fault::HideRelayKey) {
                                        let cut = data.len() - key.len() - 1;
                                        let _ = front.send_to(&data[..cut], client);
                                        keys.insert(*client, key);
                                        continue;
                                    }
                                    keys.insert(*client, key);
                                }
                                1
                            }
                            _ => 1,
                        };
                        for _ in 0..copies {
                            let _ = front.send_to(data, client);
                        }
                    }
                }
                if !busy {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        });
        DropProxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DropProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
