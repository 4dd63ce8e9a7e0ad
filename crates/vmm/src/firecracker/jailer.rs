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
use super::layout::Layout;
use crate::VmmError;

/// The API socket as Firecracker sees it inside the jail.
pub const JAILED_API_SOCKET: &str = "/run/firecracker.socket";

/// How to run Firecracker under the jailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailerConfig {
    /// The `jailer` program.
    pub binary: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// `--chroot-base-dir`; jails are `<base>/<exec file name>/<id>/root`.
    pub chroot_base: PathBuf,
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
/// (`<base>/<exec>/<id>/root/run/firecracker.socket`), if `socket` is one
/// under `jail`'s base.
pub fn jail_id_of<'a>(jail: &JailerConfig, socket: &'a Path) -> Option<&'a str> {
    if !socket.starts_with(&jail.chroot_base)
        || !socket.ends_with(JAILED_API_SOCKET.trim_start_matches('/'))
    {
        return None;
    }
    let root = socket.parent()?.parent()?;
    (root.file_name()? == "root")
        .then(|| root.parent()?.file_name()?.to_str())
        .flatten()
}

/// The jailer accepts ids of 1–64 alphanumerics and hyphens; checking here
/// gives the error before anything is created.
pub fn validate_id(id: &str) -> Result<(), FirecrackerError> {
    let ok =
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FirecrackerError::JailerId { id: id.to_owned() })
    }
}

/// Creates the jail's directories and files: the kernel and disks
/// hard-linked in (a link, unlike a copy, is instant and shares the blocks;
/// it needs the jail on the same filesystem), the log and metrics files
/// Firecracker opens but does not create, and `/run` for its API socket,
/// both owned by the jail's uid so the dropped-privilege Firecracker can use
/// them. The linked images keep their owner: they must already be readable
/// (and the writable disks writable) by that uid.
pub fn stage(layout: &Layout, jail: &JailerConfig) -> Result<(), VmmError> {
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
    for owned in [&run_dir, &layout.vmm_log.host, &layout.metrics.host] {
        std::os::unix::fs::chown(owned, Some(jail.uid), Some(jail.gid))
            .map_err(io("chown", owned))?;
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
    fn jail_id_is_recovered_from_the_host_socket_path() {
        let socket = Path::new("/srv/jail/firecracker/vm-1/root/run/firecracker.socket");
        assert_eq!(jail_id_of(&jail(), socket), Some("vm-1"));
        assert_eq!(
            jail_id_of(&jail(), Path::new("/run/vm-1/api.sock")),
            None,
            "not jailed"
        );
        assert_eq!(
            jail_id_of(
                &jail(),
                Path::new("/elsewhere/firecracker/vm-1/root/run/firecracker.socket")
            ),
            None,
            "outside the base"
        );
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
        for file in [&config.kernel, &config.root_disk.path] {
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
        stage(&layout, &jail).unwrap();
        let inode = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(inode(&root.join("vmlinux")), inode(&config.kernel));
        assert_eq!(inode(&root.join("rootfs")), inode(&config.root_disk.path));
        assert!(root.join("run").is_dir());
        // Staging twice (a relaunch) works.
        stage(&layout, &jail).unwrap();

        // An image that does not exist is named.
        fs::remove_file(&config.kernel).unwrap();
        let err = stage(&layout, &jail).unwrap_err();
        assert!(
            matches!(&err, VmmError::Io { path, .. } if path == &config.kernel),
            "{err:?}"
        );
    }
}
