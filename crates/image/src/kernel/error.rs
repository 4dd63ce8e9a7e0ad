//! The one error type of kernel operations. Every variant names the kernel,
//! file, module or package involved and says what to do about it.

use std::io;
use std::path::PathBuf;

use crate::debian::DebianError;

use super::bzimage::VmlinuxError;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "kernel name {name:?} is not valid: {reason}; use 1 to 64 of a-z, 0-9, '.', '_' and '-', \
         starting with a letter or digit"
    )]
    InvalidName { name: String, reason: &'static str },

    #[error("no kernel named {name:?} in {}; `banger kernel list` shows the installed ones", dir.display())]
    NotFound { name: String, dir: PathBuf },

    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot read {} as a manifest; remove the kernel and pull or import it again", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot unpack a vmlinux from {}", path.display())]
    Vmlinux {
        path: PathBuf,
        #[source]
        source: VmlinuxError,
    },

    #[error("{} holds no kernel: {detail}", dir.display())]
    NoKernel { dir: PathBuf, detail: String },

    #[error("{} holds several {what} files ({found}); keep exactly one", dir.display())]
    Ambiguous {
        dir: PathBuf,
        what: &'static str,
        found: String,
    },

    #[error("module {module} is needed{} but is neither in {} nor built into the kernel", needed_by_suffix(.needed_by), dir.display())]
    MissingModule {
        module: String,
        needed_by: Option<String>,
        dir: PathBuf,
    },

    #[error(
        "modules depend on each other in a cycle ({cycle}); the kernel's modules are inconsistent"
    )]
    ModuleCycle { cycle: String },

    #[error("cannot read the module information of {}: {detail}", path.display())]
    Modinfo { path: PathBuf, detail: String },

    #[error("the agent binary {} cannot be read; build banger-agent first (it becomes the initramfs /init)", path.display())]
    AgentMissing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "package {package} does not name a kernel image package in its Depends ({depends}); the archive layout changed"
    )]
    NoImagePackage { package: String, depends: String },

    #[error("package {package} does not contain {path}; the package layout changed")]
    MissingInPackage { package: String, path: String },

    #[error("cannot {action}")]
    Command {
        action: String,
        #[source]
        source: Box<banger_sys::ProcessError>,
    },

    /// Boxed: the archive client's errors are large and rare, and every
    /// `Result` of this module should stay small.
    #[error("cannot {action}")]
    Debian {
        action: String,
        #[source]
        source: Box<DebianError>,
    },
}

fn needed_by_suffix(needed_by: &Option<String>) -> String {
    needed_by
        .as_ref()
        .map(|m| format!(" by {m}"))
        .unwrap_or_default()
}

impl KernelError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        KernelError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn debian(action: impl Into<String>) -> impl FnOnce(DebianError) -> Self {
        let action = action.into();
        move |source| KernelError::Debian {
            action,
            source: Box::new(source),
        }
    }

    /// True when the kernel asked for does not exist (maps to `not_found`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, KernelError::NotFound { .. })
    }
}
