//! Where banger's SSH files live (SPEC §5): the key pair and known_hosts in
//! the owner's state directory, banger's ssh_config beside config.toml.

use std::path::{Path, PathBuf};

use banger_config::Paths;

use super::error::SshError;
use super::fs::ensure_private_dir;

/// banger's SSH files. Built from the layout so every caller agrees on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPaths {
    /// `…/ssh`, kept at 0700 because it holds the private key.
    pub dir: PathBuf,
    /// `…/ssh/id_ed25519` (0600): the key banger logs into every VM with.
    pub user_key: PathBuf,
    /// `…/ssh/id_ed25519.pub`: written into each VM's authorized_keys.
    pub user_public_key: PathBuf,
    /// `…/ssh/known_hosts` (0600): the pinned host key of every VM.
    pub known_hosts: PathBuf,
    /// banger's own ssh_config (`Host *.vm`), passed to `ssh -F` and
    /// included from the user's `~/.ssh/config`.
    pub config_file: PathBuf,
}

impl SshPaths {
    pub fn new(paths: &Paths) -> SshPaths {
        Self::from_parts(&paths.ssh_dir, &paths.ssh_config)
    }

    /// For callers (and tests) that have the two locations but no layout.
    pub fn from_parts(ssh_dir: &Path, config_file: &Path) -> SshPaths {
        SshPaths {
            dir: ssh_dir.to_path_buf(),
            user_key: ssh_dir.join("id_ed25519"),
            user_public_key: ssh_dir.join("id_ed25519.pub"),
            known_hosts: ssh_dir.join("known_hosts"),
            config_file: config_file.to_path_buf(),
        }
    }

    /// Uses `key` (config.toml's `ssh_key_path`) instead of banger's own
    /// key; its public half is `<key>.pub`, as ssh-keygen names it.
    pub fn with_user_key(mut self, key: &Path) -> SshPaths {
        let mut public = key.as_os_str().to_owned();
        public.push(".pub");
        self.user_key = key.to_path_buf();
        self.user_public_key = PathBuf::from(public);
        self
    }

    /// Creates the ssh directory if needed and forces it to 0700 even if it
    /// existed: OpenSSH does not check the directory, so nothing else would
    /// notice a private key left in a readable one.
    pub fn ensure_dir(&self) -> Result<(), SshError> {
        ensure_private_dir(&self.dir, true)
    }
}

impl From<&Paths> for SshPaths {
    fn from(paths: &Paths) -> SshPaths {
        SshPaths::new(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_layout() {
        let paths = Paths::development(Path::new("/home/u/banger"));
        let ssh = SshPaths::new(&paths);
        assert_eq!(ssh.dir, Path::new("/home/u/banger/state/ssh"));
        assert_eq!(
            ssh.user_key,
            Path::new("/home/u/banger/state/ssh/id_ed25519")
        );
        assert_eq!(
            ssh.user_public_key,
            Path::new("/home/u/banger/state/ssh/id_ed25519.pub")
        );
        assert_eq!(
            ssh.known_hosts,
            Path::new("/home/u/banger/state/ssh/known_hosts")
        );
        assert_eq!(
            ssh.config_file,
            Path::new("/home/u/banger/config/ssh_config")
        );
    }

    #[test]
    fn a_configured_key_brings_its_public_half() {
        let ssh = SshPaths::new(&Paths::development(Path::new("/b")))
            .with_user_key(Path::new("/home/u/.ssh/id_work"));
        assert_eq!(ssh.user_key, Path::new("/home/u/.ssh/id_work"));
        assert_eq!(ssh.user_public_key, Path::new("/home/u/.ssh/id_work.pub"));
        assert_eq!(ssh.known_hosts, Path::new("/b/state/ssh/known_hosts"));
    }

    #[test]
    fn system_layout_keeps_ssh_files_in_the_owners_home() {
        let ssh = SshPaths::new(&Paths::system(Path::new("/home/u")));
        assert_eq!(
            ssh.user_key,
            Path::new("/home/u/.local/state/banger/ssh/id_ed25519")
        );
        assert_eq!(
            ssh.config_file,
            Path::new("/home/u/.config/banger/ssh_config")
        );
    }
}
