use std::path::PathBuf;

use banger_sys::ProcessError;

/// Why a repository cannot be shipped, each saying what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error(
        "{path} is not inside a git work tree; give the path of a git repository (run `git init` and commit first)"
    )]
    NotARepo { path: PathBuf },
    #[error("{path} is a bare git repository; give the path of a clone with a work tree")]
    Bare { path: PathBuf },
    #[error(
        "{root} uses git submodules, which workspaces do not support yet; ship a repository without them"
    )]
    Submodules { root: PathBuf },
    #[error("{root} has no commits yet; commit once so there is a base to ship")]
    NoCommits { root: PathBuf },
    #[error("--from {rev:?} is not a commit in {root}: {reason}")]
    BadRevision {
        rev: String,
        root: PathBuf,
        reason: String,
    },
    #[error("--branch {name:?} is not a valid branch name")]
    BadBranch { name: String },
    #[error("git failed on {root}")]
    Git {
        root: PathBuf,
        #[source]
        source: ProcessError,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the archive of {root}")]
    Archive {
        root: PathBuf,
        #[source]
        source: ProcessError,
    },
}
