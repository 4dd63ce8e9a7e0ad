//! Ext4Image against real images made by mkfs.ext4 (no root needed).

use std::path::{Path, PathBuf};

use banger_sys::Cmd;

use super::*;

struct Image {
    _dir: tempfile::TempDir,
    path: PathBuf,
    image: Ext4Image,
}

fn image(mib: u64) -> Image {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rootfs.ext4");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(mib * 1024 * 1024)
        .unwrap();
    Cmd::new("mkfs.ext4")
        .args(["-F", "-q"])
        .arg(&path)
        .run()
        .unwrap();
    let image = Ext4Image::open(&path).unwrap();
    Image {
        _dir: dir,
        path,
        image,
    }
}

/// e2fsck finds nothing to fix: the edits left a consistent filesystem.
fn assert_clean(path: &Path) {
    Cmd::new("e2fsck").args(["-fn"]).arg(path).run().unwrap();
}

fn file(path: &str, content: &[u8], uid: u32, gid: u32, mode: u32) -> Entry {
    Entry::File {
        path: path.into(),
        content: content.to_vec(),
        uid,
        gid,
        mode,
    }
}

fn dir(path: &str, uid: u32, gid: u32, mode: u32) -> Entry {
    Entry::Dir {
        path: path.into(),
        uid,
        gid,
        mode,
    }
}

fn info(img: &Ext4Image, path: &str) -> FileInfo {
    img.stat(path)
        .unwrap()
        .unwrap_or_else(|| panic!("{path} missing"))
}

#[test]
fn a_tree_reads_back_with_content_owner_and_mode() {
    let t = image(32);
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert!(binary.contains(&0));
    t.image
        .write_files(&[
            dir("/home/dev", 1000, 1000, 0o750),
            dir("/home/dev/.ssh", 1000, 1000, 0o700),
            file(
                "/home/dev/.ssh/authorized_keys",
                b"ssh-ed25519 AAAA dev\n",
                1000,
                1000,
                0o600,
            ),
            file("/usr/local/bin/tool", &binary, 0, 0, 0o755),
            file("/usr/local/bin/suid", b"\0\x01\x02\0", 0, 0, 0o4755),
            Entry::Symlink {
                path: "/usr/local/bin/t".into(),
                target: "tool".into(),
            },
        ])
        .unwrap();

    let img = &t.image;
    let home = info(img, "/home/dev");
    assert_eq!(
        (home.kind, home.mode, home.uid, home.gid),
        (FileKind::Directory, 0o040750, 1000, 1000)
    );
    assert_eq!(info(img, "/home/dev/.ssh").mode, 0o040700);
    let keys = info(img, "/home/dev/.ssh/authorized_keys");
    assert_eq!(
        (keys.mode, keys.uid, keys.gid, keys.size),
        (0o100600, 1000, 1000, 21)
    );
    assert_eq!(
        img.read_file("/home/dev/.ssh/authorized_keys").unwrap(),
        b"ssh-ed25519 AAAA dev\n"
    );
    assert_eq!(img.read_file("/usr/local/bin/tool").unwrap(), binary);
    assert_eq!(info(img, "/usr/local/bin/tool").mode, 0o100755);
    let suid = info(img, "/usr/local/bin/suid");
    assert_eq!((suid.mode, suid.permissions()), (0o104755, 0o4755));
    assert_eq!(
        img.read_file("/usr/local/bin/suid").unwrap(),
        b"\0\x01\x02\0"
    );
    let link = info(img, "/usr/local/bin/t");
    assert_eq!((link.kind, link.size), (FileKind::Symlink, 4));
    assert_clean(&t.path);
}

#[test]
fn missing_parents_are_created_root_owned() {
    let t = image(16);
    t.image
        .write_files(&[file("/a/b/c/file", b"x", 1000, 1000, 0o644)])
        .unwrap();
    for d in ["/a", "/a/b", "/a/b/c"] {
        let i = info(&t.image, d);
        assert_eq!(
            (i.kind, i.mode, i.uid, i.gid),
            (FileKind::Directory, 0o040755, 0, 0),
            "{d}"
        );
    }
    assert_eq!(t.image.read_file("/a/b/c/file").unwrap(), b"x");
    assert_clean(&t.path);
}

#[test]
fn overwriting_replaces_files_and_symlinks_and_keeps_directories() {
    let t = image(16);
    let img = &t.image;
    img.write_files(&[
        file(
            "/etc/hostname",
            b"a much longer original hostname\n",
            0,
            0,
            0o644,
        ),
        Entry::Symlink {
            path: "/etc/resolv.conf".into(),
            target: "../run/systemd/resolve/stub-resolv.conf".into(),
        },
        dir("/srv", 0, 0, 0o755),
        file("/srv/keep", b"kept", 0, 0, 0o644),
    ])
    .unwrap();
    img.write_files(&[
        file("/etc/hostname", b"dev\n", 0, 0, 0o600),
        file("/etc/resolv.conf", b"nameserver 10.0.0.1\n", 0, 0, 0o644),
        dir("/srv", 1000, 100, 0o700),
    ])
    .unwrap();
    assert_eq!(img.read_file("/etc/hostname").unwrap(), b"dev\n");
    assert_eq!(info(img, "/etc/hostname").mode, 0o100600);
    assert_eq!(info(img, "/etc/resolv.conf").kind, FileKind::Regular);
    assert_eq!(
        img.read_file("/etc/resolv.conf").unwrap(),
        b"nameserver 10.0.0.1\n"
    );
    let srv = info(img, "/srv");
    assert_eq!((srv.mode, srv.uid, srv.gid), (0o040700, 1000, 100));
    assert_eq!(
        img.read_file("/srv/keep").unwrap(),
        b"kept",
        "a directory entry keeps its content"
    );
    assert_clean(&t.path);
}

#[test]
fn a_directory_is_never_replaced_by_a_file() {
    let t = image(16);
    let err = t
        .image
        .write_files(&[file("/lost+found", b"x", 0, 0, 0o644)])
        .unwrap_err();
    assert!(
        matches!(&err, DiskError::GuestIsADirectory { guest_path, .. } if guest_path == "/lost+found"),
        "{err:?}"
    );
    assert_eq!(info(&t.image, "/lost+found").kind, FileKind::Directory);
}

#[test]
fn bad_paths_are_refused_and_nothing_is_written() {
    let t = image(16);
    for bad in ["../x", "a/b", "/with space", "/a/../b", "/", "/q\"uote"] {
        let err = t
            .image
            .write_files(&[
                file("/good", b"x", 0, 0, 0o644),
                file(bad, b"x", 0, 0, 0o644),
            ])
            .unwrap_err();
        match &err {
            DiskError::GuestPath { path, .. } => assert_eq!(path, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        assert_eq!(
            t.image.stat("/good").unwrap(),
            None,
            "a valid entry of a refused batch was written"
        );
    }
    let err = t
        .image
        .write_files(&[Entry::Symlink {
            path: "/l".into(),
            target: "a b".into(),
        }])
        .unwrap_err();
    assert!(matches!(err, DiskError::SymlinkTarget { .. }), "{err:?}");
    let err = t
        .image
        .write_files(&[file("/m", b"", 0, 0, 0o104755)])
        .unwrap_err();
    assert!(matches!(err, DiskError::InvalidMode { .. }), "{err:?}");
    assert!(t.image.stat("with space").is_err());
}

#[test]
fn a_write_that_does_not_fit_is_an_error_naming_the_path() {
    let t = image(4);
    let big = vec![0x5au8; 8 * 1024 * 1024];
    let err = t
        .image
        .write_files(&[file("/big", &big, 0, 0, 0o644)])
        .unwrap_err();
    match &err {
        DiskError::WriteMismatch {
            guest_path, errors, ..
        } => {
            assert_eq!(guest_path, "/big");
            assert!(!errors.is_empty(), "debugfs's complaint is kept");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("/big"), "{err}");
}

#[test]
fn missing_and_non_regular_files_are_reported() {
    let t = image(16);
    assert_eq!(t.image.stat("/nope").unwrap(), None);
    assert_eq!(t.image.stat("/nope/deeper").unwrap(), None);
    assert!(matches!(
        t.image.read_file("/nope"),
        Err(DiskError::GuestNotFound { .. })
    ));
    assert!(matches!(
        t.image.read_file("/lost+found"),
        Err(DiskError::NotRegularFile {
            found: FileKind::Directory,
            ..
        })
    ));
    t.image
        .write_files(&[file("/f", b"x", 0, 0, 0o644)])
        .unwrap();
    // A path below a regular file cannot exist.
    assert_eq!(t.image.stat("/f/x").unwrap(), None);
    let root = t.image.stat("/").unwrap().unwrap();
    assert_eq!(root.kind, FileKind::Directory);
}

#[test]
fn a_file_that_is_not_ext4_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0xabu8; 8192]).unwrap();
    let short = dir.path().join("short.img");
    std::fs::write(&short, b"tiny").unwrap();
    for p in [&junk, &short] {
        let err = Ext4Image::open(p).unwrap_err();
        assert!(matches!(err, DiskError::NotExt4 { .. }), "{err:?}");
        assert!(err.to_string().contains(p.to_str().unwrap()), "{err}");
    }
    assert!(matches!(
        Ext4Image::open(dir.path()),
        Err(DiskError::NotExt4 { .. })
    ));
    assert!(matches!(
        Ext4Image::open(&dir.path().join("missing")),
        Err(DiskError::Io { .. })
    ));
}

#[test]
fn a_corrupt_image_is_an_error_not_an_empty_answer() {
    let t = image(16);
    // Keep the magic but wreck the rest of the superblock.
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&t.path)
        .unwrap();
    f.write_all_at(&[0xffu8; 56], 1024).unwrap();
    let img = Ext4Image::open(&t.path).unwrap();
    let err = img.stat("/etc").unwrap_err();
    assert!(matches!(err, DiskError::Debugfs { .. }), "{err:?}");
    let err = img
        .write_files(&[file("/x", b"x", 0, 0, 0o644)])
        .unwrap_err();
    assert!(matches!(err, DiskError::Debugfs { .. }), "{err:?}");
}

/// The read-back catches what debugfs does not report, and refuses a
/// batch debugfs complained about even when everything reads back.
#[test]
fn verification_compares_metadata_and_honours_complaints() {
    use super::debugfs::Outcome;
    use super::plan::{Expected, Plan};

    let t = image(16);
    let entries = [file("/f", b"x", 0, 0, 0o644)];
    t.image.write_files(&entries).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let quiet = Outcome {
        argv: "debugfs -w".into(),
        stdout: Vec::new(),
        errors: Vec::new(),
    };
    let expect = |path: &str, perm: u32| Plan {
        expected: vec![Expected {
            path: path.into(),
            kind: FileKind::Regular,
            perm,
            uid: 0,
            gid: 0,
            size: Some(1),
            content_of: Some(0),
        }],
        ..Plan::default()
    };
    let check = |plan: &Plan, applied: &Outcome| {
        verify::verify(&t.image, plan, &entries, applied, scratch.path())
    };

    check(&expect("/f", 0o644), &quiet).unwrap();
    match check(&expect("/f", 0o600), &quiet).unwrap_err() {
        DiskError::WriteMismatch {
            guest_path,
            expected,
            found,
            ..
        } => {
            assert_eq!(guest_path, "/f");
            assert!(
                expected.contains("mode 0600") && found.contains("mode 0644"),
                "{expected} / {found}"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut other_owner = expect("/f", 0o644);
    other_owner.expected[0].gid = 1000;
    assert!(matches!(
        check(&other_owner, &quiet),
        Err(DiskError::WriteMismatch { .. })
    ));
    other_owner.expected[0].gid = 0;
    other_owner.expected[0].uid = 1000;
    assert!(matches!(
        check(&other_owner, &quiet),
        Err(DiskError::WriteMismatch { .. })
    ));
    match check(&expect("/missing", 0o644), &quiet).unwrap_err() {
        DiskError::WriteMismatch {
            guest_path, found, ..
        } => assert_eq!(
            (guest_path.as_str(), found.as_str()),
            ("/missing", "nothing")
        ),
        other => panic!("{other:?}"),
    }
    let complained = Outcome {
        errors: vec!["sif: Invalid mode".into()],
        ..quiet
    };
    let err = check(&expect("/f", 0o644), &complained).unwrap_err();
    assert!(
        matches!(&err, DiskError::Debugfs { errors, .. } if errors == "sif: Invalid mode"),
        "{err:?}"
    );
}
