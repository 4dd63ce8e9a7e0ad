//! Root disk creation time (SPEC §7: creating a VM must not cost time
//! proportional to the image size when a copy-on-write strategy exists).
//!
//! On a loop-mounted xfs (`reflink=1`) under /var/tmp: a 4 GiB image full of
//! pseudo-random data (every block allocated, so a copy has real work), then
//! `provision_root_disk(Reflink)` against `cp --sparse=always` of the same
//! image on the same filesystem, and `create_work_disk` of 8 GiB; median of
//! 3 runs each, page cache dropped before every run. Needs root; without it
//! (or without xfs) it says why and exits 0.
//!
//! Run: `cargo bench -p banger-image --bench cow`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use banger_api::model::ByteSize;
use banger_host::{DmName, ManagedRoots, RecordingHost};
use banger_image::{CowStrategy, create_work_disk, provision_root_disk, teardown_root_disk};
use banger_sys::Cmd;
use support::loopfs::{FsKind, LoopFs};

const GIB: u64 = 1024 * 1024 * 1024;
const IMAGE_SIZE: u64 = 4 * GIB;
const WORK_DISK_GIB: u64 = 8;
const RUNS: usize = 3;
/// The image and one full copy of it at a time, plus metadata and the work
/// disk's few allocated blocks.
const FS_SIZE: u64 = 2 * IMAGE_SIZE + 2 * GIB;
const PARENT: &str = "/var/tmp";

fn main() {
    if let Err(why) = preflight() {
        println!("cow benchmark skipped: {why}");
        return;
    }
    let fs = LoopFs::new(Path::new(PARENT), FsKind::Xfs, FS_SIZE)
        .unwrap_or_else(|e| panic!("cannot set up xfs: {e}"));
    let state = fs.path().to_owned();
    let images = state.join("images/bench");
    let vms = state.join("vms");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&vms).unwrap();
    let roots = ManagedRoots::new([state.clone()]).unwrap();
    let base = images.join("rootfs.ext4");

    let started = Instant::now();
    write_image(&base);
    println!(
        "wrote a {} GiB image of pseudo-random data in {:.1} s",
        IMAGE_SIZE / GIB,
        started.elapsed().as_secs_f64()
    );
    let caches = drop_caches();
    if !caches {
        println!("note: cannot drop the page cache (/proc/sys/vm/drop_caches); timings are warm");
    }

    let host = RecordingHost::new();
    let reflink = median((0..RUNS).map(|i| {
        let vm_dir = vms.join(format!("reflink-{i}"));
        std::fs::create_dir(&vm_dir).unwrap();
        let name = DmName::new(format!("banger-bench-{i}")).unwrap();
        drop_caches();
        let t = Instant::now();
        let disk = provision_root_disk(CowStrategy::Reflink, &base, &vm_dir, &host, &roots, &name)
            .unwrap();
        let elapsed = t.elapsed();
        teardown_root_disk(&disk, &host).unwrap();
        elapsed
    }));

    // --reflink=never: GNU cp reflinks by default since coreutils 9, which
    // would measure the same thing twice; the baseline is a real copy.
    let cp_argv = ["--sparse=always", "--reflink=never"];
    let copy = median((0..RUNS).map(|i| {
        let dest = vms.join(format!("copy-{i}.ext4"));
        drop_caches();
        let t = Instant::now();
        Cmd::new("cp")
            .args(cp_argv)
            .arg(&base)
            .arg(&dest)
            .run()
            .unwrap();
        let elapsed = t.elapsed();
        assert_eq!(dest.metadata().unwrap().len(), IMAGE_SIZE);
        std::fs::remove_file(&dest).unwrap();
        elapsed
    }));

    let ratio = reflink.as_secs_f64() / copy.as_secs_f64();
    println!(
        "root disk from {} GiB image: reflink {:.4} s, cp {} {:.1} s, ratio {:.5} (goal <= 0.05){}",
        IMAGE_SIZE / GIB,
        reflink.as_secs_f64(),
        cp_argv.join(" "),
        copy.as_secs_f64(),
        ratio,
        if ratio <= 0.05 { "" } else { "  MISSED" }
    );

    let size = ByteSize::from_mib(WORK_DISK_GIB * 1024).unwrap();
    let work = median((0..RUNS).map(|i| {
        let path = vms.join(format!("work-{i}.ext4"));
        drop_caches();
        let t = Instant::now();
        create_work_disk(&path, size, None).unwrap();
        let elapsed = t.elapsed();
        std::fs::remove_file(&path).unwrap();
        elapsed
    }));
    println!(
        "work disk of {WORK_DISK_GIB} GiB: create_work_disk {:.3} s (median of {RUNS})",
        work.as_secs_f64()
    );
    drop(fs);
}

/// Why the benchmark cannot run here, if it cannot.
fn preflight() -> Result<(), String> {
    if !banger_sys::os::is_root() {
        return Err("needs root (it mounts an xfs filesystem on a loop device)".into());
    }
    if !FsKind::Xfs.available() {
        return Err("xfs is not available (mkfs.xfs missing or the kernel lacks xfs)".into());
    }
    let st = rustix::fs::statvfs(PARENT).map_err(|e| format!("cannot inspect {PARENT}: {e}"))?;
    let free = st.f_bavail * st.f_frsize;
    if free < FS_SIZE + GIB {
        return Err(format!(
            "{PARENT} has {} GiB free; the benchmark needs {} GiB",
            free / GIB,
            (FS_SIZE + GIB) / GIB
        ));
    }
    Ok(())
}

/// Fills `path` with IMAGE_SIZE bytes of xorshift output in 64 MiB writes:
/// no block is zero, so nothing can be skipped as a hole.
fn write_image(path: &Path) {
    const CHUNK: usize = 64 * 1024 * 1024;
    let mut f = File::create(path).unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..IMAGE_SIZE / CHUNK as u64 {
        for word in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&(x | 1).to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`, best effort: whether it
/// worked.
fn drop_caches() -> bool {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn median(samples: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = samples.collect();
    v.sort();
    v[v.len() / 2]
}
