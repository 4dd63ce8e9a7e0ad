//! Version, commit and build time, stamped by `build.rs`.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("BANGER_BUILD_COMMIT");
pub const BUILD_TIME: &str = env!("BANGER_BUILD_TIME");

/// `banger v0.1.0 (commit abcd1234, built 2026-11-24T04:30:00Z)`.
pub fn version_line(program: &str) -> String {
    format!("{program} {VERSION_DETAIL}")
}

/// `v0.1.0 (commit abcd1234, built 2026-11-24T04:30:00Z)`, for `--version`.
pub const VERSION_DETAIL: &str = concat!(
    "v",
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BANGER_BUILD_COMMIT"),
    ", built ",
    env!("BANGER_BUILD_TIME"),
    ")"
);
