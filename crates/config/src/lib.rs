//! banger's configuration (`config.toml`), the VM spec defaults derived from
//! it and the host, and the on-disk layout of an installation.
//!
//! Nothing here reads the process environment or the real filesystem layout
//! implicitly except [`PathEnv::from_process`] and [`HostFacts::detect`];
//! everything else takes its inputs as parameters so it can be tested in a
//! temporary directory.
#![forbid(unsafe_code)]

mod config;
mod defaults;
mod duration;
mod error;
mod file_sync;
mod install;
mod level;
mod locate;
mod network;
mod paths;
mod values;
mod vm_defaults;

pub use config::{Config, LOG_LEVEL_ENV};
pub use defaults::{HostFacts, Resolved, Source, VmDefaults, resolve_vm_defaults};
pub use duration::{DurationError, HumanDuration};
pub use error::{ConfigError, Location};
pub use file_sync::{FileSync, ResolvedFileSync, SyncHost};
pub use install::{InstallInfo, InstallOwner, InstalledRelease, valid_user_name};
pub use level::{LogLevel, UnknownKeyword, Vmm};
pub use paths::{MAX_SOCKET_PATH, Mode, PathEnv, PathError, Paths, SYSTEM_INSTALL_FILE};
pub use vm_defaults::VmDefaultsConfig;
