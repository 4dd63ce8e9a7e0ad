//! Snapshots on disk: one directory per snapshot under the state
//! directory's `snapshots/`, described by its `snapshot.json`, as images and
//! kernels are by their manifests. A snapshot is built in a `.staging-*`
//! directory and renamed into place whole once its manifest is written, so
//! a crash leaves only a staging directory, which the daemon sweeps at
//! start; a snapshot that has a name is complete.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use banger_api::protocol::{ErrorCode, VmSpec};
use banger_vmm::{BackendKind, DiskFormat};
use serde::{Deserialize, Serialize};

use crate::error::DaemonError;

pub const MANIFEST: &str = "snapshot.json";
/// The root disk as it was, frozen: a qcow2 (QEMU; its backing file is the
/// image's rootfs) or a raw copy (Firecracker).
pub const ROOT_QCOW2: &str = "root.qcow2";
pub const ROOT_RAW: &str = "root.ext4";
/// The work disk as it was, frozen.
pub const WORK_DISK: &str = "work.ext4";
/// Touched at every restore of a warm snapshot: pruning goes by its time.
pub const LAST_USED: &str = "last-used";
/// What a restore of this format needs; bumped when the layout changes, so
/// a newer banger never misreads an older snapshot.
pub const FORMAT_VERSION: u32 = 1;
const STAGING: &str = ".staging-";
const REMOVING: &str = ".removing-";
/// A manifest is small; anything bigger is not ours.
const MAX_MANIFEST: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotManifest {
    pub format_version: u32,
    pub name: String,
    pub source_vm: String,
    pub source_id: String,
    pub backend: BackendKind,
    pub image: String,
    pub kernel: String,
    pub spec: VmSpec,
    pub root_format: DiskFormat,
    pub created_at: String,
    /// A warm snapshot's key (`vm::warm`); `None` for one a user took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_key: Option<String>,
    /// The VM a `vm fork` took it of: it goes with its last child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_of: Option<String>,
}

impl SnapshotManifest {
    pub fn root_file(&self) -> &'static str {
        match self.root_format {
            DiskFormat::Qcow2 => ROOT_QCOW2,
            DiskFormat::Raw => ROOT_RAW,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

fn io(action: &str, path: &Path, e: std::io::Error) -> DaemonError {
    DaemonError::Internal(format!("cannot {action} {}: {e}", path.display()))
}

impl SnapshotStore {
    pub fn new(dir: PathBuf) -> SnapshotStore {
        SnapshotStore { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every complete snapshot, by name.
    pub fn list(&self) -> Result<Vec<(SnapshotManifest, PathBuf)>, DaemonError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &self.dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.show(&name) {
                Ok(snapshot) => found.push(snapshot),
                Err(e) => {
                    tracing::warn!(snapshot = %name, error = %banger_api::error_chain(&e), "skipping an unreadable snapshot")
                }
            }
        }
        found.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(found)
    }

    pub fn show(&self, name: &str) -> Result<(SnapshotManifest, PathBuf), DaemonError> {
        let dir = self.path(name);
        let file = dir.join(MANIFEST);
        let missing = || {
            DaemonError::failed(
                ErrorCode::NotFound,
                format!("no snapshot named {name:?}; `banger snapshot list` shows them"),
            )
        };
        if name.starts_with('.') || name.contains('/') {
            return Err(missing());
        }
        let meta = match std::fs::symlink_metadata(&file) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(io("read", &file, e)),
        };
        if !meta.is_file() || meta.len() > MAX_MANIFEST {
            return Err(DaemonError::Internal(format!(
                "{} is not a snapshot manifest",
                file.display()
            )));
        }
        let text = std::fs::read(&file).map_err(|e| io("read", &file, e))?;
        let manifest: SnapshotManifest = serde_json::from_slice(&text)
            .map_err(|e| DaemonError::Internal(format!("{} is unreadable: {e}", file.display())))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(DaemonError::failed(
                ErrorCode::OperationFailed,
                format!(
                    "snapshot {name} has format {}, this banger reads format {FORMAT_VERSION}; \
                     delete it and take it again",
                    manifest.format_version
                ),
            ));
        }
        Ok((manifest, dir))
    }

    pub fn exists(&self, name: &str) -> bool {
        std::fs::symlink_metadata(self.path(name)).is_ok()
    }

    /// A new, empty, private directory to build a snapshot in.
    pub fn staging(&self) -> Result<PathBuf, DaemonError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io("create", &self.dir, e))?;
        let dir = self
            .dir
            .join(format!("{STAGING}{:016x}", fastrand::u64(..)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io("create", &dir, e))?;
        Ok(dir)
    }

    /// Writes the manifest, makes every file read-only, and moves the
    /// staging directory to the snapshot's name (refused if taken).
    pub fn publish(
        &self,
        staging: &Path,
        manifest: &SnapshotManifest,
    ) -> Result<PathBuf, DaemonError> {
        let text = serde_json::to_vec_pretty(manifest)
            .map_err(|e| DaemonError::Internal(format!("cannot encode the manifest: {e}")))?;
        let file = staging.join(MANIFEST);
        std::fs::write(&file, text).map_err(|e| io("write", &file, e))?;
        for entry in std::fs::read_dir(staging).map_err(|e| io("read", staging, e))? {
            let path = entry.map_err(|e| io("read", staging, e))?.path();
            let frozen = std::fs::File::open(&path).and_then(|f| {
                f.sync_all()?;
                f.set_permissions(std::fs::Permissions::from_mode(0o444))
            });
            frozen.map_err(|e| io("freeze", &path, e))?;
        }
        let dest = self.path(&manifest.name);
        if self.exists(&manifest.name) {
            return Err(taken(&manifest.name));
        }
        std::fs::rename(staging, &dest).map_err(|e| io("move into place", &dest, e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync", &self.dir, e))?;
        Ok(dest)
    }

    /// Removes a snapshot: renamed away first, so a removal cut short never
    /// leaves half a snapshot under its name.
    pub fn remove(&self, name: &str) -> Result<(), DaemonError> {
        let (_, dir) = self.show(name)?;
        let doomed = self
            .dir
            .join(format!("{REMOVING}{:016x}", fastrand::u64(..)));
        std::fs::rename(&dir, &doomed).map_err(|e| io("remove", &dir, e))?;
        std::fs::remove_dir_all(&doomed).map_err(|e| io("remove", &doomed, e))
    }

    /// Removes what a crash left: staging and half-removed directories.
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(STAGING) || name.starts_with(REMOVING) {
                let path = entry.path();
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed an unfinished snapshot")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove an unfinished snapshot")
                    }
                }
            }
        }
    }
}

pub fn taken(name: &str) -> DaemonError {
    DaemonError::failed(
        ErrorCode::AlreadyExists,
        format!("a snapshot named {name:?} exists; choose another name or delete it first"),
    )
}

/// When a snapshot was last used: its `last-used` mark, else its manifest.
pub fn last_used(dir: &Path) -> std::time::SystemTime {
    [LAST_USED, MANIFEST]
        .iter()
        .find_map(|f| {
            std::fs::metadata(dir.join(f))
                .and_then(|m| m.modified())
                .ok()
        })
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// What the files in `dir` take on disk (allocated blocks: the disks are
/// sparse).
pub fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_api::model::ByteSize;

    fn manifest(name: &str) -> SnapshotManifest {
        SnapshotManifest {
            format_version: FORMAT_VERSION,
            name: name.into(),
            source_vm: "dev".into(),
            source_id: "0123".into(),
            backend: BackendKind::Qemu,
            image: "debian-bookworm".into(),
            kernel: "k".into(),
            spec: VmSpec {
                vcpu: 1,
                memory_mib: 512,
                disk_size: ByteSize::from_mib(1024).unwrap(),
                nat: false,
            },
            root_format: DiskFormat::Qcow2,
            created_at: "2026-12-03T00:00:00Z".into(),
            warm_key: None,
            fork_of: None,
        }
    }

    #[test]
    fn a_published_snapshot_is_listed_read_only_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path().join("snapshots"));
        assert!(store.list().unwrap().is_empty());
        let staging = store.staging().unwrap();
        std::fs::write(staging.join(WORK_DISK), b"disk").unwrap();
        let path = store.publish(&staging, &manifest("base")).unwrap();
        assert!(!staging.exists());
        let mode = std::fs::metadata(path.join(WORK_DISK))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, manifest("base"));
        // A second one under the same name is refused.
        let again = store.staging().unwrap();
        let err = store.publish(&again, &manifest("base")).unwrap_err();
        assert!(err.to_string().contains("exists"), "{err}");
        store.sweep();
        assert!(!again.exists(), "the sweep removes a staging directory");
        store.remove("base").unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(store.show("base").is_err());
    }

    #[test]
    fn names_outside_the_store_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path().to_path_buf());
        for name in ["../x", ".staging-1", "a/b"] {
            let err = store.show(name).unwrap_err();
            assert!(err.to_string().contains("no snapshot"), "{name}: {err}");
        }
    }
}
