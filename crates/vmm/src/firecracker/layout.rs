//! Where one VM's files are, on the host and as Firecracker sees them. The
//! two differ only under the jailer, whose Firecracker is chrooted; keeping
//! both in one place means the launch code never guesses which side a path
//! belongs to.

use std::path::{Path, PathBuf};

use super::error::FirecrackerError;
use super::jail_config::{JAILED_API_SOCKET, JailerConfig, validate_id};
use crate::{DiskSpec, VmConfig};

pub const API_SOCKET: &str = "api.sock";
pub const VSOCK_SOCKET: &str = "vsock.sock";
pub const CONSOLE_LOG: &str = "console.log";
pub const VMM_LOG: &str = "firecracker.log";
pub const METRICS: &str = "firecracker.metrics";

/// A file as the host sees it, and as Firecracker names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedPath {
    pub host: PathBuf,
    pub vmm: PathBuf,
}

impl MappedPath {
    fn same(path: PathBuf) -> MappedPath {
        MappedPath {
            host: path.clone(),
            vmm: path,
        }
    }

    fn jailed(root: &Path, inside: &str) -> MappedPath {
        MappedPath {
            host: root.join(inside.trim_start_matches('/')),
            vmm: PathBuf::from(inside),
        }
    }

    /// The path Firecracker is given, as the UTF-8 string its API takes.
    pub fn vmm_str(&self) -> Result<String, FirecrackerError> {
        self.vmm
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| FirecrackerError::NonUtf8Path {
                path: self.vmm.clone(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub api_socket: MappedPath,
    pub vsock: MappedPath,
    pub vmm_log: MappedPath,
    pub metrics: MappedPath,
    /// Firecracker's (or the jailer's) stdout and stderr: the guest's serial
    /// console. Host side only.
    pub console_log: PathBuf,
    pub kernel: MappedPath,
    pub initrd: Option<MappedPath>,
    pub root_disk: MappedPath,
    pub work_disk: Option<MappedPath>,
    pub modules_disk: Option<MappedPath>,
    /// `Some` under the jailer: the chroot's root directory on the host.
    pub jail_root: Option<PathBuf>,
    /// Files to hard-link into the jail: (original, host path in the jail).
    pub links: Vec<(PathBuf, PathBuf)>,
}

impl Layout {
    /// Firecracker unjailed: sockets and logs in the run dir, images where
    /// they are.
    pub fn direct(config: &VmConfig) -> Layout {
        let run = &config.run_dir;
        Layout {
            api_socket: MappedPath::same(run.join(API_SOCKET)),
            vsock: MappedPath::same(run.join(VSOCK_SOCKET)),
            vmm_log: MappedPath::same(run.join(VMM_LOG)),
            metrics: MappedPath::same(run.join(METRICS)),
            console_log: run.join(CONSOLE_LOG),
            kernel: MappedPath::same(config.kernel.clone()),
            initrd: config.initrd.clone().map(MappedPath::same),
            root_disk: MappedPath::same(config.root_disk.path.clone()),
            work_disk: config
                .work_disk
                .as_ref()
                .map(|d: &DiskSpec| MappedPath::same(d.path.clone())),
            modules_disk: config
                .modules_disk
                .as_ref()
                .map(|d: &DiskSpec| MappedPath::same(d.path.clone())),
            jail_root: None,
            links: Vec::new(),
        }
    }

    /// Firecracker under the jailer: everything it opens sits in the jail,
    /// the images as hard links with fixed names. The console log stays in
    /// the run dir (it is the jailer's inherited stdout).
    pub fn jailed(
        config: &VmConfig,
        jail: &JailerConfig,
        firecracker: &Path,
    ) -> Result<Layout, FirecrackerError> {
        validate_id(&config.id)?;
        let root = jail.jail_root(firecracker, &config.id);
        let mut links = Vec::new();
        let mut link = |source: &Path, inside: &str| {
            let mapped = MappedPath::jailed(&root, inside);
            links.push((source.to_path_buf(), mapped.host.clone()));
            mapped
        };
        let kernel = link(&config.kernel, "/vmlinux");
        let initrd = config.initrd.as_deref().map(|p| link(p, "/initrd"));
        let root_disk = link(&config.root_disk.path, "/rootfs");
        let work_disk = config.work_disk.as_ref().map(|d| link(&d.path, "/work"));
        let modules_disk = config
            .modules_disk
            .as_ref()
            .map(|d| link(&d.path, "/modules"));
        Ok(Layout {
            api_socket: MappedPath::jailed(&root, JAILED_API_SOCKET),
            vsock: MappedPath::jailed(&root, "/vsock.sock"),
            vmm_log: MappedPath::jailed(&root, "/firecracker.log"),
            metrics: MappedPath::jailed(&root, "/firecracker.metrics"),
            console_log: config.run_dir.join(CONSOLE_LOG),
            kernel,
            initrd,
            root_disk,
            work_disk,
            modules_disk,
            jail_root: Some(root),
            links,
        })
    }

    /// The sockets Firecracker creates, which a stopped VM leaves behind.
    pub fn sockets(&self) -> [&Path; 2] {
        [&self.api_socket.host, &self.vsock.host]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{DiskFormat, DiskSpec};

    pub(crate) fn config(run_dir: &Path) -> VmConfig {
        VmConfig {
            id: "vm-7".into(),
            vcpu: 2,
            memory_mib: 1024,
            kernel: "/images/vmlinux".into(),
            initrd: Some("/images/initrd.img".into()),
            kernel_args: "banger.root=/dev/vda".into(),
            root_disk: DiskSpec {
                path: "/vms/vm-7/root.ext4".into(),
                format: DiskFormat::Raw,
                read_only: false,
            },
            work_disk: Some(DiskSpec {
                path: "/vms/vm-7/work.ext4".into(),
                format: DiskFormat::Raw,
                read_only: false,
            }),
            modules_disk: Some(DiskSpec {
                path: "/images/modules.ext4".into(),
                format: DiskFormat::Raw,
                read_only: true,
            }),
            tap: Some("fctap3".into()),
            mac: Some("06:00:0a:00:00:07".into()),
            vsock_cid: 7,
            run_dir: run_dir.to_path_buf(),
        }
    }

    #[test]
    fn direct_layout_keeps_images_in_place_and_sockets_in_the_run_dir() {
        let layout = Layout::direct(&config(Path::new("/run/vm-7")));
        assert_eq!(layout.api_socket.host, Path::new("/run/vm-7/api.sock"));
        assert_eq!(layout.api_socket.vmm, layout.api_socket.host);
        assert_eq!(layout.vsock.vmm, Path::new("/run/vm-7/vsock.sock"));
        assert_eq!(layout.console_log, Path::new("/run/vm-7/console.log"));
        assert_eq!(layout.root_disk.vmm, Path::new("/vms/vm-7/root.ext4"));
        assert!(layout.links.is_empty() && layout.jail_root.is_none());
    }

    #[test]
    fn jailed_layout_maps_everything_into_the_chroot() {
        let jail = JailerConfig {
            binary: "/usr/bin/jailer".into(),
            uid: 1000,
            gid: 1000,
            chroot_base: "/srv/jail".into(),
        };
        let layout = Layout::jailed(
            &config(Path::new("/run/vm-7")),
            &jail,
            Path::new("/usr/bin/firecracker"),
        )
        .unwrap();
        let root = Path::new("/srv/jail/firecracker/vm-7/root");
        assert_eq!(layout.jail_root.as_deref(), Some(root));
        assert_eq!(layout.api_socket.vmm, Path::new("/run/firecracker.socket"));
        assert_eq!(layout.api_socket.host, root.join("run/firecracker.socket"));
        assert_eq!(layout.vsock.vmm, Path::new("/vsock.sock"));
        assert_eq!(layout.vsock.host, root.join("vsock.sock"));
        assert_eq!(layout.vmm_log.host, root.join("firecracker.log"));
        assert_eq!(layout.kernel.vmm, Path::new("/vmlinux"));
        assert_eq!(layout.root_disk.vmm, Path::new("/rootfs"));
        assert_eq!(layout.work_disk.as_ref().unwrap().vmm, Path::new("/work"));
        let modules = layout.modules_disk.as_ref().unwrap();
        assert_eq!(modules.vmm, Path::new("/modules"));
        assert_eq!(modules.host, root.join("modules"));
        // The console is the jailer's stdout: outside the jail.
        assert_eq!(layout.console_log, Path::new("/run/vm-7/console.log"));
        assert_eq!(
            layout.links,
            [
                ("/images/vmlinux".into(), root.join("vmlinux")),
                ("/images/initrd.img".into(), root.join("initrd")),
                ("/vms/vm-7/root.ext4".into(), root.join("rootfs")),
                ("/vms/vm-7/work.ext4".into(), root.join("work")),
                ("/images/modules.ext4".into(), root.join("modules")),
            ]
        );
    }
}
