//! Command-line flags of `udpchat-relay`, and how they become a room
//! [`Config`](crate::Config) and the shell's own settings.
//!
//! Every flag has a default that suits a classroom, so `udpchat-relay` with
//! no flags is a working relay on UDP port 10024 of every interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use udpchat_proto::{JoinCode, Lang, Nick};

use crate::Config;

/// What `--version` prints after the name: the version and the commit it
/// was built from. The commit is known only when the build set
/// `UDPCHAT_COMMIT` (dist/build.sh does), so ordinary builds never rebuild
/// for a new commit: they say "commit unknown".
fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let commit = option_env!("UDPCHAT_COMMIT").filter(|c| !c.is_empty());
        format!(
            "{} (commit {})",
            env!("CARGO_PKG_VERSION"),
            commit.unwrap_or("unknown")
        )
    })
}

/// A UDP chat relay for classrooms: one room, many clients, one UDP socket.
///
/// Clients join with `N <nick>` (classic dialect, e.g. `nc -u HOST 10024`) or
/// `HELLO udpchat/1 ...` (the `udpchat` client). Lines typed on the relay's
/// standard input are sent to the room as messages from the host; `/help`
/// lists the operator commands.
#[derive(Debug, Parser)]
#[command(name = "udpchat-relay", version = version(), about, long_about = None)]
#[command(after_help = "\
At start the relay prints `udpchat-relay listening on ADDR`, then where students can join:
every network address of this computer it is reachable at (loopback left out), each with
the exact line a student types, e.g.
  students join at 192.168.1.20 (wlan0):
    udpchat --relay 192.168.1.20:10024 --nick YOURNAME
    course client: host 192.168.1.20 port 10024
Operator console: each line typed on standard input is sent to the room as the host;
/who lists the members (address, dialect, joined at, idle), /kick NICK [reason] removes one, /quit [reason] closes the relay,
/help lists these. In a terminal it is a line editor (arrows, history) showing the room above
the prompt (chat, joins, leaves, moderation; private messages as: alice → bob (private)),
with log lines (warnings; RUST_LOG=info for all) above it too. Ctrl-C clears a half-typed
line and stops the relay on an empty one; Ctrl-D only says how to stop. From a pipe or file it
reads plain lines, without a room view. End of input does not stop the relay. Started in the
background (udpchat-relay &) or with --no-console, the relay has no console, says so, and keeps relaying.
SIGINT or SIGTERM: every member is told the relay is closing, the transcript is flushed, exit 0.
Transcript: created readable by you only (0600; an existing one is tightened), never through a
symbolic link; numbering goes on after a restart; start and stop are recorded. Example:
  udpchat-relay --transcript lesson.log --local-time --no-console &
Durations: 90s, 5m, 2h, 500ms or plain seconds (90).
Hands and attendance: students raise a hand with /hand in udpchat or H [question] in nc;
/hands lists the queue, /next calls on the first (the student is told). /attendance lists
who is present, late (first joined after --late-after) and absent (on --roster, never came);
/attendance save writes the --attendance CSV now (it is also written when the relay stops).
Example: a lesson with a class list, late after 5 minutes, attendance saved as CSV:
  udpchat-relay --roster class-3b.txt --late-after 5m --attendance 3b-today.csv
Example: a classroom whose 30 computers all reach the relay through one NAT address:
  udpchat-relay --max-per-ip 40
Example: keep your own name, and names that look like it, from students (host, teacher, admin,
relay, 主持人, 老师, 管理员, 服务器 and 系统消息 are always kept):
  udpchat-relay --reserve Ms.Li --reserve 李老师

Example: only students who know today's code join, bans kept across restarts:
  udpchat-relay --join-code maple7 --ban-file bans.txt
  (students type: N alice maple7, or: udpchat --code maple7 ...)
Moderation on the console: /ban NICK|IP [10m] [reason], /unban, /bans, /mute NICK [5m], /unmute,
/lock, /unlock, /code [CODE|off], /slow SECONDS, /rename NICK NEW, /moderated on|off,
/voice NICK, /devoice NICK, /announce TEXT (then: how many have seen it).
Example: a lecture where students raise a hand and the teacher gives the word:
  udpchat-relay --moderated     (then on the console: /voice alice, /devoice alice)
Logging: RUST_LOG=debug|info|warn|error (default info; warn while the console's line editor is
up), on standard error, or above the editor's prompt.")]
pub struct Args {
    /// Address and port to listen on (IPv4 or IPv6, e.g. 127.0.0.1:10024 or [::]:10024).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:10024")]
    pub bind: SocketAddr,

    /// Most members in the room; more joins get a "room full" error.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,

    /// Structured members silent this long are evicted (they ping every quarter of it).
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Classic (N/M/Q) members, which never ping, are evicted after this much silence.
    #[arg(long, value_name = "DUR", default_value = "2h", value_parser = parse_duration)]
    pub classic_idle_timeout: Duration,

    /// A classic `N nick` from a new port of the same IP address takes the nickname back once its
    /// old address has been silent this long (a course client restarted without `Q`); 0s: never.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration_or_zero)]
    pub classic_reclaim_after: Duration,

    /// A member whose port is reported unreachable (ICMP from its own IP address; its client may have
    /// died) is sent nothing more, and leaves only if it stays silent this long (or reports keep
    /// coming this long); anything it sends restores it, and a restarted structured client takes its
    /// nickname back ("reconnected"); 0s: it leaves at the first report.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration_or_zero)]
    pub unreachable_grace: Duration,

    /// Refuse the classic dialect; accept only structured clients (HELLO with a cookie).
    #[arg(long)]
    pub no_classic: bool,

    /// Let structured clients join without a session key (`HELLO` without `key=`: clients older
    /// than this relay, or a HELLO typed by hand). Such members are authenticated by their address
    /// only, so another computer on the network can speak as them; by default their join is refused
    /// with `key-required`.
    #[arg(long)]
    pub allow_keyless: bool,

    /// Append every room event (joins, leaves, chat, host messages) to FILE, one timestamped line each.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,

    /// Also write private messages to the transcript, and show their text on the console (without
    /// it, the console shows only "alice → bob (private)").
    #[arg(long, requires = "transcript")]
    pub transcript_private: bool,

    /// Write transcript times in the local time zone with its offset
    /// (2026-11-22T08:31:47.123+08:00) instead of UTC (2026-11-22T00:31:47.123Z).
    #[arg(long, requires = "transcript")]
    pub local_time: bool,

    /// Do not read operator commands from standard input, even on a terminal
    /// (e.g. `udpchat-relay --no-console` under a script that uses the terminal).
    #[arg(long)]
    pub no_console: bool,

    /// Language of the notices and error reasons members see.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    pub lang: LangArg,

    /// Datagrams one address may send in a burst before it is rate-limited.
    #[arg(long, value_name = "N", default_value_t = 80, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,

    /// Datagrams per second one address may send on average.
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_per_sec: u32,

    /// Most members from one IP address (IPv4-mapped IPv6 counted as IPv4); more joins get an
    /// "ip-full" error (0 = no limit). Students behind one NAT share an address: raise it for such
    /// a classroom, e.g. --max-per-ip 40. Besides, each IP address, whatever its ports, may send at
    /// most 4 times one address's --rate-burst/--rate-per-sec, start memberships in a burst of
    /// twice this (at least 8) plus 1 a second, and draw limited reply bytes (PROTOCOL.md
    /// section 9).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_per_ip: u32,

    /// Room events kept for clients that ask to have missed events resent.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub history: u32,

    /// Recent room events replayed to a structured client when it joins (0 = none).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub history_on_join: u32,

    /// Announce joins and leaves ("* alice joined") only while the room holds at most N members,
    /// the joiner or leaver counted (0 = never). Each announcement goes to every member, so C
    /// joins cost C²/2 datagrams; above N they are only logged and written to the transcript
    /// (with "-" for a sequence number). Members still list the room with WHO.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub announce_limit: u32,

    /// Datagrams held while the socket's send buffer is full; beyond this they are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub send_queue: u32,

    /// Socket receive buffer to ask for, bytes (0 = the system's default). A large one keeps a
    /// flood from crowding honest datagrams out before the rate limit sees them; as root it may
    /// exceed net.core.rmem_max (SO_RCVBUFFORCE). The size obtained is logged at start.
    #[arg(long, value_name = "BYTES", default_value_t = crate::server::DEFAULT_RECV_BUFFER as u64,
          value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub recv_buffer: u64,

    /// Keep NAME, and every nickname that looks like it (other letter case, Cyrillic or full-width
    /// look-alike letters), from members: asking for it draws a "nick-reserved" error. Repeat for
    /// more names. Always kept: host, teacher, admin, relay, 主持人, 老师, 管理员, 服务器, 系统消息.
    #[arg(long = "reserve", value_name = "NAME", value_parser = parse_reserved)]
    pub reserve: Vec<Nick>,
    /// New members need this join code (1 to 16 letters and digits, any case): classic clients
    /// join with `N name CODE` (a course client that asks for a name: type `name CODE`), the
    /// udpchat client with `--code CODE`. Change it on the console with /code.
    #[arg(long, value_name = "CODE", value_parser = parse_join_code)]
    pub join_code: Option<JoinCode>,

    /// Start with the room locked: nobody new can join until /unlock on the console.
    #[arg(long)]
    pub locked: bool,

    /// Start in moderated mode: only the host and members given a voice (/voice NICK) speak to
    /// the room; the others may still send private messages and raise a hand. /moderated off
    /// ends it.
    #[arg(long)]
    pub moderated: bool,

    /// Slow mode: the least time between one member's chat messages (0 = off); /slow changes it.
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = parse_duration_or_zero)]
    pub slow: Duration,

    /// Keep the bans (/ban) in FILE across restarts: read at start, rewritten after each change.
    #[arg(long, value_name = "FILE")]
    pub ban_file: Option<PathBuf>,

    /// The class list for attendance: one expected nickname a line (blank lines and lines
    /// starting with # are skipped; matched like nicknames, so letter case does not matter).
    /// /attendance then also names who is absent.
    #[arg(long, value_name = "FILE")]
    pub roster: Option<PathBuf>,

    /// Write attendance as CSV to FILE (replaced, readable by you only) when the relay stops and
    /// on /attendance save: nick, address, first join, last leave, minutes present, messages
    /// sent, on the roster or not, present/late/absent.
    #[arg(long, value_name = "FILE")]
    pub attendance: Option<PathBuf>,

    /// A student whose first join comes later than this after the relay started counts as late.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration_or_zero)]
    pub late_after: Duration,

    /// How often to log a statistics line (0 = never).
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration_or_zero)]
    pub stats_interval: Duration,
}

/// `--lang` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl From<LangArg> for Lang {
    fn from(lang: LangArg) -> Lang {
        match lang {
            LangArg::En => Lang::En,
            LangArg::Zh => Lang::Zh,
        }
    }
}

impl Args {
    /// The room configuration these flags ask for.
    pub fn room_config(&self) -> Config {
        // Structured clients ping every quarter of the idle timeout (15 s for
        // the default 60 s), so three lost pings in a row do not evict them.
        let ping_interval = (self.idle_timeout / 4).max(Duration::from_secs(1));
        Config {
            max_clients: self.max_clients as usize,
            max_per_ip: self.max_per_ip as usize,
            idle_timeout: self.idle_timeout,
            classic_idle_timeout: self.classic_idle_timeout,
            ping_interval,
            classic: !self.no_classic,
            lang: self.lang.into(),
            rate_burst: self.rate_burst,
            rate_per_sec: self.rate_per_sec,
            history: self.history as usize,
            history_on_join: self.history_on_join as usize,
            announce_limit: self.announce_limit as usize,
            classic_reclaim_after: self.classic_reclaim_after,
            unreachable_grace: self.unreachable_grace,
            allow_keyless: self.allow_keyless,
            reserved: {
                let mut reserved = Config::default().reserved;
                reserved.extend(self.reserve.iter().cloned());
                reserved
            },
            locked: self.locked,
            join_code: self.join_code.clone(),
            slow_mode: self.slow,
            moderated: self.moderated,
            late_after: self.late_after,
            ..Config::default()
        }
    }

    /// The statistics interval, or `None` if statistics are off.
    pub fn stats_interval(&self) -> Option<Duration> {
        (!self.stats_interval.is_zero()).then_some(self.stats_interval)
    }
}

/// Parses a `--reserve` name: it must be a valid nickname (one nobody could
/// type could not need reserving).
fn parse_reserved(s: &str) -> Result<Nick, String> {
    Nick::new(s).map_err(|e| format!("{s:?} is not a nickname: {e}"))
}

/// Parses `90s`, `5m`, `2h`, `500ms`, `1d` or plain seconds (`90`); zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(s)?;
    if d.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(d)
}

/// A join code: 1 to 16 ASCII letters and digits.
pub fn parse_join_code(s: &str) -> Result<JoinCode, String> {
    JoinCode::new(s).map_err(|e| e.to_string())
}

/// Like [`parse_duration`], but accepts zero.
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let expected = || format!("{s:?} is not a duration; write e.g. 90s, 5m, 2h, 500ms or 90");
    if number.is_empty() {
        return Err(expected());
    }
    let n: u64 = number.parse().map_err(|_| expected())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(expected()),
    };
    // A year is plenty; refusing more keeps Instant arithmetic from overflowing.
    const MAX_MILLIS: u64 = 366 * 86_400_000;
    match n.checked_mul(millis_per_unit) {
        Some(ms) if ms <= MAX_MILLIS => Ok(Duration::from_millis(ms)),
        _ => Err(format!("{s:?} is too long; at most 366 days")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("150"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "s",
            "5x",
            "-5s",
            "1.5h",
            "0",
            "0s",
            "99999999999999999999",
            "400d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn no_flags_give_classroom_defaults() {
        let args = Args::try_parse_from(["udpchat-relay"]).unwrap();
        assert_eq!(args.bind, "0.0.0.0:10024".parse().unwrap());
        let config = args.room_config();
        assert_eq!(config.max_clients, 1024);
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.ping_interval, Duration::from_secs(15));
        assert_eq!(config.classic_idle_timeout, Duration::from_secs(7200));
        assert!(config.classic);
        assert_eq!(config.lang, Lang::En);
        assert_eq!((config.rate_burst, config.rate_per_sec), (80, 40));
        assert_eq!((config.history, config.history_on_join), (1024, 20));
        assert_eq!(config.announce_limit, 200);
        assert_eq!(config.max_per_ip, 4);
        assert_eq!(args.stats_interval(), Some(Duration::from_secs(60)));
        assert_eq!(args.recv_buffer, 8 * 1024 * 1024);
        assert_eq!(config.reserved.len(), udpchat_room::RESERVED_NICKS.len());
    }

    #[test]
    fn reserve_adds_names_to_the_built_in_ones() {
        let args =
            Args::try_parse_from(["udpchat-relay", "--reserve", "Ms.Li", "--reserve", "李老师"])
                .unwrap();
        let reserved = args.room_config().reserved;
        let names: Vec<&str> = reserved.iter().map(|n| n.as_str()).collect();
        assert!(
            names.contains(&"teacher") && names.contains(&"主持人"),
            "{names:?}"
        );
        assert!(names.ends_with(&["Ms.Li", "李老师"]), "{names:?}");
        let err = Args::try_parse_from(["udpchat-relay", "--reserve", "Ms Li"]).unwrap_err();
        assert!(err.to_string().contains("spaces are not allowed"), "{err}");
    }

    #[test]
    fn max_per_ip_is_a_flag_and_zero_means_no_limit() {
        let config = |v: &str| {
            Args::try_parse_from(["udpchat-relay", "--max-per-ip", v])
                .unwrap()
                .room_config()
                .max_per_ip
        };
        assert_eq!(config("40"), 40);
        assert_eq!(config("0"), 0);
        assert!(Args::try_parse_from(["udpchat-relay", "--max-per-ip", "-1"]).is_err());
    }

    #[test]
    fn recv_buffer_accepts_zero_and_refuses_absurd_sizes() {
        let args = Args::try_parse_from(["udpchat-relay", "--recv-buffer", "0"]).unwrap();
        assert_eq!(args.recv_buffer, 0);
        assert!(Args::try_parse_from(["udpchat-relay", "--recv-buffer", "4294967296"]).is_err());
    }

    #[test]
    fn ipv6_bind_and_flags_parse() {
        let args = Args::try_parse_from([
            "udpchat-relay",
            "--bind",
            "[::]:10024",
            "--lang",
            "zh",
            "--no-classic",
            "--idle-timeout",
            "2m",
            "--stats-interval",
            "0",
        ])
        .unwrap();
        assert!(args.bind.is_ipv6());
        let config = args.room_config();
        assert_eq!(config.lang, Lang::Zh);
        assert!(!config.classic);
        assert_eq!(config.ping_interval, Duration::from_secs(30));
        assert_eq!(args.stats_interval(), None);
    }

    #[test]
    fn attendance_flags_reach_the_room_and_the_shell() {
        let args = Args::try_parse_from(["udpchat-relay"]).unwrap();
        assert_eq!(args.room_config().late_after, Duration::from_secs(600));
        assert_eq!(args.roster, None);
        assert_eq!(args.attendance, None);
        let args = Args::try_parse_from([
            "udpchat-relay",
            "--roster",
            "class.txt",
            "--attendance",
            "today.csv",
            "--late-after",
            "5m",
        ])
        .unwrap();
        assert_eq!(args.room_config().late_after, Duration::from_secs(300));
        assert_eq!(
            args.roster.as_deref(),
            Some(std::path::Path::new("class.txt"))
        );
        assert_eq!(
            args.attendance.as_deref(),
            Some(std::path::Path::new("today.csv"))
        );
        assert!(Args::try_parse_from(["udpchat-relay", "--late-after", "soon"]).is_err());
    }

    #[test]
    fn transcript_private_needs_transcript() {
        assert!(Args::try_parse_from(["udpchat-relay", "--transcript-private"]).is_err());
    }

    #[test]
    fn local_time_needs_transcript_and_no_console_is_a_flag() {
        assert!(Args::try_parse_from(["udpchat-relay", "--local-time"]).is_err());
        let args = Args::try_parse_from([
            "udpchat-relay",
            "--transcript",
            "t.log",
            "--local-time",
            "--no-console",
        ])
        .unwrap();
        assert!(args.local_time && args.no_console);
        let args = Args::try_parse_from(["udpchat-relay"]).unwrap();
        assert!(!args.local_time && !args.no_console);
    }

    #[test]
    fn moderation_flags_reach_the_room_config() {
        let args = Args::try_parse_from([
            "udpchat-relay",
            "--join-code",
            "Maple7",
            "--locked",
            "--slow",
            "30",
            "--ban-file",
            "bans.txt",
            "--moderated",
        ])
        .unwrap();
        let config = args.room_config();
        assert!(config.moderated);
        assert_eq!(
            config.join_code.as_ref().map(|c| c.as_str()),
            Some("Maple7")
        );
        assert!(config.locked);
        assert_eq!(config.slow_mode, Duration::from_secs(30));
        assert_eq!(args.ban_file, Some(PathBuf::from("bans.txt")));
        let defaults = Args::try_parse_from(["udpchat-relay"])
            .unwrap()
            .room_config();
        assert!(defaults.join_code.is_none() && !defaults.locked && !defaults.moderated);
        assert!(defaults.slow_mode.is_zero());
        assert!(Args::try_parse_from(["udpchat-relay", "--join-code", "two words"]).is_err());
        assert!(Args::try_parse_from(["udpchat-relay", "--join-code", "a-b"]).is_err());
    }
}
