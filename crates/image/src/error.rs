//! The one error type of disk operations. Every variant names the host path,
//! the guest path or the argv involved, and says what to do about it.

use std::io;
use std::path::PathBuf;

use banger_host::{HostError, ValidationError};
use banger_sys::ProcessError;

use crate::cow::strategy::CowStrategy;
use crate::ext4::guest_path::GuestPathProblem;
use crate::ext4::kind::FileKind;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A filesystem call on a host path failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{} already exists; refusing to overwrite it (a leftover of an earlier attempt? \
         remove it, or delete the VM and create it again)",
        path.display()
    )]
    AlreadyExists { path: PathBuf },

    #[error("cannot reflink {} to {}: {hint}", base.display(), dest.display())]
    Reflink {
        base: PathBuf,
        dest: PathBuf,
        hint: &'static str,
        #[source]
        source: io::Error,
    },

    /// An external program failed; the source carries argv, status and stderr.
    #[error("cannot {action}")]
    Command {
        action: String,
        #[source]
        source: ProcessError,
    },

    /// A privileged host call failed. Boxed, like the validation error
    /// below, to keep every `Result` of this crate small.
    #[error("cannot {action}")]
    Host {
        action: String,
        #[source]
        source: Box<HostError>,
    },

    #[error(
        "the {strategy} root disk needs its files inside banger's directories, \
         so the privileged helper may touch them"
    )]
    Unmanaged {
        strategy: CowStrategy,
        #[source]
        source: Box<ValidationError>,
    },

    #[error("{} is not a directory; the work disk seed must be a directory to copy from", path.display())]
    SeedNotDirectory { path: PathBuf },

    #[error(
        "{} is not an ext2/3/4 filesystem image (no superblock magic 0xEF53 at byte 1080); \
         banger edits only ext4 root and work disks",
        path.display()
    )]
    NotExt4 { path: PathBuf },

    #[error("guest path {path:?} is not accepted: {problem}")]
    GuestPath {
        path: String,
        problem: GuestPathProblem,
    },

    #[error("symlink {path} -> {target:?} is not accepted: {problem}")]
    SymlinkTarget {
        path: String,
        target: String,
        problem: GuestPathProblem,
    },

    #[error("mode {mode:#o} for {path} has bits outside 0o7777; pass permission bits only")]
    InvalidMode { path: String, mode: u32 },

    #[error("{guest_path} does not exist in {}", image.display())]
    GuestNotFound { image: PathBuf, guest_path: String },

    #[error(
        "{guest_path} in {} is a {found}, but {wanted} needs a directory there; \
         banger does not replace it",
        image.display()
    )]
    GuestNotADirectory {
        image: PathBuf,
        guest_path: String,
        found: FileKind,
        wanted: String,
    },

    #[error(
        "{guest_path} in {} is a directory; banger does not replace a directory with a file or symlink",
        image.display()
    )]
    GuestIsADirectory { image: PathBuf, guest_path: String },

    #[error("{guest_path} in {} is a {found}, not a regular file", image.display())]
    NotRegularFile {
        image: PathBuf,
        guest_path: String,
        found: FileKind,
    },

    #[error(
        "{guest_path} in {} is {size} bytes, more than the {limit} bytes banger reads from an image",
        image.display()
    )]
    TooLarge {
        image: PathBuf,
        guest_path: String,
        size: u64,
        limit: u64,
    },

    /// debugfs exits 0 even when its commands fail; these are the error
    /// lines it printed.
    #[error(
        "debugfs reported errors on {} (`{argv}`): {errors}; \
         check the image with `e2fsck -fn {}`",
        image.display(),
        image.display()
    )]
    Debugfs {
        image: PathBuf,
        argv: String,
        errors: String,
    },

    /// Read-back after a batch of edits did not find what was written.
    #[error(
        "writing {guest_path} into {} failed: expected {expected}, found {found}{}",
        image.display(),
        errors_suffix(.errors)
    )]
    WriteMismatch {
        image: PathBuf,
        guest_path: String,
        expected: String,
        found: String,
        errors: String,
    },

    #[error("`{argv}` printed output banger cannot read: {detail}")]
    UnexpectedOutput { argv: String, detail: String },
}

fn errors_suffix(errors: &str) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" (debugfs said: {errors})")
    }
}

impl DiskError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        DiskError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
