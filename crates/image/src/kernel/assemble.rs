//! Filling a staged kernel directory from its parts, the same way for a
//! pull and an import: the ELF `vmlinux` (unpacked from the bzImage when
//! that is all there is), the original bzImage, config, module tree and its
//! modules disk, and an initrd (copied, or built around the agent).

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::bzimage::{self, ELF_MAGIC, VmlinuxError};
use super::decompress::{Compression, MAX_VMLINUX};
use super::error::KernelError;
use super::kernel_dir::{BZIMAGE, CONFIG, INITRD, MODULES, VMLINUX, tree_size};
use super::manifest::KernelSizes;

/// Where the parts come from.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub vmlinux: Option<PathBuf>,
    pub bzimage: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// A `lib/modules/<release>/` directory.
    pub modules: Option<PathBuf>,
    /// Build the initrd around this agent when none is given.
    pub agent: Option<PathBuf>,
    pub release: String,
}

/// Whether sources may be moved (they sit in the staging directory) or
/// must be copied (they are the user's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transfer {
    Move,
    Copy,
}

pub(crate) struct Assembled {
    pub sha256: String,
    pub sizes: KernelSizes,
    pub arch: &'static str,
    pub initramfs_modules: Vec<String>,
}

pub(crate) fn assemble(
    out: &Path,
    src: &Sources,
    transfer: Transfer,
    progress: &mut dyn FnMut(&str),
) -> Result<Assembled, KernelError> {
    fs::create_dir_all(out).map_err(|e| KernelError::io("create", out, e))?;
    let vmlinux = match (&src.vmlinux, &src.bzimage) {
        (Some(path), _) => {
            let bytes = read_capped(path)?;
            if !bytes.starts_with(ELF_MAGIC) {
                return Err(KernelError::Vmlinux {
                    path: path.clone(),
                    source: VmlinuxError::NotAKernel,
                });
            }
            bytes
        }
        (None, Some(path)) => {
            let image = read_capped(path)?;
            let vmlinux_error = |source| KernelError::Vmlinux {
                path: path.clone(),
                source,
            };
            let format = bzimage::payload(&image)
                .and_then(Compression::detect)
                .map_err(vmlinux_error)?;
            progress(&format!("unpacking vmlinux ({format})"));
            bzimage::unpack_vmlinux(&image).map_err(vmlinux_error)?.0
        }
        (None, None) => {
            return Err(KernelError::NoKernel {
                dir: out.to_owned(),
                detail: "neither a vmlinux nor a bzImage".into(),
            });
        }
    };
    let vmlinux_path = out.join(VMLINUX);
    fs::write(&vmlinux_path, &vmlinux).map_err(|e| KernelError::io("write", &vmlinux_path, e))?;

    let put = |from: &Option<PathBuf>, name: &str| -> Result<Option<u64>, KernelError> {
        let Some(from) = from else { return Ok(None) };
        let to = out.join(name);
        transfer_file(from, &to, transfer)?;
        Ok(Some(file_size(&to)?))
    };
    let bzimage = put(&src.bzimage, BZIMAGE)?;
    put(&src.config, CONFIG)?;
    let modules = match &src.modules {
        Some(from) => {
            let to = out.join(MODULES);
            transfer_tree(from, &to, transfer)?;
            let size = tree_size(&to)?;
            progress("indexing the modules (depmod) into a modules disk");
            super::modules_disk::ensure(out, &src.release)?;
            Some(size)
        }
        None => None,
    };

    let mut initramfs_modules = Vec::new();
    let initrd = if src.initrd.is_some() {
        put(&src.initrd, INITRD)?
    } else if let Some(agent) = &src.agent {
        let (files, size) = super::agent_initrd::build(out, agent, &src.release, progress)?;
        initramfs_modules = files;
        Some(size)
    } else {
        None
    };

    Ok(Assembled {
        sha256: hex::encode(Sha256::digest(&vmlinux)),
        sizes: KernelSizes {
            vmlinux: vmlinux.len() as u64,
            bzimage,
            initrd,
            modules,
        },
        arch: elf_arch(&vmlinux),
        initramfs_modules,
    })
}

/// The Debian name of an ELF file's architecture (`e_machine`).
fn elf_arch(elf: &[u8]) -> &'static str {
    match elf.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]])) {
        Some(62) => "amd64",
        Some(183) => "arm64",
        _ => "unknown",
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, KernelError> {
    let size = file_size(path)?;
    if size > MAX_VMLINUX {
        return Err(KernelError::NoKernel {
            dir: path.to_owned(),
            detail: format!("{size} bytes is larger than any kernel ({MAX_VMLINUX} bytes at most)"),
        });
    }
    fs::read(path).map_err(|e| KernelError::io("read", path, e))
}

fn file_size(path: &Path) -> Result<u64, KernelError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| KernelError::io("inspect", path, e))
}

fn transfer_file(from: &Path, to: &Path, how: Transfer) -> Result<(), KernelError> {
    match how {
        Transfer::Move => fs::rename(from, to).map_err(|e| KernelError::io("move", from, e)),
        Transfer::Copy => fs::copy(from, to)
            .map(drop)
            .map_err(|e| KernelError::io("copy", from, e)),
    }
}

/// Moves or copies a directory tree. A copy takes regular files and
/// directories only: symlinks (`build`, `source` in a real
/// `/lib/modules/<release>`) point outside and are left behind.
fn transfer_tree(from: &Path, to: &Path, how: Transfer) -> Result<(), KernelError> {
    if how == Transfer::Move {
        return transfer_file(from, to, how);
    }
    fs::create_dir_all(to).map_err(|e| KernelError::io("create", to, e))?;
    let entries = fs::read_dir(from).map_err(|e| KernelError::io("read", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| KernelError::io("read", from, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| KernelError::io("inspect", entry.path(), e))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            transfer_tree(&entry.path(), &target, how)?;
        } else if kind.is_file() {
            transfer_file(&entry.path(), &target, how)?;
        }
    }
    Ok(())
}
