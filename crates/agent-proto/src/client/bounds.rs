//! What the client accepts inside an answer, beyond its line limit: the
//! guest is not trusted, so counts and strings that are small by nature
//! are held to that size, and an answer that breaks one is refused as a
//! bad response rather than handed on.

use super::ClientError;
use crate::protocol::{
    HealthResult, IdentityResult, ListeningPort, MAX_AGENT_VERSION_BYTES, MAX_BOOT_ID_BYTES,
    MAX_GUEST_PATH_BYTES, MAX_HOSTNAME_BYTES, MAX_IDENTITY_WRITTEN, MAX_PORTS,
};

fn bad(reason: String) -> ClientError {
    ClientError::BadResponse { reason }
}

/// `what` is at most `max` bytes.
fn short(what: &str, value: &str, max: usize) -> Result<(), ClientError> {
    if value.len() > max {
        return Err(bad(format!(
            "the guest reported a {what} of {} bytes (at most {max} are accepted)",
            value.len()
        )));
    }
    Ok(())
}

pub(super) fn health(health: &HealthResult) -> Result<(), ClientError> {
    short("agent version", &health.agent, MAX_AGENT_VERSION_BYTES)?;
    short("hostname", &health.hostname, MAX_HOSTNAME_BYTES)?;
    short("boot id", &health.boot_id, MAX_BOOT_ID_BYTES)
}

pub(super) fn ports(ports: &[ListeningPort]) -> Result<(), ClientError> {
    if ports.len() > MAX_PORTS {
        return Err(bad(format!(
            "the guest reported more than {MAX_PORTS} listening sockets ({})",
            ports.len()
        )));
    }
    Ok(())
}

pub(super) fn identity(result: &IdentityResult) -> Result<(), ClientError> {
    if result.written.len() > MAX_IDENTITY_WRITTEN {
        return Err(bad(format!(
            "the guest reported writing {} files for its identity (at most {MAX_IDENTITY_WRITTEN} are accepted)",
            result.written.len()
        )));
    }
    for path in &result.written {
        short("written path", path, MAX_GUEST_PATH_BYTES)?;
    }
    Ok(())
}

/// An agent's error message, cut to at most `max` bytes (on a character
/// boundary) with a visible marker when it was longer.
pub(super) fn cap_message(mut message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cut = message.len() - end;
    message.truncate(end);
    message.push_str(&format!("… [cut: {cut} more bytes]"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_a_character_boundary_with_a_marker() {
        assert_eq!(cap_message("short".into(), 10), "short");
        assert_eq!(
            cap_message("0123456789".into(), 4),
            "0123… [cut: 6 more bytes]"
        );
        assert_eq!(cap_message("aé".into(), 2), "a… [cut: 2 more bytes]");
    }

    #[test]
    fn long_health_strings_are_refused() {
        let mut h = HealthResult {
            agent: "0.1.0".into(),
            protocol: 1,
            hostname: "dev".into(),
            uptime_s: 1.0,
            boot_id: "c45bd7e9-d0cf-488f-9b8c-c9043786dbe8".into(),
            frozen: false,
        };
        assert!(health(&h).is_ok());
        h.hostname = "x".repeat(MAX_HOSTNAME_BYTES + 1);
        let err = health(&h).unwrap_err();
        assert!(err.to_string().contains("hostname of 254 bytes"), "{err}");
    }
}
