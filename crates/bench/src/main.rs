fn main() -> std::process::ExitCode {
    udpchat_bench::main()
}
