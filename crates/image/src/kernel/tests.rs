//! The kernel store end to end: a pull from a signed fixture mirror holding
//! a synthetic Debian-shaped kernel package, imports, listing, replacing and
//! removing; and one opt-out live pull of the real kernel from Debian.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use super::bzimage::synthetic_bzimage;
use super::cpio::read_newc;
use super::decompress::tests::{fake_vmlinux, kernel_payload};
use super::modinfo::synthetic_ko;
use super::*;
use crate::debian::deb::build::{Comp, deb};
use crate::debian::fixture::FixtureMirror;
use crate::debian::{DebianMirror, HttpFetch};

const RELEASE: &str = "6.1.0-99-cloud-amd64";

/// Debian 12's real module graph, as `(path, depends)`.
const MODULES_GRAPH: &[(&str, &str)] = &[
    ("kernel/drivers/virtio/virtio.ko", ""),
    ("kernel/drivers/virtio/virtio_ring.ko", ""),
    ("kernel/drivers/virtio/virtio_mmio.ko", "virtio,virtio_ring"),
    (
        "kernel/drivers/virtio/virtio_pci.ko",
        "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
    ),
    ("kernel/drivers/virtio/virtio_pci_modern_dev.ko", ""),
    ("kernel/drivers/virtio/virtio_pci_legacy_dev.ko", ""),
    ("kernel/drivers/block/virtio_blk.ko", "virtio,virtio_ring"),
    ("kernel/net/core/failover.ko", ""),
    ("kernel/drivers/net/net_failover.ko", "failover"),
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
    (
        "kernel/drivers/char/virtio_console.ko",
        "virtio,virtio_ring",
    ),
];

/// The data.tar of a kernel package shaped like Debian's.
fn kernel_tar(vmlinuz: &[u8]) -> Vec<u8> {
    let kos: Vec<(String, Vec<u8>)> = MODULES_GRAPH
        .iter()
        .map(|(rel, deps)| {
            let name = Path::new(rel).file_stem().unwrap().to_str().unwrap();
            let ko = synthetic_ko(&[&format!("depends={deps}"), &format!("name={name}")]);
            (format!("./lib/modules/{RELEASE}/{rel}"), ko)
        })
        .collect();
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (format!("./boot/vmlinuz-{RELEASE}"), vmlinuz.to_vec()),
        (
            format!("./boot/config-{RELEASE}"),
            b"CONFIG_EXT4_FS=y\nCONFIG_VIRTIO=m\n".to_vec(),
        ),
        (format!("./boot/System.map-{RELEASE}"), b"map".to_vec()),
        (
            format!("./lib/modules/{RELEASE}/modules.builtin"),
            b"kernel/fs/ext4/ext4.ko\n".to_vec(),
        ),
        (
            "./usr/share/doc/linux-image/changelog.gz".into(),
            b"doc".to_vec(),
        ),
    ];
    files.extend(kos);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    crate::debian::deb::build::tar(&refs)
}

struct Fixture {
    mirror: FixtureMirror,
    vmlinux: Vec<u8>,
    agent: tempfile::NamedTempFile,
}

fn fixture() -> Fixture {
    let vmlinux = fake_vmlinux(3 << 20);
    let bzimage = synthetic_bzimage(&kernel_payload(&vmlinux, Compression::Lz4), 27);
    let mut mirror = FixtureMirror::new(&["bookworm", "bookworm-updates"]);
    let versioned = format!("linux-image-{RELEASE}");
    mirror.add_deb(
        "bookworm",
        &versioned,
        "6.1.999-1",
        "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
        &deb(&kernel_tar(&bzimage), Comp::Xz),
    );
    mirror.add_deb(
        "bookworm",
        "linux-image-cloud-amd64",
        "6.1.999-1",
        &format!("{versioned} (= 6.1.999-1)"),
        b"meta",
    );
    mirror.publish();
    let agent = tempfile::NamedTempFile::new().unwrap();
    fs::write(agent.path(), b"\x7fELF static agent").unwrap();
    Fixture {
        mirror,
        vmlinux,
        agent,
    }
}

fn initramfs_entries(path: &Path) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    read_newc(&raw)
}

/// The module names of `banger.order`, in order.
fn order_names(entries: &[(String, u32, u32, u32, Vec<u8>)]) -> Vec<String> {
    let order = entries
        .iter()
        .find(|e| e.0 == initramfs::ORDER_FILE)
        .expect("banger.order in the initramfs");
    String::from_utf8(order.4.clone())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            Path::new(l)
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .replace('-', "_")
        })
        .collect()
}

fn assert_before(order: &[String], chain: &[&str]) {
    let pos = |m: &str| {
        order
            .iter()
            .position(|x| x == m)
            .unwrap_or_else(|| panic!("{m} missing from {order:?}"))
    };
    for pair in chain.windows(2) {
        assert!(
            pos(pair[0]) < pos(pair[1]),
            "{} before {}: {order:?}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn a_pull_from_a_signed_mirror_installs_a_complete_kernel() {
    let f = fixture();
    let kernels = tempfile::tempdir().unwrap();
    let store = KernelStore::new(kernels.path().join("kernels"));
    let mut lines = Vec::new();
    let manifest = store
        .pull_debian_with(
            DEFAULT_KERNEL_NAME,
            &f.mirror.mirror,
            &f.mirror.fetch,
            f.agent.path(),
            &mut |l| lines.push(l.to_owned()),
        )
        .unwrap();

    assert_eq!(manifest.name, DEFAULT_KERNEL_NAME);
    assert_eq!(
        (manifest.distro.as_str(), manifest.arch.as_str()),
        ("debian", "amd64")
    );
    assert_eq!(manifest.version, RELEASE);
    assert!(
        manifest.source.starts_with(&format!(
            "debian bookworm linux-image-{RELEASE} 6.1.999-1 (sha256 "
        )),
        "{}",
        manifest.source
    );
    use sha2::Digest;
    assert_eq!(
        manifest.sha256,
        hex::encode(sha2::Sha256::digest(&f.vmlinux))
    );
    assert_eq!(manifest.sizes.vmlinux, f.vmlinux.len() as u64);
    assert!(manifest.sizes.initrd.unwrap() > 0 && manifest.sizes.modules.unwrap() > 0);

    let paths = store.paths(DEFAULT_KERNEL_NAME).unwrap();
    assert!(fs::read(&paths.vmlinux).unwrap() == f.vmlinux);
    // The modules disk, with the index modprobe reads.
    let disk = crate::ext4::Ext4Image::open(&paths.modules_disk).unwrap();
    assert!(disk.stat("/modules.dep.bin").unwrap().is_some());
    assert!(paths.bzimage.is_file() && paths.config.is_file());
    assert!(
        paths
            .modules
            .join("kernel/drivers/virtio/virtio.ko")
            .is_file()
    );

    let entries = initramfs_entries(&paths.initrd);
    let init = entries.iter().find(|e| e.0 == "init").unwrap();
    assert_eq!(init.4, b"\x7fELF static agent");
    let order = order_names(&entries);
    // virtio_console carries the agent's channel under QEMU.
    assert_eq!(order.len(), 14, "{order:?}");
    assert_before(&order, &["virtio_ring", "virtio_console"]);
    assert_eq!(order, manifest.initramfs_modules);
    assert_before(&order, &["virtio", "virtio_mmio"]);
    assert_before(&order, &["virtio_ring", "virtio_blk"]);
    assert_before(
        &order,
        &[
            "vsock",
            "vmw_vsock_virtio_transport_common",
            "vmw_vsock_virtio_transport",
        ],
    );
    assert_before(&order, &["failover", "net_failover", "virtio_net"]);
    assert!(
        entries
            .iter()
            .any(|e| e.0 == format!("lib/modules/{RELEASE}/kernel/net/vmw_vsock/vsock.ko"))
    );

    for stage in [
        "fetching bookworm InRelease",
        "extracting",
        "unpacking vmlinux (lz4)",
        "building initramfs (14 modules)",
    ] {
        assert!(
            lines.iter().any(|l| l == stage),
            "{stage:?} not in {lines:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("downloading linux-image-")),
        "{lines:?}"
    );

    // Nothing but the kernel is left in the store.
    let left: Vec<_> = fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [DEFAULT_KERNEL_NAME]);
    assert_eq!(store.list().unwrap(), std::slice::from_ref(&manifest));
    assert_eq!(store.show(DEFAULT_KERNEL_NAME).unwrap(), manifest);
}

#[test]
fn a_failed_pull_leaves_the_previous_kernel_and_no_staging() {
    let f = fixture();
    let kernels = tempfile::tempdir().unwrap();
    let store = KernelStore::new(kernels.path());
    let pull = |store: &KernelStore| {
        store.pull_debian_with(
            "k",
            &f.mirror.mirror,
            &f.mirror.fetch,
            f.agent.path(),
            &mut |_| {},
        )
    };
    let first = pull(&store).unwrap();

    // Corrupt the package in the pool: the download no longer verifies.
    let pool = f.mirror.dir.path().join("pool/main");
    let deb_path = fs::read_dir(&pool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().contains(RELEASE))
        .unwrap();
    let mut bytes = fs::read(&deb_path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&deb_path, bytes).unwrap();
    let err = pull(&store).unwrap_err();
    assert!(err.to_string().contains("download"), "{err}");
    assert!(format!("{:?}", err).contains("HashMismatch"), "{err:?}");

    assert_eq!(store.show("k").unwrap(), first);
    let left: Vec<_> = fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["k"]);
}

#[test]
fn a_pull_needs_the_agent_before_downloading() {
    let f = fixture();
    let kernels = tempfile::tempdir().unwrap();
    let store = KernelStore::new(kernels.path());
    let err = store
        .pull_debian_with(
            "k",
            &f.mirror.mirror,
            &f.mirror.fetch,
            &kernels.path().join("none"),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, KernelError::AgentMissing { .. }), "{err}");
    assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
}

#[test]
fn importing_a_bzimage_unpacks_the_vmlinux_and_replaces_atomically() {
    let vmlinux = fake_vmlinux(1 << 20);
    let from = tempfile::tempdir().unwrap();
    fs::write(
        from.path().join("vmlinuz-6.1.0-7-custom"),
        synthetic_bzimage(&kernel_payload(&vmlinux, Compression::Gzip), 0),
    )
    .unwrap();
    fs::write(from.path().join("initrd.img-6.1.0-7-custom"), b"initrd").unwrap();
    let modules = from.path().join("modules/6.1.0-7-custom/kernel");
    fs::create_dir_all(&modules).unwrap();
    fs::write(modules.join("x.ko"), b"ko").unwrap();
    std::os::unix::fs::symlink("/etc", from.path().join("modules/6.1.0-7-custom/build")).unwrap();

    let kernels = tempfile::tempdir().unwrap();
    let store = KernelStore::new(kernels.path());
    let m = store.import("custom", from.path()).unwrap();
    assert_eq!(m.distro, "imported");
    // The bzImage header names the release.
    assert_eq!(m.version, "6.1.0-99-test-amd64");
    assert_eq!(m.sizes.initrd, Some(6));
    assert_eq!(m.sizes.modules, Some(2));
    let paths = store.paths("custom").unwrap();
    assert!(fs::read(&paths.vmlinux).unwrap() == vmlinux);
    let disk = crate::ext4::Ext4Image::open(&paths.modules_disk).unwrap();
    assert!(disk.stat("/kernel/x.ko").unwrap().is_some());
    assert!(disk.stat("/modules.dep.bin").unwrap().is_some());
    assert_eq!(fs::read(&paths.initrd).unwrap(), b"initrd");
    assert!(paths.modules.join("kernel/x.ko").is_file());
    assert!(
        !paths.modules.join("build").exists(),
        "symlinks are not copied"
    );

    // Import again from just a vmlinux: the old kernel is replaced whole.
    let from2 = tempfile::tempdir().unwrap();
    fs::write(from2.path().join("vmlinux"), &vmlinux).unwrap();
    let m2 = store.import("custom", from2.path()).unwrap();
    assert_eq!(m2.version, "unknown");
    assert_eq!(m2.arch, "unknown", "the fake ELF names no machine");
    assert!(!paths.initrd.exists() && !paths.bzimage.exists());
    assert_eq!(store.list().unwrap(), [m2]);
}

#[test]
fn imports_without_a_kernel_or_with_two_are_refused() {
    let kernels = tempfile::tempdir().unwrap();
    let store = KernelStore::new(kernels.path());
    let from = tempfile::tempdir().unwrap();
    fs::write(from.path().join("initrd.img"), b"x").unwrap();
    let err = store.import("k", from.path()).unwrap_err();
    assert!(matches!(err, KernelError::NoKernel { .. }), "{err}");

    fs::write(from.path().join("vmlinuz-1"), b"x").unwrap();
    fs::write(from.path().join("vmlinuz-2"), b"x").unwrap();
    let err = store.import("k", from.path()).unwrap_err();
    assert!(err.to_string().contains("vmlinuz-1, vmlinuz-2"), "{err}");

    let from = tempfile::tempdir().unwrap();
    fs::write(from.path().join("vmlinux"), b"not elf").unwrap();
    let err = store.import("k", from.path()).unwrap_err();
    assert!(matches!(err, KernelError::Vmlinux { .. }), "{err}");
    assert_eq!(
        fs::read_dir(kernels.path()).unwrap().count(),
        0,
        "no staging left"
    );
}

#[test]
fn show_and_remove_report_missing_kernels_and_bad_names() {
    let kernels = tempfile::tempdir().unwrap();
    let store = KernelStore::new(kernels.path().join("none-yet"));
    assert!(store.list().unwrap().is_empty());
    assert!(store.show("k").unwrap_err().is_not_found());
    assert!(store.remove("k").unwrap_err().is_not_found());
    for bad in ["../k", ".staging-x", "K"] {
        assert!(
            matches!(store.show(bad), Err(KernelError::InvalidName { .. })),
            "{bad}"
        );
        assert!(
            matches!(store.remove(bad), Err(KernelError::InvalidName { .. })),
            "{bad}"
        );
    }

    let from = tempfile::tempdir().unwrap();
    fs::write(from.path().join("vmlinux"), fake_vmlinux(4096)).unwrap();
    let store = KernelStore::new(kernels.path());
    store.import("k", from.path()).unwrap();
    // Leftovers of an interrupted run are not kernels.
    fs::create_dir(kernels.path().join(".staging-old")).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    store.remove("k").unwrap();
    assert!(store.show("k").unwrap_err().is_not_found());
    assert!(store.list().unwrap().is_empty());
}

/// Pulls the real default kernel from deb.debian.org. Needs the network;
/// skips (with a message) when the mirror does not answer.
#[test]
fn live_pull_of_the_debian_cloud_kernel() {
    let mirror = DebianMirror::default();
    let fetch = HttpFetch::new();
    if let Err(e) = crate::debian::Archive::new(&mirror, &fetch).probe() {
        eprintln!(
            "skipping the live kernel pull: {} does not answer ({e})",
            mirror.base_url
        );
        return;
    }
    if !mirror.keyring.is_file() {
        eprintln!(
            "skipping the live kernel pull: {} is missing (apt-get install debian-archive-keyring)",
            mirror.keyring.display()
        );
        return;
    }
    let kernels = tempfile::tempdir().unwrap();
    let store = KernelStore::new(kernels.path());
    let agent = tempfile::NamedTempFile::new().unwrap();
    fs::write(agent.path(), b"dummy agent").unwrap();
    let started = Instant::now();
    let manifest = store
        .pull_debian(DEFAULT_KERNEL_NAME, &mirror, agent.path(), &mut |line| {
            eprintln!("[{:>6.1}s] {line}", started.elapsed().as_secs_f64());
        })
        .unwrap();
    eprintln!(
        "live pull took {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        serde_json::to_string(&manifest).unwrap()
    );

    assert_eq!(manifest.distro, "debian");
    assert_eq!(manifest.arch, "amd64");
    assert!(
        manifest.version.ends_with("-cloud-amd64"),
        "{}",
        manifest.version
    );
    assert!(
        manifest
            .source
            .contains(&format!("linux-image-{}", manifest.version))
    );
    let paths = store.paths(DEFAULT_KERNEL_NAME).unwrap();
    let vmlinux = fs::read(&paths.vmlinux).unwrap();
    assert!(vmlinux.starts_with(bzimage::ELF_MAGIC));
    assert_eq!(vmlinux[4], 2, "ELFCLASS64");
    assert_eq!(
        u16::from_le_bytes([vmlinux[18], vmlinux[19]]),
        62,
        "EM_X86_64"
    );
    assert!(manifest.sizes.vmlinux > 20 << 20);

    let entries = initramfs_entries(&paths.initrd);
    assert!(
        entries
            .iter()
            .any(|e| e.0 == "init" && e.4 == b"dummy agent")
    );
    let order = order_names(&entries);
    assert_before(&order, &["virtio", "virtio_mmio"]);
    assert_before(&order, &["virtio_ring", "virtio_blk"]);
    assert_before(&order, &["virtio_ring", "virtio_net"]);
    assert_before(
        &order,
        &[
            "vsock",
            "vmw_vsock_virtio_transport_common",
            "vmw_vsock_virtio_transport",
        ],
    );
    assert_before(&order, &["failover", "net_failover", "virtio_net"]);
    assert_before(&order, &["virtio_pci_modern_dev", "virtio_pci"]);

    // Cross-check .modinfo parsing on a real module.
    let ko = fs::read(paths.modules.join("kernel/drivers/net/virtio_net.ko")).unwrap();
    let info = modinfo::parse_modinfo(&ko).unwrap();
    assert_eq!(info.name.as_deref(), Some("virtio_net"));
    assert!(
        info.depends.iter().any(|d| d == "net_failover"),
        "{:?}",
        info.depends
    );
}
