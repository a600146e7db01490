//! Process tuning for the benchmark: more open files, a thread pinned to
//! one CPU, the kernel's clock tick. Linux only; elsewhere they say
//! `Unsupported` (the benchmark itself is Linux only).

use std::io;

#[cfg(target_os = "linux")]
use std::mem;

#[cfg(target_os = "linux")]
/// Raises the soft limit on open files to the hard limit (10,000 clients need
/// 10,000 descriptors). Returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: lim is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    Ok(lim.rlim_cur as u64)
}

/// Pins the calling thread to `cpu` (`None`: allows every CPU again).
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpu: Option<usize>) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET stays in bounds
    // for cpu < CPU_SETSIZE, checked below.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    let cpus = match cpu {
        Some(c) => c..c + 1,
        None => {
            0..std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .max(1024)
        }
    };
    for c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "CPU number too large",
            ));
        }
        // SAFETY: c < CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t; pid 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clock ticks per second (`_SC_CLK_TCK`), the unit of CPU times in
/// `/proc/PID/stat`.
#[cfg(target_os = "linux")]
pub fn clock_ticks_per_second() -> io::Result<u64> {
    // SAFETY: sysconf only reads its argument.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t <= 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(t as u64)
    }
}

#[cfg(not(target_os = "linux"))]
fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "Linux only"))
}

/// Not Linux: unsupported.
#[cfg(not(target_os = "linux"))]
pub fn raise_fd_limit() -> io::Result<u64> {
    unsupported()
}

/// Not Linux: unsupported.
#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(_cpu: Option<usize>) -> io::Result<()> {
    unsupported()
}

/// Not Linux: unsupported.
#[cfg(not(target_os = "linux"))]
pub fn clock_ticks_per_second() -> io::Result<u64> {
    unsupported()
}
