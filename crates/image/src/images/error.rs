//! The error type of image operations. Every variant names the image, the
//! path or the argv involved and says what to do about it.

use std::io;
use std::path::PathBuf;

use banger_sys::ProcessError;

use super::build::mise::MiseError;
use super::name_rule::NameProblem;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image name {name:?}: {problem}")]
    InvalidName { name: String, problem: NameProblem },

    #[error("invalid kernel reference {name:?}: {problem}")]
    InvalidKernelRef { name: String, problem: NameProblem },

    #[error(
        "image {name} not found in {}; `banger image list` shows the images, \
         `banger image build` or `banger image pull` makes one",
        dir.display()
    )]
    NotFound { name: String, dir: PathBuf },

    #[error(
        "image {name} already exists; delete it first (`banger image delete {name}`) \
         or choose another name"
    )]
    AlreadyExists { name: String },

    #[error(
        "image {name} is already in banger's storage; promote copies unmanaged \
         (registered) images only"
    )]
    AlreadyManaged { name: String },

    #[error("{} is not a regular file; an image's rootfs must be an ext4 image file", path.display())]
    NotRegularFile { path: PathBuf },

    #[error(
        "{} is not an ext2/3/4 filesystem image (no superblock magic 0xEF53 at byte 1080); \
         banger boots ext4 root filesystems only",
        path.display()
    )]
    NotExt4 { path: PathBuf },

    /// A filesystem call on a host path failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the manifest {} cannot be used: {detail}; delete the image \
         (`banger image delete`) and build, pull or register it again",
        path.display()
    )]
    BadManifest { path: PathBuf, detail: String },

    /// An external program failed; the source carries argv, status and stderr.
    #[error("cannot {action}")]
    Command {
        action: String,
        #[source]
        source: ProcessError,
    },

    #[error(
        "building an image needs root: mmdebstrap must create files owned by root and \
         other users inside the image; run the build as root (e.g. with sudo)"
    )]
    NeedsRoot,

    #[error("{program} is not installed; install it (Debian/Ubuntu: `apt-get install {package}`)")]
    MissingTool {
        program: &'static str,
        package: &'static str,
    },

    #[error(
        "Debian's archive keyring {} is missing, so the mirror's signatures cannot be \
         verified; install it (`apt-get install debian-archive-keyring`)",
        path.display()
    )]
    MissingKeyring { path: PathBuf },

    #[error("invalid recipe {field} {value:?}: {problem}")]
    InvalidRecipe {
        field: &'static str,
        value: String,
        problem: &'static str,
    },

    #[error("banger has no recipe for an image named {name:?}; it can build: {known}")]
    UnknownRecipe { name: String, known: String },

    #[error(
        "the agent binary {} is not a regular file; build banger-agent (statically \
         linked) and pass its path",
        path.display()
    )]
    AgentNotFile { path: PathBuf },

    #[error(
        "the image content needs {needed_mib} MiB but the recipe asks for {size_mib} MiB; \
         raise the size or leave it unset (content × 1.5, at least 1 GiB)"
    )]
    TooSmall { size_mib: u64, needed_mib: u64 },

    #[error(
        "the bootstrapped tree {} has no {what}; the bootstrap did not produce a Debian \
         system (see its output above) — run the build again with --force",
        path.display()
    )]
    BadTree { path: PathBuf, what: &'static str },

    #[error(
        "{} is still mounted under the staging directory {}; banger does not remove \
         a tree with a mount inside (it would delete the mounted files): \
         unmount it (`umount -R {}`) and retry",
        mount.display(),
        staging.display(),
        mount.display()
    )]
    StillMounted { staging: PathBuf, mount: PathBuf },

    /// The default image's mise could not be had (download, pin, npm);
    /// boxed, as it is larger than every other variant.
    #[error(transparent)]
    Mise(Box<MiseError>),

    #[error("cannot lock image {name} ({})", path.display())]
    Lock {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<MiseError> for ImageError {
    fn from(err: MiseError) -> Self {
        ImageError::Mise(Box::new(err))
    }
}

impl ImageError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether this is the "no such image" error (the daemon maps it to the
    /// `not_found` protocol code).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::NotFound { .. })
    }
}
