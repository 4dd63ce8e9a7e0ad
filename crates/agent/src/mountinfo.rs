//! `/proc/self/mountinfo`: which mount points exist, and which of them hold
//! data that must be unmounted cleanly at power-off.

use std::path::{Path, PathBuf};

/// Where the running kernel lists this process's mounts.
pub const PROC_MOUNTINFO: &str = "/proc/self/mountinfo";

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// Parses mountinfo text; malformed lines are skipped.
///
/// Format: `id parent maj:min root mount-point options [optional...] - fstype source super-options`,
/// with spaces, tabs, newlines and backslashes in paths escaped as octal.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').collect();
    let separator = fields.iter().position(|f| *f == "-")?;
    if separator < 6 || fields.len() < separator + 3 {
        return None;
    }
    Some(MountEntry {
        mount_point: PathBuf::from(unescape(fields[4])),
        fstype: fields[separator + 1].to_string(),
        source: unescape(fields[separator + 2]),
    })
}

/// Undoes the kernel's `\ooo` escaping (`\040` is a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when something is mounted exactly at `path`.
pub fn is_mount_point(entries: &[MountEntry], path: &Path) -> bool {
    entries.iter().any(|e| e.mount_point == path)
}

/// Filesystems with no backing storage: nothing to flush, and unmounting
/// them at power-off only risks breaking the steps that follow.
const VIRTUAL_FS: [&str; 22] = [
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "rootfs",
    "cgroup",
    "cgroup2",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "efivarfs",
    "nsfs",
];

/// The mounts to unmount before power-off, innermost first: everything but
/// `/` and virtual filesystems, in reverse mount order (a mount always
/// appears after the one it sits on). `/` is remounted read-only instead.
pub fn unmount_order(entries: &[MountEntry]) -> Vec<PathBuf> {
    entries
        .iter()
        .rev()
        .filter(|e| e.mount_point != Path::new("/"))
        .filter(|e| !VIRTUAL_FS.contains(&e.fstype.as_str()))
        .map(|e| e.mount_point.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 253:0 / / rw,relatime - ext4 /dev/vda rw
23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=4096k,mode=755
24 22 0:22 / /proc rw,nosuid,nodev,noexec - proc proc rw
25 22 0:23 / /sys rw,nosuid,nodev,noexec - sysfs sysfs rw
26 23 0:24 / /dev/pts rw,nosuid,noexec shared:3 - devpts devpts rw,gid=5,mode=620
27 22 0:25 / /run rw,nosuid,nodev - tmpfs tmpfs rw,mode=755
28 22 253:16 / /root rw,relatime shared:7 master:1 - ext4 /dev/vdb rw
29 28 253:32 / /root/my\\040data rw - xfs /dev/vdc rw
30 22 0:26 / /tmp rw - tmpfs tmpfs rw
broken line
31 22 0:27 / /mnt - overlay
";

    #[test]
    fn parses_entries_and_skips_broken_lines() {
        let entries = parse(SAMPLE);
        assert_eq!(entries.len(), 9);
        assert_eq!(
            entries[0],
            MountEntry {
                mount_point: "/".into(),
                fstype: "ext4".into(),
                source: "/dev/vda".into()
            }
        );
        // Optional fields (shared:, master:) do not shift the fstype.
        assert_eq!(entries[6].fstype, "ext4");
        assert_eq!(entries[6].source, "/dev/vdb");
        assert_eq!(entries[7].mount_point, Path::new("/root/my data"));
    }

    #[test]
    fn finds_mount_points() {
        let entries = parse(SAMPLE);
        assert!(is_mount_point(&entries, Path::new("/proc")));
        assert!(is_mount_point(&entries, Path::new("/dev/pts")));
        assert!(!is_mount_point(&entries, Path::new("/dev/shm")));
        assert!(!is_mount_point(&entries, Path::new("/pro")));
    }

    #[test]
    fn unmounts_storage_innermost_first_and_never_root() {
        assert_eq!(
            unmount_order(&parse(SAMPLE)),
            vec![PathBuf::from("/root/my data"), PathBuf::from("/root")]
        );
    }

    #[test]
    fn unescape_handles_edge_cases() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("tab\\011x"), "tab\tx");
        assert_eq!(unescape("back\\134slash"), "back\\slash");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
        assert_eq!(unescape("not\\999octal"), "not\\999octal");
    }

    #[test]
    fn reads_this_process_mountinfo() {
        let text = std::fs::read_to_string(PROC_MOUNTINFO).unwrap();
        let entries = parse(&text);
        assert!(is_mount_point(&entries, Path::new("/")));
        assert!(is_mount_point(&entries, Path::new("/proc")));
    }
}
