//! Where banger keeps things (SPEC §2, §5): the system-install layout, or a
//! development layout under `BANGER_HOME` or the XDG directories.
//!
//! Resolution is a pure function of [`PathEnv`], so tests pass their own
//! environment and never look at the real one.

use std::fmt;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Its presence means banger was installed with `banger system install`.
pub const SYSTEM_INSTALL_FILE: &str = "/etc/banger/install.toml";

/// `sun_path` is 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

const PRIVATE_DIR_MODE: u32 = 0o700;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    System,
    Development,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::System => "system",
            Self::Development => "development",
        })
    }
}

/// Every location banger uses. All paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paths {
    pub mode: Mode,
    pub config_dir: PathBuf,
    pub config_file: PathBuf,
    pub ssh_config: PathBuf,
    /// Holds `id_ed25519` and `known_hosts`.
    pub ssh_dir: PathBuf,
    pub state_dir: PathBuf,
    pub db_file: PathBuf,
    pub images_dir: PathBuf,
    pub kernels_dir: PathBuf,
    pub vms_dir: PathBuf,
    pub jail_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub run_dir: PathBuf,
    pub socket: PathBuf,
    pub root_helper_socket: PathBuf,
    pub daemon_log: PathBuf,
    /// `Some` only for a system install.
    pub install_file: Option<PathBuf>,
}

/// The parts of the process environment that decide the layout. Empty
/// variables count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathEnv {
    pub banger_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
    /// Read for completeness but unused: images and kernels are machine
    /// state rather than portable user data, so they live in the state dir.
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_cache_home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub system_install_file_exists: bool,
}

impl PathEnv {
    /// Reads `BANGER_HOME`, `HOME`, the `XDG_*` variables and whether
    /// [`SYSTEM_INSTALL_FILE`] exists.
    pub fn from_process() -> PathEnv {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        PathEnv {
            banger_home: var("BANGER_HOME"),
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            xdg_state_home: var("XDG_STATE_HOME"),
            xdg_data_home: var("XDG_DATA_HOME"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            system_install_file_exists: Path::new(SYSTEM_INSTALL_FILE).exists(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("{var} must be an absolute path, got {:?}", value.display())]
    NotAbsolute { var: &'static str, value: PathBuf },
    #[error(
        "cannot tell where banger's files go: neither BANGER_HOME nor HOME is set; set BANGER_HOME to a directory for banger's state"
    )]
    NoHome,
    #[error(
        "banger is installed system-wide ({SYSTEM_INSTALL_FILE} exists) but HOME is not set; it must be the owner's home, which holds banger's ssh files"
    )]
    NoOwnerHome,
    #[error(
        "socket path {} is {len} bytes, over the {MAX_SOCKET_PATH}-byte limit for Unix sockets; set BANGER_HOME to a shorter directory",
        path.display()
    )]
    SocketTooLong { path: PathBuf, len: usize },
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot make directory {} private (mode 0700): {source}", path.display())]
    Permissions {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Paths {
    /// Picks the layout: `BANGER_HOME` wins (development), then a system
    /// install, then development under the XDG directories.
    pub fn resolve(env: &PathEnv) -> Result<Paths, PathError> {
        let paths = if let Some(root) = set(&env.banger_home) {
            Self::development(absolute("BANGER_HOME", root)?)
        } else if env.system_install_file_exists {
            let home = set(&env.home).ok_or(PathError::NoOwnerHome)?;
            Self::system(absolute("HOME", home)?)
        } else {
            let home = set(&env.home).ok_or(PathError::NoHome)?;
            Self::xdg(absolute("HOME", home)?, env)
        };
        paths.check_socket_lengths()?;
        Ok(paths)
    }

    /// Everything under one root, as tests and `cargo run` use.
    pub fn development(home: &Path) -> Paths {
        Self::dev_layout(
            home.join("config"),
            home.join("state"),
            home.join("cache"),
            home.join("run"),
        )
    }

    /// The system-install layout; `owner_home` holds the owner's ssh files.
    pub fn system(owner_home: &Path) -> Paths {
        let config_dir = PathBuf::from("/etc/banger");
        let state_dir = PathBuf::from("/var/lib/banger");
        let run_dir = PathBuf::from("/run/banger");
        Paths {
            mode: Mode::System,
            config_file: config_dir.join("config.toml"),
            install_file: Some(config_dir.join("install.toml")),
            config_dir,
            ssh_config: owner_home.join(".config/banger/ssh_config"),
            ssh_dir: owner_home.join(".local/state/banger/ssh"),
            db_file: state_dir.join("banger.db"),
            images_dir: state_dir.join("images"),
            kernels_dir: state_dir.join("kernels"),
            vms_dir: state_dir.join("vms"),
            jail_dir: state_dir.join("jail"),
            daemon_log: state_dir.join("bangerd.log"),
            state_dir,
            cache_dir: PathBuf::from("/var/cache/banger"),
            socket: run_dir.join("bangerd.sock"),
            // The helper's socket has its own directory so that directory's
            // permissions, not just the socket's, keep others out.
            root_helper_socket: PathBuf::from("/run/banger-root/bangerd-root.sock"),
            run_dir,
        }
    }

    /// Development mode without `BANGER_HOME`: the XDG base directories.
    fn xdg(home: &Path, env: &PathEnv) -> Paths {
        // The XDG spec says relative values are invalid and must be ignored.
        let base = |var: &Option<PathBuf>, fallback: &str| {
            set(var)
                .filter(|p| p.is_absolute())
                .map_or_else(|| home.join(fallback), Path::to_path_buf)
                .join("banger")
        };
        let state = base(&env.xdg_state_home, ".local/state");
        let run = set(&env.xdg_runtime_dir)
            .filter(|p| p.is_absolute())
            .map_or_else(|| state.join("run"), |r| r.join("banger"));
        Self::dev_layout(
            base(&env.xdg_config_home, ".config"),
            state,
            base(&env.xdg_cache_home, ".cache"),
            run,
        )
    }

    fn dev_layout(
        config_dir: PathBuf,
        state_dir: PathBuf,
        cache_dir: PathBuf,
        run_dir: PathBuf,
    ) -> Paths {
        Paths {
            mode: Mode::Development,
            config_file: config_dir.join("config.toml"),
            ssh_config: config_dir.join("ssh_config"),
            config_dir,
            ssh_dir: state_dir.join("ssh"),
            db_file: state_dir.join("banger.db"),
            images_dir: state_dir.join("images"),
            kernels_dir: state_dir.join("kernels"),
            vms_dir: state_dir.join("vms"),
            jail_dir: state_dir.join("jail"),
            daemon_log: state_dir.join("bangerd.log"),
            state_dir,
            cache_dir,
            socket: run_dir.join("bangerd.sock"),
            root_helper_socket: run_dir.join("bangerd-root.sock"),
            run_dir,
            install_file: None,
        }
    }

    /// The directory of one VM's disks and runtime files.
    pub fn vm_dir(&self, id: &str) -> PathBuf {
        self.vms_dir.join(id)
    }

    /// Binding a longer socket path fails with a baffling EINVAL deep in the
    /// daemon; catching it here lets the error say what to change. Both
    /// sockets are checked because the helper's name is the longer one.
    fn check_socket_lengths(&self) -> Result<(), PathError> {
        for socket in [&self.socket, &self.root_helper_socket] {
            let len = socket.as_os_str().len();
            if len > MAX_SOCKET_PATH {
                return Err(PathError::SocketTooLong {
                    path: socket.clone(),
                    len,
                });
            }
        }
        Ok(())
    }

    /// Creates banger's directories, private to the owner (0700). The run and
    /// ssh directories are forced to 0700 even if they already existed, as
    /// they hold the control socket and private keys; the others get 0700
    /// when created and are otherwise left as the user set them.
    pub fn ensure_private_dirs(&self) -> Result<(), PathError> {
        let dirs = [
            (&self.run_dir, true),
            (&self.state_dir, false),
            (&self.config_dir, false),
            (&self.ssh_dir, true),
            (&self.cache_dir, false),
            (&self.vms_dir, false),
            (&self.images_dir, false),
            (&self.kernels_dir, false),
        ];
        for (dir, always_private) in dirs {
            ensure_private_dir(dir, always_private)?;
        }
        Ok(())
    }
}

fn ensure_private_dir(dir: &Path, always_private: bool) -> Result<(), PathError> {
    let existed = dir.is_dir();
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(|source| PathError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    // The mode given to mkdir is filtered by the umask; set it explicitly.
    if always_private || !existed {
        fs::set_permissions(dir, Permissions::from_mode(PRIVATE_DIR_MODE)).map_err(|source| {
            PathError::Permissions {
                path: dir.to_path_buf(),
                source,
            }
        })?;
    }
    Ok(())
}

/// A set, non-empty variable.
fn set(var: &Option<PathBuf>) -> Option<&Path> {
    var.as_deref().filter(|p| !p.as_os_str().is_empty())
}

fn absolute<'a>(var: &'static str, value: &'a Path) -> Result<&'a Path, PathError> {
    if value.is_absolute() {
        Ok(value)
    } else {
        Err(PathError::NotAbsolute {
            var,
            value: value.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests;
