//! Where students can join: the addresses of this computer the relay is
//! reachable at, and the exact line a student types for each, printed at
//! start so the teacher can write it on the board.
//!
//! The choice is a pure function over the interface list
//! ([`join_addresses`]); the operating system is asked only in
//! [`where_to_join`] (`getifaddrs`, in `udpchat-udp`), and nothing is sent.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use udpchat_proto::Lang;
use udpchat_udp::InterfaceAddr;

/// One address students can use, with the interface it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAddr {
    /// The address and the relay's port.
    pub addr: SocketAddr,
    /// The interface's name (`wlan0`); empty if unknown.
    pub interface: String,
}

/// What [`join_addresses`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Students can join at these addresses (none: this computer has no
    /// address besides loopback in the bound family).
    Network(Vec<JoinAddr>),
    /// The relay is bound to a loopback address: only programs on this
    /// computer can join.
    LoopbackOnly(SocketAddr),
}

/// The addresses a relay bound to `bound` can be reached at, from the
/// list of `interfaces`:
/// - bound to one address: that one only (a loopback one gives
///   [`Reach::LoopbackOnly`]);
/// - bound to `0.0.0.0`: every IPv4 address of an interface that is up and
///   not loopback;
/// - bound to `[::]`: every such IPv6 address, and the IPv4 ones too
///   unless the socket is IPv6-only (`v6_only`).
///
/// Left out: loopback, unspecified and multicast addresses, and IPv6
/// link-local ones (`fe80::/10`), which need a zone index that names the
/// student's interface, not ours. Each address appears once; IPv4 before
/// IPv6, IPv4 link-local (`169.254.0.0/16`, no DHCP server) last of its
/// family, otherwise in the operating system's order.
pub fn join_addresses(bound: SocketAddr, v6_only: bool, interfaces: &[InterfaceAddr]) -> Reach {
    let port = bound.port();
    let ip = bound.ip();
    if !ip.is_unspecified() {
        if ip.is_loopback() {
            return Reach::LoopbackOnly(bound);
        }
        let interface = interfaces
            .iter()
            .find(|i| i.ip == ip)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        return Reach::Network(vec![JoinAddr {
            addr: bound,
            interface,
        }]);
    }
    let wanted = |candidate: &IpAddr| match candidate {
        IpAddr::V4(_) => bound.is_ipv4() || !v6_only,
        IpAddr::V6(_) => bound.is_ipv6(),
    };
    let mut found: Vec<&InterfaceAddr> = interfaces
        .iter()
        .filter(|i| i.up && !i.loopback && wanted(&i.ip) && usable(&i.ip))
        .collect();
    // Stable: the operating system's order within each rank.
    found.sort_by_key(|i| rank(&i.ip));
    let mut out: Vec<JoinAddr> = Vec::new();
    for i in found {
        if out.iter().all(|a| a.addr.ip() != i.ip) {
            out.push(JoinAddr {
                addr: SocketAddr::new(i.ip, port),
                interface: i.name.clone(),
            });
        }
    }
    Reach::Network(out)
}

/// Whether a student elsewhere on the network could send to `ip`.
fn usable(ip: &IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_broadcast(),
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            let mapped = v6.to_ipv4_mapped().is_some();
            !link_local && !mapped
        }
    }
}

fn rank(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => 1,
        IpAddr::V4(_) => 0,
        IpAddr::V6(_) => 2,
    }
}

/// The name a student fills in, in the lines they copy.
fn name_placeholder(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "YOURNAME",
        Lang::Zh => "你的名字",
    }
}

/// The exact command a student types to join at `addr` with the
/// `udpchat` client (with the room's join code, if it has one).
pub fn client_command(addr: SocketAddr, code: Option<&str>, lang: Lang) -> String {
    let placeholder = name_placeholder(lang);
    match code {
        Some(code) => format!("udpchat --relay {addr} --nick {placeholder} --code {code}"),
        None => format!("udpchat --relay {addr} --nick {placeholder}"),
    }
}

/// What a student types into a course client that asks for a host and a
/// port (the classic dialect); with a join code, also what to type as the
/// name (`N name CODE`, section 6 of PROTOCOL.md).
pub fn course_client_line(addr: SocketAddr, code: Option<&str>, lang: Lang) -> String {
    let (label, name) = match lang {
        Lang::En => ("course client: ", ", name: "),
        Lang::Zh => ("课程客户端：", "，名字："),
    };
    let mut line = format!("{label}host {} port {}", addr.ip(), addr.port());
    if let Some(code) = code {
        let _ = write!(line, "{name}{} {code}", name_placeholder(lang));
    }
    line
}

/// The lines printed at start, after the `listening` line.
pub fn render(reach: &Reach, code: Option<&str>, lang: Lang) -> String {
    let mut s = String::new();
    match reach {
        Reach::Network(addrs) if addrs.is_empty() => s.push_str(match lang {
            Lang::En => {
                "where to join: this computer has no network address besides loopback, so students \
                 cannot reach it; connect it to the classroom network and restart the relay"
            }
            Lang::Zh => {
                "加入地址：这台电脑除了本机回环地址之外没有网络地址，学生无法连接；\
                 请把它连上教室的网络，然后重新启动中继"
            }
        }),
        Reach::Network(addrs) => {
            for (i, a) in addrs.iter().enumerate() {
                if i > 0 {
                    s.push('\n');
                }
                let interface = match (a.interface.is_empty(), lang) {
                    (true, _) => String::new(),
                    (false, Lang::En) => format!(" ({})", a.interface),
                    (false, Lang::Zh) => format!("（{}）", a.interface),
                };
                let _ = match lang {
                    Lang::En => write!(s, "students join at {}{interface}:", a.addr.ip()),
                    Lang::Zh => write!(s, "学生加入地址 {}{interface}：", a.addr.ip()),
                };
                push_lines(&mut s, a.addr, code, lang);
            }
        }
        Reach::LoopbackOnly(addr) => {
            let _ = match lang {
                Lang::En => write!(
                    s,
                    "only this computer can join at {} (a loopback address); to let students in, \
                     start the relay with --bind 0.0.0.0:{}:",
                    addr.ip(),
                    addr.port()
                ),
                Lang::Zh => write!(
                    s,
                    "只有这台电脑能加入 {}（本机回环地址）；要让学生加入，\
                     请用 --bind 0.0.0.0:{} 启动中继：",
                    addr.ip(),
                    addr.port()
                ),
            };
            push_lines(&mut s, *addr, code, lang);
        }
    }
    s
}

fn push_lines(s: &mut String, addr: SocketAddr, code: Option<&str>, lang: Lang) {
    let _ = write!(
        s,
        "\n  {}\n  {}",
        client_command(addr, code, lang),
        course_client_line(addr, code, lang)
    );
}

/// The where-to-join lines for a relay bound at `bound` (its actual
/// address, port included), asking the operating system for the
/// interfaces. If it cannot say, the lines say so. `code`: the room's
/// join code at start (`--join-code`), which the lines include.
pub fn where_to_join(bound: SocketAddr, v6_only: bool, code: Option<&str>, lang: Lang) -> String {
    match udpchat_udp::interface_addresses() {
        Ok(interfaces) => render(&join_addresses(bound, v6_only, &interfaces), code, lang),
        Err(e) => match lang {
            Lang::En => format!(
                "where to join: cannot list this computer's network addresses ({e}); \
                 students join at its address, port {}",
                bound.port()
            ),
            Lang::Zh => format!(
                "加入地址：无法列出这台电脑的网络地址（{e}）；学生用这台电脑的地址加入，端口 {}",
                bound.port()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: &str) -> InterfaceAddr {
        let ip: IpAddr = ip.parse().unwrap();
        InterfaceAddr {
            name: name.into(),
            ip,
            up: true,
            loopback: ip.is_loopback(),
        }
    }

    /// Made-up interface addresses: only parsed and formatted into lines,
    /// never sent to.
    fn classroom() -> Vec<InterfaceAddr> {
        vec![
            iface("lo", "127.0.0.1"),
            iface("lo", "::1"),
            iface("eth0", "169.254.7.7"),
            iface("wlan0", "192.168.1.20"), // parsed only, never sent to
            iface("wlan0", "fe80::1234"),
            iface("wlan0", "2001:db8::20"),
            InterfaceAddr {
                up: false,
                ..iface("eth1", "10.9.9.9") // parsed only, never sent to
            },
            iface("docker0", "172.17.0.1"), // parsed only, never sent to
            iface("wlan0", "192.168.1.20"), // parsed only, never sent to
        ]
    }

    fn ips(reach: &Reach) -> Vec<String> {
        match reach {
            Reach::Network(a) => a.iter().map(|a| a.addr.to_string()).collect(),
            Reach::LoopbackOnly(a) => vec![format!("loopback {a}")],
        }
    }

    #[test]
    fn ipv4_wildcard_lists_ipv4_interfaces_that_are_up_link_local_last() {
        let reach = join_addresses("0.0.0.0:10024".parse().unwrap(), false, &classroom());
        assert_eq!(
            ips(&reach),
            [
                "192.168.1.20:10024",
                "172.17.0.1:10024",
                "169.254.7.7:10024"
            ]
        );
    }

    #[test]
    fn ipv6_wildcard_lists_both_families_unless_v6_only() {
        let bound = "[::]:10024".parse().unwrap();
        assert_eq!(
            ips(&join_addresses(bound, false, &classroom())),
            [
                "192.168.1.20:10024",
                "172.17.0.1:10024",
                "169.254.7.7:10024",
                "[2001:db8::20]:10024"
            ]
        );
        assert_eq!(
            ips(&join_addresses(bound, true, &classroom())),
            ["[2001:db8::20]:10024"]
        );
    }

    #[test]
    fn a_specific_address_is_the_only_one() {
        let reach = join_addresses("192.168.1.20:4000".parse().unwrap(), false, &classroom());
        assert_eq!(
            reach,
            Reach::Network(vec![JoinAddr {
                addr: "192.168.1.20:4000".parse().unwrap(),
                interface: "wlan0".into()
            }])
        );
        assert_eq!(
            join_addresses("127.0.0.1:4000".parse().unwrap(), false, &classroom()),
            Reach::LoopbackOnly("127.0.0.1:4000".parse().unwrap())
        );
    }

    #[test]
    fn only_loopback_means_no_address() {
        let only_lo = [iface("lo", "127.0.0.1"), iface("lo", "::1")];
        let reach = join_addresses("0.0.0.0:10024".parse().unwrap(), false, &only_lo);
        assert_eq!(reach, Reach::Network(vec![]));
        assert!(render(&reach, None, Lang::En).contains("no network address besides loopback"));
        assert!(render(&reach, None, Lang::Zh).contains("没有网络地址"));
    }

    #[test]
    fn the_lines_are_what_a_student_types() {
        let reach = join_addresses("0.0.0.0:10024".parse().unwrap(), false, &classroom()[..4]);
        assert_eq!(
            render(&reach, None, Lang::En),
            "students join at 192.168.1.20 (wlan0):\n  \
             udpchat --relay 192.168.1.20:10024 --nick YOURNAME\n  \
             course client: host 192.168.1.20 port 10024\n\
             students join at 169.254.7.7 (eth0):\n  \
             udpchat --relay 169.254.7.7:10024 --nick YOURNAME\n  \
             course client: host 169.254.7.7 port 10024"
        );
        let v6 = Reach::Network(vec![JoinAddr {
            addr: "[2001:db8::20]:10024".parse().unwrap(),
            interface: "wlan0".into(),
        }]);
        assert_eq!(
            render(&v6, None, Lang::Zh),
            "学生加入地址 2001:db8::20（wlan0）：\n  \
             udpchat --relay [2001:db8::20]:10024 --nick 你的名字\n  \
             课程客户端：host 2001:db8::20 port 10024"
        );
    }

    #[test]
    fn loopback_only_says_how_to_let_students_in() {
        let text = render(
            &Reach::LoopbackOnly("127.0.0.1:4000".parse().unwrap()),
            None,
            Lang::En,
        );
        assert!(text.starts_with("only this computer can join at 127.0.0.1"));
        assert!(text.contains("--bind 0.0.0.0:4000"));
        assert!(text.ends_with(
            "\n  udpchat --relay 127.0.0.1:4000 --nick YOURNAME\n  course client: host 127.0.0.1 port 4000"
        ));
    }

    #[test]
    fn with_a_join_code_the_lines_carry_it() {
        let reach = join_addresses("0.0.0.0:10024".parse().unwrap(), false, &classroom()[..4]);
        let text = render(&reach, Some("maple7"), Lang::En);
        assert!(
            text.starts_with(
                "students join at 192.168.1.20 (wlan0):\n  \
                 udpchat --relay 192.168.1.20:10024 --nick YOURNAME --code maple7\n  \
                 course client: host 192.168.1.20 port 10024, name: YOURNAME maple7\n"
            ),
            "{text}"
        );
        assert!(render(&reach, Some("maple7"), Lang::Zh).ends_with("，名字：你的名字 maple7"));
    }
}
