//! Copy-on-write root disks: a device-mapper snapshot whose origin is the
//! shared base image (attached read-only) and whose exception store is the
//! VM's sparse COW file, each through a loop device.
//!
//! Creation unwinds: whatever was attached before a failing step is
//! detached again, so a failed create leaves nothing behind. Removal is
//! idempotent and driven by the durable [`SnapshotDevice`] record.

use std::path::{Path, PathBuf};

use banger_sys::Cmd;

use super::runner::{Runner, run, says_missing};
use crate::error::HostError;
use crate::ops::{SnapshotDevice, SnapshotRequest};
use crate::validate::{DmName, ValidationError};

const HINT: &str = "snapshots need root, loop devices and device-mapper with the dm_snapshot module; \
                    `banger doctor` checks them";

/// What dmsetup and losetup say when the device is already gone (or, for
/// dmsetup, when device-mapper itself is absent, so no snapshot can exist).
const GONE: &[&str] = &["No such device", "No such file or directory"];

/// Snapshot exception chunk size, in 512-byte sectors (4 KiB, the page
/// and filesystem block size).
const CHUNK_SECTORS: u32 = 8;

/// Whether this host can create snapshots at all, and if not, why: the
/// control node, `dmsetup`, root, and the kernel driver. For `banger doctor`
/// and the choice of copy-on-write strategy.
pub fn device_mapper_status() -> Result<(), String> {
    const CONTROL: &str = "/dev/mapper/control";
    if !Path::new(CONTROL).exists() {
        return Err(format!("device-mapper unavailable (no {CONTROL})"));
    }
    if banger_sys::find_program("dmsetup").is_none() {
        return Err("device-mapper unavailable (dmsetup not in PATH)".to_owned());
    }
    if !banger_sys::os::is_root() {
        return Err("device-mapper unavailable (needs root)".to_owned());
    }
    // The control node can exist without the kernel driver behind it.
    banger_sys::Cmd::new("dmsetup")
        .arg("version")
        .run()
        .map(drop)
        .map_err(|_| {
            "device-mapper unavailable (`dmsetup version` cannot reach the kernel driver; \
         is dm_snapshot loaded?)"
                .to_owned()
        })
}

/// Loop devices attached by a create in progress; detached again when
/// dropped unless the create completed.
struct Attached<'a> {
    runner: &'a dyn Runner,
    name: &'a DmName,
    loops: Vec<PathBuf>,
    done: bool,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for lo in self.loops.iter().rev() {
            if let Err(e) = detach(self.runner, self.name, lo) {
                tracing::warn!(
                    error = %e,
                    "cannot undo a failed snapshot create; detach {} by hand with `losetup -d {}`",
                    lo.display(),
                    lo.display()
                );
            }
        }
    }
}

pub(crate) fn create(
    runner: &dyn Runner,
    request: &SnapshotRequest,
) -> Result<SnapshotDevice, HostError> {
    let name = &request.name;
    let mut attached = Attached {
        runner,
        name,
        loops: Vec::new(),
        done: false,
    };
    let base_loop = attach(runner, name, request.base.as_path(), true)?;
    attached.loops.push(base_loop.clone());
    let cow_loop = attach(runner, name, request.cow.as_path(), false)?;
    attached.loops.push(cow_loop.clone());

    let sectors = size_in_sectors(runner, name, &base_loop)?;
    // P: persistent exceptions, so the COW file is a complete record.
    let table = format!(
        "0 {sectors} snapshot {} {} P {CHUNK_SECTORS}",
        base_loop.display(),
        cow_loop.display()
    );
    let cmd = Cmd::new("dmsetup").args(["create", name.as_str(), "--table", &table]);
    run(
        runner,
        cmd,
        || format!("create device-mapper snapshot {name}"),
        HINT,
    )?;
    attached.done = true;
    Ok(SnapshotDevice {
        name: name.clone(),
        device: mapper_path(name),
        base_loop,
        cow_loop,
    })
}

fn mapper_path(name: &DmName) -> PathBuf {
    Path::new("/dev/mapper").join(name.as_str())
}

fn attach(
    runner: &dyn Runner,
    name: &DmName,
    file: &Path,
    read_only: bool,
) -> Result<PathBuf, HostError> {
    let mut cmd = Cmd::new("losetup").args(["--find", "--show"]);
    if read_only {
        cmd = cmd.arg("--read-only");
    }
    let cmd = cmd.arg(file);
    let argv = cmd.argv();
    let out = run(
        runner,
        cmd,
        || {
            format!(
                "attach {} to a loop device for snapshot {name}",
                file.display()
            )
        },
        HINT,
    )?;
    let found = out.stdout_str().trim().to_owned();
    if is_loop_device(Path::new(&found)) {
        Ok(PathBuf::from(found))
    } else {
        Err(HostError::UnexpectedOutput {
            argv,
            expected: "a loop device such as /dev/loop0",
            found,
        })
    }
}

fn size_in_sectors(runner: &dyn Runner, name: &DmName, base_loop: &Path) -> Result<u64, HostError> {
    let cmd = Cmd::new("blockdev").arg("--getsz").arg(base_loop);
    let argv = cmd.argv();
    let out = run(
        runner,
        cmd,
        || {
            format!(
                "read the size of {} for snapshot {name}",
                base_loop.display()
            )
        },
        HINT,
    )?;
    let found = out.stdout_str().trim().to_owned();
    match found.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(HostError::UnexpectedOutput {
            argv,
            expected: "a size in 512-byte sectors above zero",
            found,
        }),
    }
}

/// `/dev/loop<N>`: the only paths `losetup -d` may be given, since the
/// record may come from the helper's socket.
fn is_loop_device(path: &Path) -> bool {
    path.to_str()
        .and_then(|s| s.strip_prefix("/dev/loop"))
        .is_some_and(|n| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn detach(runner: &dyn Runner, name: &DmName, lo: &Path) -> Result<(), HostError> {
    match runner.run(&Cmd::new("losetup").arg("-d").arg(lo)) {
        Ok(_) => Ok(()),
        Err(e) if says_missing(&e, GONE) => Ok(()),
        Err(source) => Err(HostError::Command {
            action: format!("detach {} of snapshot {name}", lo.display()),
            hint: HINT,
            source,
        }),
    }
}

fn check_record(device: &SnapshotDevice) -> Result<(), ValidationError> {
    if device.device != mapper_path(&device.name) {
        return Err(ValidationError::DevicePath {
            path: device.device.clone(),
            kind: "device-mapper",
            expected: mapper_path(&device.name).display().to_string(),
        });
    }
    for lo in [&device.base_loop, &device.cow_loop] {
        if !is_loop_device(lo) {
            return Err(ValidationError::DevicePath {
                path: lo.clone(),
                kind: "loop",
                expected: "/dev/loop<N>".to_owned(),
            });
        }
    }
    Ok(())
}

pub(crate) fn remove(runner: &dyn Runner, device: &SnapshotDevice) -> Result<(), HostError> {
    check_record(device)?;
    let name = &device.name;
    // --retry: udev may still hold the device open for a moment after use.
    let cmd = Cmd::new("dmsetup").args(["remove", "--retry", name.as_str()]);
    match runner.run(&cmd) {
        Ok(_) => {}
        Err(e) if says_missing(&e, GONE) => {}
        Err(source) => {
            // Still in use (a VMM running?): the loops stay, they back it.
            return Err(HostError::Command {
                action: format!("remove device-mapper snapshot {name}"),
                hint: "is its VM still running? `dmsetup info` shows who holds it",
                source,
            });
        }
    }
    // Try both even if one fails, then report the first failure.
    let cow = detach(runner, name, &device.cow_loop);
    let base = detach(runner, name, &device.base_loop);
    cow.and(base)
}

#[cfg(test)]
mod tests {
    use super::super::runner::scripted::{Reply, ScriptedRunner};
    use super::*;
    use crate::validate::{ManagedPath, ManagedRoots};

    fn request(dir: &Path) -> SnapshotRequest {
        let roots = ManagedRoots::new([dir.to_owned()]).unwrap();
        SnapshotRequest {
            name: DmName::new("banger-vm1").unwrap(),
            base: ManagedPath::new(dir.join("base.ext4"), &roots).unwrap(),
            cow: ManagedPath::new(dir.join("vm1.cow"), &roots).unwrap(),
        }
    }

    fn scripted() -> ScriptedRunner {
        let r = ScriptedRunner::default();
        r.once("losetup --find", Reply::Out("/dev/loop3\n".into()));
        r.once("losetup --find", Reply::Out("/dev/loop4\n".into()));
        r.on("blockdev --getsz", Reply::Out("2097152\n".into()));
        r
    }

    fn sandbox() -> (tempfile::TempDir, SnapshotRequest, String) {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        let req = request(&real);
        (dir, req, real.display().to_string())
    }

    #[test]
    fn create_runs_losetup_twice_blockdev_and_dmsetup() {
        let (_dir, req, d) = sandbox();
        let r = scripted();
        let dev = create(&r, &req).unwrap();
        assert_eq!(
            r.argv(),
            [
                format!("losetup --find --show --read-only {d}/base.ext4"),
                format!("losetup --find --show {d}/vm1.cow"),
                "blockdev --getsz /dev/loop3".to_owned(),
                "dmsetup create banger-vm1 --table 0 2097152 snapshot /dev/loop3 /dev/loop4 P 8"
                    .to_owned(),
            ]
        );
        assert_eq!(
            dev,
            SnapshotDevice {
                name: req.name.clone(),
                device: "/dev/mapper/banger-vm1".into(),
                base_loop: "/dev/loop3".into(),
                cow_loop: "/dev/loop4".into(),
            }
        );
    }

    #[test]
    fn a_failing_second_losetup_detaches_the_first() {
        let (_dir, req, _) = sandbox();
        let r = ScriptedRunner::default();
        r.once("losetup --find", Reply::Out("/dev/loop3\n".into()));
        r.once(
            "losetup --find",
            Reply::Fail("losetup: cannot find an unused loop device".into()),
        );
        let err = create(&r, &req).unwrap_err();
        assert!(err.to_string().contains("vm1.cow"), "{err}");
        assert_eq!(r.argv()[2..], ["losetup -d /dev/loop3"]);
    }

    #[test]
    fn a_failing_dmsetup_detaches_both_loops() {
        let (_dir, req, _) = sandbox();
        let r = scripted();
        r.on(
            "dmsetup create",
            Reply::Fail("device-mapper: reload ioctl failed: Invalid argument".into()),
        );
        let err = create(&r, &req).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot create device-mapper snapshot banger-vm1"),
            "{err}"
        );
        assert_eq!(
            r.argv()[4..],
            ["losetup -d /dev/loop4", "losetup -d /dev/loop3"]
        );
    }

    #[test]
    fn nonsense_from_the_tools_unwinds_too() {
        let (_dir, req, _) = sandbox();
        let r = ScriptedRunner::default();
        r.once("losetup --find", Reply::Out("/dev/loop3\n".into()));
        r.once("losetup --find", Reply::Out("/dev/loop4\n".into()));
        r.on("blockdev", Reply::Out("0\n".into()));
        assert!(matches!(
            create(&r, &req),
            Err(HostError::UnexpectedOutput { .. })
        ));
        assert_eq!(
            r.argv()[3..],
            ["losetup -d /dev/loop4", "losetup -d /dev/loop3"]
        );

        let r = ScriptedRunner::default();
        r.on("losetup --find", Reply::Out("/dev/sda\n".into()));
        assert!(matches!(
            create(&r, &req),
            Err(HostError::UnexpectedOutput { .. })
        ));
        assert_eq!(
            r.argv().len(),
            1,
            "nothing known attached, nothing detached"
        );
    }

    fn record() -> SnapshotDevice {
        SnapshotDevice {
            name: DmName::new("banger-vm1").unwrap(),
            device: "/dev/mapper/banger-vm1".into(),
            base_loop: "/dev/loop3".into(),
            cow_loop: "/dev/loop4".into(),
        }
    }

    #[test]
    fn remove_takes_down_the_device_then_both_loops() {
        let r = ScriptedRunner::default();
        remove(&r, &record()).unwrap();
        assert_eq!(
            r.argv(),
            [
                "dmsetup remove --retry banger-vm1",
                "losetup -d /dev/loop4",
                "losetup -d /dev/loop3"
            ]
        );
    }

    #[test]
    fn removing_what_is_gone_succeeds() {
        let r = ScriptedRunner::default();
        r.on(
            "dmsetup",
            Reply::Fail("device-mapper: remove ioctl on banger-vm1  failed: No such device or address\nCommand failed.".into()),
        );
        r.on(
            "losetup -d /dev/loop4",
            Reply::Fail("losetup: /dev/loop4: detach failed: No such device or address".into()),
        );
        r.on(
            "losetup -d /dev/loop3",
            Reply::Fail("losetup: /dev/loop3: failed to use device: No such device".into()),
        );
        remove(&r, &record()).unwrap();
        assert_eq!(r.argv().len(), 3);
    }

    #[test]
    fn a_busy_device_keeps_its_loops() {
        let r = ScriptedRunner::default();
        r.on(
            "dmsetup",
            Reply::Fail(
                "device-mapper: remove ioctl on banger-vm1  failed: Device or resource busy".into(),
            ),
        );
        let err = remove(&r, &record()).unwrap_err();
        assert!(err.to_string().contains("still running"), "{err}");
        assert_eq!(r.argv(), ["dmsetup remove --retry banger-vm1"]);
    }

    #[test]
    fn a_record_pointing_elsewhere_is_refused() {
        let r = ScriptedRunner::default();
        let mut bad = record();
        bad.base_loop = "/dev/sda".into();
        assert!(matches!(
            remove(&r, &bad),
            Err(HostError::Invalid(ValidationError::DevicePath { .. }))
        ));
        let mut bad = record();
        bad.device = "/dev/mapper/other".into();
        assert!(remove(&r, &bad).is_err());
        assert!(r.argv().is_empty());
    }
}
