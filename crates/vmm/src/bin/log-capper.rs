//! The log capper alone (`log-capper --cap-log FILE BYTES`), for the vmm
//! crate's tests: `bangerd` carries the same mode (`banger_vmm::logcap`).
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = match args.split_first() {
        Some((flag, rest)) if flag == banger_vmm::logcap::CAP_LOG_FLAG => {
            banger_vmm::logcap::main(rest)
        }
        _ => {
            eprintln!("usage: log-capper --cap-log FILE BYTES");
            2
        }
    };
    std::process::exit(code);
}
