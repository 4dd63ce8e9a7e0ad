//! The initrd banger builds around its agent, kept current with the agent.
//!
//! The agent is the initramfs's `/init`: a kernel pulled by an older banger
//! would otherwise boot that banger's init forever (and miss what a newer
//! one does before the switch, such as mounting the modules disk). A stamp
//! beside the initrd records the sha256 of the agent inside it; before a
//! boot, [`refresh`] rebuilds the initrd when the installed agent differs.

use std::fs;
use std::io;
use std::path::Path;

use super::config::{KernelConfig, Tristate};
use super::error::KernelError;
use super::initramfs::build_initramfs;
use super::kernel_dir::{self, CONFIG, INITRD, MODULES};
use super::manifest::KernelManifest;
use super::modules::{EXT4_MODULES, ModuleTree, VM_MODULES};

/// The sha256 (hex) of the agent inside `initrd.img`, then the modules it
/// was built to load: a change of either rebuilds it.
pub const AGENT_STAMP: &str = "initrd.agent-sha256";

/// What the stamp says for an initrd around the agent with this sha256.
fn stamp_for(agent_sha: &str) -> String {
    let modules: Vec<&str> = VM_MODULES
        .iter()
        .chain(EXT4_MODULES)
        .map(|m| m.name)
        .collect();
    format!("{agent_sha} modules={}", modules.join(","))
}

/// Builds `dir/initrd.img` around `agent` for kernel `release`, with the
/// virtio and vsock modules (and ext4's, when it is a module) from
/// `dir/modules`, and stamps it. Returns the modules it loads, in order,
/// and its size.
pub(crate) fn build(
    dir: &Path,
    agent: &Path,
    release: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<String>, u64), KernelError> {
    let config_path = dir.join(CONFIG);
    let config = match fs::read_to_string(&config_path) {
        Ok(text) => Some(KernelConfig::parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(KernelError::io("read", &config_path, e)),
    };
    let tree = dir.join(MODULES);
    let files = if tree.is_dir() {
        let mut wanted = VM_MODULES.to_vec();
        if config
            .as_ref()
            .is_some_and(|c| c.tristate("EXT4_FS") == Tristate::Module)
        {
            wanted.extend_from_slice(EXT4_MODULES);
        }
        ModuleTree::scan(&tree)?.resolve(&wanted, config.as_ref())?
    } else {
        Vec::new()
    };
    progress(&format!("building initramfs ({} modules)", files.len()));
    let agent_sha = file_sha256(agent)?;
    let staged = tempfile::Builder::new()
        .prefix(&kernel_dir::temp_prefix("initrd"))
        .tempfile_in(dir)
        .map_err(|e| KernelError::io("create a temporary file in", dir, e))?;
    build_initramfs(agent, release, &files, staged.path())?;
    let dest = dir.join(INITRD);
    staged
        .persist(&dest)
        .map_err(|e| KernelError::io("move into place", &dest, e.error))?;
    write_stamp(dir, &stamp_for(&agent_sha))?;
    let size = fs::metadata(&dest)
        .map_err(|e| KernelError::io("inspect", &dest, e))?
        .len();
    Ok((files.into_iter().map(|f| f.name).collect(), size))
}

/// Rebuilds the initrd of the kernel in `dir` if banger built it around an
/// agent other than `agent`. A kernel whose initrd came from elsewhere
/// (`kernel import` of an initrd) is left alone. Returns whether it was
/// rebuilt.
pub(crate) fn refresh(
    dir: &Path,
    manifest: &KernelManifest,
    agent: &Path,
) -> Result<bool, KernelError> {
    let stamp = dir.join(AGENT_STAMP);
    let stamped = read_stamp(&stamp)?;
    // Kernels from before the stamp: banger built the initrd exactly when
    // it recorded the modules it loads.
    let ours = stamped.is_some() || !manifest.initramfs_modules.is_empty();
    if !ours {
        return Ok(false);
    }
    let current = stamp_for(&file_sha256(agent)?);
    if stamped.as_deref() == Some(current.as_str()) {
        return Ok(false);
    }
    let _lock = kernel_dir::lock(dir)?;
    if read_stamp(&stamp)?.as_deref() == Some(current.as_str()) {
        return Ok(false);
    }
    let (modules, _) = build(dir, agent, &manifest.version, &mut |_| {})?;
    tracing::info!(kernel = %manifest.name, stamp = %current, ?modules, "initrd rebuilt around the installed agent");
    Ok(true)
}

fn read_stamp(path: &Path) -> Result<Option<String>, KernelError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KernelError::io("read", path, e)),
    }
}

fn write_stamp(dir: &Path, sha: &str) -> Result<(), KernelError> {
    let mut staged = tempfile::Builder::new()
        .prefix(&kernel_dir::temp_prefix("stamp"))
        .tempfile_in(dir)
        .map_err(|e| KernelError::io("create a temporary file in", dir, e))?;
    io::Write::write_all(staged.as_file_mut(), format!("{sha}\n").as_bytes())
        .map_err(|e| KernelError::io("write", staged.path(), e))?;
    let dest = dir.join(AGENT_STAMP);
    staged
        .persist(&dest)
        .map_err(|e| KernelError::io("move into place", &dest, e.error))?;
    Ok(())
}

fn file_sha256(path: &Path) -> Result<String, KernelError> {
    crate::digest::file_sha256(path).map_err(|source| KernelError::AgentMissing {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::kernel::manifest::KernelSizes;

    fn manifest(initramfs_modules: &[&str]) -> KernelManifest {
        KernelManifest {
            name: "k".into(),
            distro: "debian".into(),
            arch: "amd64".into(),
            version: "6.1.0-test".into(),
            sha256: "00".into(),
            source: "test".into(),
            imported_at: "2026-12-03T00:00:00Z".into(),
            sizes: KernelSizes {
                vmlinux: 1,
                bzimage: None,
                initrd: Some(1),
                modules: None,
            },
            initramfs_modules: initramfs_modules.iter().map(|m| (*m).into()).collect(),
        }
    }

    fn kernel_with_agent(agent: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent");
        fs::write(&agent_path, agent).unwrap();
        let kernel = dir.path().join("kernel");
        fs::create_dir(&kernel).unwrap();
        build(&kernel, &agent_path, "6.1.0-test", &mut |_| {}).unwrap();
        (dir, agent_path)
    }

    #[test]
    fn a_new_agent_rebuilds_the_initrd_and_the_same_one_does_not() {
        let (dir, agent) = kernel_with_agent(b"agent v1");
        let kernel = dir.path().join("kernel");
        let first = fs::read(kernel.join(INITRD)).unwrap();
        let m = manifest(&[]);
        assert!(!refresh(&kernel, &m, &agent).unwrap(), "same agent");
        fs::write(&agent, b"agent v2").unwrap();
        assert!(refresh(&kernel, &m, &agent).unwrap());
        let second = fs::read(kernel.join(INITRD)).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            read_stamp(&kernel.join(AGENT_STAMP)).unwrap().unwrap(),
            stamp_for(&hex::encode(Sha256::digest(b"agent v2")))
        );
        assert!(!refresh(&kernel, &m, &agent).unwrap());
        // A stamp for another module list (a banger that loads other
        // modules) is rebuilt too.
        let sha = hex::encode(Sha256::digest(b"agent v2"));
        write_stamp(&kernel, &format!("{sha} modules=virtio")).unwrap();
        assert!(refresh(&kernel, &m, &agent).unwrap());
        // Nothing of the rebuild is left beside it.
        let mut stray = crate::test_support::dir_names(&kernel);
        stray.retain(|n| n.starts_with(".boot-files.tmp-"));
        assert!(stray.is_empty(), "{stray:?}");
    }

    #[test]
    fn an_initrd_banger_did_not_build_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent");
        fs::write(&agent, b"agent").unwrap();
        fs::write(dir.path().join(INITRD), b"the user's initrd").unwrap();
        assert!(!refresh(dir.path(), &manifest(&[]), &agent).unwrap());
        assert_eq!(
            fs::read(dir.path().join(INITRD)).unwrap(),
            b"the user's initrd"
        );
    }

    #[test]
    fn a_kernel_from_before_the_stamp_is_rebuilt_when_it_lists_its_modules() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent");
        fs::write(&agent, b"agent").unwrap();
        fs::write(dir.path().join(INITRD), b"old initrd").unwrap();
        // No module tree here: the rebuilt initrd has the agent alone.
        assert!(refresh(dir.path(), &manifest(&["virtio"]), &agent).unwrap());
        assert_ne!(fs::read(dir.path().join(INITRD)).unwrap(), b"old initrd");
        assert!(dir.path().join(AGENT_STAMP).is_file());
    }

    #[test]
    fn a_missing_agent_is_named() {
        let (dir, agent) = kernel_with_agent(b"agent");
        fs::remove_file(&agent).unwrap();
        let err = refresh(&dir.path().join("kernel"), &manifest(&[]), &agent).unwrap_err();
        assert!(err.to_string().contains("agent"), "{err}");
    }
}
