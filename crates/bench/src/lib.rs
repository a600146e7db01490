//! udpchat bench (stub).

/// Entry point called by the binary.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
