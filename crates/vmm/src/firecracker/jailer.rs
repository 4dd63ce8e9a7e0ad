//! Firecracker's jailer: it chroots, drops to an unprivileged uid/gid and
//! execs Firecracker in place (same pid). Everything Firecracker opens must
//! then be inside `<chroot_base>/<exec file name>/<id>/root/`, and the API
//! sees paths relative to that root; [`super::layout::Layout::jailed`] maps
//! them, [`stage`] puts the files there.

use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::error::FirecrackerError;
pub use super::jail_config::{JAILED_API_SOCKET, JailerConfig, validate_id};
use super::layout::Layout;
use crate::{VmConfig, VmHandle, VmmError};

/// The file the jailer will exec: `binary` with its symlinks resolved, as
/// the jailer resolves `--exec-file` before it names the jail after the
/// file. Passing this path, and building the jail root from it, keeps both
/// sides on the same directory. Unresolvable: the path as given (the
/// launch then fails on the missing file with a clear error).
pub fn exec_file(binary: &Path) -> PathBuf {
    std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf())
}

impl JailerConfig {
    /// The jail's root directory, as the jailer computes it: the exec file's
    /// name (normally `firecracker`) and the id under the base.
    pub fn jail_root(&self, firecracker: &Path, id: &str) -> PathBuf {
        let exec_name = firecracker
            .file_name()
            .map_or_else(|| OsString::from("firecracker"), ToOwned::to_owned);
        self.chroot_base.join(exec_name).join(id).join("root")
    }

    /// The full argv, program first.
    pub fn argv(&self, firecracker: &Path, id: &str) -> Result<Vec<OsString>, FirecrackerError> {
        validate_id(id)?;
        let mut argv: Vec<OsString> = vec![
            self.binary.clone().into(),
            "--id".into(),
            id.into(),
            "--exec-file".into(),
            firecracker.into(),
            "--uid".into(),
            self.uid.to_string().into(),
            "--gid".into(),
            self.gid.to_string().into(),
            "--chroot-base-dir".into(),
            self.chroot_base.clone().into(),
            "--".into(),
        ];
        argv.extend(["--api-sock".into(), JAILED_API_SOCKET.into()]);
        Ok(argv)
    }
}

/// The jail id of a jailed Firecracker's host-side API socket
/// (`<base>/<exec>/<id>/root/run/firecracker.socket`), read from the path
/// alone: a VM launched under the jailer must still be recognised after the
/// configuration changed.
pub fn jail_id_of(socket: &Path) -> Option<&str> {
    let dir = jail_dir_of(socket)?;
    let id = dir.file_name()?.to_str()?;
    validate_id(id).is_ok().then_some(id)
}

/// The jail's own directory, `<base>/<exec>/<id>`, of a jailed API socket.
fn jail_dir_of(socket: &Path) -> Option<&Path> {
    if !socket.ends_with(JAILED_API_SOCKET.trim_start_matches('/')) {
        return None;
    }
    let root = socket.parent()?.parent()?;
    (root.file_name()? == "root").then_some(root.parent()?)
}

/// Removes the jail of a stopped VMM: the links to its images (which would
/// keep a deleted root disk's blocks allocated), its sockets and files. The
/// VMM's log is appended to `firecracker.log` beside the console log first,
/// so `vm logs` still has it. Nothing for an unjailed handle; idempotent.
pub fn remove_jail(handle: &VmHandle) -> Result<(), VmmError> {
    let socket = &handle.control_socket;
    let (Some(dir), Some(_)) = (jail_dir_of(socket), jail_id_of(socket)) else {
        return Ok(());
    };
    if let Some(run_dir) = handle.console_log.parent() {
        keep_log(&handle.vmm_log, &run_dir.join(super::VMM_LOG));
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io("remove the jail", dir)(e)),
        _ => Ok(()),
    }
}

/// Best effort: a log that cannot be kept must not stop the teardown.
fn keep_log(from: &Path, to: &Path) {
    let Ok(mut source) = fs::File::open(from) else {
        return;
    };
    let copied = fs::File::options()
        .create(true)
        .append(true)
        .open(to)
        .and_then(|mut target| std::io::copy(&mut source, &mut target));
    if let Err(e) = copied {
        tracing::warn!(from = %from.display(), to = %to.display(), error = %e, "cannot keep the jailed VMM's log");
    }
}

/// Creates the jail's directories and files: the kernel and disks
/// hard-linked in (a link, unlike a copy, is instant and shares the blocks;
/// it needs the jail on the same filesystem), the log and metrics files
/// Firecracker opens but does not create, and `/run` for its API socket,
/// both owned by the jail's uid so the dropped-privilege Firecracker can use
/// them. The VM's writable disks are given to that uid too (through the
/// link: the same inode); the kernel and initrd keep their owner and must be
/// readable by it.
pub fn stage(config: &VmConfig, layout: &Layout, jail: &JailerConfig) -> Result<(), VmmError> {
    let Some(root) = &layout.jail_root else {
        return Ok(());
    };
    let run_dir = root.join("run");
    fs::create_dir_all(&run_dir).map_err(io("create", &run_dir))?;
    for (source, target) in &layout.links {
        match fs::remove_file(target) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io("replace", target)(e)),
        }
        fs::hard_link(source, target).map_err(|e| FirecrackerError::JailLink {
            source_path: source.clone(),
            jail_path: target.clone(),
            source: e,
        })?;
    }
    let disks = [
        (Some(&config.root_disk), Some(&layout.root_disk)),
        (config.work_disk.as_ref(), layout.work_disk.as_ref()),
        (config.modules_disk.as_ref(), layout.modules_disk.as_ref()),
    ];
    let writable = disks.into_iter().filter_map(|pair| match pair {
        (Some(disk), Some(mapped)) if !disk.read_only => Some(&mapped.host),
        _ => None,
    });
    let owned = [&run_dir, &layout.vmm_log.host, &layout.metrics.host];
    for path in owned.into_iter().chain(writable) {
        std::os::unix::fs::chown(path, Some(jail.uid), Some(jail.gid))
            .map_err(io("chown", path))?;
    }
    Ok(())
}

fn io(action: &'static str, path: &Path) -> impl Fn(std::io::Error) -> VmmError {
    let path = path.to_path_buf();
    move |source| VmmError::Io {
        action,
        path: path.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail() -> JailerConfig {
        JailerConfig {
            binary: "/usr/bin/jailer".into(),
            uid: 1000,
            gid: 1001,
            chroot_base: "/srv/jail".into(),
        }
    }

    #[test]
    fn argv_runs_firecracker_with_the_in_jail_socket() {
        let argv = jail()
            .argv(Path::new("/usr/bin/firecracker"), "vm-1")
            .unwrap();
        let argv: Vec<String> = argv.into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            argv,
            [
                "/usr/bin/jailer",
                "--id",
                "vm-1",
                "--exec-file",
                "/usr/bin/firecracker",
                "--uid",
                "1000",
                "--gid",
                "1001",
                "--chroot-base-dir",
                "/srv/jail",
                "--",
                "--api-sock",
                "/run/firecracker.socket",
            ]
        );
    }

    #[test]
    fn jail_root_is_named_after_the_exec_file_and_id() {
        assert_eq!(
            jail().jail_root(Path::new("/opt/fc/firecracker"), "vm-1"),
            Path::new("/srv/jail/firecracker/vm-1/root")
        );
        assert_eq!(
            jail().jail_root(Path::new("/opt/fc/firecracker-v1.7.0"), "x"),
            Path::new("/srv/jail/firecracker-v1.7.0/x/root")
        );
    }

    #[test]
    fn a_release_install_symlink_names_the_jail_after_the_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("firecracker-v1.17.0-x86_64");
        fs::write(&real, b"binary").unwrap();
        let link = dir.path().join("firecracker");
        std::os::unix::fs::symlink("firecracker-v1.17.0-x86_64", &link).unwrap();
        let exec = exec_file(&link);
        assert_eq!(exec, fs::canonicalize(&real).unwrap());
        assert_eq!(
            jail().jail_root(&exec, "vm-1"),
            Path::new("/srv/jail/firecracker-v1.17.0-x86_64/vm-1/root")
        );
        let argv = jail().argv(&exec, "vm-1").unwrap();
        let at = argv.iter().position(|a| a == "--exec-file").unwrap();
        assert_eq!(PathBuf::from(&argv[at + 1]), exec);
        // A path that cannot be resolved stays as given.
        let missing = dir.path().join("nope");
        assert_eq!(exec_file(&missing), missing);
    }

    #[test]
    fn jail_id_is_recovered_from_the_host_socket_path() {
        let socket = Path::new("/srv/jail/firecracker/vm-1/root/run/firecracker.socket");
        assert_eq!(jail_id_of(socket), Some("vm-1"));
        // Under any base: the configured one may have changed since.
        let elsewhere = Path::new("/elsewhere/firecracker/vm-2/root/run/firecracker.socket");
        assert_eq!(jail_id_of(elsewhere), Some("vm-2"));
        assert_eq!(
            jail_id_of(Path::new("/run/vm-1/api.sock")),
            None,
            "not jailed"
        );
        assert_eq!(
            jail_id_of(Path::new(
                "/srv/jail/firecracker/vm-1/notroot/run/firecracker.socket"
            )),
            None
        );
        assert_eq!(
            jail_id_of(Path::new("/srv/jail/x/bad.id/root/run/firecracker.socket")),
            None,
            "not an id the jailer takes"
        );
    }

    #[test]
    fn removing_a_jail_keeps_the_vmm_log_and_spares_unjailed_handles() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let jail_dir = dir.path().join("jail/firecracker/vm-1");
        let root = jail_dir.join("root");
        fs::create_dir_all(root.join("run")).unwrap();
        fs::create_dir_all(&run).unwrap();
        fs::write(root.join("firecracker.log"), "vmm said this\n").unwrap();
        fs::write(root.join("rootfs"), "disk link").unwrap();
        let handle = VmHandle {
            backend: crate::BackendKind::Firecracker,
            pid: 0,
            helper_pids: Vec::new(),
            control_socket: root.join("run/firecracker.socket"),
            vsock_uds: root.join("vsock.sock"),
            console_log: run.join("console.log"),
            vmm_log: root.join("firecracker.log"),
        };
        remove_jail(&handle).unwrap();
        assert!(!jail_dir.exists(), "the jail is gone");
        assert!(
            dir.path().join("jail/firecracker").is_dir(),
            "only the VM's own"
        );
        assert_eq!(
            fs::read_to_string(run.join("firecracker.log")).unwrap(),
            "vmm said this\n"
        );
        remove_jail(&handle).unwrap();

        let unjailed = VmHandle {
            control_socket: run.join("api.sock"),
            ..handle
        };
        fs::write(run.join("keep"), "").unwrap();
        remove_jail(&unjailed).unwrap();
        assert!(run.join("keep").exists());
    }

    #[test]
    fn ids_the_jailer_would_refuse_are_refused_first() {
        for bad in ["", "has space", "dot.ted", "slash/", &"a".repeat(65)] {
            let err = jail().argv(Path::new("/fc"), bad).unwrap_err();
            assert!(matches!(err, FirecrackerError::JailerId { .. }), "{bad:?}");
        }
        assert!(validate_id(&"a".repeat(64)).is_ok());
        assert!(validate_id("Vm-0-9").is_ok());
    }

    #[test]
    fn stage_links_images_and_creates_owned_files_in_the_jail() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        fs::create_dir(&images).unwrap();
        let mut config = crate::firecracker::layout::tests::config(&dir.path().join("run"));
        config.kernel = images.join("vmlinux");
        config.initrd = None;
        config.root_disk.path = images.join("root.ext4");
        config.work_disk = None;
        config.modules_disk.as_mut().unwrap().path = images.join("modules.ext4");
        let modules = config.modules_disk.clone().unwrap().path;
        for file in [&config.kernel, &config.root_disk.path, &modules] {
            fs::write(file, b"image").unwrap();
        }
        // Our own uid and gid: chown to them needs no privilege.
        let me = fs::metadata(&images).unwrap();
        let jail = JailerConfig {
            binary: "/usr/bin/jailer".into(),
            uid: me.uid(),
            gid: me.gid(),
            chroot_base: dir.path().join("jail"),
        };
        let layout = Layout::jailed(&config, &jail, Path::new("/usr/bin/firecracker")).unwrap();
        let root = layout.jail_root.clone().unwrap();
        fs::create_dir_all(&root).unwrap();
        for file in [&layout.vmm_log.host, &layout.metrics.host] {
            fs::write(file, b"").unwrap();
        }
        // A leftover link from an earlier launch is replaced.
        fs::write(root.join("rootfs"), b"old").unwrap();
        stage(&config, &layout, &jail).unwrap();
        let inode = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(inode(&root.join("vmlinux")), inode(&config.kernel));
        assert_eq!(inode(&root.join("rootfs")), inode(&config.root_disk.path));
        assert_eq!(inode(&root.join("modules")), inode(&modules));
        assert!(root.join("run").is_dir());
        // Staging twice (a relaunch) works.
        stage(&config, &layout, &jail).unwrap();

        // An image that does not exist is named.
        fs::remove_file(&config.kernel).unwrap();
        let err = stage(&config, &layout, &jail).unwrap_err();
        assert!(
            matches!(&err, VmmError::Io { path, .. } if path == &config.kernel),
            "{err:?}"
        );
    }
}
