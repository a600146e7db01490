//! The relay's memory and CPU time, read from `/proc/<pid>` (Linux).

use std::fs;
use std::io;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Current resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`.
pub fn read(pid: u32) -> io::Result<Usage> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}: no {what}"),
        )
    };
    Ok(Usage {
        peak_rss_kib: status_kib(&status, "VmHWM:").ok_or_else(|| bad("VmHWM"))?,
        rss_kib: status_kib(&status, "VmRSS:").ok_or_else(|| bad("VmRSS"))?,
        cpu_ticks: stat_cpu_ticks(&stat).ok_or_else(|| bad("utime/stime"))?,
    })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn ticks_per_sec() -> f64 {
    udpchat_udp::host::clock_ticks_per_second().map_or(100.0, |t| t as f64)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// utime + stime: fields 14 and 15, counted after the `)` that ends the
/// command name (which may itself hold spaces and parentheses).
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ")" the first field is field 3 (state); utime is field 14.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let usage = read(std::process::id()).unwrap();
        assert!(usage.peak_rss_kib > 0);
        assert!(usage.peak_rss_kib >= usage.rss_kib);
    }

    #[test]
    fn stat_with_odd_command_name() {
        let stat = "1234 (a b) c)) S 1 1 1 0 -1 4194560 100 0 0 0 17 4 0 0 20 0 1 0 5 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(21));
    }

    #[test]
    fn missing_process_is_an_error() {
        assert!(read(u32::MAX).is_err());
    }
}
