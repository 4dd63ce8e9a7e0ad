//! `health`: enough for the host to know the agent is up, which build it
//! is, and whether the guest rebooted (the boot id changes on every boot).

use std::fs;
use std::io;

use thiserror::Error;

use crate::protocol::{HealthResult, PROTOCOL_VERSION};

const PROC_UPTIME: &str = "/proc/uptime";
const PROC_BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// A fact `health` could not read.
#[derive(Debug, Error)]
pub enum HealthError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: &'static str,
        source: io::Error,
    },
    #[error("unexpected content in {path}: {content:?}")]
    Parse { path: &'static str, content: String },
    #[error("gethostname failed: {0}")]
    Hostname(nix::errno::Errno),
}

/// Collects the health facts from the running kernel; `frozen` is the
/// service's own state.
pub fn collect(frozen: bool) -> Result<HealthResult, HealthError> {
    let hostname = nix::unistd::gethostname()
        .map_err(HealthError::Hostname)?
        .to_string_lossy()
        .into_owned();
    let uptime_text = read(PROC_UPTIME)?;
    let uptime_s = parse_uptime(&uptime_text).ok_or(HealthError::Parse {
        path: PROC_UPTIME,
        content: uptime_text.clone(),
    })?;
    let boot_id = read(PROC_BOOT_ID)?.trim().to_string();
    Ok(HealthResult {
        agent: crate::AGENT_VERSION.to_string(),
        protocol: PROTOCOL_VERSION,
        hostname,
        uptime_s,
        boot_id,
        frozen,
    })
}

fn read(path: &'static str) -> Result<String, HealthError> {
    fs::read_to_string(path).map_err(|source| HealthError::Read { path, source })
}

/// `/proc/uptime` is "`<uptime> <idle>`" in seconds.
fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uptime() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735.47));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("x 1"), None);
        assert_eq!(parse_uptime("-1 0"), None);
    }

    #[test]
    fn collects_from_this_kernel() {
        let health = collect(true).unwrap();
        assert!(health.frozen);
        assert_eq!(health.agent, crate::AGENT_VERSION);
        assert_eq!(health.protocol, PROTOCOL_VERSION);
        assert!(health.uptime_s > 0.0);
        assert_eq!(health.boot_id.len(), 36, "{}", health.boot_id);
        assert_eq!(
            health.hostname,
            nix::unistd::gethostname().unwrap().to_string_lossy()
        );
    }
}
