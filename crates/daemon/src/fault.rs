//! Crash points for the fault-injection tests (feature `test-methods`):
//! `BANGER_CRASH_AT=<point>` makes the daemon abort the instant it reaches
//! that named point, as `kill -9` or a power cut would, so a test can check
//! that what was made up to there is found and removed by the next daemon.
//! In other builds [`point`] does nothing and reads no environment.

/// Every point, in the order an operation reaches them; the fault matrix
/// (tests/crash_matrix.rs) runs each.
pub const POINTS: &[&str] = &[
    "create.recorded",
    "create.root-disk",
    "create.work-disk",
    "create.host-key",
    "boot.tap",
    "boot.fenced",
    "boot.nat",
    "boot.launched",
    "boot.handles",
    "boot.agent",
    "boot.identity",
    "stop.poweroff",
    "stop.halted",
    "delete.halted",
    "delete.disposed",
    "set.spec-saved",
    "set.nat",
    "image.bootstrapped",
];

#[cfg(feature = "test-methods")]
pub fn point(name: &str) {
    use std::sync::OnceLock;
    static AT: OnceLock<Option<String>> = OnceLock::new();
    debug_assert!(POINTS.contains(&name), "unlisted crash point {name}");
    let at = AT.get_or_init(|| std::env::var("BANGER_CRASH_AT").ok());
    if at.as_deref() == Some(name) {
        eprintln!("bangerd: crash point {name}: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "test-methods"))]
#[inline(always)]
pub fn point(_name: &str) {}
