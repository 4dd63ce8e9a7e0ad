//! What sshd needs before it can start in an image without systemd.

use std::fs;
use std::path::Path;

use crate::fsutil::{self, FsError};
use crate::run_cmd;

/// The daemon, at Debian's path.
pub const SSHD: &str = "/usr/sbin/sshd";

/// In the foreground (so PID 1 supervises it), logging to stderr (the
/// console).
pub fn argv() -> Vec<String> {
    vec![SSHD.into(), "-D".into(), "-e".into()]
}

/// Prepares `root` for sshd; `Ok(false)` when the image has no sshd.
///
/// Creates the privilege-separation directory `/run/sshd` (on a fresh
/// tmpfs) and, when the image has no host key yet (banger's `identity`
/// call normally provides one), generates them so sshd can start at all.
pub fn prepare(root: &Path) -> Result<bool, FsError> {
    if !root.join(SSHD.trim_start_matches('/')).exists() {
        return Ok(false);
    }
    fsutil::ensure_dir(&root.join("run/sshd"), 0o755)?;
    if !has_host_key(&root.join("etc/ssh")) {
        crate::info!("no ssh host key: generating");
        if let Err(e) = run_cmd::run(&["ssh-keygen", "-A"]) {
            crate::error!("{e}");
        }
    }
    Ok(true)
}

/// True when `dir` holds at least one `ssh_host_*_key`.
pub fn has_host_key(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with("ssh_host_") && name.ends_with("_key")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_recognised_by_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_host_key(dir.path()));
        assert!(!has_host_key(&dir.path().join("missing")));
        fs::write(dir.path().join("ssh_host_ed25519_key.pub"), b"").unwrap();
        fs::write(dir.path().join("sshd_config"), b"").unwrap();
        assert!(!has_host_key(dir.path()));
        fs::write(dir.path().join("ssh_host_ed25519_key"), b"").unwrap();
        assert!(has_host_key(dir.path()));
    }

    #[test]
    fn prepare_without_sshd_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!prepare(dir.path()).unwrap());
        assert!(!dir.path().join("run").exists());
    }

    #[test]
    fn prepare_creates_the_privsep_dir() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("usr/sbin")).unwrap();
        fs::write(dir.path().join("usr/sbin/sshd"), b"").unwrap();
        fs::create_dir_all(dir.path().join("etc/ssh")).unwrap();
        fs::write(dir.path().join("etc/ssh/ssh_host_ed25519_key"), b"").unwrap();
        assert!(prepare(dir.path()).unwrap());
        assert!(dir.path().join("run/sshd").is_dir());
    }
}
