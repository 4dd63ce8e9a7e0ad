//! Choosing the modules a VM needs from a kernel's module tree
//! (`lib/modules/<release>/`) and putting them in load order.
//!
//! Modules are found by file name (`-` and `_` are the same to the kernel),
//! their dependencies read from `.modinfo`, since Debian's package ships no
//! `modules.dep`. Built-in drivers (`modules.builtin`, or `=y` in the
//! config) need no file and are skipped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::config::{KernelConfig, Tristate};
use super::error::KernelError;
use super::modinfo::parse_modinfo;
use super::order::{OrderError, load_order};
use crate::debian::limit::LimitedWriter;

/// Largest module file accepted, compressed or not.
const MAX_MODULE: u64 = 64 << 20;

/// A module the VM needs, and the config symbol that builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub name: &'static str,
    pub config: &'static str,
    /// Helpers that only some kernel versions split out.
    pub optional: bool,
}

const fn wanted(name: &'static str, config: &'static str, optional: bool) -> Wanted {
    Wanted {
        name,
        config,
        optional,
    }
}

/// What a banger VM needs to see its disks, network and agent channel, on
/// either VMM (virtio-mmio for Firecracker and QEMU microvm, PCI for QEMU).
pub const VM_MODULES: &[Wanted] = &[
    wanted("virtio", "VIRTIO", false),
    wanted("virtio_ring", "VIRTIO", false),
    wanted("virtio_mmio", "VIRTIO_MMIO", false),
    wanted("virtio_pci_modern_dev", "VIRTIO_PCI_LIB", true),
    wanted("virtio_pci_legacy_dev", "VIRTIO_PCI_LIB_LEGACY", true),
    wanted("virtio_pci", "VIRTIO_PCI", false),
    wanted("virtio_blk", "VIRTIO_BLK", false),
    wanted("failover", "FAILOVER", false),
    wanted("net_failover", "NET_FAILOVER", false),
    wanted("virtio_net", "VIRTIO_NET", false),
    wanted("vsock", "VSOCKETS", false),
    wanted(
        "vmw_vsock_virtio_transport_common",
        "VIRTIO_VSOCKETS_COMMON",
        false,
    ),
    wanted("vmw_vsock_virtio_transport", "VIRTIO_VSOCKETS", false),
    // The agent's channel under QEMU (a virtio-serial port).
    wanted("virtio_console", "VIRTIO_CONSOLE", false),
];

/// Needed too when ext4 is a module: the root filesystem. ext4 asks for
/// crc32c through the crypto API (a soft dependency `depends=` does not
/// list), so the generic implementation comes along when it is a module.
pub const EXT4_MODULES: &[Wanted] = &[
    wanted("ext4", "EXT4_FS", false),
    wanted("crc32c_generic", "CRYPTO_CRC32C", true),
];

/// A module ready for the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    pub name: String,
    /// Path under `lib/modules/<release>/`, always an uncompressed `.ko`.
    pub rel: String,
    /// The uncompressed module.
    pub data: Vec<u8>,
}

/// The modules found under one `lib/modules/<release>/` directory.
#[derive(Debug, Clone)]
pub struct ModuleTree {
    root: PathBuf,
    /// Normalised name → path relative to the root.
    files: BTreeMap<String, String>,
    builtin: BTreeSet<String>,
}

/// `virtio-rng` and `virtio_rng` are the same module.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a module file name, or `None` if it is not one.
fn module_name(file: &str) -> Option<String> {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty())
        .map(normalize)
}

impl ModuleTree {
    pub fn scan(root: &Path) -> Result<Self, KernelError> {
        let mut files = BTreeMap::new();
        walk(root, "", &mut files)?;
        let builtin_path = root.join("modules.builtin");
        let builtin = match fs::read_to_string(&builtin_path) {
            Ok(text) => text
                .lines()
                .filter_map(|l| l.trim().rsplit('/').next())
                .filter_map(module_name)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(KernelError::io("read", builtin_path, e)),
        };
        Ok(Self {
            root: root.to_owned(),
            files,
            builtin,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of module files found.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn is_builtin(&self, name: &str, symbol: Option<&str>, config: Option<&KernelConfig>) -> bool {
        self.builtin.contains(name)
            || symbol
                .zip(config)
                .is_some_and(|(s, c)| c.tristate(s) == Tristate::BuiltIn)
    }

    /// The modules for `wanted` and everything they depend on, in load
    /// order, read and decompressed.
    pub fn resolve(
        &self,
        wanted: &[Wanted],
        config: Option<&KernelConfig>,
    ) -> Result<Vec<ModuleFile>, KernelError> {
        let mut roots = Vec::new();
        for w in wanted {
            if self.files.contains_key(w.name) {
                roots.push(w.name.to_owned());
            } else if !(w.optional || self.is_builtin(w.name, Some(w.config), config)) {
                return Err(KernelError::MissingModule {
                    module: w.name.to_owned(),
                    needed_by: None,
                    dir: self.root.clone(),
                });
            }
        }
        // Read each reachable module once, breadth first.
        let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut loaded: BTreeMap<String, ModuleFile> = BTreeMap::new();
        let mut queue: VecDeque<String> = roots.iter().cloned().collect();
        while let Some(name) = queue.pop_front() {
            if graph.contains_key(&name) {
                continue;
            }
            let Some(rel) = self.files.get(&name) else {
                continue; // load_order reports it with the module that needs it
            };
            let path = self.root.join(rel);
            let data = read_module(&path)?;
            let info = parse_modinfo(&data).map_err(|detail| KernelError::Modinfo {
                path: path.clone(),
                detail,
            })?;
            let deps: Vec<String> = info
                .depends
                .iter()
                .map(|d| normalize(d))
                .filter(|d| self.files.contains_key(d) || !self.is_builtin(d, None, None))
                .collect();
            queue.extend(deps.iter().cloned());
            graph.insert(name.clone(), deps);
            loaded.insert(
                name.clone(),
                ModuleFile {
                    name,
                    rel: uncompressed_name(rel),
                    data,
                },
            );
        }
        let order = load_order(&roots, &graph).map_err(|e| match e {
            OrderError::Missing { module, needed_by } => KernelError::MissingModule {
                module,
                needed_by,
                dir: self.root.clone(),
            },
            OrderError::Cycle(cycle) => KernelError::ModuleCycle {
                cycle: cycle.join(" -> "),
            },
        })?;
        Ok(order
            .into_iter()
            .filter_map(|name| loaded.remove(&name))
            .collect())
    }
}

/// Collects module files below `dir`, sorted, never following symlinks.
fn walk(dir: &Path, rel: &str, files: &mut BTreeMap<String, String>) -> Result<(), KernelError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| KernelError::io("read the module directory", dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| KernelError::io("read the module directory", dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let child_rel = if rel.is_empty() {
            file_name.clone()
        } else {
            format!("{rel}/{file_name}")
        };
        let kind = entry
            .file_type()
            .map_err(|e| KernelError::io("inspect", entry.path(), e))?;
        if kind.is_dir() {
            walk(&entry.path(), &child_rel, files)?;
        } else if kind.is_file() {
            let Some(name) = module_name(&file_name) else {
                continue;
            };
            if let Some(first) = files.get(&name) {
                tracing::debug!(module = %name, %first, ignored = %child_rel, "duplicate module file");
            } else {
                files.insert(name, child_rel);
            }
        }
    }
    Ok(())
}

fn uncompressed_name(rel: &str) -> String {
    [".xz", ".zst", ".gz"]
        .iter()
        .find_map(|s| rel.strip_suffix(s))
        .unwrap_or(rel)
        .to_owned()
}

/// Reads a module, decompressing `.ko.xz`, `.ko.zst` and `.ko.gz`: the
/// initramfs stores plain `.ko` files so any kernel can load them, whether
/// or not it was built with in-kernel module decompression.
fn read_module(path: &Path) -> Result<Vec<u8>, KernelError> {
    let file = fs::File::open(path).map_err(|e| KernelError::io("open", path, e))?;
    let mut reader = BufReader::new(file).take(MAX_MODULE + 1);
    let name = path.to_string_lossy();
    let mut out = LimitedWriter::new(Vec::new(), MAX_MODULE);
    let result = if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut reader, &mut out).map_err(crate::debian::lzma_io_error)
    } else if name.ends_with(".zst") {
        ruzstd::decoding::StreamingDecoder::new(&mut reader)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
            .and_then(|mut d| std::io::copy(&mut d, &mut out).map(drop))
    } else if name.ends_with(".gz") {
        std::io::copy(&mut flate2::read::GzDecoder::new(reader), &mut out).map(drop)
    } else {
        std::io::copy(&mut reader, &mut out).map(drop)
    };
    result.map_err(|e| KernelError::Modinfo {
        path: path.to_owned(),
        detail: format!("cannot read the module (at most {MAX_MODULE} bytes): {e}"),
    })?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::kernel::modinfo::synthetic_ko;

    /// Writes `lib/modules/<release>`-like trees of synthetic modules.
    fn tree(modules: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, depends) in modules {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            let name = module_name(path.file_name().unwrap().to_str().unwrap()).unwrap();
            let ko = synthetic_ko(&[&format!("depends={depends}"), &format!("name={name}")]);
            let bytes = if rel.ends_with(".xz") {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut &ko[..], &mut out).unwrap();
                out
            } else if rel.ends_with(".gz") {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&ko).unwrap();
                e.finish().unwrap()
            } else {
                ko
            };
            fs::write(path, bytes).unwrap();
        }
        dir
    }

    fn debian_like() -> tempfile::TempDir {
        let dir = tree(&[
            ("kernel/drivers/virtio/virtio.ko", ""),
            ("kernel/drivers/virtio/virtio_ring.ko", ""),
            ("kernel/drivers/virtio/virtio_mmio.ko", "virtio,virtio_ring"),
            (
                "kernel/drivers/virtio/virtio_pci.ko",
                "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
            ),
            ("kernel/drivers/virtio/virtio_pci_modern_dev.ko", ""),
            ("kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz", ""),
            ("kernel/drivers/block/virtio_blk.ko", "virtio,virtio_ring"),
            ("kernel/net/core/failover.ko", ""),
            ("kernel/drivers/net/net_failover.ko.gz", "failover"),
            (
                "kernel/drivers/net/virtio_net.ko",
                "virtio_ring,virtio,net_failover",
            ),
            ("kernel/net/vmw_vsock/vsock.ko", ""),
            (
                "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
                "vsock",
            ),
            (
                "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
                "virtio,vmw_vsock_virtio_transport_common,virtio_ring,vsock",
            ),
            ("kernel/drivers/char/hw_random/virtio-rng.ko", "virtio"),
            (
                "kernel/drivers/char/virtio_console.ko",
                "virtio,virtio_ring",
            ),
        ]);
        fs::write(
            dir.path().join("modules.builtin"),
            "kernel/fs/ext4/ext4.ko\n",
        )
        .unwrap();
        dir
    }

    fn names(files: &[ModuleFile]) -> Vec<&str> {
        files.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn the_vm_modules_resolve_in_dependency_order_and_decompressed() {
        let dir = debian_like();
        let tree = ModuleTree::scan(dir.path()).unwrap();
        assert_eq!(tree.len(), 15);
        let files = tree.resolve(VM_MODULES, None).unwrap();
        assert_eq!(
            names(&files),
            [
                "virtio",
                "virtio_ring",
                "virtio_mmio",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio_pci",
                "virtio_blk",
                "failover",
                "net_failover",
                "virtio_net",
                "vsock",
                "vmw_vsock_virtio_transport_common",
                "vmw_vsock_virtio_transport",
                "virtio_console",
            ]
        );
        let legacy = &files[4];
        assert_eq!(legacy.rel, "kernel/drivers/virtio/virtio_pci_legacy_dev.ko");
        assert!(legacy.data.starts_with(b"\x7fELF"));
        assert_eq!(files[8].rel, "kernel/drivers/net/net_failover.ko");
    }

    #[test]
    fn builtin_and_optional_modules_need_no_file() {
        let dir = debian_like();
        let tree = ModuleTree::scan(dir.path()).unwrap();
        // ext4 is in modules.builtin.
        assert!(tree.resolve(EXT4_MODULES, None).unwrap().is_empty());
        // Without modules.builtin, the config says it is built in.
        fs::remove_file(dir.path().join("modules.builtin")).unwrap();
        let tree = ModuleTree::scan(dir.path()).unwrap();
        let err = tree.resolve(EXT4_MODULES, None).unwrap_err();
        assert!(
            matches!(&err, KernelError::MissingModule { module, .. } if module == "ext4"),
            "{err}"
        );
        let config = KernelConfig::parse("CONFIG_EXT4_FS=y\n");
        assert!(
            tree.resolve(EXT4_MODULES, Some(&config))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn dashes_and_underscores_name_the_same_module() {
        let dir = debian_like();
        let tree = ModuleTree::scan(dir.path()).unwrap();
        let rng = [wanted("virtio_rng", "HW_RANDOM_VIRTIO", false)];
        let files = tree.resolve(&rng, None).unwrap();
        assert_eq!(names(&files), ["virtio", "virtio_rng"]);
        assert_eq!(files[1].rel, "kernel/drivers/char/hw_random/virtio-rng.ko");
    }

    #[test]
    fn a_missing_dependency_or_cycle_is_an_error() {
        let dir = tree(&[
            ("kernel/a.ko", "b"),
            ("kernel/c.ko", "d"),
            ("kernel/d.ko", "c"),
        ]);
        let tree = ModuleTree::scan(dir.path()).unwrap();
        let err = tree.resolve(&[wanted("a", "A", false)], None).unwrap_err();
        assert!(
            matches!(&err, KernelError::MissingModule { module, needed_by: Some(by), .. } if module == "b" && by == "a"),
            "{err}"
        );
        let err = tree.resolve(&[wanted("c", "C", false)], None).unwrap_err();
        assert!(matches!(err, KernelError::ModuleCycle { .. }), "{err}");
        let err = tree
            .resolve(&[wanted("zzz", "Z", false)], None)
            .unwrap_err();
        assert!(err.to_string().contains("zzz"), "{err}");
    }
}
