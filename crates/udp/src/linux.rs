//! The raw Linux primitives the other modules build on: `sockaddr`
//! conversions, and `mmsghdr` slots for `recvmmsg` and
//! `sendmmsg`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

pub(crate) use crate::sockopt::set_int_option;

/// An all-zero `sockaddr_storage`, to be filled by the kernel.
pub(crate) fn empty_sockaddr() -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid value of this plain C struct.
    unsafe { std::mem::zeroed() }
}

/// The std address in a `sockaddr_storage` the kernel filled, if it is IPv4
/// or IPv6 and `len` covers it.
pub(crate) fn sockaddr_to_std(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe {
                std::ptr::read_unaligned((storage as *const libc::sockaddr_storage).cast())
            };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe {
                std::ptr::read_unaligned((storage as *const libc::sockaddr_storage).cast())
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `addr` as the kernel takes it.
pub(crate) fn sockaddr_from_std(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut storage = empty_sockaddr();
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// One `sendmmsg`/`recvmmsg` slot: the address `name` (of `len` bytes; a
/// null name for a connected send) and one buffer. The pointers must stay
/// valid until the system call returns.
pub(crate) fn mmsghdr(
    name: Option<&mut libc::sockaddr_storage>,
    len: libc::socklen_t,
    iov: &mut [libc::iovec],
) -> libc::mmsghdr {
    // SAFETY: all-zero is a valid msghdr; the fields that matter are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(name) = name {
        header.msg_name = (name as *mut libc::sockaddr_storage).cast();
        header.msg_namelen = len;
    }
    header.msg_iovlen = iov.len() as _;
    header.msg_iov = iov.as_mut_ptr();
    libc::mmsghdr {
        msg_hdr: header,
        msg_len: 0,
    }
}

/// `recvmmsg` into `headers`, without blocking. Returns how many arrived.
///
/// # Safety
/// Every header's name, iovec and buffer pointers must be valid for writes
/// of their stated lengths for the duration of the call (build them with
/// [`mmsghdr`] from buffers that outlive it).
pub(crate) unsafe fn recvmmsg(fd: RawFd, headers: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: the caller guarantees the pointers in `headers`; the kernel
    // writes at most the stated lengths into them.
    let rc = unsafe {
        libc::recvmmsg(
            fd,
            headers.as_mut_ptr(),
            headers.len() as libc::c_uint,
            // The flags are a c_int in glibc's prototype, a c_uint in
            // musl's (the static release builds).
            libc::MSG_DONTWAIT as _,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((rc as usize).min(headers.len()))
    }
}

/// `sendmmsg` of `headers`. Returns how many the kernel took.
///
/// # Safety
/// Every header's name, iovec and buffer pointers must be valid for reads
/// of their stated lengths for the duration of the call.
pub(crate) unsafe fn sendmmsg(fd: RawFd, headers: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: the caller guarantees the pointers in `headers`; the kernel
    // only reads through them.
    let rc = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), headers.len() as libc::c_uint, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_conversion_round_trips() {
        // Converted to sockaddr and back only; nothing is sent to them.
        for addr in [
            "127.0.0.1:5",
            "[::1]:6",
            "[::ffff:10.0.0.1]:7",
            "[fe80::1%2]:8",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let (storage, len) = sockaddr_from_std(addr);
            assert_eq!(sockaddr_to_std(&storage, len), Some(addr));
        }
    }
}
