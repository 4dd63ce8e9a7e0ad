//! Putting the staged programs in place: each installed program is first
//! hard-linked to `NAME.previous` beside it, then the staged file is
//! renamed over it, so at every instant each path holds a whole program.
//! `install.toml` follows. A failure part-way puts back what was swapped.

use std::fs;
use std::path::{Path, PathBuf};

use banger_config::{InstallInfo, InstalledRelease};

use super::UpdateError;
use super::manifest::Release;
use super::stage::Staged;
use crate::system::layout::Layout;
use crate::system::steps::{copy_atomic, write_atomic};

/// What was swapped, to roll it back.
pub struct Swapped {
    programs: Vec<PathBuf>,
    install_file: PathBuf,
    previous_info: InstallInfo,
}

pub fn previous_of(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{name}.previous"))
}

pub fn swap_in(
    layout: &Layout,
    staged: &Staged,
    info: &InstallInfo,
    release: &Release,
) -> Result<Swapped, UpdateError> {
    let mut swapped = Swapped {
        programs: Vec::new(),
        install_file: layout.install_file(),
        previous_info: info.clone(),
    };
    for (name, target) in layout.programs() {
        if let Err(e) = swap_one(&staged.path(name), &target) {
            let _ = swapped.roll_back();
            return Err(e);
        }
        swapped.programs.push(target);
    }
    let mut next = info.clone();
    next.release = InstalledRelease {
        version: release.version.clone(),
        commit: release.commit.clone(),
        built: release.built.clone(),
        installed: crate::system::now_rfc3339(),
    };
    if let Err(e) = write_atomic(&swapped.install_file, next.to_toml().as_bytes(), 0o644) {
        let _ = swapped.roll_back();
        return Err(Box::new(e).into());
    }
    Ok(swapped)
}

fn swap_one(staged: &Path, target: &Path) -> Result<(), UpdateError> {
    let previous = previous_of(target);
    let _ = fs::remove_file(&previous);
    fs::hard_link(target, &previous).map_err(UpdateError::io("keep a copy of", target))?;
    match fs::rename(staged, target) {
        Ok(()) => Ok(()),
        // The staging directory is on another filesystem than the target.
        Err(e) if e.raw_os_error() == Some(18) => {
            copy_atomic(staged, target, 0o755).map_err(|e| Box::new(e).into())
        }
        Err(e) => Err(UpdateError::io("replace", target)(e)),
    }
}

impl Swapped {
    /// Each program back from its `.previous` copy (which stays), then the
    /// previous `install.toml`.
    pub fn roll_back(&self) -> Result<(), UpdateError> {
        let mut first_error = None;
        for target in &self.programs {
            if let Err(e) = copy_atomic(&previous_of(target), target, 0o755) {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = write_atomic(
            &self.install_file,
            self.previous_info.to_toml().as_bytes(),
            0o644,
        ) {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), |e| Err(Box::new(e).into()))
    }
}
