//! The initramfs's mounts as data.

use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

use crate::mount_spec::MountSpec;

/// The virtual filesystems carried over into the new root.
pub const MOVED_MOUNTS: [&str; 3] = ["/dev", "/proc", "/sys"];

/// What the initramfs mounts first: /proc (cmdline, mountinfo), /sys, and
/// devtmpfs on /dev (block device nodes appear there as drivers probe).
pub fn early_mounts() -> Vec<MountSpec> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    vec![
        MountSpec::new("proc", "/proc", "proc", hardened, None),
        MountSpec::new("sysfs", "/sys", "sysfs", hardened, None),
        MountSpec::new(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
    ]
}

/// Flags of the root filesystem mount.
pub fn root_mount_flags(read_only: bool) -> MsFlags {
    if read_only {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    }
}

/// `path` (absolute, as seen after the switch) as seen from before it.
pub fn path_inside(newroot: &Path, path: &Path) -> PathBuf {
    let mut inside = newroot.to_path_buf();
    for component in path.components() {
        if let Component::Normal(part) = component {
            inside.push(part);
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_mounts_are_proc_sys_dev_in_order() {
        let plan = early_mounts();
        let targets: Vec<_> = plan.iter().map(|m| m.target.clone()).collect();
        assert_eq!(targets, ["/proc", "/sys", "/dev"].map(PathBuf::from));
        assert_eq!(plan[2].fstype, "devtmpfs");
        assert!(plan[0].flags.contains(MsFlags::MS_NOEXEC));
        // /dev must allow device nodes.
        assert!(!plan[2].flags.contains(MsFlags::MS_NODEV));
    }

    #[test]
    fn every_early_mount_is_moved() {
        for spec in early_mounts() {
            assert!(MOVED_MOUNTS.contains(&spec.target.to_str().unwrap()));
        }
    }

    #[test]
    fn root_is_read_only_only_when_asked() {
        assert!(root_mount_flags(true).contains(MsFlags::MS_RDONLY));
        assert!(!root_mount_flags(false).contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn paths_are_resolved_inside_the_new_root() {
        let root = Path::new("/newroot");
        assert_eq!(
            path_inside(root, Path::new("/sbin/init")),
            Path::new("/newroot/sbin/init")
        );
        assert_eq!(
            path_inside(root, Path::new("/dev")),
            Path::new("/newroot/dev")
        );
        // ".." cannot climb out of the new root.
        assert_eq!(
            path_inside(root, Path::new("/../../bin/sh")),
            Path::new("/newroot/bin/sh")
        );
    }
}
