//! `banger`: the CLI. All of it lives in the `banger-cli` library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    banger_cli::main()
}
