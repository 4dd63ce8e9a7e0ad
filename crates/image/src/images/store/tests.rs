use std::os::unix::fs::{MetadataExt, PermissionsExt};

use banger_sys::Cmd;

use super::*;

/// A small ext4 image file with one file in it, the way a user would
/// register one.
fn make_ext4(path: &Path, mib: u64) {
    let seed = tempfile::tempdir().unwrap();
    std::fs::write(seed.path().join("hello"), b"from the registered image").unwrap();
    let f = File::create(path).unwrap();
    f.set_len(mib * 1024 * 1024).unwrap();
    drop(f);
    Cmd::new("mkfs.ext4")
        .args(["-F", "-q", "-d"])
        .arg(seed.path())
        .arg(path)
        .run()
        .unwrap();
}

/// Everything in `images_dir` except the lock directory.
fn entries(dir: &Path) -> Vec<String> {
    let mut names = crate::test_support::dir_names(dir);
    names.retain(|n| n != lock::LOCKS_DIR);
    names
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: ImageStore,
    /// Outside the store, like a user's file.
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    let outside = dir.path().join("user");
    std::fs::create_dir(&outside).unwrap();
    Fixture {
        _dir: dir,
        store,
        outside,
    }
}

#[test]
fn an_empty_or_missing_store_lists_nothing() {
    let f = fixture();
    assert!(f.store.list().unwrap().is_empty());
    let err = f.store.show("debian-bookworm").unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("banger image build"), "{err}");
    assert!(matches!(
        f.store.show("../etc"),
        Err(ImageError::InvalidName { .. })
    ));
}

#[test]
fn register_records_the_file_without_copying_it() {
    let f = fixture();
    let rootfs = f.outside.join("my.ext4");
    make_ext4(&rootfs, 8);
    let before = std::fs::read(&rootfs).unwrap();

    // A relative path with `..` is stored canonical.
    let roundabout = f.outside.join("../user/my.ext4");
    let m = f
        .store
        .register("mine", &roundabout, Some("debian-cloud"))
        .unwrap();
    assert_eq!(m.kind, ImageKind::Unmanaged);
    assert_eq!(m.rootfs, rootfs.canonicalize().unwrap());
    assert_eq!(m.kernel_ref.as_deref(), Some("debian-cloud"));
    assert_eq!(m.size_bytes, 8 * 1024 * 1024);
    assert_eq!(m.arch, std::env::consts::ARCH);
    assert!(m.recipe_hash.is_none());

    assert_eq!(f.store.show("mine").unwrap(), m);
    assert_eq!(f.store.list().unwrap(), vec![m]);
    let dir = f.store.image_dir(&ImageName::new("mine").unwrap());
    assert!(!dir.join(ROOTFS_FILE).exists(), "register must not copy");
    assert_eq!(std::fs::read(&rootfs).unwrap(), before);
    assert_eq!(f.store.root_seed("mine").unwrap(), None);
    assert_eq!(entries(f.store.dir()), ["mine"], "staging left behind");
}

#[test]
fn register_refuses_what_is_not_an_ext4_file() {
    let f = fixture();
    let err = f.store.register("x", &f.outside, None).unwrap_err();
    assert!(matches!(err, ImageError::NotRegularFile { .. }), "{err:?}");

    let junk = f.outside.join("junk.img");
    std::fs::write(&junk, vec![0x11u8; 4096]).unwrap();
    let err = f.store.register("x", &junk, None).unwrap_err();
    assert!(matches!(err, ImageError::NotExt4 { .. }), "{err:?}");

    let short = f.outside.join("short.img");
    std::fs::write(&short, b"tiny").unwrap();
    let err = f.store.register("x", &short, None).unwrap_err();
    assert!(matches!(err, ImageError::NotExt4 { .. }), "{err:?}");

    let err = f
        .store
        .register("x", &f.outside.join("missing"), None)
        .unwrap_err();
    assert!(err.to_string().contains("find the rootfs"), "{err}");

    let good = f.outside.join("good.ext4");
    make_ext4(&good, 8);
    let err = f.store.register("x", &good, Some("Bad/Ref")).unwrap_err();
    assert!(
        matches!(err, ImageError::InvalidKernelRef { .. }),
        "{err:?}"
    );
    let err = f.store.register("X", &good, None).unwrap_err();
    assert!(matches!(err, ImageError::InvalidName { .. }), "{err:?}");

    assert!(f.store.list().unwrap().is_empty());
}

#[test]
fn a_name_is_registered_once() {
    let f = fixture();
    let rootfs = f.outside.join("a.ext4");
    make_ext4(&rootfs, 8);
    let first = f.store.register("dup", &rootfs, None).unwrap();
    let err = f.store.register("dup", &rootfs, Some("k")).unwrap_err();
    assert!(matches!(err, ImageError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(f.store.show("dup").unwrap(), first);
}

#[test]
fn deleting_an_unmanaged_image_keeps_the_users_file() {
    let f = fixture();
    let rootfs = f.outside.join("a.ext4");
    make_ext4(&rootfs, 8);
    let m = f.store.register("gone", &rootfs, None).unwrap();
    assert_eq!(f.store.delete("gone").unwrap(), m);
    assert!(rootfs.exists());
    assert!(entries(f.store.dir()).is_empty());
    assert!(f.store.delete("gone").unwrap_err().is_not_found());
}

#[test]
fn promote_copies_sparse_read_only_and_makes_the_image_managed() {
    let f = fixture();
    let rootfs = f.outside.join("big.ext4");
    make_ext4(&rootfs, 256);
    let registered = f.store.register("promo", &rootfs, Some("k1")).unwrap();

    let m = f.store.promote("promo").unwrap();
    let dir = f.store.image_dir(&m.name);
    let copy = dir.join(ROOTFS_FILE);
    assert_eq!(m.kind, ImageKind::Managed);
    assert_eq!(m.rootfs, copy);
    assert_eq!(m.kernel_ref.as_deref(), Some("k1"));
    assert_eq!(m.size_bytes, registered.size_bytes);
    assert!(m.source.contains(rootfs.to_str().unwrap()), "{}", m.source);
    assert_eq!(f.store.show("promo").unwrap(), m);

    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&rootfs).unwrap()
    );
    let meta = copy.metadata().unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o444);
    assert!(
        meta.blocks() * 512 < 64 * 1024 * 1024,
        "a 256 MiB mostly empty image allocated {} bytes: not sparse",
        meta.blocks() * 512
    );
    assert!(rootfs.exists(), "the registered file must stay");

    let err = f.store.promote("promo").unwrap_err();
    assert!(matches!(err, ImageError::AlreadyManaged { .. }), "{err:?}");

    f.store.delete("promo").unwrap();
    assert!(!dir.exists());
    assert!(entries(f.store.dir()).is_empty());
}

#[test]
fn a_failed_promote_leaves_the_unmanaged_image_as_it_was() {
    let f = fixture();
    let rootfs = f.outside.join("a.ext4");
    make_ext4(&rootfs, 8);
    let registered = f.store.register("img", &rootfs, None).unwrap();
    std::fs::remove_file(&rootfs).unwrap();

    let err = f.store.promote("img").unwrap_err();
    assert!(err.to_string().contains("open the rootfs"), "{err}");
    assert_eq!(f.store.show("img").unwrap(), registered);
    assert_eq!(entries(f.store.dir()), ["img"], "staging left behind");
    assert!(f.store.promote("missing").unwrap_err().is_not_found());
}

#[test]
fn list_skips_what_is_not_an_image_and_show_says_what_is_broken() {
    let f = fixture();
    let rootfs = f.outside.join("a.ext4");
    make_ext4(&rootfs, 8);
    f.store.register("good", &rootfs, None).unwrap();
    let images = f.store.dir();
    std::fs::create_dir(images.join(".staging-other@abc")).unwrap();
    std::fs::create_dir(images.join("no-manifest")).unwrap();
    std::fs::create_dir(images.join("Not-A-Name")).unwrap();
    std::fs::write(images.join("stray-file"), b"").unwrap();
    std::fs::create_dir(images.join("broken")).unwrap();
    std::fs::write(images.join("broken").join(MANIFEST_FILE), b"{nope").unwrap();

    let names: Vec<String> = f
        .store
        .list()
        .unwrap()
        .into_iter()
        .map(|m| m.name.to_string())
        .collect();
    assert_eq!(names, ["good"]);
    let err = f.store.show("broken").unwrap_err();
    assert!(matches!(err, ImageError::BadManifest { .. }), "{err:?}");
    let err = f.store.show("no-manifest").unwrap_err();
    assert!(err.to_string().contains("it is missing"), "{err}");
}

#[test]
fn a_managed_images_rootfs_is_always_the_file_in_its_directory() {
    let f = fixture();
    let dir = f.store.dir().join("bundle");
    std::fs::create_dir_all(&dir).unwrap();
    // As a downloaded bundle might claim.
    std::fs::write(
        dir.join(MANIFEST_FILE),
        r#"{"name":"bundle","distro":"debian-bookworm","arch":"x86_64","kind":"managed",
            "rootfs":"/etc/shadow","kernel_ref":null,"size_bytes":1,"recipe_hash":null,
            "source":"catalog","created_at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    assert_eq!(
        f.store.show("bundle").unwrap().rootfs,
        dir.join(ROOTFS_FILE)
    );
}
