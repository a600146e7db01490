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
  udpchat-conform relay class-server.local:10024 --junit report.xml --json report.json
  udpchat-conform relay localhost --lang zh --only classic.text
  udpchat-conform class class.txt --html class.html
  udpchat-conform client -- udpchat --relay {addr} --nick alice

Exit status (relay, client): 0 when no MUST check failed (a skipped check
is no failure), 1 when a MUST check failed, 2 for a usage error, a relay
that does not answer at all or a client that cannot be started. Exit
status (class): 0 when every target was checked, 2 for a bad class file.")]
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

Examples:
  udpchat-conform relay 127.0.0.1:10024 --junit report.xml
  udpchat-conform relay 127.0.0.1:10024 --loss 0.2 --dup 0.1 --reorder 0.1 --seed 7")]
    Relay(RelayArgs),
    /// Check every student's program named in a class file and write one
    /// HTML page: a matrix of students × checks.
    #[command(after_help = "\
FILE has one target a line: NAME relay HOST:PORT (a student's relay), or
NAME client COMMAND... (a student's client, checked like `client` mode,
with {addr} in the command). Blank lines and lines starting with # are ignored;
a # after a target starts a comment. Names have no spaces and differ.

  # class 3b, homework 2
  alice  relay 127.0.0.1:4001
  bob    relay bobs-laptop.local:10024
  carol  client python3 chat.py {addr}

The targets are checked one after the other, each like `relay` mode (at
most 125 datagrams a second, every wait bounded by --timeout). The page is
one file with no external resources: open it in any browser, or mail it.

Example:
  udpchat-conform class class.txt --html class.html --json class.json

Exit status: 0 when every target was checked (even if students failed
checks: the page says which), 2 for a class file that cannot be read (the
message names the line) or a report that cannot be written.")]
    Class(ClassArgs),
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

/// `udpchat-conform class`.
#[derive(Debug, clap::Args)]
pub struct ClassArgs {
    /// The class file: one target a line (see below).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Write the matrix as one HTML page to OUT.
    #[arg(long, value_name = "OUT.html", default_value = "class.html")]
    pub html: PathBuf,

    /// Also write the whole class as JSON to OUT.
    #[arg(long, value_name = "OUT.json")]
    pub json: Option<PathBuf>,

    /// How long to wait for each answer a target owes (e.g. 1.5s, 800ms).
    #[arg(long, value_name = "DUR", default_value = "1.5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Language of the page's words and check titles.
    #[arg(long, value_enum, default_value_t = LangArg::En)]
    pub lang: LangArg,
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

    /// Repair under faults: lose this share of the datagrams between the
    /// kit and the relay (0 to 0.5, e.g. 0.2). With --loss, --dup or
    /// --reorder only the checks of repair run (RESEND, SAY, PMSG), each
    /// retrying within bounded deadlines; the others are skipped.
    #[arg(long, value_name = "P", value_parser = parse_share)]
    pub loss: Option<f64>,

    /// Repair under faults: deliver this share of the datagrams twice.
    #[arg(long, value_name = "P", value_parser = parse_share)]
    pub dup: Option<f64>,

    /// Repair under faults: hold this share back behind the next datagram.
    #[arg(long, value_name = "P", value_parser = parse_share)]
    pub reorder: Option<f64>,

    /// The seed of the faults: the same seed makes the same decisions.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

impl RelayArgs {
    /// The fault settings, if --loss, --dup or --reorder was given.
    pub fn faults(&self) -> Option<crate::lossy::FaultSettings> {
        if self.loss.is_none() && self.dup.is_none() && self.reorder.is_none() {
            return None;
        }
        Some(crate::lossy::FaultSettings {
            loss: self.loss.unwrap_or(0.0),
            dup: self.dup.unwrap_or(0.0),
            reorder: self.reorder.unwrap_or(0.0),
            seed: self.seed,
        })
    }
}

/// A share of datagrams for --loss, --dup, --reorder: 0 to 0.5.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number; write a share such as 0.2 (20 %)"))?;
    if !(0.0..=0.5).contains(&p) {
        return Err(format!(
            "{s} is out of range; use 0 to 0.5 (e.g. 0.2 for 20 %)"
        ));
    }
    Ok(p)
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
    fn shares_are_between_0_and_a_half() {
        assert_eq!(parse_share("0.2"), Ok(0.2));
        assert!(parse_share("0.9").is_err());
        assert!(parse_share("20%").is_err());
        let args = Args::try_parse_from([
            "udpchat-conform",
            "relay",
            "h",
            "--loss",
            "0.2",
            "--seed",
            "7",
        ])
        .expect("valid");
        let Command::Relay(relay) = args.command else {
            panic!("relay mode")
        };
        let faults = relay.faults().expect("faults");
        assert_eq!((faults.loss, faults.dup, faults.seed), (0.2, 0.0, 7));
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
        let class = Args::command()
            .find_subcommand_mut("class")
            .expect("class mode")
            .render_long_help()
            .to_string();
        assert!(
            class.contains("udpchat-conform class class.txt --html class.html"),
            "{class}"
        );
        assert!(
            class.contains("Exit status: 0 when every target"),
            "{class}"
        );
    }
}
