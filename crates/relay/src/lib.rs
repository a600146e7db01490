//! udpchat relay (stub).

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod room;
pub use room::{Config, Dialect, Event, Outputs, Room, Stats, Transmit};

/// Entry point called by the binary.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
