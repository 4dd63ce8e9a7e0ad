//! Which copy-on-write strategies this host supports, which one applies, and
//! why, in words for `banger doctor`.

use std::path::Path;

use banger_sys::find_program;

use super::{Backend, CowStrategy, reflink};

/// The result of probing the host. The flags drive [`choose`]; the notes
/// only explain them ([`describe`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CowSupport {
    /// `FICLONE` works between files in the images directory.
    pub reflink: bool,
    /// Device-mapper snapshots can be created (control node, driver,
    /// `dmsetup`, root).
    pub device_mapper: bool,
    /// `qemu-img` is installed.
    pub qcow2: bool,
    pub notes: ProbeNotes,
}

/// Why each probe came out as it did, as phrases such as
/// `xfs supports FICLONE at /var/lib/banger/images`. Empty when the
/// [`CowSupport`] was built by hand; [`describe`] then uses generic words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeNotes {
    pub reflink: String,
    pub device_mapper: String,
    pub qcow2: String,
}

impl CowSupport {
    /// Probes the host. `dir` must be on the filesystem holding the images
    /// (and the VM directories, which reflinks need on the same filesystem):
    /// the reflink probe clones a small file there.
    pub fn detect(dir: &Path) -> CowSupport {
        let (reflink, reflink_note) = probe_reflink(dir);
        let (device_mapper, dm_note) = probe_device_mapper();
        let (qcow2, qcow2_note) = match find_program("qemu-img") {
            Some(path) => (true, format!("qemu-img at {}", path.display())),
            None => (false, "qemu-img not in PATH".to_owned()),
        };
        CowSupport {
            reflink,
            device_mapper,
            qcow2,
            notes: ProbeNotes {
                reflink: reflink_note,
                device_mapper: dm_note,
                qcow2: qcow2_note,
            },
        }
    }
}

fn probe_reflink(dir: &Path) -> (bool, String) {
    let fs = filesystem_name(dir);
    match reflink::probe(dir) {
        Ok(()) => (true, format!("{fs} supports FICLONE at {}", dir.display())),
        Err(e) => (
            false,
            format!("no reflink on {fs} at {} ({e})", dir.display()),
        ),
    }
}

/// Each requirement in turn, so the note names the first one missing.
/// `dmsetup version` is run last because a control node can exist while
/// the kernel has no device-mapper driver (it then fails with "No such
/// device").
fn probe_device_mapper() -> (bool, String) {
    match banger_host::device_mapper_status() {
        Ok(()) => (true, "device-mapper available".to_owned()),
        Err(why) => (false, why),
    }
}

/// The filesystem type of `dir`, by its magic number, for messages only.
fn filesystem_name(dir: &Path) -> String {
    let Ok(st) = rustix::fs::statfs(dir) else {
        return "an unreadable filesystem".to_owned();
    };
    // The magic numbers of linux/magic.h. `f_type`'s integer type differs
    // between architectures; the values fit in 32 bits.
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as u64 & 0xffff_ffff;
    match magic {
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0xef53 => "ext4",
        0x0102_1994 => "tmpfs",
        0x794c_7630 => "overlayfs",
        0x2fc1_2fc1 => "zfs",
        0xf2f5_2010 => "f2fs",
        0xca45_1a4e => "bcachefs",
        0x6969 => "nfs",
        0x7461_636f => "ocfs2",
        _ => return format!("filesystem type {magic:#x}"),
    }
    .to_owned()
}

/// The strategy for a new root disk. Firecracker: reflink, then
/// device-mapper, then a sparse copy. QEMU: reflink, then a qcow2 overlay
/// (it needs no root, unlike device-mapper), then device-mapper, then a
/// sparse copy.
pub fn choose(support: &CowSupport, backend: Backend) -> CowStrategy {
    if support.reflink {
        CowStrategy::Reflink
    } else if backend == Backend::Qemu && support.qcow2 {
        CowStrategy::Qcow2Overlay
    } else if support.device_mapper {
        CowStrategy::DmSnapshot
    } else {
        CowStrategy::SparseCopy
    }
}

/// One line for doctor: the strategy that applies and why, e.g.
/// `reflink (xfs supports FICLONE at /var/lib/banger/images)`, or for the
/// last resort every reason the better ones do not apply.
pub fn describe(support: &CowSupport, backend: Backend) -> String {
    let notes = &support.notes;
    let or = |note: &str, generic: &str| {
        if note.is_empty() {
            generic.to_owned()
        } else {
            note.to_owned()
        }
    };
    let reflink = or(
        &notes.reflink,
        if support.reflink {
            "the filesystem supports FICLONE"
        } else {
            "no reflink"
        },
    );
    let dm = or(
        &notes.device_mapper,
        if support.device_mapper {
            "device-mapper available"
        } else {
            "device-mapper unavailable"
        },
    );
    let qcow2 = match backend {
        Backend::Firecracker => format!("qcow2 n/a for {backend}"),
        Backend::Qemu => or(
            &notes.qcow2,
            if support.qcow2 {
                "qemu-img available"
            } else {
                "qemu-img not in PATH"
            },
        ),
    };
    match choose(support, backend) {
        CowStrategy::Reflink => format!("reflink ({reflink})"),
        CowStrategy::Qcow2Overlay => format!("qcow2 overlay: {reflink}; {qcow2}"),
        CowStrategy::DmSnapshot => format!("device-mapper snapshot: {reflink}; {dm}"),
        CowStrategy::SparseCopy => {
            format!("sparse copy (each VM copies the whole image): {reflink}, {dm}, {qcow2}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(reflink: bool, device_mapper: bool, qcow2: bool) -> CowSupport {
        CowSupport {
            reflink,
            device_mapper,
            qcow2,
            notes: ProbeNotes::default(),
        }
    }

    #[test]
    fn firecracker_prefers_reflink_then_device_mapper_then_a_copy() {
        use CowStrategy::*;
        let fc = Backend::Firecracker;
        for qcow2 in [false, true] {
            assert_eq!(choose(&support(true, true, qcow2), fc), Reflink);
            assert_eq!(choose(&support(true, false, qcow2), fc), Reflink);
            assert_eq!(choose(&support(false, true, qcow2), fc), DmSnapshot);
            assert_eq!(
                choose(&support(false, false, qcow2), fc),
                SparseCopy,
                "qcow2 is useless to Firecracker"
            );
        }
    }

    #[test]
    fn qemu_prefers_reflink_then_qcow2_then_device_mapper_then_a_copy() {
        use CowStrategy::*;
        let q = Backend::Qemu;
        assert_eq!(choose(&support(true, true, true), q), Reflink);
        assert_eq!(
            choose(&support(false, true, true), q),
            Qcow2Overlay,
            "qcow2 needs no root"
        );
        assert_eq!(choose(&support(false, true, false), q), DmSnapshot);
        assert_eq!(choose(&support(false, false, false), q), SparseCopy);
    }

    #[test]
    fn the_description_names_the_strategy_and_the_reasons() {
        let mut s = support(false, false, true);
        s.notes = ProbeNotes {
            reflink: "no reflink on ext4 at /images (Operation not supported)".into(),
            device_mapper: "device-mapper unavailable (no /dev/mapper/control)".into(),
            qcow2: "qemu-img at /usr/bin/qemu-img".into(),
        };
        assert_eq!(
            describe(&s, Backend::Firecracker),
            "sparse copy (each VM copies the whole image): no reflink on ext4 at /images \
             (Operation not supported), device-mapper unavailable (no /dev/mapper/control), \
             qcow2 n/a for Firecracker"
        );
        let qemu = describe(&s, Backend::Qemu);
        assert!(
            qemu.starts_with("qcow2 overlay: no reflink on ext4"),
            "{qemu}"
        );
        assert!(qemu.ends_with("qemu-img at /usr/bin/qemu-img"), "{qemu}");

        s.reflink = true;
        s.notes.reflink = "xfs supports FICLONE at /images".into();
        assert_eq!(
            describe(&s, Backend::Qemu),
            "reflink (xfs supports FICLONE at /images)"
        );
        assert_eq!(
            describe(&support(false, true, false), Backend::Firecracker),
            "device-mapper snapshot: no reflink; device-mapper available"
        );
    }

    #[test]
    fn detection_on_tmpfs_finds_no_reflink_and_says_where() {
        let base = Path::new("/dev/shm");
        if !base.is_dir() {
            eprintln!("skipped: no /dev/shm");
            return;
        }
        let dir = tempfile::tempdir_in(base).unwrap();
        let s = CowSupport::detect(dir.path());
        assert!(!s.reflink);
        assert!(
            s.notes.reflink.starts_with("no reflink on tmpfs at "),
            "{}",
            s.notes.reflink
        );
        assert_eq!(s.qcow2, find_program("qemu-img").is_some());
        // The probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn device_mapper_needs_a_working_kernel_driver() {
        let (ok, note) = probe_device_mapper();
        let works = banger_sys::os::is_root()
            && Path::new("/dev/mapper/control").exists()
            && banger_sys::Cmd::new("dmsetup").arg("version").run().is_ok();
        assert_eq!(ok, works, "{note}");
        assert!(
            note.starts_with(if ok {
                "device-mapper available"
            } else {
                "device-mapper unavailable ("
            }),
            "{note}"
        );
    }
}
