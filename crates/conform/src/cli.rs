//! The command line: `udpchat-conform relay HOST:PORT [options]` and
//! `udpchat-conform client [options] -- COMMAND ...`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use udpchat_proto::{Lang, DEFAULT_PORT};

/// Checks a udpchat relay against PROTOCOL.md.
#[derive(Debug, Parser)]
#[command(name = "udpchat-conform", version, about, long_about = None)]
#[command(after_help = "\
Examples:
  udpchat-conform relay 127.0.0.1:10024
  udpchat-conform relay 192.168.1.20:10024 --junit report.xml --json report.json
  udpchat-conform relay localhost --lang zh --only classic.text
  udpchat-conform client -- udpchat --relay {addr} --nick alice

Exit status: 0 when no MUST check failed (a skipped check is no failure),
1 when a MUST check failed, 2 for a usage error or a relay that does not
answer at all.")]
pub struct Args {
    /// What to check.
    #[command(subcommand)]
    pub command: Command,
}

/// The modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Play clients against a relay and check what it sends.
    #[command(after_help = "\
Every check has a stable id (e.g. classic.text.spaces-kept), names the
PROTOCOL.md section it tests and its level (MUST, SHOULD, MAY), and ends
PASS, FAIL (with the datagrams sent and received) or SKIP (with why). A
relay that only speaks the classic dialect skips the structured checks as
one group. The kit sends at most 125 datagrams a second, waits at most
--timeout for each answer, and makes every member it joined quit.

Example:
  udpchat-conform relay 127.0.0.1:10024 --junit report.xml")]
    Relay(RelayArgs),
    /// Play the relay for a client and check what it sends and prints.
    #[command(after_help = "\
The kit binds a UDP socket on 127.0.0.1 and, for every check, starts
COMMAND afresh with the kit's address in place of {addr} (HOST:PORT),
{host} and {port} in its arguments, and in the environment variable
UDPCHAT_RELAY. It types lines into the client's stdin, answers as a relay
would, and reads what the client prints on stdout; at the end of each check
the client is killed. A client that joins with N (classic) skips the
structured checks (retransmission, RESEND, rejoin).

Examples:
  udpchat-conform client -- udpchat --relay {addr} --nick alice
  udpchat-conform client --name alice -- python3 my_client.py {host} {port}
  udpchat-conform client --junit report.xml -- ./chat-client {addr}")]
    Client(ClientArgs),
}

/// `udpchat-conform client`.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// The client's command and its arguments, after `--`; `{addr}`,
    /// `{host}` and `{port}` become the kit's address.
    #[arg(value_name = "COMMAND", required = true, num_args = 1.., last = true)]
    pub command: Vec<String>,

    /// How long to wait for what the client owes (e.g. 2s, 800ms); waits
    /// for retransmissions are at least 3 s.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// For a client that asks for a name first (a course client): the kit
    /// types NAME as the first line of its input.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Also write the report as JUnit XML to FILE (for CI).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Language of the report's words and check titles.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    pub lang: LangArg,

    /// Run only the checks whose id starts with PREFIX (repeatable), e.g.
    /// --only client.join.
    #[arg(long, value_name = "PREFIX")]
    pub only: Vec<String>,
}

/// `udpchat-conform relay`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// The relay's address: HOST:PORT, or HOST for port 10024.
    #[arg(value_name = "HOST:PORT")]
    pub target: String,

    /// How long to wait for each answer the relay owes (e.g. 1.5s, 800ms).
    #[arg(long, value_name = "DUR", default_value = "1.5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Also write the report as JUnit XML to FILE (for CI).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Language of the report's words and check titles.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    pub lang: LangArg,

    /// Run only the checks whose id starts with PREFIX (repeatable), e.g.
    /// --only classic.join --only ext.who.
    #[arg(long, value_name = "PREFIX")]
    pub only: Vec<String>,
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

/// `1.5s`, `800ms`, `2` (seconds): between 50 ms and 60 s.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(secs) = s.strip_suffix('s') {
        (secs, 1.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 1.5s or 800ms"))?;
    let secs = value * scale;
    if !(0.05..=60.0).contains(&secs) {
        return Err(format!("{s} is out of range; use 50ms to 60s"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The relay's address from `HOST:PORT` or `HOST` (port 10024).
pub fn resolve(target: &str) -> Result<SocketAddr, String> {
    let with_port = if target.parse::<SocketAddr>().is_ok() || has_port(target) {
        target.to_owned()
    } else if target.contains(':') && !target.starts_with('[') {
        format!("[{target}]:{DEFAULT_PORT}")
    } else {
        format!("{target}:{DEFAULT_PORT}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "cannot find the address {target:?}: {e}; write HOST:PORT, e.g. 127.0.0.1:10024"
            )
        })?
        .next()
        .ok_or_else(|| format!("{target:?} has no address; write HOST:PORT, e.g. 127.0.0.1:10024"))
}

/// `host:123` or `[::1]:123`.
fn has_port(target: &str) -> bool {
    let tail = match target.rsplit_once("]:") {
        Some((_, port)) => port,
        None => match target.split_once(':') {
            Some((_, port)) if !port.contains(':') => port,
            _ => return false,
        },
    };
    tail.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_milliseconds() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("800ms"), Ok(Duration::from_millis(800)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_host_without_a_port_gets_the_default_port() {
        assert_eq!(resolve("127.0.0.1:4000").unwrap().port(), 4000);
        assert_eq!(resolve("127.0.0.1").unwrap().port(), DEFAULT_PORT);
        assert_eq!(resolve("[::1]:4000").unwrap().port(), 4000);
        assert_eq!(resolve("::1").unwrap().port(), DEFAULT_PORT);
        assert_eq!(resolve("localhost:4000").unwrap().port(), 4000);
    }

    #[test]
    fn client_mode_takes_the_command_after_the_double_dash() {
        use clap::CommandFactory;
        let args = Args::try_parse_from([
            "udpchat-conform",
            "client",
            "--name",
            "carol",
            "--",
            "python3",
            "client.py",
            "--port",
            "{port}",
        ])
        .expect("parses");
        let Command::Client(client) = args.command else {
            panic!("client mode");
        };
        assert_eq!(client.command, ["python3", "client.py", "--port", "{port}"]);
        assert_eq!(client.name.as_deref(), Some("carol"));
        assert!(Args::try_parse_from(["udpchat-conform", "client"]).is_err());
        let mut cmd = Args::command();
        let help = cmd
            .find_subcommand_mut("client")
            .expect("client")
            .render_long_help()
            .to_string();
        assert!(
            help.contains("udpchat-conform client -- udpchat --relay {addr} --nick alice"),
            "{help}"
        );
    }

    #[test]
    fn help_has_an_example() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        assert!(
            help.contains("udpchat-conform relay 127.0.0.1:10024"),
            "{help}"
        );
    }
}
