//! What can stop the client.

use thiserror::Error;
use udpchat_proto::ParseError;

/// Why `udpchat` stopped. The message is what the user reads.
#[derive(Debug, Error)]
pub enum CliError {
    /// The relay address did not resolve.
    #[error(
        "cannot resolve the relay address {addr:?}: {source}; give HOST:PORT, e.g. 127.0.0.1:10024"
    )]
    Resolve {
        /// What the user gave.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The relay address resolved to nothing.
    #[error("the relay address {0:?} resolved to no address")]
    NoAddress(String),
    /// The UDP socket could not be opened.
    #[error("cannot open a UDP socket to {addr}: {source}")]
    Socket {
        /// The relay.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing answered the join.
    #[error("no relay answering at {0}; check the address and that udpchat-relay is running")]
    NoRelay(String),
    /// Piped mode without `--nick`.
    #[error(
        "--nick is required when stdin is not a terminal, e.g. printf 'hi\\n' | udpchat --nick bot"
    )]
    NickRequired,
    /// `--nick` is not a valid nickname.
    #[error("invalid nickname {nick:?}: {source}")]
    BadNick {
        /// What was given.
        nick: String,
        /// Why it is invalid.
        source: ParseError,
    },
    /// The relay refused the nickname (piped mode cannot ask again).
    #[error("the relay refused the nickname {nick}: {reason}")]
    Refused {
        /// The nickname.
        nick: String,
        /// The relay's reason, sanitized.
        reason: String,
    },
    /// The user left at the nickname prompt.
    #[error("no nickname given; nothing sent")]
    Cancelled,
    /// The terminal line editor failed.
    #[error("terminal error: {0}")]
    Terminal(#[from] rustyline::error::ReadlineError),
    /// Reading stdin failed.
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
}

impl CliError {
    /// The process exit code: 2 for what the user can fix in the command
    /// line, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NickRequired | CliError::BadNick { .. } | CliError::Refused { .. } => 2,
            _ => 1,
        }
    }
}
