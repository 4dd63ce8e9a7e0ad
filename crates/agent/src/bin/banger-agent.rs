//! `banger-agent`: see the library's `mode` module for how the role is
//! chosen.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use banger_agent::mode::{self, Mode, USAGE};

fn main() -> ExitCode {
    let mut args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let argv0 = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let pid = std::process::id();
    // A parent's blocked signals survive fork and exec (guest-init blocks
    // the ones it sigwaits for); nothing but PID 1 wants them blocked.
    if pid != 1 {
        if let Err(e) = banger_agent::signals::clear_mask() {
            eprintln!("banger-agent: cannot clear the signal mask: {e}");
        }
    }
    let mode = match mode::select(&argv0, &rest, pid) {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("banger-agent: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match mode {
        Mode::Init => banger_agent::init::run(),
        Mode::GuestInit => banger_agent::guest_init::run(),
        Mode::Service(args) => match banger_agent::service::run(&args) {
            Ok(never) => match never {},
            Err(e) => {
                eprintln!("banger-agent: {e}");
                ExitCode::FAILURE
            }
        },
        Mode::Network => match banger_agent::network::run_mode() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("banger-agent: {e}");
                ExitCode::FAILURE
            }
        },
        Mode::Launch(argv) => {
            let err = banger_agent::signals::launch(&argv);
            eprintln!("banger-agent: cannot exec {argv:?}: {err}");
            ExitCode::from(127)
        }
        Mode::Version => {
            println!(
                "banger-agent {} (protocol v{})",
                banger_agent::AGENT_VERSION,
                banger_agent::PROTOCOL_VERSION
            );
            ExitCode::SUCCESS
        }
        Mode::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
    }
}
