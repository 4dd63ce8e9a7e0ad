//! The real build: mmdebstrap against a Debian mirror. Needs root, the
//! network and mmdebstrap (`apt-get install mmdebstrap`); skipped with a
//! message otherwise. Takes about a minute and downloads ~60 MB.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use banger_sys::Cmd;

use super::guest_files::{AGENT_PATH, SSHD_DROPIN_PATH};
use super::recipe::{DEFAULT_MIRROR, MINIMAL_IMAGE};
use super::*;
use crate::ext4::{Ext4Image, FileKind};

/// mmdebstrap, counting its runs.
struct Counting {
    inner: Mmdebstrap,
    runs: AtomicUsize,
}

impl Bootstrap for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn bootstrap(
        &self,
        recipe: &Recipe,
        dest: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), ImageError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.bootstrap(recipe, dest, progress)
    }
}

fn mirror_reachable() -> bool {
    let host = DEFAULT_MIRROR
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    let Ok(mut addrs) = (host, 80).to_socket_addrs() else {
        return false;
    };
    addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok())
}

fn skip_reason() -> Option<&'static str> {
    if !banger_sys::os::is_root() {
        return Some("needs root (mmdebstrap's root mode)");
    }
    if banger_sys::find_program("mmdebstrap").is_none() {
        return Some("mmdebstrap is not installed (apt-get install mmdebstrap)");
    }
    if !mirror_reachable() {
        return Some("the Debian mirror deb.debian.org is unreachable");
    }
    None
}

#[test]
fn the_minimal_image_builds_for_real_and_a_rebuild_is_skipped() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    // A stand-in for the static agent: only its bytes matter here.
    let agent = dir.path().join("banger-agent");
    std::fs::write(&agent, b"#!/bin/sh\nexec sleep infinity\n").unwrap();
    let recipe = Recipe::for_name(MINIMAL_IMAGE).unwrap();
    let bootstrap = Counting {
        inner: Mmdebstrap::default(),
        runs: AtomicUsize::new(0),
    };
    let mut log = |line: &str| eprintln!("build: {line}");

    let cold = build_image_with(
        &store,
        &recipe,
        &agent,
        &BuildOptions::default(),
        &bootstrap,
        mise::MiseSource {
            resolver: &mise::NpmView::default(),
            fetch: &crate::debian::HttpFetch::new(),
        },
        &mut log,
    )
    .unwrap();
    assert!(cold.built);
    let m = &cold.manifest;
    let image = Ext4Image::open(&m.rootfs).unwrap();

    let usr_bin = image.stat("/usr/bin").unwrap().unwrap();
    assert_eq!(
        (usr_bin.kind, usr_bin.uid, usr_bin.gid),
        (FileKind::Directory, 0, 0)
    );
    let sshd = image
        .stat("/usr/sbin/sshd")
        .unwrap()
        .expect("openssh-server is installed");
    assert_eq!(sshd.uid, 0);
    let agent_info = image
        .stat(AGENT_PATH)
        .unwrap()
        .expect("the agent is installed");
    assert_eq!(
        (agent_info.kind, agent_info.permissions()),
        (FileKind::Regular, 0o755)
    );
    assert!(
        image
            .read_file(SSHD_DROPIN_PATH)
            .unwrap()
            .starts_with(b"# Written by banger")
    );
    let listing = Cmd::new("debugfs")
        .args(["-R", "ls /etc/ssh"])
        .arg(&m.rootfs)
        .run()
        .unwrap()
        .stdout_str();
    assert!(listing.contains("sshd_config"), "{listing}");
    assert!(!listing.contains("ssh_host_"), "host keys left: {listing}");
    let root = image.stat("/root").unwrap().unwrap();
    assert_eq!(
        (root.kind, root.uid, root.permissions()),
        (FileKind::Directory, 0, 0o700)
    );
    let seed = store.root_seed(MINIMAL_IMAGE).unwrap().unwrap();
    assert!(seed.join(".bashrc").is_file());
    // No systemd in the minimal variant: the agent is init.
    assert_eq!(image.stat("/lib/systemd/systemd").unwrap(), None);

    let warm = build_image_with(
        &store,
        &recipe,
        &agent,
        &BuildOptions::default(),
        &bootstrap,
        mise::MiseSource {
            resolver: &mise::NpmView::default(),
            fetch: &crate::debian::HttpFetch::new(),
        },
        &mut log,
    )
    .unwrap();
    assert!(!warm.built);
    assert_eq!(
        bootstrap.runs.load(Ordering::SeqCst),
        1,
        "the rebuild ran mmdebstrap"
    );
    assert_eq!(&warm.manifest, m);

    let allocated = m.rootfs.metadata().unwrap().blocks() * 512;
    eprintln!(
        "minimal image: cold build {:.1} s, warm (up to date) {:.3} s, rootfs {} MiB apparent, {} MiB allocated",
        cold.duration.as_secs_f64(),
        warm.duration.as_secs_f64(),
        m.size_bytes / (1024 * 1024),
        allocated / (1024 * 1024)
    );
    assert!(
        warm.duration < Duration::from_secs(5),
        "{:?}",
        warm.duration
    );
}

/// The default (full) image: systemd, Docker, build tools. Several minutes
/// and ~400 MB of downloads, so only on request:
/// `cargo test -p banger-image full_image_builds -- --ignored`.
#[test]
#[ignore = "several minutes and ~400 MB of downloads; run with --ignored"]
fn the_full_image_builds_for_real() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    let agent = dir.path().join("banger-agent");
    std::fs::write(&agent, b"#!/bin/sh\nexec sleep infinity\n").unwrap();
    let recipe = Recipe::for_name(super::recipe::DEFAULT_IMAGE).unwrap();
    let outcome = build_image(
        &store,
        &recipe,
        &agent,
        &BuildOptions::default(),
        &mut |line| eprintln!("build: {line}"),
    )
    .unwrap();
    let m = &outcome.manifest;
    let image = Ext4Image::open(&m.rootfs).unwrap();
    for path in [
        "/lib/systemd/systemd",
        "/usr/sbin/dockerd",
        "/usr/bin/gcc",
        "/usr/sbin/sshd",
    ] {
        let info = image.stat(path).unwrap();
        assert!(info.is_some(), "{path} missing");
    }
    // systemd-sysv's init, which the full variant boots.
    let init = image
        .stat("/usr/sbin/init")
        .unwrap()
        .expect("/usr/sbin/init");
    assert_eq!(init.kind, FileKind::Symlink);
    let link = image
        .stat("/etc/systemd/system/multi-user.target.wants/banger-agent.service")
        .unwrap()
        .unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    let mise = image.stat(mise::MISE_PATH).unwrap().expect("mise");
    assert_eq!((mise.kind, mise.permissions()), (FileKind::Regular, 0o755));
    let listing = Cmd::new("debugfs")
        .args(["-R", "ls /etc/ssh"])
        .arg(&m.rootfs)
        .run()
        .unwrap()
        .stdout_str();
    assert!(!listing.contains("ssh_host_"), "host keys left: {listing}");
    let allocated = m.rootfs.metadata().unwrap().blocks() * 512;
    eprintln!(
        "full image: build {:.1} s, rootfs {} MiB apparent, {} MiB allocated",
        outcome.duration.as_secs_f64(),
        m.size_bytes / (1024 * 1024),
        allocated / (1024 * 1024)
    );
}
