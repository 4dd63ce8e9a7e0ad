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
/// tmpfs) and, when the image has no host key yet, generates one so sshd
/// can start at all. banger's `identity` call replaces it with the VM's
/// pinned key moments later, so only an ed25519 key is made: `ssh-keygen
/// -A` would also make an RSA key, which costs ~14 s of an emulated CPU
/// on every boot.
pub fn prepare(root: &Path) -> Result<bool, FsError> {
    if !root.join(SSHD.trim_start_matches('/')).exists() {
        return Ok(false);
    }
    fsutil::ensure_dir(&root.join("run/sshd"), 0o755)?;
    if !has_host_key(&root.join("etc/ssh")) {
        crate::info!("no ssh host key: generating a provisional one");
        let argv = keygen_argv(root);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        if let Err(e) = run_cmd::run(&argv) {
            crate::error!("{e}");
        }
    }
    Ok(true)
}

/// One ed25519 host key, quietly, without a passphrase.
fn keygen_argv(root: &Path) -> Vec<String> {
    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    [
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "provisional",
        "-f",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([key.to_string_lossy().into_owned()])
    .collect()
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
    fn the_provisional_host_key_is_one_ed25519_key_under_root() {
        let argv = keygen_argv(Path::new("/mnt/guest"));
        assert_eq!(argv[..4], ["ssh-keygen", "-q", "-t", "ed25519"]);
        assert_eq!(
            argv.last().unwrap(),
            "/mnt/guest/etc/ssh/ssh_host_ed25519_key"
        );
        assert!(!argv.iter().any(|a| a == "-A"), "no RSA key: {argv:?}");
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

    #[test]
    fn a_root_without_host_keys_gets_exactly_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("usr/sbin")).unwrap();
        fs::write(dir.path().join("usr/sbin/sshd"), b"").unwrap();
        fs::create_dir_all(dir.path().join("etc/ssh")).unwrap();
        assert!(prepare(dir.path()).unwrap());
        let mut keys: Vec<String> = fs::read_dir(dir.path().join("etc/ssh"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        keys.sort();
        assert_eq!(keys, ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]);
    }
}
