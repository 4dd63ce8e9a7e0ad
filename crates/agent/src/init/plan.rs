//! The initramfs's mounts as data.

use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

use crate::mount_spec::MountSpec;

/// The virtual filesystems carried over into the new root.
pub const MOVED_MOUNTS: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

/// What the initramfs mounts first: /proc (cmdline, mountinfo), /sys,
/// devtmpfs on /dev (block device nodes appear there as drivers probe),
/// and /run, which carries what this boot has done (the network marker)
/// to the real init; systemd keeps a /run it finds mounted.
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
        // systemd's own options for /run.
        MountSpec::new(
            "tmpfs",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755,size=20%,nr_inodes=800k"),
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

/// Where the kernel's modules disk is mounted, as seen after the switch.
pub fn modules_dir(release: &str) -> PathBuf {
    Path::new("/lib/modules").join(release)
}

/// Flags of the modules disk: read-only, and nothing on it runs or is a
/// device (modules are read by `finit_module`, not executed).
pub fn modules_mount_flags() -> MsFlags {
    MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

/// Symlinks followed while resolving one path, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// `path` inside `newroot` with the symlinks on the way followed as they
/// will resolve after the switch: an absolute target starts again at
/// `newroot`, `..` stops there. Debian's `/lib` is a link to `usr/lib`; a
/// mount made through the host's view of that link would land in the
/// initramfs and vanish with it. Missing components are kept as they are.
pub fn resolve_inside(newroot: &Path, path: &Path) -> PathBuf {
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, path);
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let here: PathBuf = std::iter::once(newroot.as_os_str())
            .chain(resolved.iter().map(OsString::as_os_str))
            .chain(std::iter::once(part.as_os_str()))
            .collect();
        match fs::read_link(&here) {
            Ok(target) if links < MAX_LINKS => {
                links += 1;
                if target.is_absolute() {
                    resolved.clear();
                }
                push_components(&mut pending, &target);
            }
            _ => resolved.push(part),
        }
    }
    std::iter::once(newroot.as_os_str())
        .chain(resolved.iter().map(OsString::as_os_str))
        .collect()
}

/// Pushes `path`'s normal and `..` components so that the first is popped
/// first.
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_mounts_are_proc_sys_dev_in_order() {
        let plan = early_mounts();
        let targets: Vec<_> = plan.iter().map(|m| m.target.clone()).collect();
        assert_eq!(
            targets,
            ["/proc", "/sys", "/dev", "/run"].map(PathBuf::from)
        );
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
    fn symlinks_resolve_inside_the_new_root_as_they_will_after_the_switch() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        let want = root.join("usr/lib/modules/6.1.0");
        assert_eq!(resolve_inside(root, &modules_dir("6.1.0")), want);
        // An absolute target is the new root's, not the initramfs's.
        fs::remove_file(root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        assert_eq!(resolve_inside(root, &modules_dir("6.1.0")), want);
        // ".." in a target stops at the new root.
        fs::remove_file(root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../../usr/lib", root.join("lib")).unwrap();
        assert_eq!(resolve_inside(root, &modules_dir("6.1.0")), want);
        // A loop ends; the path stays inside.
        fs::remove_file(root.join("lib")).unwrap();
        std::os::unix::fs::symlink("lib", root.join("lib")).unwrap();
        assert!(resolve_inside(root, &modules_dir("6.1.0")).starts_with(root));
        // Without links, the path as it is.
        assert_eq!(
            resolve_inside(root, Path::new("/usr/lib/modules")),
            root.join("usr/lib/modules")
        );
    }

    #[test]
    fn the_modules_disk_is_read_only_and_inert() {
        let flags = modules_mount_flags();
        for f in [
            MsFlags::MS_RDONLY,
            MsFlags::MS_NOSUID,
            MsFlags::MS_NODEV,
            MsFlags::MS_NOEXEC,
        ] {
            assert!(flags.contains(f));
        }
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
