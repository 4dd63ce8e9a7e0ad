//! Structured logs on stderr. Every line logged while serving a request sits
//! inside that request's span, so it carries the operation id.

use tracing_subscriber::EnvFilter;

/// The `banger` directive covers every crate of ours (`banger_daemon`,
/// `banger_store`, ...): targets match by prefix. `level` is one of error, warn, info, debug, trace (already validated by
/// the config layer).
pub fn init_logging(level: &str) {
    let filter = EnvFilter::new(format!("warn,banger={level}"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
