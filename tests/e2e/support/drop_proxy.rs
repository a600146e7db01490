//! A UDP proxy on 127.0.0.1 in front of a relay that drops every datagram
//! from a client containing a given text: with "RESEND " it makes our relay
//! a relay that ignores RESEND, as the kit sees it. One thread, one
//! upstream socket per client, stopped when dropped.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The running proxy.
pub struct DropProxy {
    /// Where clients send to.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DropProxy {
    /// Forwards to `relay`, dropping client datagrams that contain `needle`.
    pub fn start(relay: SocketAddr, needle: &'static [u8]) -> DropProxy {
        let front = UdpSocket::bind("127.0.0.1:0").expect("bind the proxy");
        front.set_nonblocking(true).expect("nonblocking");
        let addr = front.local_addr().expect("bound");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut flows: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut buf = [0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                let mut busy = false;
                while let Ok((n, client)) = front.recv_from(&mut buf) {
                    busy = true;
                    let data = &buf[..n];
                    if data.windows(needle.len()).any(|w| w == needle) {
                        continue;
                    }
                    let up = flows.entry(client).or_insert_with(|| {
                        let s = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
                        s.connect(relay).expect("connect");
                        s.set_nonblocking(true).expect("nonblocking");
                        s
                    });
                    let _ = up.send(data);
                }
                for (client, up) in &flows {
                    while let Ok(n) = up.recv(&mut buf) {
                        busy = true;
                        let _ = front.send_to(&buf[..n], client);
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
