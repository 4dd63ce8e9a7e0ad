//! The archive client end to end against a signed fixture mirror: index,
//! resolve, download, extract, and the tampering each step must catch.

use super::deb::build::{Comp, deb, tar};
use super::fixture::FixtureMirror;
use super::*;

fn mirror_with_kernel() -> FixtureMirror {
    let mut m = FixtureMirror::new(&["test", "test-updates"]);
    let old = deb(&tar(&[("./boot/vmlinuz-1", b"old")]), Comp::Xz);
    let new = deb(&tar(&[("./boot/vmlinuz-2", b"new")]), Comp::Xz);
    m.add_deb("test", "linux-image-1-cloud-amd64", "1.0-1", "kmod", &old);
    m.add_deb(
        "test-updates",
        "linux-image-2-cloud-amd64",
        "2.0-1",
        "kmod",
        &new,
    );
    m.add_deb(
        "test",
        "linux-image-cloud-amd64",
        "1.0-1",
        "linux-image-1-cloud-amd64 (= 1.0-1)",
        b"meta",
    );
    m.add_deb(
        "test-updates",
        "linux-image-cloud-amd64",
        "2.0-1",
        "linux-image-2-cloud-amd64 (= 2.0-1)",
        b"meta",
    );
    m.publish();
    m
}

fn load(m: &FixtureMirror) -> Result<PackageIndex, DebianError> {
    let work = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let index = Archive::new(&m.mirror, &m.fetch).index(
        work.path(),
        &|n| n.starts_with("linux-image-"),
        &mut |l| lines.push(l.to_owned()),
    )?;
    assert!(
        lines.contains(&"fetching test InRelease".to_owned()),
        "{lines:?}"
    );
    Ok(index)
}

#[test]
fn the_newest_package_is_found_downloaded_and_extracted() {
    let m = mirror_with_kernel();
    let index = load(&m).unwrap();
    assert_eq!(index.len(), 4);
    let meta = index.newest("linux-image-cloud-amd64").unwrap();
    assert_eq!(meta.version, "2.0-1");
    let target = index.resolve(&meta.depends[0][0]).unwrap();
    assert_eq!(target.name, "linux-image-2-cloud-amd64");

    let dest = tempfile::tempdir().unwrap();
    let archive = Archive::new(&m.mirror, &m.fetch);
    let path = archive.download_deb(target, dest.path()).unwrap();
    assert_eq!(
        path,
        dest.path()
            .join("linux-image-2-cloud-amd64_2.0-1_amd64.deb")
    );
    let out = dest.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let files = extract_deb(&path, &out, &Selection::new().prefix("boot")).unwrap();
    assert_eq!(files, ["boot/vmlinuz-2"]);
    assert_eq!(std::fs::read(out.join("boot/vmlinuz-2")).unwrap(), b"new");
}

#[test]
fn a_tampered_release_file_is_refused() {
    let m = mirror_with_kernel();
    let inrelease = m.dir.path().join("dists/test/InRelease");
    let text = std::fs::read_to_string(&inrelease).unwrap();
    std::fs::write(&inrelease, text.replace("Origin: Test", "Origin: Evil")).unwrap();
    let err = load(&m).unwrap_err();
    assert!(matches!(err, DebianError::BadSignature { .. }), "{err}");
}

#[test]
fn an_index_that_does_not_match_the_release_file_is_refused() {
    let m = mirror_with_kernel();
    let bin = m
        .dir
        .path()
        .join("dists/test/main/binary-amd64/by-hash/SHA256");
    let only = std::fs::read_dir(&bin)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&only).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&only, bytes).unwrap();
    let err = load(&m).unwrap_err();
    assert!(matches!(err, DebianError::HashMismatch { .. }), "{err}");
}

#[test]
fn a_package_that_does_not_match_its_index_is_never_kept() {
    let m = mirror_with_kernel();
    let index = load(&m).unwrap();
    let target = index.newest("linux-image-2-cloud-amd64").unwrap();
    let pool = m.dir.path().join(&target.filename);
    let mut bytes = std::fs::read(&pool).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pool, bytes).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = Archive::new(&m.mirror, &m.fetch)
        .download_deb(target, dest.path())
        .unwrap_err();
    assert!(matches!(err, DebianError::HashMismatch { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}

#[test]
fn a_release_file_of_another_suite_is_refused() {
    let m = mirror_with_kernel();
    // Serve test-updates' (validly signed) release file as test's.
    let dists = m.dir.path().join("dists");
    std::fs::copy(
        dists.join("test-updates/InRelease"),
        dists.join("test/InRelease"),
    )
    .unwrap();
    let err = load(&m).unwrap_err();
    assert!(matches!(err, DebianError::WrongSuite { .. }), "{err}");
}

#[test]
fn a_missing_suite_is_reported_with_its_url() {
    let mut m = mirror_with_kernel();
    m.mirror.suites.push("nonexistent".into());
    let err = load(&m).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(
        err.to_string().contains("dists/nonexistent/InRelease"),
        "{err}"
    );
}

#[test]
fn a_mirror_without_by_hash_files_serves_the_plain_index() {
    let m = mirror_with_kernel();
    let bin = m.dir.path().join("dists/test/main/binary-amd64");
    std::fs::remove_dir_all(bin.join("by-hash")).unwrap();
    assert_eq!(load(&m).unwrap().len(), 4);

    std::fs::remove_file(bin.join("Packages.xz")).unwrap();
    let err = load(&m).unwrap_err();
    assert!(matches!(err, DebianError::IndexMissing { .. }), "{err}");
}
