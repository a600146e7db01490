fn main() -> std::process::ExitCode {
    udpchat_conform::main()
}
