//! The agent-mux sidecar alone (`agent-mux --agent-mux --port-socket P
//! --uds U`), for tests: `bangerd` carries the same mode
//! (`banger_vmm::agent_mux`).
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = match args.split_first() {
        Some((flag, rest)) if flag == banger_vmm::agent_mux::AGENT_MUX_FLAG => {
            banger_vmm::agent_mux::main(rest)
        }
        _ => {
            eprintln!("usage: agent-mux --agent-mux --port-socket PATH --uds PATH");
            2
        }
    };
    std::process::exit(code);
}
