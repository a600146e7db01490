//! `udpchat`, the terminal client of the udpchat relay, speaking the
//! structured dialect (`HELLO`, numbered `EVENT`s, loss repair).
//!
//! Contract: every decision lives in plain functions and sans-I/O state
//! machines ([`session::Session`], [`reassembly::Reassembly`],
//! [`render::render`], [`command::parse_input`]); the threads in `app` only
//! move bytes between the socket, the keyboard and the screen. Nothing the
//! relay sends is trusted: it is parsed strictly and every string is
//! sanitized before it reaches the terminal.

pub mod catalog;
pub mod command;
pub mod complete;
pub mod reassembly;
pub mod render;
pub mod session;
pub mod state;
pub mod text;

mod app;
mod error;

use std::process::ExitCode;

use clap::Parser;

pub use error::CliError;

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

/// Command-line arguments of `udpchat`.
#[derive(Debug, Parser)]
#[command(
    name = "udpchat",
    version = version(),
    about = "Chat with your class through a udpchat relay.",
    long_about = "Chat with your class through a udpchat relay.\n\n\
        On a terminal you get a prompt: incoming messages appear above it and never \
        disturb what you are typing; pasting several lines sends each as its own \
        message, in order. With stdin not a terminal (a pipe or a file), every \
        line read is sent as a message (lines starting with / are commands), incoming \
        events are printed one per line, and at the end of input the client waits until \
        its messages are confirmed and it has everything said up to then (or repair \
        stops making progress), leaves, and exits 0; if anything was lost it says \
        what on stderr and exits 1.",
    after_help = "Commands (type them at the prompt, or pipe them in):\n  \
        /who             who is in the room\n  \
        /msg NICK text   private message to NICK\n  \
        /nick NEW        change your nickname\n  \
        /hand [question] raise your hand; the teacher calls on you in turn\n  \
        /me text         an action: /me waves shows * alice waves\n  \
        /clear           clear the screen\n  \
        /quit            leave\n  \
        /help            list the commands and keys\n  \
        //text           send a message that starts with /\n\n\
        Keys: Tab completes nicknames and commands; Up and Down bring back earlier \
        lines; Ctrl-C clears the line, and on an empty line leaves; Ctrl-D on an empty \
        line leaves; Ctrl-L clears the screen.\n\n\
        Examples:\n  \
        udpchat --relay classroom-server:10024 --nick alice\n  \
        udpchat --relay classroom-server:10024 --nick alice --code maple7   (a room with a join code)\n  \
        udpchat --nick 小明 --lang zh   (Chinese)\n  \
        printf 'hello\\n' | udpchat --nick bot\n\n\
        Each nickname has its own colour, yours in bold. A message that mentions your \
        name, and every private message, is highlighted and rings the terminal bell \
        (--no-bell: no bell). Colours are used only when stdout is a terminal and NO_COLOR \
        is not set (--color always|never decides instead).\n\n\
        Logging: RUST_LOG=debug udpchat ... 2>udpchat.log (logs go to stderr; send them \
        to a file so they stay out of the chat)."
)]
pub struct Args {
    /// The relay to join, `HOST:PORT`.
    #[arg(
        short,
        long,
        help = "The relay to join: HOST:PORT. Host names and IPv6 ([::1]:10024) work; without a port, 10024 is used",
        env = "UDPCHAT_RELAY",
        default_value = "127.0.0.1:10024",
        value_name = "HOST:PORT"
    )]
    pub relay: String,

    /// Your nickname: 1 to 24 letters, digits, _ - . (any script). Asked for
    /// if missing on a terminal; required when stdin is not a terminal.
    #[arg(short, long, value_name = "NAME")]
    pub nick: Option<String>,

    /// Do not ask the relay again for missed messages, only report them
    /// (to measure what loss repair costs on a network).
    #[arg(long)]
    pub no_repair: bool,

    /// Where to keep the resume token that gives a restarted client its
    /// nickname back at once (default: the platform's data directory,
    /// e.g. ~/.local/share/udpchat).
    #[arg(long, value_name = "DIR", env = "UDPCHAT_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,

    /// The room's join code, if the host set one (the teacher writes it on
    /// the board): 1 to 16 letters and digits.
    #[arg(long, value_name = "CODE", env = "UDPCHAT_CODE", value_parser = parse_code)]
    pub code: Option<udpchat_proto::JoinCode>,

    /// The language of the client's own lines: zh (Chinese) or en
    /// (English). Default on a terminal: from LC_ALL, LC_MESSAGES or LANG
    /// (zh... is Chinese); piped: English.
    #[arg(long, value_name = "zh|en", value_parser = parse_lang)]
    pub lang: Option<catalog::Lang>,

    /// No terminal bell for private messages and mentions of your name.
    #[arg(long)]
    pub no_bell: bool,

    /// Colours: auto (on a terminal, unless NO_COLOR is set), always or
    /// never.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

fn parse_lang(s: &str) -> Result<catalog::Lang, String> {
    match s.to_ascii_lowercase().as_str() {
        "zh" | "cn" | "zh-cn" | "zh_cn" | "chinese" | "中文" => Ok(catalog::Lang::Zh),
        "en" | "english" => Ok(catalog::Lang::En),
        _ => Err("use zh (Chinese) or en (English)".into()),
    }
}

fn parse_code(s: &str) -> Result<udpchat_proto::JoinCode, String> {
    udpchat_proto::JoinCode::new(s).map_err(|e| e.to_string())
}

/// Entry point called by the binary: parses arguments, runs, prints an
/// error once and exits non-zero on failure.
pub fn main() -> ExitCode {
    // The local UTC offset can only be read safely while the process has a
    // single thread (the `time` crate refuses otherwise on Unix), so read it
    // first.
    let offset = time::UtcOffset::current_local_offset().ok();
    let args = Args::parse();
    // RUST_LOG=debug turns on the log, on stderr (see --help: send it to
    // a file so it stays out of the chat).
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
        .try_init();
    let lang = app::lang(&args);
    match app::run(args, offset) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("udpchat: {}", error.text(lang));
            ExitCode::from(error.exit_code())
        }
    }
}
