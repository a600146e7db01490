//! Members on raw loopback UDP sockets: one that sends and receives with
//! deadlines ([`Member`]), and one that records everything it is sent in
//! the background ([`Recorder`]), with the check every datagram from the
//! relay must pass.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use udpchat_proto::{
    split_key_prefix, ClientMsg, Nick, RelayMsg, SessionKey, Token, MAX_DATAGRAM, VERSION,
};

use super::WAIT;

/// A member on a raw loopback UDP socket, talking to one relay.
///
/// After [`Member::join_structured`] it speaks with session keys, as our
/// client does: [`Member::send`] puts the relay's key in front of every
/// datagram but `HELLO`, and the receiving methods take our key's prefix
/// off (a datagram without it comes back whole, so a test comparing text
/// sees the difference).
pub struct Member {
    /// The client's socket (public for tests that need raw access).
    pub socket: UdpSocket,
    /// The relay's address.
    pub relay: SocketAddr,
    /// Our key and the relay's, once joined in the structured dialect.
    keys: Mutex<Option<SessionKeys>>,
}

/// A structured member's two session keys.
#[derive(Debug, Clone, Copy)]
pub struct SessionKeys {
    /// Ours (`HELLO ... key=`): the relay prefixes what it sends us.
    pub client: SessionKey,
    /// The relay's (`WELCOME`'s last field): we prefix what we send.
    pub relay: Option<SessionKey>,
}

/// A session key for a test member: different for every member of a run
/// (and from run to run), not secret.
fn test_key() -> SessionKey {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    SessionKey::from_u64(RandomState::new().hash_one(Instant::now()))
}

impl Member {
    /// A member on a fresh port of the loopback address of `relay`'s family.
    pub fn new(relay: SocketAddr) -> Member {
        let local: SocketAddr = if relay.is_ipv6() {
            "[::1]:0".parse().expect("valid")
        } else {
            "127.0.0.1:0".parse().expect("valid")
        };
        Member::from_socket(
            UdpSocket::bind(local).expect("cannot bind a client socket"),
            relay,
        )
    }

    /// A member speaking from `socket` (not joined yet). Its receive
    /// buffer is made large (4 MiB where the system allows): tests that
    /// load the relay must not lose the datagram they wait for because the
    /// reading thread was descheduled on a busy machine.
    pub fn from_socket(socket: UdpSocket, relay: SocketAddr) -> Member {
        let _ = udpchat_udp::set_receive_buffer(&socket, 4 << 20);
        Member {
            socket,
            relay,
            keys: Mutex::new(None),
        }
    }

    /// Our session keys, once [`Member::join_structured`] sent ours.
    pub fn keys(&self) -> Option<SessionKeys> {
        *self.keys.lock().expect("keys lock")
    }

    /// Sends one datagram exactly as given (no key prefix).
    pub fn send_raw(&self, bytes: impl AsRef<[u8]>) {
        self.socket
            .send_to(bytes.as_ref(), self.relay)
            .expect("send to relay");
    }

    /// A member on a fresh port of loopback IP address `ip` (`relay` must
    /// be an IPv4 loopback address). The relay limits members per IP
    /// address (`--max-per-ip`, default 4): tests with more members give
    /// them distinct IP addresses ([`loopback_ip`]), as a classroom's
    /// computers have, rather than raise the limit.
    pub fn on_ip(relay: SocketAddr, ip: Ipv4Addr) -> Member {
        Member::from_socket(loopback_socket_on(ip), relay)
    }

    /// This client's address, as the relay sees it.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound")
    }

    /// Sends one datagram to the relay, behind the relay's key if we have
    /// one (a `HELLO` never).
    pub fn send(&self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        match self.keys().and_then(|k| k.relay) {
            Some(key) if !bytes.starts_with(b"HELLO ") => self.send_raw(key.prefixed(bytes)),
            _ => self.send_raw(bytes),
        }
    }

    /// Receives one datagram from the relay within `timeout`, reading with a
    /// 1024-byte buffer as classic clients do. Datagrams from other
    /// addresses are ignored. Panics if one is longer than 1024 bytes.
    pub fn try_recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        // One byte more than allowed, to notice (not silently cut) an
        // over-long datagram.
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket
                .set_read_timeout(Some(left))
                .expect("set timeout");
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) if from == self.relay => {
                    assert!(
                        n <= MAX_DATAGRAM,
                        "relay sent a datagram over {MAX_DATAGRAM} bytes"
                    );
                    return Some(self.unkeyed(&buf[..n]).to_vec());
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // An ICMP error from an earlier send (e.g. the relay exited).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    /// `bytes` without our key's prefix, if they carry it.
    fn unkeyed<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        match (self.keys(), split_key_prefix(bytes)) {
            (Some(keys), (Some(key), body)) if key == keys.client => body,
            _ => bytes,
        }
    }

    /// Receives one datagram within [`WAIT`] or panics.
    pub fn recv(&self) -> Vec<u8> {
        self.try_recv(WAIT)
            .unwrap_or_else(|| panic!("{} received nothing within {WAIT:?}", self.addr()))
    }

    /// Receives one datagram as text (must be valid UTF-8), exactly as sent
    /// (a trailing newline is kept).
    pub fn recv_text(&self) -> String {
        String::from_utf8(self.recv()).expect("relay sent invalid UTF-8")
    }

    /// Receives datagrams until one, as text, satisfies `want`; returns it.
    /// Panics after [`WAIT`], listing what was skipped.
    pub fn recv_until(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_recv(left) {
                Some(bytes) => {
                    let text = String::from_utf8(bytes).expect("relay sent invalid UTF-8");
                    if want(&text) {
                        return text;
                    }
                    seen.push(text);
                }
                None => panic!(
                    "{} never received {what} within {WAIT:?}; saw {seen:?}",
                    self.addr()
                ),
            }
        }
    }

    /// Sends `nudge` once a second until `line` arrives (within three
    /// times [`WAIT`]).
    ///
    /// For waiting on an ICMP port-unreachable report: Linux rate-limits the
    /// ICMP errors it sends to one host (here every test shares 127.0.0.1),
    /// so the first send to a closed port may draw no error at all. Each
    /// nudge makes the relay send to the dead port again.
    pub fn nudge_until(&self, nudge: &str, line: &str) {
        let deadline = Instant::now() + 3 * WAIT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            self.send(nudge);
            let until = Instant::now() + Duration::from_secs(1);
            while let Some(bytes) = self.try_recv(until.saturating_duration_since(Instant::now())) {
                let text = String::from_utf8(bytes).expect("relay sent invalid UTF-8");
                if text == line {
                    return;
                }
                seen.push(text);
            }
        }
        panic!("{} never received {line:?}; saw {seen:?}", self.addr());
    }

    /// Receives datagrams until one equals `line` exactly.
    pub fn expect(&self, line: &str) -> String {
        self.recv_until(&format!("{line:?}"), |t| t == line)
    }

    /// Asserts that nothing arrives for `quiet` (use short, e.g. 300 ms:
    /// this can only prove absence over that window).
    pub fn expect_silence(&self, quiet: Duration) {
        if let Some(bytes) = self.try_recv(quiet) {
            panic!(
                "expected silence, got {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    /// Receives one structured datagram and parses it.
    pub fn recv_msg(&self) -> RelayMsg {
        let bytes = self.recv();
        RelayMsg::parse(&bytes)
            .unwrap_or_else(|e| panic!("unparsable {:?}: {e}", String::from_utf8_lossy(&bytes)))
    }

    /// Receives structured datagrams until one satisfies `want`.
    pub fn recv_msg_until(&self, what: &str, want: impl Fn(&RelayMsg) -> bool) -> RelayMsg {
        let text = self.recv_until(what, |t| {
            RelayMsg::parse(t.as_bytes()).is_ok_and(|m| want(&m))
        });
        RelayMsg::parse(text.as_bytes()).expect("parsed above")
    }

    /// Classic join: sends `N nick` (bare) and expects exactly `OK`.
    pub fn join_classic(&self, nick: &str) {
        self.send(format!("N {nick}"));
        assert_eq!(self.recv_text(), "OK", "classic join of {nick}");
    }

    /// Structured join: the cookie round trip (`HELLO ... -` padded, `COOKIE`,
    /// `HELLO ... <cookie>`) with a fresh session key, returning the
    /// `WELCOME` (which must come behind our key). Datagrams after the
    /// WELCOME (history, the JOIN event) are left for the caller.
    pub fn join_structured(&self, nick: &str) -> RelayMsg {
        let client = test_key();
        *self.keys.lock().expect("keys lock") = Some(SessionKeys {
            client,
            relay: None,
        });
        let nick = Nick::new(nick).expect("valid test nick");
        let version = Token::new(VERSION).expect("valid");
        let hello = ClientMsg::Hello {
            version: version.clone(),
            nick: nick.clone(),
            cookie: None,
            since: None,
            resume: None,
            key: Some(client),
            code: None,
        };
        self.send(hello.encode());
        let cookie = match self.recv_msg() {
            RelayMsg::Cookie(cookie) => cookie,
            other => panic!("expected COOKIE, got {other:?}"),
        };
        self.send(
            ClientMsg::Hello {
                version,
                nick,
                cookie: Some(cookie),
                since: None,
                resume: None,
                key: Some(client),
                code: None,
            }
            .encode(),
        );
        let bytes = self.recv();
        let welcome = RelayMsg::parse(&bytes);
        match welcome {
            Ok(
                welcome @ RelayMsg::Welcome {
                    key: Some(relay), ..
                },
            ) => {
                *self.keys.lock().expect("keys lock") = Some(SessionKeys {
                    client,
                    relay: Some(relay),
                });
                welcome
            }
            other => panic!(
                "expected a WELCOME with a relay key behind our key, got {other:?} from {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}

/// How an honest client expects its datagrams to end (bare, or one `\n`).
pub use udpchat_proto::LineEnding as Ending;

/// Why a datagram an honest client received is unacceptable, if it is:
/// [`udpchat_proto::check_relay_datagram`], with the datagram quoted.
pub fn check_datagram(bytes: &[u8], ending: Ending) -> Result<(), String> {
    udpchat_proto::check_relay_datagram(bytes, ending)
        .map_err(|fault| format!("{fault}: {:?}", String::from_utf8_lossy(bytes)))
}

/// Everything one socket receives from `relay`, collected by a thread
/// until the recorder is dropped (or [`Recorder::stop`]), exactly as sent
/// (a keyed member's datagrams with their key prefix; [`Recorder::texts`]
/// takes it off).
pub struct Recorder {
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Datagrams that came from another address than the relay.
    strangers: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts recording on a clone of `socket`. The caller keeps sending
    /// with its own handle; it must not read from it any more.
    pub fn start(socket: &UdpSocket, relay: SocketAddr) -> Recorder {
        let socket = socket.try_clone().expect("clone socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set timeout");
        let got = Arc::new(Mutex::new(Vec::new()));
        let strangers = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s, st) = (Arc::clone(&got), Arc::clone(&strangers), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            // Bigger than allowed, to see an over-long datagram whole.
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::SeqCst) {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == relay => {
                        g.lock().expect("recorder lock").push(buf[..n].to_vec())
                    }
                    Ok(_) => *s.lock().expect("recorder lock") += 1,
                    Err(_) => {}
                }
            }
        });
        Recorder {
            got,
            strangers,
            stop,
            thread: Some(thread),
        }
    }

    /// A copy of everything received so far, in order.
    pub fn all(&self) -> Vec<Vec<u8>> {
        self.got.lock().expect("recorder lock").clone()
    }

    /// Everything received so far as (lossy) text, a session key prefix
    /// (any key) taken off: [`Recorder::all`] has the datagrams as sent.
    pub fn texts(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|b| String::from_utf8_lossy(split_key_prefix(b).1).into_owned())
            .collect()
    }

    /// How many datagrams came from somewhere other than the relay.
    pub fn stray_datagrams(&self) -> u64 {
        *self.strangers.lock().expect("recorder lock")
    }

    /// Waits up to `timeout` until some received datagram, as text,
    /// satisfies `want`.
    pub fn wait_for(&self, timeout: Duration, want: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.texts().iter().any(|t| want(t)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` until `count` datagrams satisfy `want`.
    pub fn wait_count(
        &self,
        timeout: Duration,
        count: usize,
        want: impl Fn(&str) -> bool,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.texts().iter().filter(|t| want(t)).count();
            if n >= count || Instant::now() > deadline {
                return n;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the thread; the recorded datagrams stay readable.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Asserts every datagram received passes [`check_datagram`].
    pub fn assert_clean(&self, who: &str, ending: Ending) {
        for bytes in self.all() {
            if let Err(why) = check_datagram(&bytes, ending) {
                panic!("{who} received a bad datagram: {why}");
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback UDP socket on a fresh port.
pub fn loopback_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

/// A UDP socket on a fresh port of loopback IP address `ip` (Linux lets a
/// program bind any address in 127.0.0.0/8).
pub fn loopback_socket_on(ip: Ipv4Addr) -> UdpSocket {
    UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"))
}

/// The `n`th of 65,000 distinct loopback IP addresses (127.2.x.y, none
/// of them 127.0.0.1): one per simulated computer.
pub fn loopback_ip(n: usize) -> Ipv4Addr {
    let n = n % 65_000;
    Ipv4Addr::new(127, 2, (n / 250) as u8, (n % 250 + 1) as u8)
}
