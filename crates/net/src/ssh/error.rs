//! Errors of banger's SSH files. Each names the file (or the ssh-keygen argv,
//! through [`ProcessError`]) and, where there is one, what to do about it.

use std::io;
use std::path::PathBuf;

use banger_sys::ProcessError;

use super::keys::public_key::PublicKeyError;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot set the mode of {} to {mode:04o}: {source}; it must belong to you \
         (fix it with `chown $USER {}`)",
        path.display(),
        path.display()
    )]
    SetMode {
        path: PathBuf,
        mode: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} exists but is not a regular file; banger will not replace it: move it away and try again",
        path.display()
    )]
    NotAFile { path: PathBuf },
    #[error(
        "cannot generate an ed25519 key for {} with ssh-keygen (from the openssh-client package): {source}",
        path.display()
    )]
    Keygen {
        path: PathBuf,
        #[source]
        source: ProcessError,
    },
    #[error(
        "cannot read the public half of {} with `ssh-keygen -y`: {source}; if the key is damaged, \
         move it away and banger will make a new one (VMs created with the old key will not accept it)",
        path.display()
    )]
    DerivePublicKey {
        path: PathBuf,
        #[source]
        source: ProcessError,
    },
    #[error("invalid SSH public key in {origin}: {source}")]
    PublicKey {
        origin: String,
        #[source]
        source: PublicKeyError,
    },
    #[error(
        "path {} is not absolute; banger's ssh_config needs absolute paths because OpenSSH \
         resolves relative ones against ~/.ssh",
        path.display()
    )]
    RelativePath { path: PathBuf },
    #[error(
        "path {} is not valid UTF-8 and cannot be written into an ssh_config; \
         use a location with a UTF-8 name (set BANGER_HOME or HOME)",
        path.display()
    )]
    NonUtf8Path { path: PathBuf },
    #[error(
        "path {} contains {ch:?}, which OpenSSH's config syntax would expand or cannot quote; \
         use a location without it (set BANGER_HOME or HOME)",
        path.display()
    )]
    UnquotablePath { path: PathBuf, ch: char },
    #[error(
        "{}: line {line} opens a banger block (`# >>> banger >>>`) that is never closed with \
         `# <<< banger <<<`; delete the stray marker line by hand, then run \
         `banger ssh-config --install` again",
        path.display()
    )]
    UnclosedBlock { path: PathBuf, line: usize },
}
