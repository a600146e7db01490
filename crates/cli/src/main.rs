fn main() -> std::process::ExitCode {
    udpchat_cli::main()
}
