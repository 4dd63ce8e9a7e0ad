//! mise's download, cache and extraction with fakes: no network, no npm,
//! no root. One test reaches npm for real, only when asked to.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::extract::MAX_BINARY;
use super::testing::{self, FixedUrl, Item, Served, package, pin_for, tarball};
use super::*;
use crate::images::build::GuestTree;

fn no_progress() -> impl FnMut(&str) {
    |_: &str| {}
}

fn names(dir: &Path) -> Vec<String> {
    crate::test_support::dir_names(dir)
}

fn mode(path: &Path) -> u32 {
    path.symlink_metadata().unwrap().permissions().mode() & 0o7777
}

/// An empty tree and a cache directory beside it.
fn dirs() -> (tempfile::TempDir, GuestTree, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tree")).unwrap();
    let tree = GuestTree::open(&dir.path().join("tree")).unwrap();
    let cache = dir.path().join("cache");
    (dir, tree, cache)
}

#[test]
fn the_pinned_release_decodes_to_its_written_sha256() {
    assert_eq!(
        MISE.sha256_hex(),
        "b51f2463bc4fcdc3b0959b1454792f64be3612e73d856cbca4a062e39e070e74"
    );
    assert_eq!(MISE.spec(), "@jdxcode/mise-linux-x64@2026.9.15");
    assert_eq!(MISE.tarball.size, 52_298_098);
}

#[test]
fn a_good_tarball_is_cached_and_its_binary_installed_executable() {
    let (dir, tree, cache) = dirs();
    let tgz = package(b"\x7fELF mise");
    let (served, resolver) = (Served::new(tgz.clone()), FixedUrl::default());
    let pin = pin_for(&tgz);
    let mut lines = Vec::new();
    let (file, path) = obtain(
        &pin,
        &cache,
        testing::source(&served, &resolver),
        &mut |l: &str| lines.push(l.to_owned()),
    )
    .unwrap();
    assert_eq!((served.opens(), resolver.calls()), (1, 1));
    assert!(lines[0].starts_with("downloading mise 9.9.9"), "{lines:?}");
    assert_eq!(names(&cache), [format!("mise-{}.tgz", pin.sha256_hex())]);
    assert_eq!(mode(&cache), 0o700);

    let installed = install(&tree, file, &path).unwrap();
    assert_eq!(installed.binary_size, 9);
    assert!(installed.license);
    let bin = dir.path().join("tree/usr/local/bin/mise");
    assert_eq!(std::fs::read(&bin).unwrap(), b"\x7fELF mise");
    assert_eq!(mode(&bin), 0o755);
    let license = dir.path().join("tree/usr/local/share/doc/mise/LICENSE");
    assert_eq!(std::fs::read(&license).unwrap(), b"MIT License\n");
    assert_eq!(mode(&license), 0o644);
    // Nothing else of the package is extracted.
    assert_eq!(names(&dir.path().join("tree")), ["usr"]);
}

#[test]
fn a_cached_tarball_is_verified_again_and_downloaded_anew_when_corrupt() {
    let (_dir, tree, cache) = dirs();
    let tgz = package(b"\x7fELF mise");
    let (served, resolver) = (Served::new(tgz.clone()), FixedUrl::default());
    let pin = pin_for(&tgz);
    let source = testing::source(&served, &resolver);
    let (_, path) = obtain(&pin, &cache, source, &mut no_progress()).unwrap();

    // A hit: neither npm nor the network is asked.
    let mut lines = Vec::new();
    let (file, _) = obtain(&pin, &cache, source, &mut |l: &str| {
        lines.push(l.to_owned())
    })
    .unwrap();
    assert_eq!((served.opens(), resolver.calls()), (1, 1));
    assert!(lines[0].contains("is cached"), "{lines:?}");
    install(&tree, file, &path).unwrap();

    // Same size, one byte changed: downloaded again, and right this time.
    let mut corrupt = tgz.clone();
    *corrupt.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &corrupt).unwrap();
    obtain(&pin, &cache, source, &mut no_progress()).unwrap();
    assert_eq!((served.opens(), resolver.calls()), (2, 2));
    assert_eq!(std::fs::read(&path).unwrap(), tgz);

    // Corrupt, and the registry now serves other bytes: refused, and the
    // corrupt copy is not used either.
    std::fs::write(&path, &corrupt).unwrap();
    *served.bytes.lock().unwrap() = package(b"\x7fELF other");
    let err = obtain(&pin, &cache, source, &mut no_progress()).unwrap_err();
    assert!(
        matches!(&err, ImageError::Mise(e) if matches!(**e, MiseError::NotPinned { .. })),
        "{err:?}"
    );
}

#[test]
fn a_tarball_other_than_the_pinned_one_is_refused_and_nothing_is_kept() {
    let (dir, _tree, cache) = dirs();
    let pinned = package(b"\x7fELF mise");
    // Same size, one byte changed: only the sha256 tells.
    let mut other = pinned.clone();
    other[pinned.len() / 2] ^= 1;
    let (served, resolver) = (Served::new(other), FixedUrl::default());
    let err = obtain(
        &pin_for(&pinned),
        &cache,
        testing::source(&served, &resolver),
        &mut no_progress(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(testing::URL) && msg.contains("sha256"),
        "{msg}"
    );
    assert!(msg.contains("@test/mise@9.9.9"), "{msg}");
    assert!(names(&cache).is_empty(), "{:?}", names(&cache));
    assert!(names(&dir.path().join("tree")).is_empty());

    // Longer than the pin: the download stops at the pinned size.
    let mut longer = pinned.clone();
    longer.extend_from_slice(&[0; 4096]);
    *served.bytes.lock().unwrap() = longer;
    let err = obtain(
        &pin_for(&pinned),
        &cache,
        testing::source(&served, &resolver),
        &mut no_progress(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(names(&cache).is_empty(), "{:?}", names(&cache));
}

#[test]
fn the_tarballs_of_earlier_pins_are_removed() {
    let (_dir, _tree, cache) = dirs();
    std::fs::create_dir(&cache).unwrap();
    let old = format!("mise-{}.tgz", "0".repeat(64));
    std::fs::write(cache.join(&old), b"old").unwrap();
    std::fs::write(cache.join("unrelated"), b"kept").unwrap();
    let tgz = package(b"\x7fELF mise");
    let (served, resolver) = (Served::new(tgz.clone()), FixedUrl::default());
    let pin = pin_for(&tgz);
    obtain(
        &pin,
        &cache,
        testing::source(&served, &resolver),
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(names(&cache), [pin.file_name(), "unrelated".to_owned()]);
}

/// Installs a tarball of `items` into a fresh tree.
fn install_items(
    items: &[Item<'_>],
) -> (tempfile::TempDir, Result<extract::Installed, ImageError>) {
    let (dir, tree, _) = dirs();
    let path = dir.path().join("t.tgz");
    std::fs::write(&path, tarball(items)).unwrap();
    let result = install(&tree, File::open(&path).unwrap(), &path);
    (dir, result)
}

/// The refusal of a failed install.
fn refusal(result: Result<extract::Installed, ImageError>) -> MiseError {
    match result {
        Err(ImageError::Mise(e)) => *e,
        other => panic!("not refused: {other:?}"),
    }
}

fn unsafe_reason(result: Result<extract::Installed, ImageError>) -> &'static str {
    match refusal(result) {
        MiseError::UnsafeEntry { reason, .. } => reason,
        other => panic!("not refused as unsafe: {other:?}"),
    }
}

#[test]
fn a_binary_that_is_not_a_regular_file_is_refused() {
    let (dir, result) = install_items(&[Item::Symlink("package/bin/mise", "/usr/bin/true")]);
    assert_eq!(unsafe_reason(result), "is not a regular file");
    assert!(!dir.path().join("tree/usr/local/bin/mise").exists());

    let (_, result) = install_items(&[
        Item::File("package/bin/mise", b"a"),
        Item::Symlink("package/LICENSE", "/etc/shadow"),
    ]);
    assert_eq!(unsafe_reason(result), "is not a regular file");
}

#[test]
fn paths_that_climb_or_are_absolute_are_refused_and_dots_are_normalised() {
    let (_, result) = install_items(&[
        Item::File("package/bin/mise", b"a"),
        Item::File("package/../../etc/cron.d/x", b"b"),
    ]);
    assert_eq!(unsafe_reason(result), "climbs out with `..`");
    let (_, result) = install_items(&[Item::File("package/bin/../bin/mise", b"a")]);
    assert_eq!(unsafe_reason(result), "climbs out with `..`");
    let (_, result) = install_items(&[Item::File("/package/bin/mise", b"a")]);
    assert_eq!(unsafe_reason(result), "is absolute");

    let (dir, result) = install_items(&[Item::File("./package//bin/./mise", b"dotted")]);
    assert!(!result.unwrap().license);
    assert_eq!(
        std::fs::read(dir.path().join("tree/usr/local/bin/mise")).unwrap(),
        b"dotted"
    );
}

#[test]
fn an_oversize_a_duplicate_or_a_missing_binary_is_refused() {
    let (dir, result) = install_items(&[Item::Claims("package/bin/mise", MAX_BINARY + 1)]);
    match refusal(result) {
        MiseError::TooLarge { size, limit, .. } => {
            assert_eq!((size, limit), (MAX_BINARY + 1, MAX_BINARY));
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("tree/usr/local/bin/mise").exists());

    let (_, result) = install_items(&[
        Item::File("package/bin/mise", b"a"),
        Item::File("package/bin/mise", b"b"),
    ]);
    assert_eq!(unsafe_reason(result), "appears twice");

    let (_, result) = install_items(&[Item::File("package/README.md", b"# mise")]);
    let err = refusal(result);
    assert!(matches!(err, MiseError::MissingEntry { .. }), "{err:?}");

    let (dir, tree, _) = dirs();
    let path = dir.path().join("not.tgz");
    std::fs::write(&path, b"not gzip").unwrap();
    let err = install(&tree, File::open(&path).unwrap(), &path).unwrap_err();
    assert!(err.to_string().contains("gzip tar"), "{err}");
}

#[test]
fn npm_answers_are_read_as_one_url() {
    let spec = "@jdxcode/mise-linux-x64@1.0.0";
    let url = npm::parse_answer(spec, b"\"https://npm.example/m/-/m-1.0.0.tgz\"\n").unwrap();
    assert_eq!(url, "https://npm.example/m/-/m-1.0.0.tgz");
    for bad in [
        &b""[..],
        b"\"\"",
        b"{\"error\":{}}",
        b"\"file:///etc/passwd\"",
        b"\"https://a b\"",
    ] {
        let err = npm::parse_answer(spec, bad).unwrap_err();
        assert!(matches!(err, MiseError::BadUrl { .. }), "{err:?}");
    }
}

#[test]
fn a_missing_npm_is_named_with_its_package_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let npm = NpmView {
        program: dir.path().join("npm"),
    };
    let err = npm.tarball_url(MISE.package, MISE.version).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MiseError::NpmMissing { .. }), "{err:?}");
    assert!(
        msg.contains("apt-get install npm") && msg.contains(MISE.package),
        "{msg}"
    );
    assert_eq!(
        npm.command(&MISE.spec()).argv(),
        format!(
            "{} view --json @jdxcode/mise-linux-x64@2026.9.15 dist.tarball",
            npm.program.display()
        )
    );
}

/// The real thing: `npm view` for the pinned release, its download over
/// HTTP, the pin's check, and the extracted binary run. Only with
/// `BANGER_NET_TESTS=1` and npm installed; downloads about 50 MB.
#[test]
fn the_pinned_release_resolves_downloads_and_runs_for_real() {
    if std::env::var("BANGER_NET_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set BANGER_NET_TESTS=1 to reach the npm registry");
        return;
    }
    let npm = NpmView::default();
    if npm.check_ready().is_err() {
        eprintln!("skipped: npm is not installed");
        return;
    }
    let url = npm.tarball_url(MISE.package, MISE.version).unwrap();
    assert!(url.starts_with("https://"), "{url}");
    assert!(url.ends_with("/mise-linux-x64-2026.9.15.tgz"), "{url}");

    let (dir, tree, cache) = dirs();
    let http = crate::debian::HttpFetch::new();
    let source = MiseSource {
        resolver: &npm,
        fetch: &http,
    };
    let (file, path) = obtain(&MISE, &cache, source, &mut |l: &str| eprintln!("{l}")).unwrap();
    let installed = install(&tree, file, &path).unwrap();
    assert!(installed.binary_size > 100 * 1024 * 1024, "{installed:?}");
    let bin = dir.path().join("tree/usr/local/bin/mise");
    let version = banger_sys::Cmd::new(&bin)
        .arg("--version")
        .run()
        .unwrap()
        .stdout_str();
    assert!(version.starts_with("2026.9.15 linux-x64"), "{version}");
}
