//! Puts banger's part of an image into a bootstrapped tree: the agent, the
//! files of [`super::guest_files`], and the removal of what must be unique
//! per VM (ssh host keys).

use std::fs::File;
use std::path::Path;

use super::guest_files::{self, AGENT_PATH, GuestFile, SSH_HOST_KEY_DIR, SSH_HOST_KEY_PREFIX};
use super::recipe::Variant;
use super::tree::GuestTree;
use crate::images::error::ImageError;

/// Directories every Debian tree has; their absence means the bootstrap
/// produced something else, which is better refused than booted.
const EXPECTED_DIRS: &[(&str, &str)] = &[
    ("/etc", "/etc directory"),
    ("/usr/bin", "/usr/bin directory"),
];

/// What [`inject`] changed, for the log.
#[derive(Debug, Default)]
pub(crate) struct Injected {
    pub(crate) removed_host_keys: Vec<String>,
}

pub(crate) fn inject(
    tree: &GuestTree,
    variant: Variant,
    agent_bin: &Path,
) -> Result<Injected, ImageError> {
    for (dir, what) in EXPECTED_DIRS {
        if !tree.is_dir(dir) {
            return Err(ImageError::BadTree {
                path: tree.path().to_owned(),
                what,
            });
        }
    }
    let mut agent =
        File::open(agent_bin).map_err(|e| ImageError::io("open the agent binary", agent_bin, e))?;
    tree.write_file(AGENT_PATH, &mut agent, 0o755)?;
    for file in guest_files::files(variant) {
        match file {
            GuestFile::File {
                path,
                content,
                mode,
            } => tree.write_file(path, &mut content.as_bytes(), mode)?,
            GuestFile::Symlink { path, target } => tree.symlink(path, target)?,
            GuestFile::Absent { path } => tree.remove(path)?,
        }
    }
    let removed_host_keys = tree.remove_prefixed(SSH_HOST_KEY_DIR, SSH_HOST_KEY_PREFIX)?;
    Ok(Injected { removed_host_keys })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn debian_like() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        std::fs::create_dir_all(t.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(t.join("usr/bin")).unwrap();
        std::fs::write(t.join("etc/ssh/ssh_host_ed25519_key"), b"secret").unwrap();
        std::fs::write(t.join("etc/ssh/ssh_host_ed25519_key.pub"), b"pub").unwrap();
        std::fs::write(
            t.join("etc/ssh/sshd_config"),
            b"Include /etc/ssh/sshd_config.d/*.conf\n",
        )
        .unwrap();
        std::fs::write(t.join("etc/machine-id"), b"0123456789abcdef\n").unwrap();
        dir
    }

    #[test]
    fn the_agent_and_files_are_written_and_host_keys_removed() {
        let dir = debian_like();
        let wants = dir
            .path()
            .join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink(
            "/lib/systemd/system/docker.service",
            wants.join("docker.service"),
        )
        .unwrap();
        let agent = dir.path().join("agent-bin");
        std::fs::write(&agent, b"\x7fELF stand-in").unwrap();
        let tree = GuestTree::open(dir.path()).unwrap();
        let injected = inject(&tree, Variant::Full, &agent).unwrap();
        assert_eq!(
            injected.removed_host_keys,
            ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
        );
        let t = dir.path();
        let installed = t.join("usr/local/bin/banger-agent");
        assert_eq!(std::fs::read(&installed).unwrap(), b"\x7fELF stand-in");
        assert_eq!(
            installed.metadata().unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert!(
            std::fs::read_to_string(t.join("etc/ssh/sshd_config.d/banger.conf"))
                .unwrap()
                .contains("PasswordAuthentication no")
        );
        assert_eq!(std::fs::read(t.join("etc/machine-id")).unwrap(), b"");
        assert_eq!(
            std::fs::read_link(
                t.join("etc/systemd/system/multi-user.target.wants/banger-agent.service")
            )
            .unwrap(),
            Path::new("/etc/systemd/system/banger-agent.service")
        );
        assert!(
            std::fs::read_to_string(t.join("etc/fstab"))
                .unwrap()
                .contains("mounted by banger's initramfs")
        );
        assert!(!t.join("etc/ssh/ssh_host_ed25519_key").exists());
        // Disabled (a dangling link would still be seen by symlink_metadata).
        assert!(wants.join("docker.service").symlink_metadata().is_err());
        assert!(t.join("etc/ssh/sshd_config").exists());
    }

    #[test]
    fn a_tree_that_is_not_debian_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let agent = dir.path().join("agent");
        std::fs::write(&agent, b"").unwrap();
        let tree = GuestTree::open(dir.path()).unwrap();
        let err = inject(&tree, Variant::Minimal, &agent).unwrap_err();
        assert!(err.to_string().contains("/usr/bin"), "{err}");
        assert!(
            !dir.path().join("usr").exists(),
            "nothing is written into a refused tree"
        );
    }
}
