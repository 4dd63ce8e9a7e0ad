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

#[cfg(test)]
mod tests {
    use banger_config::InstallOwner;

    use super::*;
    use crate::update::manifest::{FileEntry, Files};

    fn info(commit: &str) -> InstallInfo {
        InstallInfo {
            owner: InstallOwner {
                user: "alice".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/alice".into(),
            },
            release: InstalledRelease {
                version: "0.1.0".into(),
                commit: commit.into(),
                built: "b".into(),
                installed: "i".into(),
            },
            release_url: None,
        }
    }

    fn release(commit: &str) -> Release {
        let entry = || FileEntry {
            url: "x".into(),
            size: 1,
            sha256: String::new(),
        };
        Release {
            version: "0.2.0".into(),
            commit: commit.into(),
            built: "b".into(),
            files: Files {
                banger: entry(),
                bangerd: entry(),
                banger_agent: entry(),
            },
        }
    }

    /// An install under a tempdir with "old" programs, and "new" staged ones.
    fn setup() -> (tempfile::TempDir, Layout, Staged) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("root"));
        for (name, path) in layout.programs() {
            write_atomic(&path, format!("old {name}").as_bytes(), 0o755).unwrap();
        }
        write_atomic(
            &layout.install_file(),
            info("old").to_toml().as_bytes(),
            0o644,
        )
        .unwrap();
        let staging = dir.path().join("staged");
        fs::create_dir(&staging).unwrap();
        for (name, _) in layout.programs() {
            fs::write(staging.join(name), format!("new {name}")).unwrap();
        }
        let staged = Staged::at(staging);
        (dir, layout, staged)
    }

    fn content(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn a_swap_keeps_the_previous_programs_and_rolls_back() {
        let (_dir, layout, staged) = setup();
        let swapped = swap_in(&layout, &staged, &info("old"), &release("new")).unwrap();
        for (name, path) in layout.programs() {
            assert_eq!(content(&path), format!("new {name}"));
            assert_eq!(content(&previous_of(&path)), format!("old {name}"));
        }
        let now = InstallInfo::load(&layout.install_file()).unwrap();
        assert_eq!(
            (now.release.commit.as_str(), now.release.version.as_str()),
            ("new", "0.2.0")
        );
        swapped.roll_back().unwrap();
        for (name, path) in layout.programs() {
            assert_eq!(content(&path), format!("old {name}"));
        }
        assert_eq!(
            InstallInfo::load(&layout.install_file())
                .unwrap()
                .release
                .commit,
            "old"
        );
    }

    #[test]
    fn a_swap_that_fails_part_way_puts_back_what_it_swapped() {
        let (_dir, layout, staged) = setup();
        // The agent is missing: its previous copy cannot be kept.
        fs::remove_file(layout.agent()).unwrap();
        assert!(swap_in(&layout, &staged, &info("old"), &release("new")).is_err());
        assert_eq!(content(&layout.banger()), "old banger");
        assert_eq!(content(&layout.bangerd()), "old bangerd");
        assert_eq!(
            InstallInfo::load(&layout.install_file())
                .unwrap()
                .release
                .commit,
            "old"
        );
    }
}
