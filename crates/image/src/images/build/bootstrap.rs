//! Making the Debian root tree. The seam tests replace: everything after
//! this step (inject, seed, filesystem, manifest, store) is exercised with
//! a small synthetic tree, and only this step needs root and a mirror.

use std::path::{Path, PathBuf};
use std::time::Instant;

use banger_sys::Cmd;

use super::recipe::{APT_OPTIONS, DPKG_OPTIONS, Recipe};
use crate::images::error::ImageError;

/// Debian's archive keyring, as the `debian-archive-keyring` package
/// installs it; mmdebstrap verifies the mirror's signatures against it.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

pub trait Bootstrap: Send + Sync {
    /// Names the tool in the image's `source`, e.g. `mmdebstrap`.
    fn name(&self) -> &str;

    /// Whether [`Bootstrap::bootstrap`] can run (privileges, programs),
    /// asked before the build downloads anything.
    fn check_ready(&self) -> Result<(), ImageError> {
        Ok(())
    }

    /// Creates `dest` (which does not exist) holding the root tree of
    /// `recipe`, owners and modes as in the guest.
    fn bootstrap(
        &self,
        recipe: &Recipe,
        dest: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), ImageError>;
}

/// The real bootstrap: mmdebstrap in root mode.
#[derive(Debug, Clone)]
pub struct Mmdebstrap {
    pub program: PathBuf,
    pub keyring: PathBuf,
}

impl Default for Mmdebstrap {
    fn default() -> Self {
        Self {
            program: PathBuf::from("mmdebstrap"),
            keyring: PathBuf::from(DEBIAN_KEYRING),
        }
    }
}

impl Mmdebstrap {
    /// The command for `recipe` into `dest`. Both variants start from
    /// minbase (only Essential and apt); the package list decides what
    /// the variant is, systemd included.
    pub fn command(&self, recipe: &Recipe, dest: &Path) -> Cmd {
        let mut cmd = Cmd::new(&self.program)
            .arg("--variant=minbase")
            .arg("--mode=root")
            .arg("--format=directory")
            .arg(format!("--keyring={}", self.keyring.display()));
        let packages = recipe.package_set();
        if !packages.is_empty() {
            cmd = cmd.arg(format!("--include={}", packages.join(",")));
        }
        for option in APT_OPTIONS {
            cmd = cmd.arg(format!("--aptopt={option}"));
        }
        for option in DPKG_OPTIONS {
            cmd = cmd.arg(format!("--dpkgopt={option}"));
        }
        cmd.arg(&recipe.suite).arg(dest).arg(&recipe.mirror)
    }

    /// What must hold before running: root (mmdebstrap's root mode, and
    /// files owned by other users in the tree), the program, the keyring.
    fn check_ready_as(&self, euid: u32) -> Result<(), ImageError> {
        if euid != 0 {
            return Err(ImageError::NeedsRoot);
        }
        if banger_sys::find_program(&self.program.to_string_lossy()).is_none() {
            return Err(ImageError::MissingTool {
                program: "mmdebstrap",
                package: "mmdebstrap",
            });
        }
        if !self.keyring.is_file() {
            return Err(ImageError::MissingKeyring {
                path: self.keyring.clone(),
            });
        }
        Ok(())
    }
}

impl Bootstrap for Mmdebstrap {
    fn name(&self) -> &str {
        "mmdebstrap"
    }

    fn check_ready(&self) -> Result<(), ImageError> {
        self.check_ready_as(banger_sys::os::effective_uid())
    }

    fn bootstrap(
        &self,
        recipe: &Recipe,
        dest: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), ImageError> {
        self.check_ready_as(banger_sys::os::effective_uid())?;
        let started = Instant::now();
        progress(&format!(
            "bootstrapping {} packages from {} ({}, {} variant) with mmdebstrap",
            recipe.package_set().len(),
            recipe.mirror,
            recipe.suite,
            recipe.variant
        ));
        self.command(recipe, dest)
            .run()
            .map_err(|source| ImageError::Command {
                action: format!(
                    "bootstrap Debian {} from {} (is the mirror reachable?)",
                    recipe.suite, recipe.mirror
                ),
                source,
            })?;
        progress(&format!(
            "bootstrapped in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::build::recipe::{MINIMAL_IMAGE, Variant};

    #[test]
    fn the_command_verifies_the_archive_and_installs_the_package_set() {
        let recipe = Recipe::for_name(MINIMAL_IMAGE).unwrap();
        let argv = Mmdebstrap::default()
            .command(&recipe, Path::new("/images/.staging-x@1/rootfs"))
            .argv();
        assert!(
            argv.starts_with("mmdebstrap --variant=minbase --mode=root --format=directory "),
            "{argv}"
        );
        assert!(
            argv.contains(&format!(" --keyring={DEBIAN_KEYRING} ")),
            "{argv}"
        );
        assert!(
            argv.contains(" --include=ca-certificates,git,iproute2,kmod,openssh-server "),
            "{argv}"
        );
        assert!(
            argv.contains(" --dpkgopt=path-exclude=/usr/share/man/* "),
            "{argv}"
        );
        assert!(
            argv.contains(" --aptopt=Acquire::Languages \"none\" "),
            "{argv}"
        );
        assert!(
            argv.ends_with(" bookworm /images/.staging-x@1/rootfs http://deb.debian.org/debian"),
            "{argv}"
        );
        let full = Recipe::bookworm(recipe.name.clone(), Variant::Full);
        let argv = Mmdebstrap::default().command(&full, Path::new("/t")).argv();
        assert!(argv.contains("systemd-sysv"), "{argv}");
    }

    #[test]
    fn it_says_what_is_missing_before_running() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = dir.path().join("keyring.gpg");
        std::fs::write(&keyring, b"").unwrap();
        let ready = Mmdebstrap {
            // Any program that exists stands in for mmdebstrap here.
            program: PathBuf::from("sh"),
            keyring: keyring.clone(),
        };
        ready.check_ready_as(0).unwrap();
        assert!(matches!(
            ready.check_ready_as(1000),
            Err(ImageError::NeedsRoot)
        ));
        let err = ready.check_ready_as(1000).unwrap_err().to_string();
        assert!(err.contains("needs root"), "{err}");

        let no_program = Mmdebstrap {
            program: dir.path().join("mmdebstrap"),
            ..ready.clone()
        };
        let err = no_program.check_ready_as(0).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install mmdebstrap"),
            "{err}"
        );

        let no_keyring = Mmdebstrap {
            keyring: dir.path().join("missing.gpg"),
            ..ready
        };
        let err = no_keyring.check_ready_as(0).unwrap_err();
        assert!(matches!(err, ImageError::MissingKeyring { .. }), "{err:?}");
    }
}
