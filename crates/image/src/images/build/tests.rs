//! The build with a synthetic bootstrap: everything but mmdebstrap itself.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use banger_api::model::ByteSize;

use super::guest_files::{AGENT_PATH, GUEST_INIT, SSHD_DROPIN_PATH};
use super::mise::testing::{self as mise_testing, FixedUrl, Served};
use super::mise::{MISE_PATH, MiseError, MiseSource, NpmView};
use super::recipe::{DEFAULT_IMAGE, MINIMAL_IMAGE};
use super::*;
use crate::ext4::{Ext4Image, FileKind};
use crate::images::lock::LOCKS_DIR;
use crate::images::store::STAGING_PREFIX;

/// Writes a tiny Debian-shaped tree; counts its calls.
#[derive(Default)]
struct FakeBootstrap {
    calls: AtomicUsize,
    /// Held inside the bootstrap, so concurrent builds overlap.
    delay: Duration,
    /// Fail after writing part of the tree.
    fail: bool,
    /// Extra bytes of content, to make the tree large.
    ballast: usize,
    /// Say it cannot run (as mmdebstrap does when not root).
    not_ready: bool,
}

impl Bootstrap for FakeBootstrap {
    fn name(&self) -> &str {
        "fake"
    }

    fn check_ready(&self) -> Result<(), ImageError> {
        if self.not_ready {
            return Err(ImageError::NeedsRoot);
        }
        Ok(())
    }

    fn bootstrap(
        &self,
        _recipe: &Recipe,
        dest: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), ImageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        progress("fake bootstrap");
        std::thread::sleep(self.delay);
        let w = |p: &str, content: &[u8]| {
            let path = dest.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        };
        w("usr/bin/true", b"#!/bin/sh\n");
        if self.fail {
            return Err(ImageError::BadTree {
                path: dest.to_owned(),
                what: "rest of the tree (fake failure)",
            });
        }
        std::os::unix::fs::symlink("usr/sbin", dest.join("sbin")).unwrap();
        std::fs::create_dir_all(dest.join("usr/sbin")).unwrap();
        w(
            "etc/ssh/sshd_config",
            b"Include /etc/ssh/sshd_config.d/*.conf\n",
        );
        w("etc/ssh/ssh_host_ed25519_key", b"private");
        w("etc/ssh/ssh_host_rsa_key.pub", b"public");
        w("etc/fstab", b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n");
        w("etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
        w("root/.bashrc", b"PS1='guest# '\n");
        w("root/.profile", b". ~/.bashrc\n");
        if self.ballast > 0 {
            w("var/ballast", &vec![0x5a; self.ballast]);
        }
        Ok(())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: ImageStore,
    agent: PathBuf,
    /// mise's stand-in package, served at the fake resolver's URL.
    mise_tgz: Vec<u8>,
    served: Served,
    resolver: FixedUrl,
    cache_dir: Option<PathBuf>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    let agent = dir.path().join("banger-agent");
    std::fs::write(&agent, b"\x7fELF agent v1").unwrap();
    let mise_tgz = mise_testing::package(b"\x7fELF mise");
    let cache_dir = Some(dir.path().join("cache"));
    Fixture {
        dir,
        store,
        agent,
        served: Served::new(mise_tgz.clone()),
        mise_tgz,
        resolver: FixedUrl::default(),
        cache_dir,
    }
}

impl Fixture {
    fn build(
        &self,
        recipe: &Recipe,
        bootstrap: &FakeBootstrap,
        force: bool,
    ) -> Result<(BuildOutcome, Vec<String>), ImageError> {
        let mut lines = Vec::new();
        let opts = BuildOptions {
            force,
            kernel_ref: Some("debian-cloud".into()),
            cache_dir: self.cache_dir.clone(),
        };
        let outcome = build_image_with(
            &self.store,
            recipe,
            &self.agent,
            &opts,
            bootstrap,
            mise_testing::source(&self.served, &self.resolver),
            &mut |l: &str| lines.push(l.to_owned()),
        )?;
        Ok((outcome, lines))
    }

    /// Entries of the images directory other than locks and images.
    fn leftovers(&self) -> Vec<String> {
        crate::test_support::dir_names(self.store.dir())
            .into_iter()
            .filter(|n| n.starts_with(STAGING_PREFIX) || (n.starts_with('.') && n != LOCKS_DIR))
            .collect()
    }
}

fn minimal() -> Recipe {
    Recipe::for_name(MINIMAL_IMAGE).unwrap()
}

impl Fixture {
    /// The default recipe with mise pinned to the fixture's stand-in.
    fn full(&self) -> Recipe {
        let mut recipe = Recipe::for_name(DEFAULT_IMAGE).unwrap();
        recipe.mise = Some(mise_testing::pin_for(&self.mise_tgz));
        recipe
    }
}

#[test]
fn a_minimal_build_has_the_agent_sshd_settings_and_no_host_keys() {
    let f = fixture();
    let fake = FakeBootstrap::default();
    let (outcome, lines) = f.build(&minimal(), &fake, false).unwrap();
    assert!(outcome.built);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("writing rootfs.ext4 (1024 MiB")),
        "{lines:?}"
    );

    let m = &outcome.manifest;
    assert_eq!(m, &f.store.show(MINIMAL_IMAGE).unwrap());
    assert_eq!(m.kind, ImageKind::Managed);
    assert_eq!(m.init.as_deref(), Some(GUEST_INIT));
    assert_eq!(m.kernel_ref.as_deref(), Some("debian-cloud"));
    assert_eq!(m.distro.as_deref(), Some("debian-bookworm"));
    assert_eq!(m.packages, minimal().package_set());
    assert_eq!(
        m.recipe_hash.as_deref(),
        Some(minimal().recipe_hash(&f.agent).unwrap().as_str())
    );
    assert_eq!(m.size_bytes, 1024 * 1024 * 1024);

    let dir = f.store.image_dir(&m.name);
    assert_eq!(m.rootfs, dir.join(ROOTFS_FILE));
    let meta = m.rootfs.metadata().unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o444);
    assert_eq!(meta.len(), m.size_bytes);
    assert!(meta.blocks() * 512 < 128 * 1024 * 1024, "rootfs not sparse");
    assert!(!dir.join(TREE_DIR).exists(), "the tree was committed");
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());

    let image = Ext4Image::open(&m.rootfs).unwrap();
    assert_eq!(image.read_file(AGENT_PATH).unwrap(), b"\x7fELF agent v1");
    assert_eq!(
        image.stat(AGENT_PATH).unwrap().unwrap().permissions(),
        0o755
    );
    let dropin = String::from_utf8(image.read_file(SSHD_DROPIN_PATH).unwrap()).unwrap();
    assert!(
        dropin.contains("PermitRootLogin prohibit-password"),
        "{dropin}"
    );
    for key in [
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_rsa_key.pub",
    ] {
        assert_eq!(image.stat(key).unwrap(), None, "{key} left in the image");
    }
    assert!(image.stat("/etc/ssh/sshd_config").unwrap().is_some());
    assert_eq!(image.read_file("/etc/machine-id").unwrap(), b"");
    // Minimal images get no units and keep their fstab.
    assert_eq!(
        image
            .stat("/etc/systemd/system/banger-agent.service")
            .unwrap(),
        None
    );
    assert!(
        image
            .read_file("/etc/fstab")
            .unwrap()
            .starts_with(b"# UNCONFIGURED")
    );
    let sbin = image.stat("/sbin").unwrap().unwrap();
    assert_eq!(sbin.kind, FileKind::Symlink);

    // /root moved to the seed, an empty private mountpoint left behind.
    let root = image.stat("/root").unwrap().unwrap();
    assert_eq!(
        (root.kind, root.permissions()),
        (FileKind::Directory, 0o700)
    );
    assert_eq!(image.stat("/root/.bashrc").unwrap(), None);
    let seed = f.store.root_seed(MINIMAL_IMAGE).unwrap().unwrap();
    assert_eq!(seed, dir.join(ROOT_SEED_DIR));
    assert_eq!(
        std::fs::read(seed.join(".bashrc")).unwrap(),
        b"PS1='guest# '\n"
    );
    assert_eq!(seed.metadata().unwrap().permissions().mode() & 0o777, 0o755);
}

#[test]
fn a_full_build_enables_the_units_and_leaves_the_mounts_to_the_initramfs() {
    let f = fixture();
    let (outcome, _) = f
        .build(&f.full(), &FakeBootstrap::default(), false)
        .unwrap();
    assert_eq!(outcome.manifest.init, None);
    assert!(
        outcome
            .manifest
            .source
            .ends_with(", mise 9.9.9 from npm @test/mise"),
        "{}",
        outcome.manifest.source
    );
    let image = Ext4Image::open(&outcome.manifest.rootfs).unwrap();
    assert_eq!(image.read_file(MISE_PATH).unwrap(), b"\x7fELF mise");
    assert_eq!(image.stat(MISE_PATH).unwrap().unwrap().permissions(), 0o755);
    let unit = String::from_utf8(
        image
            .read_file("/etc/systemd/system/banger-network.service")
            .unwrap(),
    )
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/banger-agent network"),
        "{unit}"
    );
    for link in [
        "/etc/systemd/system/multi-user.target.wants/banger-agent.service",
        "/etc/systemd/system/multi-user.target.wants/banger-network.service",
        "/etc/systemd/system/network-online.target.wants/banger-network.service",
    ] {
        let info = image
            .stat(link)
            .unwrap()
            .unwrap_or_else(|| panic!("{link} missing"));
        assert_eq!(info.kind, FileKind::Symlink, "{link}");
    }
    let fstab = String::from_utf8(image.read_file("/etc/fstab").unwrap()).unwrap();
    assert!(fstab.lines().all(|l| l.starts_with('#')), "{fstab}");
}

#[test]
fn an_unchanged_recipe_is_not_rebuilt_unless_forced_or_an_input_changed() {
    let f = fixture();
    let fake = FakeBootstrap::default();
    let recipe = minimal();
    let (first, _) = f.build(&recipe, &fake, false).unwrap();

    let (again, lines) = f.build(&recipe, &fake, false).unwrap();
    assert!(!again.built);
    assert_eq!(again.manifest, first.manifest);
    assert!(lines.iter().any(|l| l.contains("up to date")), "{lines:?}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);

    let (forced, _) = f.build(&recipe, &fake, true).unwrap();
    assert!(forced.built);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);

    std::fs::write(&f.agent, b"\x7fELF agent v2").unwrap();
    let (new_agent, _) = f.build(&recipe, &fake, false).unwrap();
    assert!(new_agent.built);
    assert_ne!(new_agent.manifest.recipe_hash, first.manifest.recipe_hash);
    let image = Ext4Image::open(&new_agent.manifest.rootfs).unwrap();
    assert_eq!(image.read_file(AGENT_PATH).unwrap(), b"\x7fELF agent v2");

    let mut more = recipe.clone();
    more.packages.push("tmux".into());
    assert!(f.build(&more, &fake, false).unwrap().0.built);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 4);
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn a_failed_rebuild_leaves_the_old_image_intact_and_nothing_behind() {
    let f = fixture();
    let (old, _) = f
        .build(&minimal(), &FakeBootstrap::default(), false)
        .unwrap();
    let old_bytes = std::fs::read(&old.manifest.rootfs).unwrap();

    // The bootstrap fails after writing part of the tree.
    let failing = FakeBootstrap {
        fail: true,
        ..FakeBootstrap::default()
    };
    let err = f.build(&minimal(), &failing, true).unwrap_err();
    assert!(err.to_string().contains("fake failure"), "{err}");
    assert_eq!(f.store.show(MINIMAL_IMAGE).unwrap(), old.manifest);
    assert_eq!(std::fs::read(&old.manifest.rootfs).unwrap(), old_bytes);
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());

    // The tree is made, the filesystem would not fit.
    let mut small = minimal();
    small.size = ByteSize::from_mib(2);
    let big = FakeBootstrap {
        ballast: 3 * 1024 * 1024,
        ..FakeBootstrap::default()
    };
    let err = f.build(&small, &big, true).unwrap_err();
    assert!(
        matches!(err, ImageError::TooSmall { size_mib: 2, .. }),
        "{err:?}"
    );
    assert_eq!(f.store.show(MINIMAL_IMAGE).unwrap(), old.manifest);
    assert_eq!(std::fs::read(&old.manifest.rootfs).unwrap(), old_bytes);
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn concurrent_builds_of_one_image_coalesce_into_one() {
    let f = Arc::new(fixture());
    let fake = Arc::new(FakeBootstrap {
        delay: Duration::from_millis(500),
        ..FakeBootstrap::default()
    });
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (f, fake, start) = (f.clone(), fake.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                f.build(&minimal(), &fake, false).unwrap()
            })
        })
        .collect();
    let results: Vec<(BuildOutcome, Vec<String>)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();

    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        1,
        "both threads bootstrapped"
    );
    let built: Vec<bool> = results.iter().map(|(o, _)| o.built).collect();
    assert!(built.contains(&true) && built.contains(&false), "{built:?}");
    let (waiter, lines) = results.iter().find(|(o, _)| !o.built).unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("waiting for another build")),
        "{lines:?}"
    );
    let (builder, _) = results.iter().find(|(o, _)| o.built).unwrap();
    assert_eq!(waiter.manifest, builder.manifest);
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn bad_inputs_are_refused_before_anything_is_made() {
    let f = fixture();
    let fake = FakeBootstrap::default();
    let run = |recipe: &Recipe, agent: &Path, kernel: Option<&str>| {
        build_image_with(
            &f.store,
            recipe,
            agent,
            &BuildOptions {
                force: false,
                kernel_ref: kernel.map(str::to_owned),
                cache_dir: None,
            },
            &fake,
            mise_testing::source(&f.served, &f.resolver),
            &mut |_: &str| {},
        )
        .unwrap_err()
    };
    let err = run(&minimal(), &f.dir.path().join("missing-agent"), None);
    assert!(matches!(err, ImageError::AgentNotFile { .. }), "{err:?}");
    let err = run(&minimal(), f.dir.path(), None);
    assert!(matches!(err, ImageError::AgentNotFile { .. }), "{err:?}");
    let err = run(&minimal(), &f.agent, Some("../k"));
    assert!(
        matches!(err, ImageError::InvalidKernelRef { .. }),
        "{err:?}"
    );
    let mut bad = minimal();
    bad.packages.push("a,b".into());
    let err = run(&bad, &f.agent, None);
    assert!(matches!(err, ImageError::InvalidRecipe { .. }), "{err:?}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    assert!(!f.store.dir().exists(), "the store was touched");
}

#[test]
fn mise_is_fetched_once_then_taken_from_the_cache_and_never_for_minimal() {
    let f = fixture();
    let fake = FakeBootstrap::default();
    f.build(&minimal(), &fake, false).unwrap();
    assert_eq!((f.served.opens(), f.resolver.calls()), (0, 0));
    assert!(!f.dir.path().join("cache").exists());

    let (_, lines) = f.build(&f.full(), &fake, false).unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("downloading mise 9.9.9")),
        "{lines:?}"
    );
    let (rebuilt, lines) = f.build(&f.full(), &fake, true).unwrap();
    assert!(rebuilt.built);
    assert!(lines.iter().any(|l| l.contains("is cached")), "{lines:?}");
    assert_eq!((f.served.opens(), f.resolver.calls()), (1, 1));
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}

#[test]
fn without_a_cache_dir_the_download_stays_out_of_the_image() {
    let f = Fixture {
        cache_dir: None,
        ..fixture()
    };
    let (outcome, _) = f
        .build(&f.full(), &FakeBootstrap::default(), false)
        .unwrap();
    let dir = f.store.image_dir(&outcome.manifest.name);
    assert_eq!(
        crate::test_support::dir_names(&dir),
        [MANIFEST_FILE, ROOT_SEED_DIR, ROOTFS_FILE]
    );
    let image = Ext4Image::open(&outcome.manifest.rootfs).unwrap();
    assert!(image.stat(MISE_PATH).unwrap().is_some());
}

#[test]
fn a_refused_mise_download_fails_the_build_before_the_bootstrap() {
    let f = fixture();
    *f.served.bytes.lock().unwrap() = mise_testing::package(b"\x7fELF tampered");
    let fake = FakeBootstrap::default();
    let err = f.build(&f.full(), &fake, false).unwrap_err();
    assert!(
        matches!(&err, ImageError::Mise(e) if matches!(**e, MiseError::NotPinned { .. })),
        "{err:?}"
    );
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0, "bootstrapped anyway");
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
    assert_eq!(
        std::fs::read_dir(f.dir.path().join("cache"))
            .unwrap()
            .count(),
        0,
        "an unverified download was kept"
    );
    assert!(f.store.show(DEFAULT_IMAGE).unwrap_err().is_not_found());
}

#[test]
fn a_missing_npm_or_an_unready_bootstrap_fails_before_any_download_or_bootstrap() {
    let f = fixture();
    let fake = FakeBootstrap::default();
    let no_npm = NpmView {
        program: f.dir.path().join("no-npm"),
    };
    let err = build_image_with(
        &f.store,
        &f.full(),
        &f.agent,
        &BuildOptions::default(),
        &fake,
        MiseSource {
            resolver: &no_npm,
            fetch: &f.served,
        },
        &mut |_: &str| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("apt-get install npm"), "{err}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());

    let unready = FakeBootstrap {
        not_ready: true,
        ..FakeBootstrap::default()
    };
    let err = f.build(&f.full(), &unready, false).unwrap_err();
    assert!(matches!(err, ImageError::NeedsRoot), "{err:?}");
    assert_eq!((f.served.opens(), f.resolver.calls()), (0, 0));
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}
