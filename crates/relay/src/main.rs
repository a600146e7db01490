fn main() -> std::process::ExitCode {
    udpchat_relay::main()
}
