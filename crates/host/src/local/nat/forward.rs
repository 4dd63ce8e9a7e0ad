//! IPv4 forwarding, on while a NAT guest needs it and put back afterwards.
//!
//! The first NAT guest records the sysctl's value in a small state file
//! (`ip_forward=<0|1> boot=<boot id>`, written atomically) before switching
//! forwarding on; when no NAT guest is left, the recorded value is written
//! back and the file removed. The file survives a killed daemon, so the
//! next `remove_nat` (teardown or reconcile) still restores the value. The
//! boot id ties the record to the kernel it was taken on: the sysctl is
//! reset at boot, so a record from an earlier boot is stale and discarded
//! without writing anything.
//!
//! Without a state file (none configured) forwarding is switched on and
//! left on, as banger cannot know what else relies on it.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::HostError;

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

fn boot_id() -> String {
    std::fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The recorded value, if the file holds a record of this boot.
fn recorded(state: &Path) -> Result<Option<String>, HostError> {
    let text = match std::fs::read_to_string(state) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(state_error(state, "read", source)),
    };
    let mut value = None;
    let mut boot = None;
    for word in text.split_whitespace() {
        if let Some(v) = word.strip_prefix("ip_forward=") {
            value = Some(v);
        } else if let Some(b) = word.strip_prefix("boot=") {
            boot = Some(b);
        }
    }
    match (value, boot) {
        (Some(v @ ("0" | "1")), Some(b)) if b == boot_id() => Ok(Some(v.to_owned())),
        _ => {
            tracing::warn!(state = %state.display(), "discarding a stale or unreadable IPv4 forwarding record");
            discard(state)?;
            Ok(None)
        }
    }
}

fn discard(state: &Path) -> Result<(), HostError> {
    match std::fs::remove_file(state) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(state_error(state, "remove", e)),
        _ => Ok(()),
    }
}

fn state_error(path: &Path, action: &'static str, source: io::Error) -> HostError {
    HostError::ForwardingState {
        path: path.to_owned(),
        action,
        source,
    }
}

/// Switches forwarding on for `guest`, recording the previous value first
/// (unless a record of this boot already exists: the value before banger).
pub(crate) fn acquire(
    sysctl: &Path,
    state: Option<&Path>,
    guest: Ipv4Addr,
) -> Result<(), HostError> {
    let fail = |source: io::Error| HostError::IpForward {
        path: sysctl.to_owned(),
        guest,
        source,
    };
    let current = std::fs::read_to_string(sysctl).map_err(fail)?;
    let current = current.trim();
    if let Some(state) = state
        && recorded(state)?.is_none()
    {
        let value = if current == "0" { "0" } else { "1" };
        let tmp = state.with_extension("tmp");
        std::fs::write(&tmp, format!("ip_forward={value} boot={}\n", boot_id()))
            .and_then(|()| std::fs::rename(&tmp, state))
            .map_err(|e| state_error(state, "write", e))?;
    }
    if current == "1" {
        return Ok(());
    }
    tracing::info!(sysctl = %sysctl.display(), "enabling IPv4 forwarding for NAT");
    std::fs::write(sysctl, "1\n").map_err(fail)
}

/// No NAT guest is left: puts the recorded value back and forgets it.
pub(crate) fn release(sysctl: &Path, state: Option<&Path>) -> Result<(), HostError> {
    let Some(state) = state else {
        return Ok(());
    };
    let Some(value) = recorded(state)? else {
        return Ok(());
    };
    let current = std::fs::read_to_string(sysctl).map_err(|e| state_error(sysctl, "read", e))?;
    if current.trim() != value {
        tracing::info!(sysctl = %sysctl.display(), value, "restoring IPv4 forwarding");
        std::fs::write(sysctl, format!("{value}\n"))
            .map_err(|e| state_error(sysctl, "restore", e))?;
    }
    discard(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);

    fn setup(initial: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let sysctl = dir.path().join("ip_forward");
        std::fs::write(&sysctl, format!("{initial}\n")).unwrap();
        let state = dir.path().join("ip_forward.banger");
        (dir, sysctl, state)
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap().trim().to_owned()
    }

    #[test]
    fn on_while_needed_and_restored_after() {
        let (_d, sysctl, state) = setup("0");
        acquire(&sysctl, Some(&state), G).unwrap();
        assert_eq!(read(&sysctl), "1");
        assert!(read(&state).starts_with("ip_forward=0 boot="));
        // A second guest, or the same again, keeps the first record.
        acquire(&sysctl, Some(&state), G).unwrap();
        assert!(read(&state).starts_with("ip_forward=0 "));
        release(&sysctl, Some(&state)).unwrap();
        assert_eq!(read(&sysctl), "0");
        assert!(!state.exists());
        release(&sysctl, Some(&state)).unwrap();
        assert_eq!(read(&sysctl), "0");
    }

    #[test]
    fn a_host_that_forwarded_already_keeps_forwarding() {
        let (_d, sysctl, state) = setup("1");
        acquire(&sysctl, Some(&state), G).unwrap();
        release(&sysctl, Some(&state)).unwrap();
        assert_eq!(read(&sysctl), "1");
        assert!(!state.exists());
    }

    #[test]
    fn a_record_of_another_boot_or_garbage_is_discarded_untouched() {
        for stale in [
            "ip_forward=0 boot=not-this-boot\n",
            "garbage",
            "ip_forward=7 boot=x",
        ] {
            let (_d, sysctl, state) = setup("1");
            std::fs::write(&state, stale).unwrap();
            release(&sysctl, Some(&state)).unwrap();
            assert_eq!(read(&sysctl), "1", "{stale}");
            assert!(!state.exists());
        }
        // And acquiring over a stale record records the value of now.
        let (_d, sysctl, state) = setup("0");
        std::fs::write(&state, "ip_forward=1 boot=not-this-boot\n").unwrap();
        acquire(&sysctl, Some(&state), G).unwrap();
        assert!(read(&state).starts_with("ip_forward=0 "));
    }

    #[test]
    fn without_a_state_file_forwarding_stays_on() {
        let (_d, sysctl, _state) = setup("0");
        acquire(&sysctl, None, G).unwrap();
        release(&sysctl, None).unwrap();
        assert_eq!(read(&sysctl), "1");
    }

    #[test]
    fn an_unwritable_sysctl_is_a_typed_error() {
        let err = acquire(Path::new("/nonexistent/ip_forward"), None, G).unwrap_err();
        assert!(matches!(err, HostError::IpForward { .. }));
        assert!(
            err.to_string().contains("172.16.0.2")
                && err.to_string().contains("/nonexistent/ip_forward")
        );
    }
}
