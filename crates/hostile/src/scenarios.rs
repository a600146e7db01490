//! One function per attack of issue 12 (items 1-9), each bounded in count
//! and time, each returning its figures. See the crate docs for the
//! contract.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use udpchat_udp::raw::{RawV4, RawV6};

use crate::client::RealClient;
use crate::member::{sockets_at, Counter, Echo, Honest, Member, Probe};
use crate::structured::Structured;
use crate::{Error, HonestLatency, Latency, Traffic};

fn raw_v4() -> Result<RawV4, Error> {
    RawV4::open().map_err(Error::RawSocketsDenied)
}

fn raw_v6() -> Result<RawV6, Error> {
    RawV6::open().map_err(Error::RawSocketsDenied)
}

/// Whether raw sockets may be opened; the error says why not.
pub fn raw_sockets_available() -> Result<(), Error> {
    raw_v4().map(|_| ())
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => panic!("{a} is not an IPv4 address"),
    }
}

fn v6(addr: SocketAddr) -> SocketAddrV6 {
    match addr {
        SocketAddr::V6(a) => a,
        SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
    }
}

/// `127.a.b.c`.
fn ip(a: u8, b: u8, c: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, a, b, c)
}

/// Whether an observer's lines (so far, plus up to `timeout` more) show
/// one containing `needle`.
fn observer_saw(
    observer: &Member,
    seen: &mut Vec<String>,
    needle: &str,
    timeout: Duration,
) -> bool {
    if seen.iter().any(|l| l.contains(needle)) {
        return true;
    }
    let deadline = Instant::now() + timeout;
    while let Some(line) = observer.recv_until(deadline) {
        let hit = line.contains(needle);
        seen.push(line);
        if hit {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------- item 1

/// Item 1: forged ICMP "port unreachable" quoting relay -> member.
#[derive(Debug, Clone, Serialize)]
pub struct IcmpFigures {
    /// A forged ICMP from another IP (IPv4 only) evicted the member.
    pub foreign_evicted: Option<bool>,
    /// A forged ICMP from the member's own IP (`::1` for IPv6) evicted a
    /// member that kept talking.
    pub own_ip_evicted_while_talking: bool,
    /// ICMP errors forged.
    pub forged: u64,
}

/// Item 1 against a relay on `127.0.0.1` or `::1` (`relay`'s family):
/// members join, then ICMP errors quoting relay -> member are forged: from
/// another IP (IPv4), and from the member's own IP while it keeps talking.
pub fn icmp_eviction(relay: SocketAddr) -> Result<IcmpFigures, Error> {
    let ipv6 = relay.is_ipv6();
    let (raw4, raw6) = if ipv6 {
        (None, Some(raw_v6()?))
    } else {
        (Some(raw_v4()?), None)
    };
    let observer = Member::join(ip(10, 0, 1), relay, "icmpwatch")?;
    let mut seen = Vec::new();
    let mut forged = 0;
    let forge = |from: Option<Ipv4Addr>, member: SocketAddr| -> Result<(), Error> {
        let sent = match (&raw4, &raw6) {
            (Some(raw), _) => raw.send_icmp_port_unreachable(
                from.expect("an IPv4 forger"),
                *v4(relay).ip(),
                v4(relay),
                v4(member),
            ),
            (_, Some(raw)) => raw.send_icmp_port_unreachable(v6(relay), v6(member)),
            _ => unreachable!(),
        };
        sent.map_err(|e| Error::io("forge an ICMP error", e))
    };

    let foreign_evicted = if ipv6 {
        None
    } else {
        let victim = Member::join(ip(10, 0, 2), relay, "icmpa")?;
        for _ in 0..3 {
            forge(Some(ip(10, 0, 99)), victim.addr())?;
            forged += 1;
        }
        thread::sleep(Duration::from_millis(300));
        victim.send("M icmpa still-a");
        let left = observer_saw(&observer, &mut seen, "* icmpa left", Duration::ZERO);
        let heard = observer_saw(
            &observer,
            &mut seen,
            "icmpa: still-a",
            Duration::from_secs(2),
        );
        Some(left || !heard || seen.iter().any(|l| l.contains("* icmpa left")))
    };

    let victim = Member::join(ip(10, 0, 3), relay, "icmpb")?;
    let own_ip = match victim.addr() {
        SocketAddr::V4(a) => Some(*a.ip()),
        SocketAddr::V6(_) => None,
    };
    let mut heard_all = true;
    for k in 0..15 {
        victim.send(&format!("M icmpb talk-{k}"));
        if k == 2 || k == 6 {
            forge(own_ip, victim.addr())?;
            forged += 1;
        }
        let heard = observer_saw(
            &observer,
            &mut seen,
            &format!("icmpb: talk-{k}"),
            Duration::from_millis(1500),
        );
        heard_all &= heard;
        if !heard || seen.iter().any(|l| l.contains("* icmpb left")) {
            // Evicted: the rest would only wait.
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let left = seen.iter().any(|l| l.contains("* icmpb left"));
    Ok(IcmpFigures {
        foreign_evicted,
        own_ip_evicted_while_talking: left || !heard_all,
        forged,
    })
}

// ---------------------------------------------------------------- item 2

/// Item 2: a full stranger table, then `N x`/`Q x` churn from one socket.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnFigures {
    /// Forged strangers that filled the table (one datagram each).
    pub fill: u64,
    /// The churn: in = attacker datagrams, out = what the attacker and the
    /// observers received meanwhile.
    pub churn: Traffic,
    /// `OK`s the attacker got (joins accepted).
    pub joins_accepted: u64,
    /// Honest echo latency before the attack.
    pub quiet: Latency,
    /// Honest echo latency during it.
    pub attack: Latency,
}

/// Observers in the churn room: each churned join and leave is announced
/// to them.
const CHURN_OBSERVERS: u8 = 20;

/// Item 2: fills the relay's stranger table with 4,096 forged strangers
/// (one `PING` each from `127.12.x.y`), then churns `N x`/`Q x` from one
/// real socket for up to `duration` (at most 40,000 datagrams) while an
/// honest member measures its echo.
pub fn churn_behind_full_table(
    relay: SocketAddr,
    duration: Duration,
) -> Result<ChurnFigures, Error> {
    let raw = raw_v4()?;
    let honest = Member::join(ip(11, 0, 1), relay, "churnhonest")?;
    let mut observers = Vec::new();
    for i in 0..CHURN_OBSERVERS {
        let m = Member::join(ip(11, 1, i + 1), relay, &format!("churnobs{i}"))?;
        observers.push(m.socket);
    }
    let (honest, quiet) = Probe::run(honest, Duration::from_secs(1));

    let mut fill = 0;
    for i in 0..4096u32 {
        let from = SocketAddrV4::new(ip(12, (i >> 8) as u8, (i & 0xff) as u8), 40000);
        raw.send_udp(from, v4(relay), b"PING")
            .map_err(|e| Error::io("forge a stranger's PING", e))?;
        fill += 1;
        if i % 256 == 255 {
            // Let the relay read them rather than the kernel drop them.
            thread::sleep(Duration::from_millis(2));
        }
    }

    let observed = Counter::start(observers);
    let probe = Probe::start(honest, 1000);
    let attacker =
        UdpSocket::bind((ip(13, 0, 1), 0)).map_err(|e| Error::io("bind the attacker", e))?;
    attacker
        .set_nonblocking(true)
        .map_err(|e| Error::io("make the attacker non-blocking", e))?;
    let mut churn = Traffic::default();
    let mut joins_accepted = 0;
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let mut k = 0u64;
    while start.elapsed() < duration && churn.datagrams_in < 40_000 {
        let line: &[u8] = if k.is_multiple_of(2) { b"N x" } else { b"Q x" };
        k += 1;
        if attacker.send_to(line, relay).is_ok() {
            churn.datagrams_in += 1;
            churn.bytes_in += line.len() as u64;
        }
        while let Ok((n, _)) = attacker.recv_from(&mut buf) {
            churn.datagrams_out += 1;
            churn.bytes_out += n as u64;
            if &buf[..n] == b"OK" {
                joins_accepted += 1;
            }
        }
        if k.is_multiple_of(64) {
            // Pace a little: a classroom laptop, not a 10 Gb/s NIC.
            thread::sleep(Duration::from_micros(500));
        }
    }
    thread::sleep(Duration::from_millis(300));
    while let Ok((n, _)) = attacker.recv_from(&mut buf) {
        churn.datagrams_out += 1;
        churn.bytes_out += n as u64;
        if &buf[..n] == b"OK" {
            joins_accepted += 1;
        }
    }
    let (_, attack) = probe.stop();
    let seen = observed.stop();
    churn.datagrams_out += seen.datagrams;
    churn.bytes_out += seen.bytes;
    Ok(ChurnFigures {
        fill,
        churn,
        joins_accepted,
        quiet,
        attack,
    })
}

// ---------------------------------------------------------------- item 3

/// Item 3: forged requests from victims that are not members.
#[derive(Debug, Clone, Serialize)]
pub struct AmplificationFigures {
    /// 300 forged `N vK`, one from each of 300 ports of one victim IP.
    pub forged_joins: Traffic,
    /// 100 forged `WHO` from a non-member victim.
    pub forged_who: Traffic,
    /// 100 forged `PING` with a 32-byte token from a non-member victim.
    pub forged_ping: Traffic,
    /// 100 forged cookie-less `HELLO` (64 bytes) from a non-member victim.
    pub forged_hello: Traffic,
    /// An honest member's echo before and during the attack.
    pub honest: HonestLatency,
}

impl AmplificationFigures {
    /// The largest amplification of the four.
    pub fn worst(&self) -> f64 {
        [
            &self.forged_joins,
            &self.forged_who,
            &self.forged_ping,
            &self.forged_hello,
        ]
        .iter()
        .map(|t| t.amplification())
        .fold(0.0, f64::max)
    }
}

/// Sends `lines` forged from `from[i % from.len()]` to the relay, and counts
/// what the `victims` sockets receive until 1 s after the last.
fn forge_at_victims(
    raw: &RawV4,
    relay: SocketAddr,
    victims: Vec<UdpSocket>,
    lines: &[String],
) -> Result<Traffic, Error> {
    let from: Vec<SocketAddrV4> = victims
        .iter()
        .map(|s| v4(s.local_addr().expect("bound")))
        .collect();
    let counter = Counter::start(victims);
    let mut traffic = Traffic::default();
    for (i, line) in lines.iter().enumerate() {
        raw.send_udp(from[i % from.len()], v4(relay), line.as_bytes())
            .map_err(|e| Error::io("forge a datagram", e))?;
        traffic.datagrams_in += 1;
        traffic.bytes_in += line.len() as u64;
        if i % 20 == 19 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    thread::sleep(Duration::from_secs(1));
    let got = counter.stop();
    traffic.datagrams_out = got.datagrams;
    traffic.bytes_out = got.bytes;
    Ok(traffic)
}

/// Item 3: forged `N`, `WHO`, `PING` and `HELLO` at non-member victims
/// (sockets bound at `127.14.x.y` that count what they receive).
pub fn amplification_at_victims(relay: SocketAddr) -> Result<AmplificationFigures, Error> {
    let raw = raw_v4()?;
    let honest = Honest::start(ip(14, 1, 1), relay, "amphonest", Echo::Ping)?;
    let sockets =
        |ip: Ipv4Addr, n: usize| sockets_at(ip, n).map_err(|e| Error::io("bind victim sockets", e));
    let joins: Vec<String> = (0..300).map(|k| format!("N v{k}")).collect();
    let forged_joins = forge_at_victims(&raw, relay, sockets(ip(14, 0, 1), 300)?, &joins)?;
    let who = vec!["WHO".to_owned(); 100];
    let forged_who = forge_at_victims(&raw, relay, sockets(ip(14, 0, 2), 1)?, &who)?;
    let ping = vec![format!("PING {}", "t".repeat(32)); 100];
    let forged_ping = forge_at_victims(&raw, relay, sockets(ip(14, 0, 3), 1)?, &ping)?;
    let hello = format!("HELLO udpchat/1 victim - {}", "=".repeat(40));
    let hello = vec![hello; 100];
    let forged_hello = forge_at_victims(&raw, relay, sockets(ip(14, 0, 4), 1)?, &hello)?;
    Ok(AmplificationFigures {
        forged_joins,
        forged_who,
        forged_ping,
        forged_hello,
        honest: honest.stop(),
    })
}

// ---------------------------------------------------------------- item 4

/// Item 4: datagrams forged from the relay's address to a real client.
#[derive(Debug, Clone, Serialize)]
pub struct ForgedRelayFigures {
    /// Real messages sent to the room while the forgeries were in.
    pub real_sent: usize,
    /// Of them, shown by the client.
    pub real_shown: usize,
    /// Client lines that show a forged text.
    pub forged_shown: Vec<String>,
    /// The client stopped after a forged `BYE kicked`.
    pub bye_accepted: bool,
}

/// Item 4: a real `udpchat` (carol) joins on a fresh relay; datagrams
/// forged from the relay's address to her port bring a private message, a
/// host line as the next event and a far-ahead event; 30 real messages
/// follow; then a forged `BYE kicked`.
pub fn forged_relay_datagrams(
    relay: SocketAddr,
    client_bin: &Path,
) -> Result<ForgedRelayFigures, Error> {
    let raw = raw_v4()?;
    let carol = RealClient::start(client_bin, relay, "carol")?;
    if !carol.wait_for("carol joined", Duration::from_secs(10)) {
        return Err(Error::NoAnswer("the client's join".to_owned()));
    }
    let port = carol.port()?;
    let carol_addr = SocketAddrV4::new(*v4(relay).ip(), port);
    let bob = Member::join(ip(16, 0, 1), relay, "bob")?;
    // Carol's JOIN is event 1 and bob's event 2 on a fresh relay: event 3
    // is the next one she expects.
    for line in [
        "PRIVATE 77 bob forged-3",
        "EVENT 3 live HOST forged-2",
        "EVENT 18446744073709551614 live CHAT bob forged-1",
    ] {
        raw.send_udp(v4(relay), carol_addr, line.as_bytes())
            .map_err(|e| Error::io("forge a relay datagram", e))?;
    }
    thread::sleep(Duration::from_millis(200));
    let real_sent = 30;
    for k in 0..real_sent {
        bob.send(&format!("M bob real-{k}"));
        thread::sleep(Duration::from_millis(30));
    }
    carol.wait_for(&format!("real-{}", real_sent - 1), Duration::from_secs(5));
    let shown = |lines: &[String], k: usize| {
        let want = format!("real-{k}");
        lines.iter().any(|l| l.ends_with(&want))
    };
    let lines = carol.lines();
    let real_shown = (0..real_sent).filter(|&k| shown(&lines, k)).count();
    let mut carol = carol;
    raw.send_udp(v4(relay), carol_addr, b"BYE kicked forged-4")
        .map_err(|e| Error::io("forge a relay datagram", e))?;
    thread::sleep(Duration::from_millis(700));
    let lines = carol.lines();
    let bye_accepted = !carol.is_running()
        || lines
            .iter()
            .any(|l| l.contains("forged-4") || l.contains("removed"));
    let forged_shown = lines
        .into_iter()
        .filter(|l| l.contains("forged-"))
        .collect();
    Ok(ForgedRelayFigures {
        real_sent,
        real_shown,
        forged_shown,
        bye_accepted,
    })
}

// ---------------------------------------------------------------- item 5

/// Item 5: real clients join while other IPs flood `PING`s.
#[derive(Debug, Clone, Serialize)]
pub struct FloodJoinFigures {
    /// `PING`s the flood sent.
    pub pings_sent: u64,
    /// Its rate, datagrams per second asked for.
    pub rate: u64,
    /// Clients started.
    pub joins_tried: usize,
    /// Clients that showed their own join within the deadline.
    pub joins_ok: usize,
    /// How long each successful join took, milliseconds.
    pub join_ms: Vec<u64>,
    /// An honest member's echo before and during the attack.
    pub honest: HonestLatency,
}

/// Item 5: a `rate`/s `PING` flood from 64 sockets at `127.17.0.x` for
/// `duration` (at least 2 s); 1 s into it, when the relay's budgets for
/// strangers have long been spent on the flood, `joins` real clients
/// start, each given until the flood's end to show its own join.
pub fn joins_under_ping_flood(
    relay: SocketAddr,
    client_bin: &Path,
    rate: u64,
    duration: Duration,
    joins: usize,
) -> Result<FloodJoinFigures, Error> {
    let duration = duration.max(Duration::from_secs(2));
    let honest = Honest::start(ip(17, 1, 1), relay, "floodhonest", Echo::Chat)?;
    let flooders: Vec<UdpSocket> = (0..64u8)
        .map(|i| UdpSocket::bind((ip(17, 0, i + 1), 0)))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io("bind the flooders", e))?;
    let flood = thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < duration {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let s = &flooders[(sent % flooders.len() as u64) as usize];
                let _ = s.send_to(b"PING", relay);
                sent += 1;
            }
            thread::sleep(Duration::from_millis(1));
        }
        sent
    });
    let lead = Duration::from_secs(1);
    thread::sleep(lead);
    let started = Instant::now();
    let clients: Vec<RealClient> = (0..joins)
        .map(|k| RealClient::start(client_bin, relay, &format!("joiner{k}")))
        .collect::<Result<_, _>>()?;
    let deadline = duration - lead;
    let mut join_ms = Vec::new();
    let mut pending: Vec<usize> = (0..joins).collect();
    while !pending.is_empty() && started.elapsed() < deadline {
        pending.retain(|&k| {
            let me = format!("joiner{k} joined");
            let done = clients[k].lines().iter().any(|l| l.contains(&me));
            if done {
                join_ms.push(started.elapsed().as_millis() as u64);
            }
            !done
        });
        thread::sleep(Duration::from_millis(10));
    }
    let pings_sent = flood.join().unwrap_or(0);
    Ok(FloodJoinFigures {
        pings_sent,
        rate,
        joins_tried: joins,
        joins_ok: join_ms.len(),
        join_ms,
        honest: honest.stop(),
    })
}

// ---------------------------------------------------------------- item 6

/// Item 6: replies that cost more than requests.
#[derive(Debug, Clone, Serialize)]
pub struct ReplyCostFigures {
    /// Members in the room (with 24-character nicknames).
    pub members: usize,
    /// One member sending `WHO` as fast as it may for 2 s: its own
    /// requests in, the pages out.
    pub member_who: Traffic,
    /// `WHO` forged (100 times) from another member's address: what that
    /// member received.
    pub forged_who_at_member: Traffic,
    /// A structured member sending `RESEND 1 64` for 2 s (`None`: it could
    /// not join).
    pub member_resend: Option<Traffic>,
    /// A structured member repeating its cookie `HELLO` for 2 s (each
    /// draws `WELCOME` and the history again).
    pub member_hello: Option<Traffic>,
    /// An honest member's echo before and during the attack.
    pub honest: HonestLatency,
}

/// Sends `line` every 5 ms for 2 s (at most 400 times) as `member`; counts
/// what comes back until 0.5 s after.
fn pull(member: &Structured, line: &str) -> Result<Traffic, Error> {
    member.member.drain();
    let socket = member
        .member
        .socket
        .try_clone()
        .map_err(|e| Error::io("clone a socket", e))?;
    let counter = Counter::start(vec![socket]);
    let mut traffic = Traffic::default();
    let prefix = member.relay_key.as_ref().map_or(0, |_| 18);
    let prefix = if line.starts_with("HELLO ") {
        0
    } else {
        prefix
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) && traffic.datagrams_in < 400 {
        member.send(line);
        traffic.datagrams_in += 1;
        traffic.bytes_in += (prefix + line.len()) as u64;
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(500));
    let got = counter.stop();
    traffic.datagrams_out = got.datagrams;
    traffic.bytes_out = got.bytes;
    Ok(traffic)
}

/// Item 6: a room of 150 members with long nicknames; one member asks
/// `WHO` 400 times in 2 s; 100 `WHO` are forged from another member's
/// address; a structured member asks `RESEND 1 64` for 2 s, and another
/// repeats its cookie `HELLO` for 2 s.
pub fn reply_cost(relay: SocketAddr) -> Result<ReplyCostFigures, Error> {
    let raw = raw_v4()?;
    let members = 150usize;
    let mut idle = Vec::new();
    for i in 0..members {
        let nick = format!("member{i:03}{}", "x".repeat(15));
        let at = ip(15, (i / 200) as u8, (i % 200) as u8 + 1);
        let m = Member::bind(at, relay)?;
        m.send(&format!("N {nick}"));
        idle.push(m);
        if i % 10 == 9 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    thread::sleep(Duration::from_millis(500));
    let honest = Honest::start(ip(15, 10, 9), relay, "costhonest", Echo::Ping)?;
    let asker = Member::join(ip(15, 10, 1), relay, "asker")?;
    asker.drain();
    let counter = Counter::start(vec![asker
        .socket
        .try_clone()
        .map_err(|e| Error::io("clone a socket", e))?]);
    let mut member_who = Traffic::default();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) && member_who.datagrams_in < 400 {
        asker.send("WHO");
        member_who.datagrams_in += 1;
        member_who.bytes_in += 3;
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(500));
    let got = counter.stop();
    member_who.datagrams_out = got.datagrams;
    member_who.bytes_out = got.bytes;

    let victim = Member::join(ip(15, 10, 2), relay, "whovictim")?;
    let lines = vec!["WHO".to_owned(); 100];
    let forged_who_at_member = forge_at_victims(&raw, relay, vec![victim.socket], &lines)?;

    // The room's 150 JOINs are events 1..: RESEND 1 64 names 64 of them.
    let member_resend = match Structured::join(ip(15, 10, 3), relay, "resender") {
        Ok(m) => Some(pull(&m, "RESEND 1 64")?),
        Err(_) => None,
    };
    let member_hello = match Structured::join(ip(15, 10, 4), relay, "rejoiner") {
        Ok(m) => Some(pull(&m, &m.hello())?),
        Err(_) => None,
    };
    // The idle members stay bound (no ICMP errors) until the end.
    drop(idle);
    Ok(ReplyCostFigures {
        members,
        member_who,
        forged_who_at_member,
        member_resend,
        member_hello,
        honest: honest.stop(),
    })
}

// ---------------------------------------------------------------- item 7

/// Item 7: a blind spoofer forging datagrams from a structured member's
/// address (the real client).
#[derive(Debug, Clone, Serialize)]
pub struct SpoofFigures {
    /// A forged `SAY`/`M` showed as the member's chat.
    pub said: bool,
    /// A forged `NICK` renamed the member.
    pub renamed: bool,
    /// A forged `N` made it a classic member (it then missed real chat).
    pub downgraded: bool,
    /// Forged `PING`s got the member rate-limited or blocked (its next
    /// real message did not arrive).
    pub blocked: bool,
    /// A forged `Q` removed the member.
    pub quit: bool,
    /// Datagrams forged.
    pub forged: u64,
    /// An honest member's echo before and during the attack.
    pub honest: HonestLatency,
}

impl SpoofFigures {
    /// Whether any spoof took effect.
    pub fn any(&self) -> bool {
        self.said || self.renamed || self.downgraded || self.blocked || self.quit
    }
}

/// Item 7: real client carol joins, bob watches (classic); datagrams are
/// forged from carol's exact address: `SAY`, `M`, `NICK`, `N`, 300 `PING`
/// and `Q`. Then carol and bob each say something real.
pub fn blind_spoof(relay: SocketAddr, client_bin: &Path) -> Result<SpoofFigures, Error> {
    let raw = raw_v4()?;
    let mut carol = RealClient::start(client_bin, relay, "carol")?;
    if !carol.wait_for("carol joined", Duration::from_secs(10)) {
        return Err(Error::NoAnswer("the client's join".to_owned()));
    }
    let carol_addr = SocketAddrV4::new(*v4(relay).ip(), carol.port()?);
    let bob = Member::join(ip(18, 0, 1), relay, "bob")?;
    let honest = Honest::start(ip(18, 0, 2), relay, "spoofhonest", Echo::Chat)?;
    let mut seen = Vec::new();
    let mut forged = 0u64;
    let mut forge = |line: &str| -> Result<(), Error> {
        forged += 1;
        raw.send_udp(carol_addr, v4(relay), line.as_bytes())
            .map_err(|e| Error::io("forge a member's datagram", e))
    };
    let short = Duration::from_millis(600);
    forge("SAY 900001 spoof-say")?;
    forge("M carol spoof-m")?;
    let said = observer_saw(&bob, &mut seen, "spoof-", short);
    forge("NICK mallory")?;
    let renamed = observer_saw(&bob, &mut seen, "known as mallory", short);
    if renamed {
        // Put the name back, so the later checks still mean something.
        forge("NICK carol")?;
    }
    forge("N carol")?;
    thread::sleep(Duration::from_millis(200));
    bob.send("M bob after-n");
    let downgraded = !carol.wait_for("bob: after-n", Duration::from_secs(3));
    // Forged PINGs from carol's address, 2,000 a second for 1.5 s, while
    // her real message is on its way: blocked if it does not get through
    // meanwhile (her client retransmits it until confirmed).
    let mut blocked = true;
    for round in 0..160 {
        for _ in 0..20 {
            forge("PING")?;
        }
        if round < 10 {
            continue;
        }
        if round == 10 {
            carol.say("genuine-after-ping");
        }
        if observer_saw(
            &bob,
            &mut seen,
            "carol: genuine-after-ping",
            Duration::from_millis(10),
        ) {
            blocked = false;
            break;
        }
    }
    // A kernel block ends within a second; then the forged goodbye.
    thread::sleep(Duration::from_millis(1100));
    forge("Q carol")?;
    let quit = observer_saw(&bob, &mut seen, "* carol left", short)
        || seen.iter().any(|l| l.contains("* carol left"));
    Ok(SpoofFigures {
        said,
        renamed,
        downgraded,
        blocked,
        quit,
        forged,
        honest: honest.stop(),
    })
}

// ------------------------------------------------------------- items 8, 9

/// Items 8 and 9: texts that must be refused.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalFigures {
    /// Per text: the sender's reply (or "(none)") and whether an observer
    /// got it relayed.
    pub outcomes: Vec<TextOutcome>,
}

/// One text's fate.
#[derive(Debug, Clone, Serialize)]
pub struct TextOutcome {
    /// The text (escaped for display).
    pub text: String,
    /// The relay's answer to the sender.
    pub reply: String,
    /// The observer got it as chat.
    pub relayed: bool,
}

impl RefusalFigures {
    /// Whether every text was refused with an error and relayed to nobody.
    pub fn all_refused(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| !o.relayed && (o.reply.starts_with("ERROR") || o.reply.starts_with("错误")))
    }
}

/// Items 8 and 9: a classic member sends each of `texts` as `M`; returns
/// the replies and whether an observer saw them. No forging.
pub fn refused_texts(
    relay: SocketAddr,
    base: u8,
    texts: &[String],
) -> Result<RefusalFigures, Error> {
    let sender = Member::join(ip(19, base, 1), relay, "texter")?;
    let observer = Member::join(ip(19, base, 2), relay, "reader")?;
    // The sender hears the observer's join: after it, nothing is pending.
    sender.expect(Duration::from_secs(2), |l| l.contains("reader"));
    let mut outcomes = Vec::new();
    for (k, text) in texts.iter().enumerate() {
        let marker = format!("mark{k}");
        sender.send(&format!("M texter {text}"));
        // A marker after it: each side's lines up to the marker's echo are
        // what the text produced.
        sender.send(&format!("M texter {marker}"));
        let upto = |member: &Member| {
            let mut lines = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(3);
            while let Some(line) = member.recv_until(deadline) {
                if line.ends_with(&marker) {
                    break;
                }
                lines.push(line);
            }
            lines
        };
        let replies = upto(&sender);
        let relayed = upto(&observer).iter().any(|l| l.starts_with("texter: "));
        let reply = replies
            .iter()
            .find(|l| l.starts_with("ERROR") || l.starts_with("错误"))
            .or(replies.first())
            .cloned()
            .unwrap_or_else(|| "(none)".to_owned());
        outcomes.push(TextOutcome {
            text: text.escape_default().to_string(),
            reply,
            relayed,
        });
    }
    Ok(RefusalFigures { outcomes })
}

/// Item 8's texts: space padding that would put a fake relay line at the
/// start of an 80-column `nc` row.
pub fn fake_line_texts() -> Vec<String> {
    let pad = |n: usize, tail: &str| format!("hello{}{tail}", " ".repeat(n));
    vec![
        pad(80 - "texter: hello".len(), "* teacher left"),
        pad(80 - "texter: hello".len(), "[host] test moved to 9:00"),
        pad(40, "x"),
        "* teacher left".to_owned(),
        "[host] go home".to_owned(),
    ]
}

/// Item 9's texts: invisible format characters.
pub fn invisible_texts() -> Vec<String> {
    [
        "\u{200B}",
        "\u{200E}",
        "\u{200F}",
        "\u{061C}",
        "\u{FEFF}",
        "\u{E0041}",
    ]
    .iter()
    .map(|c| format!("hi{c}there"))
    .collect()
}
