//! A throwaway filesystem on a loop device, for tests and benchmarks that
//! need a particular filesystem (xfs with reflinks, btrfs, ext4). Needs
//! root. Everything is undone on drop, panics included: unmount, detach the
//! loop device, delete the backing file and directories.

use std::path::{Path, PathBuf};

use banger_sys::Cmd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// xfs with `reflink=1`.
    Xfs,
    Btrfs,
    Ext4,
}

impl FsKind {
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Ext4 => "ext4",
        }
    }

    fn mkfs(self, backing: &Path) -> Cmd {
        match self {
            FsKind::Xfs => Cmd::new("mkfs.xfs").args(["-q", "-f", "-m", "reflink=1"]),
            FsKind::Btrfs => Cmd::new("mkfs.btrfs").args(["-q", "-f"]),
            FsKind::Ext4 => Cmd::new("mkfs.ext4").args(["-q", "-F"]),
        }
        .arg(backing)
    }

    /// Whether its mkfs is installed and the kernel knows the filesystem.
    pub fn available(self) -> bool {
        let mkfs = match self {
            FsKind::Xfs => "mkfs.xfs",
            FsKind::Btrfs => "mkfs.btrfs",
            FsKind::Ext4 => "mkfs.ext4",
        };
        banger_sys::find_program(mkfs).is_some()
            && std::fs::read_to_string("/proc/filesystems").is_ok_and(|fs| {
                fs.lines()
                    .any(|l| l.split_whitespace().last() == Some(self.name()))
            })
    }
}

pub struct LoopFs {
    kind: FsKind,
    /// Holds the backing file and the mount point; removed last.
    dir: Option<tempfile::TempDir>,
    mountpoint: PathBuf,
    loop_device: Option<PathBuf>,
    mounted: bool,
}

impl LoopFs {
    /// Makes a `kind` filesystem of `size` bytes (a sparse backing file in
    /// `parent`) and mounts it.
    pub fn new(parent: &Path, kind: FsKind, size: u64) -> Result<LoopFs, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("banger-loopfs-{}-", kind.name()))
            .tempdir_in(parent)
            .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
        let backing = dir.path().join("backing.img");
        let mountpoint = dir.path().join("mnt");
        let mut fs = LoopFs {
            kind,
            dir: Some(dir),
            mountpoint,
            loop_device: None,
            mounted: false,
        };
        std::fs::File::create(&backing)
            .and_then(|f| f.set_len(size))
            .map_err(|e| format!("cannot create {}: {e}", backing.display()))?;
        std::fs::create_dir(&fs.mountpoint).map_err(|e| e.to_string())?;
        kind.mkfs(&backing).run().map_err(|e| e.to_string())?;
        let out = Cmd::new("losetup")
            .args(["--find", "--show"])
            .arg(&backing)
            .run()
            .map_err(|e| e.to_string())?;
        let device = PathBuf::from(out.stdout_str().trim());
        fs.loop_device = Some(device.clone());
        Cmd::new("mount")
            .arg(&device)
            .arg(&fs.mountpoint)
            .run()
            .map_err(|e| e.to_string())?;
        fs.mounted = true;
        Ok(fs)
    }

    pub fn kind(&self) -> FsKind {
        self.kind
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = Cmd::new("umount").arg(&self.mountpoint).run() {
                eprintln!(
                    "cannot unmount {} ({e}); detaching lazily",
                    self.mountpoint.display()
                );
                let _ = Cmd::new("umount").arg("-l").arg(&self.mountpoint).run();
            }
        }
        if let Some(device) = &self.loop_device {
            if let Err(e) = Cmd::new("losetup").arg("-d").arg(device).run() {
                eprintln!("cannot detach {}: {e}", device.display());
            }
        }
        // The TempDir removes the backing file and the mount point.
        drop(self.dir.take());
    }
}
