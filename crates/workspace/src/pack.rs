//! The archive that carries a [`Plan`] into the guest: a shallow clone of
//! the base commit (so the guest has real history to diff against) with the
//! host's working tree laid over it, streamed by `tar` so no copy of the
//! working tree is made.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use banger_sys::ReadingChild;

use crate::error::WorkspaceError;
use crate::git::{self, HostRepo};
use crate::plan::Plan;

/// A prepared clone in a scratch directory, removed when dropped.
#[derive(Debug)]
pub struct Packed {
    scratch: PathBuf,
    clone: PathBuf,
    root: PathBuf,
    overlay_list: Option<PathBuf>,
}

/// Makes the shallow clone of `plan` under `scratch` (created; must not
/// exist yet): base commit checked out on the plan's branch, `origin` and
/// the git identity set, files the working tree dropped removed.
pub fn pack(plan: &Plan, scratch: &Path) -> Result<Packed, WorkspaceError> {
    std::fs::create_dir(scratch).map_err(|source| WorkspaceError::Io {
        what: "cannot create the scratch directory",
        path: scratch.to_owned(),
        source,
    })?;
    // From here on, dropping `packed` cleans up whatever failed half-way.
    let packed = Packed {
        scratch: scratch.to_owned(),
        clone: scratch.join("clone"),
        root: plan.root.clone(),
        overlay_list: None,
    };
    packed.make_clone(plan)?;
    let mut packed = packed;
    for rel in &plan.removed {
        let path = packed.clone.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => remove_empty_parents(&packed.clone, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(WorkspaceError::Io {
                    what: "cannot remove from the clone",
                    path,
                    source,
                });
            }
        }
    }
    if !plan.overlaid.is_empty() {
        let list = scratch.join("overlay.list");
        let mut bytes = Vec::new();
        for rel in &plan.overlaid {
            bytes.extend_from_slice(rel.as_os_str().as_bytes());
            bytes.push(0);
        }
        std::fs::write(&list, bytes).map_err(|source| WorkspaceError::Io {
            what: "cannot write",
            path: list.clone(),
            source,
        })?;
        packed.overlay_list = Some(list);
    }
    Ok(packed)
}

impl Packed {
    fn make_clone(&self, plan: &Plan) -> Result<(), WorkspaceError> {
        let fail = |source| WorkspaceError::Git {
            root: plan.root.clone(),
            source,
        };
        // The source is read through a shadow git directory (never under
        // the repository's config); the clone is banger's own repository,
        // made without a template (no hooks, no sample files), and its
        // checkout finds no filter driver in its config whatever the
        // commit's `.gitattributes` says.
        let source = HostRepo::open(&plan.root)?;
        git::own_repo(&self.scratch)
            .args(["init", "--quiet", "--template="])
            .arg(&self.clone)
            .run()
            .map_err(fail)?;
        let upload_pack = format!("--upload-pack={}", git::UPLOAD_PACK);
        git::own_repo(&self.clone)
            .args(["fetch", "--quiet", "--depth=1", "--no-tags", &upload_pack])
            .arg(source.shadow_dir())
            .arg(&plan.base_commit)
            .run()
            .map_err(fail)?;
        drop(source);
        let checkout = git::own_repo(&self.clone).args(["checkout", "--quiet"]);
        let checkout = match &plan.branch {
            Some(branch) => checkout.args(["-B", branch]),
            None => checkout.arg("--detach"),
        };
        checkout.arg(&plan.base_commit).run().map_err(fail)?;
        // The URL is only ever stored as text (already without
        // credentials): never fetched from on the host.
        if let Some(url) = &plan.origin_url {
            git::own_repo(&self.clone)
                .args(["remote", "add", "origin", url])
                .run()
                .map_err(fail)?;
        }
        for (key, value) in &plan.identity {
            git::own_repo(&self.clone)
                .args(["config", key, value])
                .run()
                .map_err(fail)?;
        }
        // The fetch's bookkeeping names the host path; the guest has no use
        // for it.
        let _ = std::fs::remove_file(self.clone.join(".git/FETCH_HEAD"));
        Ok(())
    }

    /// The clone, for inspection.
    pub fn clone_dir(&self) -> &Path {
        &self.clone
    }

    /// Starts `tar`, whose stdout is the archive: the clone (with `.git`),
    /// then the overlaid files from the host's working tree, which replace
    /// the clone's copies when extracted in order. Symlinks are archived as
    /// symlinks, never followed.
    pub fn archive(&self) -> Result<ReadingChild, WorkspaceError> {
        let mut tar = banger_sys::Cmd::new("tar")
            .args(["--create", "--file=-", "--format=gnu", "--directory"])
            .arg(&self.clone)
            .arg(".");
        if let Some(list) = &self.overlay_list {
            tar = tar
                .arg("--directory")
                .arg(&self.root)
                .args(["--null", "--verbatim-files-from", "--files-from"])
                .arg(list);
        }
        tar.spawn_reader()
            .map_err(|source| WorkspaceError::Archive {
                root: self.root.clone(),
                source,
            })
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Removes the directories a removal left empty, up to (not including) `top`.
fn remove_empty_parents(top: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == top || !d.starts_with(top) || std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
