//! The local time zone's offset from UTC, which std does not know: for the
//! relay's `--local-time` transcript.
//!
//! `localtime_r` of the C library (Unix), rather than a crate: `time`'s
//! local offset refuses to answer in a process with more than one thread
//! (the relay has its console thread), and `chrono` would bring a time
//! zone database reader for one number. `localtime_r` is thread-safe as
//! long as nothing changes the environment (`TZ`) meanwhile, and the relay
//! never does.

use std::io;

/// The local offset from UTC, in seconds east (UTC+8 is 28,800), that
/// applies at `unix_secs` (summer time included). `Unsupported` where the
/// C library does not say (then callers write UTC).
pub fn local_offset_seconds(unix_secs: i64) -> io::Result<i32> {
    imp::local_offset_seconds(unix_secs)
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

    #[allow(clippy::useless_conversion)] // time_t is 32 bits on some platforms
    pub(super) fn local_offset_seconds(unix_secs: i64) -> io::Result<i32> {
        // The type is localtime_r's time_t, inferred: musl's libc crate
        // deprecates naming it (it becomes 64 bits on 32-bit musl).
        let t = unix_secs
            .try_into()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "time out of range"))?;
        // SAFETY: an all-zero tm is a valid value of this plain C struct
        // (its tm_zone pointer is only written, never read, here).
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: `t` and `tm` are live locals; localtime_r writes only `tm`.
        if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return Err(io::Error::last_os_error());
        }
        // At most ±26 hours anywhere; anything else is not an offset.
        i32::try_from(tm.tm_gmtoff)
            .ok()
            .filter(|s| s.abs() <= 26 * 3600)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "absurd UTC offset"))
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

    pub(super) fn local_offset_seconds(_unix_secs: i64) -> io::Result<i32> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the local time zone is not known on this system",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_a_plausible_number_of_seconds() {
        let offset = local_offset_seconds(1_795_307_507).expect("localtime_r");
        assert!(offset.abs() <= 14 * 3600, "{offset}");
        assert_eq!(offset % 60, 0, "{offset}");
    }
}
