//! Shared by the root tests: each runs on its own thread inside a network
//! namespace it creates and deletes, so the host's interfaces and firewall
//! rules are never touched.

#![allow(dead_code)] // each test binary uses a different part

use banger_sys::Cmd;
use banger_sys::netns::Netns;

/// Runs `body` inside a fresh network namespace on the calling thread, or
/// prints why it is skipped (and returns false) when not root.
pub fn in_netns(tag: &str, body: impl FnOnce()) -> bool {
    if !banger_sys::os::is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    let ns = Netns::create(tag).unwrap_or_else(|e| panic!("{e}"));
    let inside = ns.enter().unwrap_or_else(|e| panic!("{e}"));
    body();
    drop(inside);
    true
}

/// Runs a program (inside the current namespace) and returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    Cmd::new(program)
        .args(args)
        .run()
        .unwrap_or_else(|e| panic!("{e}"))
        .stdout_str()
}

pub fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_owned()
}
