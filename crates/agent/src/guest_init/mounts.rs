//! The minimal image's base mounts. Most are already there when the
//! initramfs moved /proc, /sys and /dev in; the rest are mounted here.

use std::path::Path;

use nix::mount::MsFlags;

use crate::mount_spec::{self, MountSpec};
use crate::mountinfo;

/// Everything a userland expects, in mount order (/dev before /dev/pts).
pub fn plan() -> Vec<MountSpec> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    // /proc, /sys and /dev exactly as the initramfs mounts them (and moves
    // in): booted without an initramfs, the minimal image mounts them here.
    let mut plan = crate::init::plan::early_mounts();
    plan.extend([
        // gid 5 is "tty" on Debian; sshd allocates session ttys here.
        MountSpec::new(
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("gid=5,mode=0620,ptmxmode=0666"),
        ),
        MountSpec::new(
            "tmpfs",
            "/dev/shm",
            "tmpfs",
            nosuid_nodev,
            Some("mode=1777"),
        ),
        MountSpec::new("tmpfs", "/tmp", "tmpfs", nosuid_nodev, Some("mode=1777")),
        MountSpec::new("cgroup2", "/sys/fs/cgroup", "cgroup2", hardened, None),
    ]);
    plan
}

/// Mounts what is missing; a failure is logged and the rest still tried.
pub fn mount_all() {
    let plan = plan();
    // /proc first: the mount table is read from it.
    if !Path::new(mountinfo::PROC_MOUNTINFO).exists() {
        if let Err(e) = mount_spec::apply(&plan[0]) {
            crate::error!("{e}");
        }
    }
    let mounted = mount_spec::current_mounts();
    for spec in mount_spec::missing(&plan, &mounted) {
        if let Err(e) = mount_spec::apply(spec) {
            crate::error!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn plan_covers_the_base_mounts_in_order() {
        let targets: Vec<PathBuf> = plan().into_iter().map(|m| m.target).collect();
        for required in ["/proc", "/sys", "/dev", "/dev/pts", "/run", "/tmp"] {
            assert!(targets.contains(&PathBuf::from(required)), "{required}");
        }
        let position = |p: &str| targets.iter().position(|t| t == Path::new(p)).unwrap();
        assert_eq!(position("/proc"), 0);
        assert!(position("/dev") < position("/dev/pts"));
        assert!(position("/dev") < position("/dev/shm"));
        assert!(position("/sys") < position("/sys/fs/cgroup"));
    }

    #[test]
    fn after_the_initramfs_only_the_rest_is_mounted() {
        let moved_in = mountinfo::parse(
            "1 0 8:0 / / rw - ext4 /dev/vda rw\n\
             2 1 0:5 / /dev rw - devtmpfs devtmpfs rw\n\
             3 1 0:6 / /proc rw - proc proc rw\n\
             4 1 0:7 / /sys rw - sysfs sysfs rw\n\
             5 1 0:8 / /run rw - tmpfs tmpfs rw\n",
        );
        let plan = plan();
        let todo: Vec<_> = mount_spec::missing(&plan, &moved_in)
            .into_iter()
            .map(|m| m.target.to_str().unwrap().to_string())
            .collect();
        assert_eq!(todo, ["/dev/pts", "/dev/shm", "/tmp", "/sys/fs/cgroup"]);
    }
}
