//! The user key pair (one per installation) and host keys (one per VM), both
//! made by `ssh-keygen` so their format is whatever OpenSSH expects.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::str::FromStr;

use banger_sys::Cmd;

use super::error::SshError;
use super::fs::{PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, ensure_private_dir, set_mode, write_atomic};
use super::paths::SshPaths;

pub(super) mod public_key;
#[cfg(test)]
mod tests;

pub use public_key::{PublicKey, PublicKeyError};

/// Public key files are not secret; ssh-keygen writes them 0644 too.
const PUBLIC_FILE_MODE: u32 = 0o644;
const USER_KEY_COMMENT: &str = "banger";
const HOST_KEY_COMMENT: &str = "banger-host";

/// A VM's host key pair, in OpenSSH's file formats: `private` goes to the
/// guest's `/etc/ssh/ssh_host_ed25519_key`, `public` is pinned on the host.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    /// The OpenSSH private key file, PEM-armoured, ending in a newline.
    pub private: String,
    /// One line, `ssh-ed25519 AAAA… banger-host`, without a newline.
    pub public: String,
}

/// Redacts the private key so it never reaches a log line or an error.
impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKey")
            .field("private", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

/// Makes sure the user key pair exists and returns its public half.
///
/// The pair is generated once (`ssh-keygen -t ed25519`, no passphrase, since
/// the daemon uses it unattended) and never overwritten: VMs already carry
/// its public half in their authorized_keys. A private key that others can
/// read is tightened to 0600 rather than refused: OpenSSH would otherwise
/// ignore it ("UNPROTECTED PRIVATE KEY FILE") and every `vm ssh` would fail,
/// and `chmod 600` is exactly what ssh tells the user to do. A missing or
/// unreadable `.pub` is rebuilt from the private key.
pub fn ensure_user_key(paths: &SshPaths) -> Result<PublicKey, SshError> {
    paths.ensure_dir()?;
    let key = &paths.user_key;
    if let Some(parent) = key.parent() {
        // `ssh_key_path` may point outside banger's directory (~/.ssh).
        ensure_private_dir(parent, false)?;
    }
    // `metadata` follows symlinks: a configured key may be a dotfile link.
    match fs::metadata(key) {
        Ok(meta) if !meta.is_file() => Err(SshError::NotAFile { path: key.clone() }),
        Ok(meta) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    key = %key.display(),
                    mode = format_args!("{mode:04o}"),
                    "private key was readable by others; restricting it to 0600"
                );
                set_mode(key, PRIVATE_FILE_MODE)?;
            }
            load_public(paths)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => generate_user_key(paths),
        Err(source) => Err(SshError::Read {
            path: key.clone(),
            source,
        }),
    }
}

/// Generates the pair in a private temporary directory beside the key, then
/// publishes it with a hard link, which (unlike rename) never replaces an
/// existing file: if another process made a key meanwhile, theirs wins and
/// ours is discarded, so a key that may already be in use is never lost.
fn generate_user_key(paths: &SshPaths) -> Result<PublicKey, SshError> {
    let key = &paths.user_key;
    let parent = key.parent().unwrap_or(Path::new("."));
    let tmp = private_tempdir(parent, ".banger-keygen-")?;
    let tmp_key = tmp.path().join("id_ed25519");
    keygen(&tmp_key, USER_KEY_COMMENT)?;
    let tmp_pub = tmp.path().join("id_ed25519.pub");
    let public = read_public_file(&tmp_pub)?;
    match fs::hard_link(&tmp_key, key) {
        Ok(()) => {
            tracing::info!(key = %key.display(), "generated the SSH user key");
            // A stale .pub (its private key was deleted) is replaced here.
            write_atomic(
                &paths.user_public_key,
                format!("{public}\n").as_bytes(),
                PUBLIC_FILE_MODE,
            )?;
            Ok(public)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Lost a race: the winner's .pub may not be written yet, so ask
            // the private key itself.
            derive_and_store_public(paths)
        }
        Err(source) => Err(SshError::Write {
            path: key.clone(),
            source,
        }),
    }
}

/// The public half from the `.pub` file, or rebuilt from the private key if
/// that file is missing or damaged. Reading the file (rather than always
/// asking ssh-keygen) keeps passphrase-protected configured keys usable.
fn load_public(paths: &SshPaths) -> Result<PublicKey, SshError> {
    match fs::read_to_string(&paths.user_public_key) {
        Ok(text) => match text.parse::<PublicKey>() {
            Ok(public) => Ok(public),
            Err(e) => {
                tracing::warn!(
                    file = %paths.user_public_key.display(),
                    error = %e,
                    "rebuilding a damaged public key file from the private key"
                );
                derive_and_store_public(paths)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => derive_and_store_public(paths),
        Err(source) => Err(SshError::Read {
            path: paths.user_public_key.clone(),
            source,
        }),
    }
}

fn derive_and_store_public(paths: &SshPaths) -> Result<PublicKey, SshError> {
    let out = Cmd::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&paths.user_key)
        .run()
        .map_err(|source| SshError::DerivePublicKey {
            path: paths.user_key.clone(),
            source,
        })?;
    let public = out
        .stdout_str()
        .parse::<PublicKey>()
        .map_err(|source| SshError::PublicKey {
            origin: format!(
                "the output of `ssh-keygen -y -f {}`",
                paths.user_key.display()
            ),
            source,
        })?;
    write_atomic(
        &paths.user_public_key,
        format!("{public}\n").as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    Ok(public)
}

/// Generates a fresh ed25519 host key for one VM. The files exist only in a
/// private (0700) temporary directory under `dir`, removed before returning.
pub fn generate_host_key(dir: &Path) -> Result<HostKey, SshError> {
    let tmp = private_tempdir(dir, ".banger-hostkey-")?;
    let key = tmp.path().join("ssh_host_ed25519_key");
    keygen(&key, HOST_KEY_COMMENT)?;
    let private = fs::read_to_string(&key).map_err(|source| SshError::Read {
        path: key.clone(),
        source,
    })?;
    let public = read_public_file(&tmp.path().join("ssh_host_ed25519_key.pub"))?;
    let tmp_path = tmp.path().to_path_buf();
    tmp.close().map_err(|source| SshError::Write {
        path: tmp_path,
        source,
    })?;
    Ok(HostKey {
        private,
        public: public.to_string(),
    })
}

fn keygen(path: &Path, comment: &str) -> Result<(), SshError> {
    Cmd::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .run()
        .map(drop)
        .map_err(|source| SshError::Keygen {
            path: path.to_path_buf(),
            source,
        })
}

fn read_public_file(path: &Path) -> Result<PublicKey, SshError> {
    let text = fs::read_to_string(path).map_err(|source| SshError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    PublicKey::from_str(&text).map_err(|source| SshError::PublicKey {
        origin: path.display().to_string(),
        source,
    })
}

/// A 0700 temporary directory inside `parent`, removed when dropped.
fn private_tempdir(parent: &Path, prefix: &str) -> Result<tempfile::TempDir, SshError> {
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|source| SshError::CreateDir {
            path: parent.join(format!("{prefix}…")),
            source,
        })?;
    // tempfile already uses 0700; say so explicitly since keys go in here.
    set_mode(tmp.path(), PRIVATE_DIR_MODE)?;
    Ok(tmp)
}
