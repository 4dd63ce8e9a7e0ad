//! Reflink root disks on real filesystems: xfs (`reflink=1`) and btrfs
//! support `FICLONE`, ext4 does not. Needs root (loop devices, mount).

mod support;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use banger_host::{DmName, ManagedRoots, RecordingHost};
use banger_image::{
    Backend, CowStrategy, CowSupport, DiskFormat, choose, provision_root_disk, teardown_root_disk,
};
use banger_sys::Cmd;
use support::loopfs::{FsKind, LoopFs};

const MIB: u64 = 1024 * 1024;

fn root_or_skip() -> bool {
    let root = banger_sys::os::is_root();
    if !root {
        eprintln!("skipped: needs root");
    }
    root
}

fn mount(kind: FsKind) -> Option<LoopFs> {
    if !kind.available() {
        eprintln!("skipped {}: not supported on this host", kind.name());
        return None;
    }
    // xfs refuses filesystems under 300 MiB.
    Some(LoopFs::new(Path::new("/var/tmp"), kind, 512 * MIB).unwrap())
}

/// Deterministic non-zero bytes, so every block of the base is real data.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) | 1
        })
        .collect()
}

/// The extents of a file as `filefrag -v` lists them, each with whether
/// the filesystem reports it shared with another file.
fn extents_shared(path: &Path) -> Vec<bool> {
    let out = Cmd::new("filefrag")
        .arg("-v")
        .arg(path)
        .run()
        .unwrap()
        .stdout_str();
    out.lines()
        .filter(|l| {
            l.trim_start()
                .split(':')
                .next()
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|l| l.contains("shared"))
        .collect()
}

struct Layout {
    base: PathBuf,
    vm_dir: PathBuf,
    roots: ManagedRoots,
}

fn layout(fs: &LoopFs, base_content: &[u8]) -> Layout {
    let state = fs.path().to_owned();
    std::fs::create_dir_all(state.join("images/debian")).unwrap();
    std::fs::create_dir_all(state.join("vms/v1")).unwrap();
    let base = state.join("images/debian/rootfs.ext4");
    std::fs::write(&base, base_content).unwrap();
    Layout {
        base,
        vm_dir: state.join("vms/v1"),
        roots: ManagedRoots::new([state]).unwrap(),
    }
}

#[test]
fn a_reflinked_root_disk_shares_extents_and_keeps_the_base_intact() {
    if !root_or_skip() {
        return;
    }
    for kind in [FsKind::Xfs, FsKind::Btrfs] {
        let Some(fs) = mount(kind) else { continue };
        let content = pseudo_random(64 * MIB as usize, 7);
        let l = layout(&fs, &content);
        let host = RecordingHost::new();
        let name = DmName::new("banger-v1").unwrap();

        let disk = provision_root_disk(
            CowStrategy::Reflink,
            &l.base,
            &l.vm_dir,
            &host,
            &l.roots,
            &name,
        )
        .unwrap();
        assert_eq!(disk.strategy, CowStrategy::Reflink);
        assert_eq!(disk.path, l.vm_dir.join("root.ext4"));
        assert_eq!(disk.format, DiskFormat::Raw);
        assert_eq!(
            (disk.snapshot.as_ref(), disk.cow_file.as_ref()),
            (None, None)
        );
        assert!(
            host.calls().is_empty(),
            "a reflink needs no privileged call"
        );

        assert_eq!(
            std::fs::read(&disk.path).unwrap(),
            content,
            "{}",
            kind.name()
        );
        let shared = extents_shared(&disk.path);
        assert!(
            !shared.is_empty() && shared.iter().all(|&s| s),
            "{}: extents {shared:?}",
            kind.name()
        );

        // The VM writes to its disk: the base does not change, and only the
        // written range stops being shared.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&disk.path)
            .unwrap();
        f.write_all_at(&[0u8; 4096], 8 * MIB).unwrap();
        f.sync_all().unwrap();
        assert_eq!(
            std::fs::read(&l.base).unwrap(),
            content,
            "{}: the base changed",
            kind.name()
        );
        let back = std::fs::read(&disk.path).unwrap();
        assert_eq!(
            &back[8 * MIB as usize..8 * MIB as usize + 4096],
            &[0u8; 4096]
        );
        let shared = extents_shared(&disk.path);
        assert!(
            shared.iter().any(|&s| s) && shared.iter().any(|&s| !s),
            "{}: extents {shared:?}",
            kind.name()
        );

        teardown_root_disk(&disk, &host).unwrap();
        assert!(!disk.path.exists());
        teardown_root_disk(&disk, &host).unwrap();
        assert_eq!(std::fs::read(&l.base).unwrap(), content);
    }
}

#[test]
fn a_clone_costs_no_space() {
    if !root_or_skip() {
        return;
    }
    let Some(fs) = mount(FsKind::Xfs) else { return };
    let content = pseudo_random(128 * MIB as usize, 11);
    let l = layout(&fs, &content);
    let free = || {
        let st = rustix::fs::statvfs(fs.path()).unwrap();
        st.f_bfree * st.f_frsize
    };
    Cmd::new("sync").run().unwrap();
    let before = free();
    let name = DmName::new("banger-v1").unwrap();
    let disk = provision_root_disk(
        CowStrategy::Reflink,
        &l.base,
        &l.vm_dir,
        &RecordingHost::new(),
        &l.roots,
        &name,
    )
    .unwrap();
    Cmd::new("sync").run().unwrap();
    let used = before.saturating_sub(free());
    assert!(used < 4 * MIB, "cloning a 128 MiB image used {used} bytes");
    assert_eq!(disk.path.metadata().unwrap().len(), 128 * MIB);
}

#[test]
fn detection_finds_reflinks_on_xfs_and_btrfs_but_not_on_ext4() {
    if !root_or_skip() {
        return;
    }
    for (kind, expected) in [
        (FsKind::Xfs, true),
        (FsKind::Btrfs, true),
        (FsKind::Ext4, false),
    ] {
        let Some(fs) = mount(kind) else { continue };
        let support = CowSupport::detect(fs.path());
        assert_eq!(
            support.reflink,
            expected,
            "{}: {:?}",
            kind.name(),
            support.notes
        );
        let note = &support.notes.reflink;
        let want = if expected {
            format!(
                "{} supports FICLONE at {}",
                kind.name(),
                fs.path().display()
            )
        } else {
            format!("no reflink on {} at {}", kind.name(), fs.path().display())
        };
        assert!(note.starts_with(&want), "{note}");
        assert_eq!(
            std::fs::read_dir(fs.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(".banger")
                })
                .count(),
            0,
            "the probe left files behind"
        );

        let strategy = choose(&support, Backend::Firecracker);
        assert_eq!(strategy == CowStrategy::Reflink, expected);
        if !expected {
            // ext4: reflink is refused, and the partial file removed.
            let l = layout(&fs, b"base");
            let name = DmName::new("banger-v1").unwrap();
            let err = provision_root_disk(
                CowStrategy::Reflink,
                &l.base,
                &l.vm_dir,
                &RecordingHost::new(),
                &l.roots,
                &name,
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("does not support reflinks"),
                "{err}"
            );
            assert!(!l.vm_dir.join("root.ext4").exists());
        }
        assert_eq!(fs.kind(), kind);
    }
}
