//! Honest classic members (`N name`, `M name text`, one line per
//! datagram), victims that count what they receive, and the echo-latency
//! probe.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{Error, HonestLatency, Latency};

/// A classic member (or would-be member) on a real loopback socket at an
/// address of its own.
#[derive(Debug)]
pub struct Member {
    /// Its socket.
    pub socket: UdpSocket,
    /// The relay.
    pub relay: SocketAddr,
    /// Its nickname (once joined).
    pub nick: String,
}

impl Member {
    /// A socket at `ip` (any port); `::1` if the relay is IPv6.
    pub fn bind(ip: Ipv4Addr, relay: SocketAddr) -> Result<Member, Error> {
        let local: SocketAddr = if relay.is_ipv6() {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)
        } else {
            SocketAddr::new(IpAddr::V4(ip), 0)
        };
        let socket = UdpSocket::bind(local).map_err(|e| Error::io("bind a member socket", e))?;
        Ok(Member {
            socket,
            relay,
            nick: String::new(),
        })
    }

    /// Binds at `ip` and joins as `nick` (`N nick`, waiting for `OK`; three
    /// tries within three seconds).
    pub fn join(ip: Ipv4Addr, relay: SocketAddr, nick: &str) -> Result<Member, Error> {
        let mut member = Member::bind(ip, relay)?;
        member.nick = nick.to_owned();
        for _ in 0..3 {
            member.send(&format!("N {nick}"));
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Some(line) = member.recv_until(deadline) {
                if line == "OK" {
                    return Ok(member);
                }
                if line.starts_with("ERROR") {
                    return Err(Error::Refused(format!("N {nick}: {line}")));
                }
            }
        }
        Err(Error::NoAnswer(format!("N {nick}")))
    }

    /// This member's address.
    pub fn addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// The address as IPv4 (panics for IPv6 members).
    pub fn addr_v4(&self) -> SocketAddrV4 {
        match self.addr() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => panic!("an IPv6 member has no IPv4 address"),
        }
    }

    /// Sends one line (no line ending).
    pub fn send(&self, line: &str) {
        // A send error (buffer full) is a lost datagram, as on a network.
        let _ = self.socket.send_to(line.as_bytes(), self.relay);
    }

    /// The next line from the relay before `deadline`.
    pub fn recv_until(&self, deadline: Instant) -> Option<String> {
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self.socket.set_read_timeout(Some(left));
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) if from == self.relay => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    return Some(text.trim_end_matches(['\r', '\n']).to_owned());
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Reads lines until one satisfies `want` or `timeout` passes.
    pub fn expect(&self, timeout: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(line) = self.recv_until(deadline) {
            if want(&line) {
                return Some(line);
            }
        }
        None
    }

    /// Throws away whatever is waiting.
    pub fn drain(&self) {
        let _ = self.socket.set_nonblocking(true);
        let mut buf = [0u8; 2048];
        while self.socket.recv_from(&mut buf).is_ok() {}
        let _ = self.socket.set_nonblocking(false);
    }
}

/// What one or more sockets received, counted in the background.
#[derive(Debug, Default, Clone)]
pub struct Counted {
    /// Datagrams received.
    pub datagrams: u64,
    /// Their bytes (UDP payload).
    pub bytes: u64,
    /// The first lines received (at most 2,000), for checks.
    pub lines: Vec<String>,
}

/// Counts everything some sockets receive until stopped.
pub struct Counter {
    stop: Arc<AtomicBool>,
    counted: Arc<Mutex<Counted>>,
    thread: Option<JoinHandle<()>>,
}

impl Counter {
    /// Starts counting on `sockets` (made non-blocking).
    pub fn start(sockets: Vec<UdpSocket>) -> Counter {
        let stop = Arc::new(AtomicBool::new(false));
        let counted = Arc::new(Mutex::new(Counted::default()));
        for socket in &sockets {
            let _ = socket.set_nonblocking(true);
        }
        let thread = {
            let stop = Arc::clone(&stop);
            let counted = Arc::clone(&counted);
            thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let mut any = false;
                    for socket in &sockets {
                        while let Ok((n, _)) = socket.recv_from(&mut buf) {
                            any = true;
                            let mut c = counted.lock().expect("counter lock");
                            c.datagrams += 1;
                            c.bytes += n as u64;
                            if c.lines.len() < 2000 {
                                let text = String::from_utf8_lossy(&buf[..n]);
                                c.lines.push(text.trim_end_matches(['\r', '\n']).to_owned());
                            }
                        }
                    }
                    if !any {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        };
        Counter {
            stop,
            counted,
            thread: Some(thread),
        }
    }

    /// What was counted so far.
    pub fn now(&self) -> Counted {
        self.counted.lock().expect("counter lock").clone()
    }

    /// Stops and returns the total.
    pub fn stop(mut self) -> Counted {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.now()
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An honest member measuring its echo latency (`M nick probe-k` until its
/// own line comes back) in the background, one probe every 50 ms.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(Member, Latency)>>,
}

/// How a probe gets its echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// `M nick probe-k`, answered by the room's line `nick: probe-k` (a
    /// room event: every member gets it).
    Chat,
    /// `PING probe-k`, answered by `PONG probe-k` (to the sender only, for
    /// scenarios whose counters must not see the probes).
    Ping,
}

/// A probe whose echo took longer than this counts as lost.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Probe {
    /// Starts probing with `member` (joined); at most `max` probes.
    pub fn start(member: Member, max: usize) -> Probe {
        Probe::start_as(member, max, Echo::Chat)
    }

    /// Like [`Probe::start`], echoing with `how`.
    pub fn start_as(member: Member, max: usize, how: Echo) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut samples = Vec::new();
                let mut lost = 0;
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) && k < max {
                    k += 1;
                    let text = format!("probe-{k}");
                    let (ask, want) = match how {
                        Echo::Chat => (
                            format!("M {} {text}", member.nick),
                            format!("{}: {text}", member.nick),
                        ),
                        Echo::Ping => (format!("PING {text}"), format!("PONG {text}")),
                    };
                    let sent = Instant::now();
                    member.send(&ask);
                    match member.expect(PROBE_TIMEOUT, |l| l == want) {
                        Some(_) => samples.push(sent.elapsed()),
                        None => lost += 1,
                    }
                    let next = sent + Duration::from_millis(50);
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                (member, Latency::of(samples, lost))
            })
        };
        Probe {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; returns the member and its latency figures.
    pub fn stop(mut self) -> (Member, Latency) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("stopped once")
            .join()
            .expect("probe thread panicked")
    }

    /// Probes for `duration` with `member` and returns the figures.
    pub fn run(member: Member, duration: Duration) -> (Member, Latency) {
        Probe::run_as(member, duration, Echo::Chat)
    }

    /// Like [`Probe::run`], echoing with `how`.
    pub fn run_as(member: Member, duration: Duration, how: Echo) -> (Member, Latency) {
        let probe = Probe::start_as(member, 1000, how);
        thread::sleep(duration);
        probe.stop()
    }
}

/// An honest classic member measuring its echo: a quiet second at
/// [`Honest::start`], then probes until [`Honest::stop`].
pub struct Honest {
    quiet: Latency,
    probe: Probe,
}

impl Honest {
    /// Joins as `nick` from `ip`, measures a quiet second, and goes on
    /// probing (the attack starts after this returns).
    pub fn start(ip: Ipv4Addr, relay: SocketAddr, nick: &str, how: Echo) -> Result<Honest, Error> {
        let member = Member::join(ip, relay, nick)?;
        let (member, quiet) = Probe::run_as(member, Duration::from_secs(1), how);
        Ok(Honest {
            quiet,
            probe: Probe::start_as(member, 1000, how),
        })
    }

    /// Stops probing: the quiet and the attack figures.
    pub fn stop(self) -> HonestLatency {
        let (_, attack) = self.probe.stop();
        HonestLatency {
            quiet: self.quiet,
            attack,
        }
    }
}

/// `n` sockets at `ip` (any ports), e.g. amplification victims.
pub fn sockets_at(ip: Ipv4Addr, n: usize) -> io::Result<Vec<UdpSocket>> {
    (0..n).map(|_| UdpSocket::bind((ip, 0))).collect()
}
