//! Where a system install puts each file (SPEC §2, §5), under a root that is
//! `/` except for `--destdir` (packaging, and tests that look at the files
//! without a systemd to start them).

use std::path::{Path, PathBuf};

/// The unit names; `bangerd.service` runs as the owner, the helper as root.
pub const DAEMON_UNIT: &str = "bangerd.service";
pub const HELPER_UNIT: &str = "bangerd-root.service";

/// Every path a system install writes, removes or checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The real system: `/`.
    pub fn system() -> Layout {
        Layout::new("/")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `abs` (an absolute path of the installed system) under the root.
    pub fn at(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.at("/usr/local/bin")
    }

    pub fn banger(&self) -> PathBuf {
        self.bin_dir().join("banger")
    }

    pub fn bangerd(&self) -> PathBuf {
        self.bin_dir().join("bangerd")
    }

    pub fn lib_dir(&self) -> PathBuf {
        self.at("/usr/local/lib/banger")
    }

    pub fn agent(&self) -> PathBuf {
        self.lib_dir().join("banger-agent")
    }

    /// The three installed programs, as (name, path).
    // No caller yet: kept for `banger update`, which swaps these three.
    pub fn programs(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("banger", self.banger()),
            ("bangerd", self.bangerd()),
            ("banger-agent", self.agent()),
        ]
    }

    pub fn etc_dir(&self) -> PathBuf {
        self.at("/etc/banger")
    }

    pub fn install_file(&self) -> PathBuf {
        self.etc_dir().join("install.toml")
    }

    pub fn unit_dir(&self) -> PathBuf {
        self.at("/etc/systemd/system")
    }

    pub fn unit(&self, name: &str) -> PathBuf {
        self.unit_dir().join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.at("/var/lib/banger")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.at("/var/cache/banger")
    }

    /// The helper's own scratch for image builds (root's, never the owner's).
    pub fn helper_cache_dir(&self) -> PathBuf {
        self.at("/var/cache/banger-root")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.at("/run/banger")
    }

    /// The owner daemon's socket.
    pub fn daemon_socket(&self) -> PathBuf {
        self.run_dir().join("bangerd.sock")
    }

    pub fn helper_run_dir(&self) -> PathBuf {
        self.at("/run/banger-root")
    }

    /// The root helper's socket, in a directory of its own.
    pub fn helper_socket(&self) -> PathBuf {
        self.helper_run_dir().join("bangerd-root.sock")
    }

    /// Where the install and update steps' full output goes.
    pub fn log_file(&self) -> PathBuf {
        self.at("/var/log/banger-install.log")
    }

    /// The shell completion scripts, in the directories each shell's
    /// Debian package reads without configuration.
    pub fn completions(&self) -> [(crate::args::Shell, PathBuf); 3] {
        use crate::args::Shell;
        [
            (
                Shell::Bash,
                self.at("/usr/share/bash-completion/completions/banger"),
            ),
            (
                Shell::Zsh,
                self.at("/usr/local/share/zsh/site-functions/_banger"),
            ),
            (
                Shell::Fish,
                self.at("/usr/share/fish/vendor_completions.d/banger.fish"),
            ),
        ]
    }

    pub fn man_dir(&self) -> PathBuf {
        self.at("/usr/local/share/man/man1")
    }

    /// The owner's directories the daemon writes (ssh key, known_hosts,
    /// ssh config): the only writable places in the home under the unit's
    /// `ProtectHome=read-only`.
    pub fn owner_dirs(owner_home: &Path) -> [PathBuf; 2] {
        [
            owner_home.join(".config/banger"),
            owner_home.join(".local/state/banger"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sit_under_the_root() {
        let l = Layout::new("/tmp/dest");
        assert_eq!(l.banger(), Path::new("/tmp/dest/usr/local/bin/banger"));
        assert_eq!(
            l.install_file(),
            Path::new("/tmp/dest/etc/banger/install.toml")
        );
        assert_eq!(
            Layout::system().agent(),
            Path::new("/usr/local/lib/banger/banger-agent")
        );
        // The same places the daemon's own layout names.
        let paths = banger_config::Paths::system(Path::new("/home/a"));
        let sys = Layout::system();
        assert_eq!(paths.state_dir, sys.state_dir());
        assert_eq!(paths.cache_dir, sys.cache_dir());
        assert_eq!(paths.run_dir, sys.run_dir());
        assert_eq!(
            paths.root_helper_socket.parent().unwrap(),
            sys.helper_run_dir()
        );
        assert_eq!(paths.root_helper_socket, sys.helper_socket());
        assert_eq!(
            sys.helper_socket(),
            Path::new(banger_host::helper::HELPER_SOCKET)
        );
        assert_eq!(paths.socket, sys.daemon_socket());
        assert_eq!(Some(paths.install_file.unwrap()), Some(sys.install_file()));
        assert!(
            paths
                .ssh_dir
                .starts_with(&Layout::owner_dirs(Path::new("/home/a"))[1])
        );
        assert!(
            paths
                .ssh_config
                .starts_with(&Layout::owner_dirs(Path::new("/home/a"))[0])
        );
    }
}
