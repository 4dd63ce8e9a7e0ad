//! What the service's unit tests share.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use super::config::ServiceConfig;
use super::power::DisabledPower;

/// The service's configuration for a guest root at `root` that, like every
/// real one, has /etc; nothing reaches the running kernel.
pub fn config(root: &Path) -> ServiceConfig {
    fs::create_dir_all(root.join("etc")).unwrap();
    let mut config = ServiceConfig::guest(Arc::new(DisabledPower));
    config.fs_root = root.to_path_buf();
    config.apply_live = false;
    config
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}
