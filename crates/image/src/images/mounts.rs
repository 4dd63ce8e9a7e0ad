//! Finding mounts below a directory before removing it. mmdebstrap mounts
//! `/proc`, `/sys` and device nodes inside the tree it builds; if it is
//! killed they can stay mounted, and removing the tree recursively would
//! then delete files of the host's mounted filesystems.

use std::path::{Path, PathBuf};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The first mount point at or below `dir`, if any. `dir` must be
/// canonical (mountinfo lists canonical paths).
pub(crate) fn first_mount_under(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let text = std::fs::read_to_string(MOUNTINFO)?;
    Ok(mount_points(&text).find(|m| m.starts_with(dir)))
}

/// The mount points of a mountinfo text (the fifth field of each line).
fn mount_points(mountinfo: &str) -> impl Iterator<Item = PathBuf> + '_ {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
}

/// The kernel writes space, tab, newline and backslash in mountinfo paths
/// as three-digit octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:5 / /srv/images/.staging-x@abc/rootfs/proc rw - proc proc rw
41 22 0:6 / /srv/my\\040dir/mnt rw - tmpfs tmpfs rw
";

    #[test]
    fn mount_points_are_read_and_unescaped() {
        let points: Vec<PathBuf> = mount_points(SAMPLE).collect();
        assert_eq!(
            points,
            [
                PathBuf::from("/"),
                PathBuf::from("/srv/images/.staging-x@abc/rootfs/proc"),
                PathBuf::from("/srv/my dir/mnt"),
            ]
        );
    }

    #[test]
    fn unescape_leaves_plain_backslashes_alone() {
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("a\\9b"), "a\\9b");
        assert_eq!(unescape("end\\"), "end\\");
    }

    #[test]
    fn proc_is_found_and_a_fresh_directory_has_no_mount() {
        let found = first_mount_under(Path::new("/proc")).unwrap();
        assert!(
            found.as_deref().is_some_and(|m| m.starts_with("/proc")),
            "{found:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        assert_eq!(first_mount_under(&dir).unwrap(), None);
    }
}
