//! `bangerd --root-helper`: the root helper's process (SPEC §2, §4). It
//! binds its socket with its final mode (0600, owned by the owner, so only
//! the owner and root can connect; `SO_PEERCRED` is checked again on every
//! connection) and serves `banger_host::helper` requests with the
//! in-process host operations, until it is killed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use banger_host::helper::{HelperPolicy, serve};
use banger_host::{LocalHost, ManagedRoots};

use crate::error::{StartupError, io_err};

/// What the helper is started with (from its unit, or by hand).
#[derive(Debug, Clone)]
pub struct HelperOptions {
    pub socket: PathBuf,
    pub owner_uid: u32,
    /// The owner daemon's state, cache and run directories: the only
    /// places a path in a request may point.
    pub managed_roots: Vec<PathBuf>,
}

/// Serves until accepting fails (or the process is killed).
pub fn run(opts: HelperOptions) -> Result<(), StartupError> {
    if !banger_sys::os::is_root() {
        return Err(StartupError::Helper(
            "the root helper performs host operations that need root: run it as root".into(),
        ));
    }
    let roots = ManagedRoots::new(opts.managed_roots.clone())
        .map_err(|e| StartupError::Helper(format!("--managed-root: {e}")))?;
    let listener = bind(&opts.socket, opts.owner_uid)?;
    let dir = opts.socket.parent().unwrap_or(Path::new("/"));
    // Runtime state: `ip_forward` is back to its boot value after a reboot
    // anyway, and so is this file under /run.
    let host = LocalHost::new().with_forwarding_state(dir.join("ip-forward.json"));
    tracing::info!(
        socket = %opts.socket.display(),
        owner_uid = opts.owner_uid,
        roots = ?roots.roots(),
        "root helper serving"
    );
    let policy = Arc::new(HelperPolicy {
        owner_uid: opts.owner_uid,
        roots,
        builder: Some(Arc::new(crate::helper_build::HelperImageBuilder)),
    });
    let err = serve(&listener, policy, Arc::new(host));
    Err(io_err("accept connections on", &opts.socket)(err))
}

/// The socket, created 0600 (umask before bind: no moment with a looser
/// mode) in a 0711 directory, then given to the owner.
fn bind(socket: &Path, owner_uid: u32) -> Result<std::os::unix::net::UnixListener, StartupError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    let dir = socket.parent().unwrap_or(Path::new("/"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(dir)
        .map_err(io_err("create", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .map_err(io_err("set the mode of", dir))?;
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(socket).map_err(io_err("remove the stale socket", socket))?
        }
        Ok(_) => {
            return Err(StartupError::Helper(format!(
                "{} exists and is not a socket; remove it",
                socket.display()
            )));
        }
        Err(_) => {}
    }
    let previous = banger_sys::os::set_umask(0o177);
    let bound = std::os::unix::net::UnixListener::bind(socket);
    banger_sys::os::set_umask(previous);
    let listener = bound.map_err(io_err("bind", socket))?;
    std::os::unix::fs::chown(socket, Some(owner_uid), None)
        .map_err(io_err("give the owner", socket))?;
    Ok(listener)
}
