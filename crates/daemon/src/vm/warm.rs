//! The warm cache (SPEC §14.2): the first `vm create` (and so `vm run`) of a
//! given key boots cold and, once its guest is ready and before anything of
//! the user's reaches it, is snapshotted; later creates with the same key
//! restore that snapshot instead of booting.
//!
//! The key is everything the saved guest depends on: the snapshot format,
//! the image (name, recipe, rootfs size and time), the kernel (its sha256
//! and the initrd stamp, which names the agent inside), the vCPUs, memory
//! and disk size, what the kernel command line says apart from the
//! per-VM address, the VMM (kind and its program's sha256: an upgrade
//! re-bakes rather than restoring a state the new binary may not load),
//! and the work disk's seed (the image's /root, `[[file_sync]]` files, the
//! owner's git identity). A changed key simply misses.
//!
//! The bake pauses the new VM for the snapshot (a fraction of a second
//! under TCG, measured by `cargo bench --bench vm_run`) at the end of its
//! create: later is too late, when the user's repository and command may
//! already be in it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use banger_api::protocol::VmSpec;
use banger_image::images::{ImageManifest, ImageStore};
use banger_image::kernel::KernelStore;
use sha2::{Digest, Sha256};

use crate::backend::Chosen;
use crate::error::DaemonError;
use crate::snapshots::{self, SnapshotManifest};
use crate::state::Daemon;

/// A warm cache key: the hex sha256 of everything listed above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmKey(pub String);

impl WarmKey {
    /// The snapshot a key's VMs restore from.
    pub fn snapshot_name(&self) -> String {
        format!("warm-{}", &self.0[..16])
    }
}

/// What goes into a key, gathered before hashing (tests compare these).
struct KeyParts<'a> {
    image: &'a ImageManifest,
    kernel: &'a str,
    spec: &'a VmSpec,
    vmm: &'a Chosen,
}

/// The key for a create, or `None` when the warm cache does not apply: off
/// in config, or Firecracker, whose snapshots only the API description
/// checks so far (the stand-in serves none), so a create never depends on
/// them.
pub fn key(
    daemon: &Daemon,
    image: &ImageManifest,
    kernel: &str,
    spec: &VmSpec,
    vmm: &Chosen,
) -> Result<Option<WarmKey>, DaemonError> {
    if !daemon.config.warm_cache() || vmm.kind() != banger_vmm::BackendKind::Qemu {
        return Ok(None);
    }
    let parts = KeyParts {
        image,
        kernel,
        spec,
        vmm,
    };
    parts.hash(daemon).map(Some)
}

impl KeyParts<'_> {
    fn hash(&self, daemon: &Daemon) -> Result<WarmKey, DaemonError> {
        let mut h = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            h.update(name.as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        field("format", &snapshots::FORMAT_VERSION.to_be_bytes());
        let image = self.image;
        field("image", image.name.to_string().as_bytes());
        field(
            "recipe",
            image.recipe_hash.as_deref().unwrap_or("").as_bytes(),
        );
        field("image-created", image.created_at.as_bytes());
        let rootfs = std::fs::metadata(&image.rootfs).map_err(|e| io(&image.rootfs, e))?;
        field(
            "rootfs",
            format!("{} {}", rootfs.len(), rootfs.mtime()).as_bytes(),
        );
        let kernels = KernelStore::new(&daemon.paths.kernels_dir);
        let kernel = kernels.show(self.kernel)?;
        let kernel_paths = kernels.paths(self.kernel)?;
        field(
            "kernel",
            format!("{} {}", kernel.name, kernel.sha256).as_bytes(),
        );
        let stamp = kernel_paths.dir.join(banger_image::kernel::AGENT_STAMP);
        field("initrd", &std::fs::read(&stamp).unwrap_or_default());
        field(
            "spec",
            format!(
                "{} {} {}",
                self.spec.vcpu,
                self.spec.memory_mib,
                self.spec.disk_size.mib()
            )
            .as_bytes(),
        );
        let c = &daemon.config;
        field(
            "cmdline",
            format!(
                "{} {} {} {:?}",
                c.cidr_prefix(),
                c.bridge_ip(),
                c.default_dns(),
                image.init
            )
            .as_bytes(),
        );
        field("vmm", format!("{:?}", self.vmm.kind()).as_bytes());
        field("vmm-binary", program_sha256(&self.vmm.binary)?.as_bytes());
        field("seed", seed_hash(daemon, image)?.as_bytes());
        Ok(WarmKey(hex::encode(h.finalize())))
    }
}

fn io(path: &Path, e: std::io::Error) -> DaemonError {
    DaemonError::Internal(format!("cannot read {}: {e}", path.display()))
}

/// The sha256 of a program, remembered by path, size and mtime: hashing
/// QEMU (tens of MiB) at every create would cost more than it saves.
fn program_sha256(path: &Path) -> Result<String, DaemonError> {
    type Seen = Vec<(PathBuf, u64, i64, String)>;
    static SEEN: Mutex<Seen> = Mutex::new(Vec::new());
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    let (len, mtime) = (meta.len(), meta.mtime());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, _, sha)) = seen
        .iter()
        .find(|(p, l, m, _)| p == path && *l == len && *m == mtime)
    {
        return Ok(sha.clone());
    }
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(|e| io(path, e))?;
    let sha = hex::encode(h.finalize());
    seen.retain(|(p, ..)| p != path);
    seen.push((path.to_owned(), len, mtime, sha.clone()));
    Ok(sha)
}

/// The work disk's seed as a create would compose it, hashed: paths, modes
/// and contents.
fn seed_hash(daemon: &Daemon, image: &ImageManifest) -> Result<String, DaemonError> {
    let images = ImageStore::new(&daemon.paths.images_dir);
    let image_seed = images.root_seed(image.name.as_ref())?;
    // Removed when `seed` drops; a crash's leftover is a staging
    // directory of the snapshot store, which the daemon sweeps at start.
    let store = snapshots::store(daemon);
    let scratch = store.staging()?.join("seed");
    let (seed, _) = super::seed::compose(
        &scratch,
        image_seed.as_deref(),
        &daemon.file_sync,
        daemon.owner_home.as_deref(),
    )?;
    let mut h = Sha256::new();
    let hashed = hash_tree(seed.path(), Path::new(""), &mut h);
    let staging = scratch.parent().map(Path::to_path_buf);
    drop(seed);
    if let Some(dir) = staging {
        let _ = std::fs::remove_dir(dir);
    }
    hashed.map(|()| hex::encode(h.finalize()))
}

fn hash_tree(root: &Path, rel: &Path, h: &mut Sha256) -> Result<(), DaemonError> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| io(&dir, e))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    entries.sort();
    for name in entries {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(meta.mode().to_be_bytes());
        if meta.is_dir() {
            hash_tree(root, &rel, h)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
            h.update(target.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            let mut file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
            std::io::copy(&mut file, h).map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}

/// The warm snapshot for `key`, if one was baked (and is whole).
pub fn find(daemon: &Daemon, key: &WarmKey) -> Option<(SnapshotManifest, PathBuf)> {
    let found = snapshots::store(daemon).show(&key.snapshot_name()).ok()?;
    (found.0.warm_key.as_deref() == Some(key.0.as_str())).then_some(found)
}

/// Marks a warm snapshot used now: pruning removes the least recently
/// used first.
pub fn touch(dir: &Path) {
    let mark = dir.join(snapshots::LAST_USED);
    if let Err(e) = std::fs::write(&mark, b"") {
        tracing::warn!(path = %mark.display(), error = %e, "cannot mark a warm snapshot used");
    }
}
