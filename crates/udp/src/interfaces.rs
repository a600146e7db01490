//! The addresses of this computer's network interfaces, for the relay's
//! "where to join" lines at start. Read from the operating system
//! (`getifaddrs` on Linux, the BSDs and macOS); nothing is sent.

use std::io;
use std::net::IpAddr;

use crate::Socket;

/// One address of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// The interface's name (`eth0`, `wlan0`, `en0`); empty if unknown.
    pub name: String,
    /// The address.
    pub ip: IpAddr,
    /// Whether the interface is up (`IFF_UP`).
    pub up: bool,
    /// Whether it is a loopback interface (`IFF_LOOPBACK`).
    pub loopback: bool,
}

/// Every IPv4 and IPv6 address of every interface, in the order the
/// operating system lists them (interfaces without an IP address, such as
/// link-layer entries, are left out).
///
/// Where `getifaddrs` does not exist (Windows), the fallback is the
/// address each family's default route would leave from, found by
/// `connect`ing a UDP socket to a documentation address (192.0.2.1,
/// 2001:db8::1): a UDP `connect` only picks a route and sends nothing.
pub fn interface_addresses() -> io::Result<Vec<InterfaceAddr>> {
    imp::interface_addresses()
}

/// Whether an IPv6 socket accepts IPv6 only (`IPV6_V6ONLY`), so a relay
/// bound to `[::]` is not reachable at the IPv4 addresses too. `false` for
/// IPv4 sockets; where the option cannot be read, the platform's usual
/// default (`false` on Linux and macOS, `true` on Windows).
pub fn ipv6_only(socket: &impl Socket) -> bool {
    imp::ipv6_only(socket)
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
mod imp {
    use super::*;
    use std::ffi::CStr;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub(super) fn interface_addresses() -> io::Result<Vec<InterfaceAddr>> {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: `list` is a valid place for getifaddrs to store its list.
        if unsafe { libc::getifaddrs(&mut list) } == -1 {
            return Err(io::Error::last_os_error());
        }
        let mut found = Vec::new();
        let mut entry = list;
        while !entry.is_null() {
            // SAFETY: `entry` is a non-null node of the list getifaddrs
            // returned, which stays valid until freeifaddrs below.
            let ifa = unsafe { &*entry };
            entry = ifa.ifa_next;
            // SAFETY: ifa_addr is null or points to a sockaddr of the list.
            let Some(ip) = (unsafe { ip_of(ifa.ifa_addr) }) else {
                continue;
            };
            let name = if ifa.ifa_name.is_null() {
                String::new()
            } else {
                // SAFETY: a non-null ifa_name is a NUL-terminated string of the list.
                unsafe { CStr::from_ptr(ifa.ifa_name) }
                    .to_string_lossy()
                    .into_owned()
            };
            let flags = ifa.ifa_flags as libc::c_int;
            found.push(InterfaceAddr {
                name,
                ip,
                up: flags & libc::IFF_UP != 0,
                loopback: flags & libc::IFF_LOOPBACK != 0,
            });
        }
        // SAFETY: `list` came from getifaddrs and is freed once; no
        // reference into it outlives this call (names were copied).
        unsafe { libc::freeifaddrs(list) };
        Ok(found)
    }

    /// The IP address in `addr`, if it is an IPv4 or IPv6 one.
    ///
    /// # Safety
    /// `addr` is null or points to a valid sockaddr whose family says how
    /// large it is.
    unsafe fn ip_of(addr: *const libc::sockaddr) -> Option<IpAddr> {
        if addr.is_null() {
            return None;
        }
        // SAFETY: non-null and valid, by the caller.
        let family = libc::c_int::from(unsafe { (*addr).sa_family });
        match family {
            libc::AF_INET => {
                // SAFETY: the family says this is a sockaddr_in.
                let sin: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(addr.cast()) };
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this is a sockaddr_in6.
                let sin6: libc::sockaddr_in6 = unsafe { std::ptr::read_unaligned(addr.cast()) };
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }

    pub(super) fn ipv6_only(socket: &impl Socket) -> bool {
        crate::sockopt::int_option(socket.fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)
            .is_ok_and(|v| v != 0)
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
)))]
mod imp {
    use super::*;
    use std::net::UdpSocket;

    pub(super) fn interface_addresses() -> io::Result<Vec<InterfaceAddr>> {
        let mut found = Vec::new();
        for (local, probe) in [("0.0.0.0:0", "192.0.2.1:9"), ("[::]:0", "[2001:db8::1]:9")] {
            // connect() on UDP only chooses the route and the source address.
            let route = UdpSocket::bind(local).and_then(|s| s.connect(probe).map(|()| s));
            if let Ok(ip) = route.and_then(|s| s.local_addr()).map(|a| a.ip()) {
                found.push(InterfaceAddr {
                    name: String::new(),
                    ip,
                    up: true,
                    loopback: ip.is_loopback(),
                });
            }
        }
        Ok(found)
    }

    pub(super) fn ipv6_only(_socket: &impl Socket) -> bool {
        cfg!(windows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_can_be_read_and_loopback_is_flagged() {
        let found = interface_addresses().expect("getifaddrs");
        // A test machine may have no network at all, but the IPv4 address
        // of a loopback interface is a loopback address.
        for a in found.iter().filter(|a| a.loopback && a.ip.is_ipv4()) {
            assert!(a.ip.is_loopback(), "{a:?}");
        }
    }

    #[test]
    fn an_ipv4_socket_is_not_ipv6_only() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!ipv6_only(&socket));
    }
}
