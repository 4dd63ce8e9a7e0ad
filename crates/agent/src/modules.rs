//! Kernel modules the initramfs loads before it can see the root disk.
//!
//! Debian's cloud kernel builds its virtio drivers as modules and ships no
//! `modules.dep`, so the image builder writes the load order (dependencies
//! first, from each module's `depends=`) to [`ORDER_FILE`], one path per line.

use std::path::{Component, Path, PathBuf};

use thiserror::Error;

/// The load order written by the initramfs builder.
pub const ORDER_FILE: &str = "/lib/modules/banger.order";

/// Where the running kernel's release is read (needs `/proc`).
pub const PROC_OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// A line of the order file that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{ORDER_FILE} line {line}: {reason}: {text:?}")]
pub struct OrderError {
    pub line: usize,
    pub text: String,
    pub reason: &'static str,
}

/// Parses the order file: blank lines and `#` comments are skipped; a
/// relative path is under `/lib/modules/<release>/`; `..` is refused.
pub fn parse_order(text: &str, release: &str) -> Result<Vec<PathBuf>, OrderError> {
    let base = Path::new("/lib/modules").join(release);
    let mut paths = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason| OrderError {
            line: index + 1,
            text: line.to_string(),
            reason,
        };
        let path = Path::new(line);
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(error("\"..\" is not allowed"));
        }
        if !is_module_file(path) {
            return Err(error("not a .ko file (optionally .xz, .zst or .gz)"));
        }
        paths.push(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        });
    }
    Ok(paths)
}

/// True for `x.ko` and compressed `x.ko.{xz,zst,gz}`.
fn is_module_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
}

/// True when the module file is compressed and must be handed to the
/// kernel with `MODULE_INIT_COMPRESSED_FILE`.
pub fn is_compressed(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("xz" | "zst" | "gz")
    )
}

/// The outcome of loading one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded,
    /// `EEXIST`: already loaded (or loaded twice in the list).
    AlreadyLoaded,
}

/// Why a module did not load.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot open module {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("finit_module({}) failed: {source}", path.display())]
    Init {
        path: PathBuf,
        #[cfg(target_os = "linux")]
        source: nix::errno::Errno,
        #[cfg(not(target_os = "linux"))]
        source: std::io::Error,
    },
}

/// Loads one module with `finit_module(2)`.
#[cfg(target_os = "linux")]
pub fn load(path: &Path) -> Result<LoadOutcome, LoadError> {
    use nix::errno::Errno;
    use nix::kmod::{ModuleInitFlags, finit_module};

    // Not in nix 0.29's flag set; the kernel (5.17+, MODULE_DECOMPRESS)
    // decompresses the module itself when it is given.
    const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

    let file = std::fs::File::open(path).map_err(|source| LoadError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let flags = if is_compressed(path) {
        ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
    } else {
        ModuleInitFlags::empty()
    };
    match finit_module(&file, c"", flags) {
        Ok(()) => Ok(LoadOutcome::Loaded),
        Err(Errno::EEXIST) => Ok(LoadOutcome::AlreadyLoaded),
        Err(source) => Err(LoadError::Init {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths_under_the_release() {
        let text = "\
# virtio first
kernel/drivers/virtio/virtio.ko

  kernel/drivers/virtio/virtio_ring.ko.xz
/lib/modules/extra/vsock.ko.zst
";
        assert_eq!(
            parse_order(text, "6.1.0-28-cloud-amd64").unwrap(),
            vec![
                PathBuf::from("/lib/modules/6.1.0-28-cloud-amd64/kernel/drivers/virtio/virtio.ko"),
                PathBuf::from(
                    "/lib/modules/6.1.0-28-cloud-amd64/kernel/drivers/virtio/virtio_ring.ko.xz"
                ),
                PathBuf::from("/lib/modules/extra/vsock.ko.zst"),
            ]
        );
    }

    #[test]
    fn keeps_the_given_order() {
        let paths = parse_order("b.ko\na.ko\nc.ko\n", "r").unwrap();
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["b.ko", "a.ko", "c.ko"]);
    }

    #[test]
    fn rejects_traversal_and_non_modules_with_the_line_number() {
        let err = parse_order("a.ko\n../../etc/shadow.ko\n", "r").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_order("a.ko\n\nvirtio.txt\n", "r").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(parse_order(".ko\n", "r").is_err());
    }

    #[test]
    fn empty_file_means_no_modules() {
        assert!(parse_order("", "r").unwrap().is_empty());
        assert!(parse_order("# nothing\n\n", "r").unwrap().is_empty());
    }

    #[test]
    fn compression_is_detected_from_the_extension() {
        assert!(is_compressed(Path::new("a.ko.xz")));
        assert!(is_compressed(Path::new("a.ko.zst")));
        assert!(is_compressed(Path::new("a.ko.gz")));
        assert!(!is_compressed(Path::new("a.ko")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn loading_a_missing_file_is_an_open_error() {
        let err = load(Path::new("/nonexistent/banger-test.ko")).unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }), "{err}");
    }
}
