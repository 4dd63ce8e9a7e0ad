//! Test doubles for the archive client: a [`Fetch`] serving a directory, and
//! a throwaway OpenPGP key so signature checks run for real with `gpgv`.

use std::io::Read;
use std::path::{Path, PathBuf};

use banger_sys::Cmd;
use tempfile::TempDir;

use super::error::DebianError;
use super::fetch::Fetch;

const BASE: &str = "test://mirror";

/// Serves the files under a directory as `test://mirror/<relative path>`.
pub struct DirFetch {
    root: PathBuf,
}

impl DirFetch {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub fn base() -> String {
        BASE.to_owned()
    }

    pub fn url(&self, rel: &str) -> String {
        format!("{BASE}/{rel}")
    }

    fn path(&self, url: &str) -> Result<PathBuf, DebianError> {
        let rel = url
            .strip_prefix(BASE)
            .and_then(|r| r.strip_prefix('/'))
            .filter(|r| !r.split('/').any(|c| c == ".."))
            .ok_or_else(|| DebianError::NotFound {
                url: url.to_owned(),
                status: 404,
            })?;
        let path = self.root.join(rel);
        if path.is_file() {
            Ok(path)
        } else {
            Err(DebianError::NotFound {
                url: url.to_owned(),
                status: 404,
            })
        }
    }
}

impl Fetch for DirFetch {
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>, DebianError> {
        let path = self.path(url)?;
        let file = std::fs::File::open(&path).map_err(|e| DebianError::io("open", path, e))?;
        Ok(Box::new(file))
    }

    fn probe(&self, url: &str) -> Result<(), DebianError> {
        self.path(url).map(drop)
    }
}

/// A fresh OpenPGP signing key in its own `GNUPGHOME`, exported as a keyring
/// file for `gpgv`. Dropping it stops the gpg-agent that gpg started.
pub struct SigningKey {
    home: TempDir,
    keyring: PathBuf,
}

impl SigningKey {
    pub fn generate() -> Self {
        let home = tempfile::Builder::new()
            .prefix("banger-gpg-")
            .tempdir()
            .unwrap();
        let gpg = |args: &[&str]| {
            Cmd::new("gpg")
                .env("GNUPGHOME", home.path())
                .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args)
        };
        gpg(&[
            "--quick-gen-key",
            "banger test <test@banger.invalid>",
            "ed25519",
            "sign",
            "never",
        ])
        .run()
        .expect("gpg generates a key (install gnupg)");
        let exported = gpg(&["--export"]).run().unwrap().stdout;
        assert!(!exported.is_empty(), "gpg exported no key");
        let keyring = home.path().join("trusted.gpg");
        std::fs::write(&keyring, exported).unwrap();
        Self { home, keyring }
    }

    pub fn keyring(&self) -> &Path {
        &self.keyring
    }

    /// `text` as a clear-signed message.
    pub fn clearsign(&self, text: &str) -> Vec<u8> {
        Cmd::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(["--clearsign", "--digest-algo", "SHA256", "--output", "-"])
            .stdin_bytes(text.as_bytes().to_vec())
            .run()
            .unwrap()
            .stdout
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        let _ = Cmd::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "all"])
            .run();
    }
}
