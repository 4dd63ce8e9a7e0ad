use std::os::unix::fs::PermissionsExt;

use super::*;

fn entry(host: &Path, guest: &str, mode: u32) -> ResolvedFileSync {
    ResolvedFileSync {
        host: host.to_owned(),
        guest: PathBuf::from(guest),
        mode,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn image_root_synced_files_and_git_identity_are_combined() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let image = tmp.path().join("image-root");
    std::fs::create_dir_all(image.join(".ssh")).unwrap();
    std::fs::write(image.join(".bashrc"), "from the image").unwrap();
    std::fs::write(image.join(".profile"), "image profile").unwrap();
    std::fs::create_dir_all(home.join(".config/tool")).unwrap();
    std::fs::write(home.join(".config/tool/rc"), "synced").unwrap();
    std::fs::write(home.join("profile"), "mine").unwrap();
    banger_sys::Cmd::new("git")
        .args(["config", "--file"])
        .arg(home.join(".gitconfig"))
        .args(["user.name", "Ada \"the\" Host"])
        .run()
        .unwrap();
    banger_sys::Cmd::new("git")
        .args(["config", "--file"])
        .arg(home.join(".gitconfig"))
        .args(["user.email", "ada@example.com"])
        .run()
        .unwrap();
    let sync = [
        entry(
            &home.join(".config/tool/rc"),
            "/root/.config/tool/rc",
            0o600,
        ),
        entry(&home.join("profile"), "/root/.profile", 0o640),
        entry(&home.join("missing"), "/root/missing", 0o600),
        entry(&home.join(".config"), "/root/dir", 0o600),
    ];
    let dir = tmp.path().join("seed");
    let (seed, warnings) = compose(&dir, Some(&image), &sync, Some(&home)).unwrap();
    let read = |rel: &str| std::fs::read_to_string(seed.path().join(rel)).unwrap();
    assert_eq!(read(".bashrc"), "from the image");
    assert!(seed.path().join(".ssh").is_dir());
    assert_eq!(read(".config/tool/rc"), "synced");
    assert_eq!(mode(&seed.path().join(".config/tool/rc")), 0o600);
    assert_eq!(
        read(".profile"),
        "mine",
        "a synced file replaces the image's"
    );
    assert_eq!(mode(&seed.path().join(".profile")), 0o640);
    assert!(!seed.path().join("missing").exists() && !seed.path().join("dir").exists());
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("not found on the host"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("not a regular file"), "{warnings:?}");
    // The identity, read back by git itself.
    let got = |key: &str| {
        banger_sys::Cmd::new("git")
            .args(["config", "--file"])
            .arg(seed.path().join(".gitconfig"))
            .arg(key)
            .run()
            .unwrap()
            .stdout_str()
    };
    assert_eq!(got("user.name"), "Ada \"the\" Host\n");
    assert_eq!(got("user.email"), "ada@example.com\n");
    drop(seed);
    assert!(!dir.exists(), "the staging directory is removed");
}

#[test]
fn a_synced_gitconfig_wins_and_symlinks_out_of_home_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("my.gitconfig"), "[user]\n\tname = Mine\n").unwrap();
    std::fs::write(tmp.path().join("secret"), "outside").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), home.join("link")).unwrap();
    let sync = [
        entry(&home.join("my.gitconfig"), "/root/.gitconfig", 0o644),
        entry(&home.join("link"), "/root/secret", 0o600),
    ];
    let (seed, warnings) = compose(&tmp.path().join("seed"), None, &sync, Some(&home)).unwrap();
    assert_eq!(
        std::fs::read_to_string(seed.path().join(".gitconfig")).unwrap(),
        "[user]\n\tname = Mine\n"
    );
    assert!(!seed.path().join("secret").exists());
    assert!(
        warnings[0].contains("outside the owner's home"),
        "{warnings:?}"
    );
}

#[test]
fn without_identity_or_entries_the_seed_is_the_image_root_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let (seed, warnings) = compose(&tmp.path().join("seed"), None, &[], Some(&home)).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(std::fs::read_dir(seed.path()).unwrap().count(), 0);
}

/// An image whose `/root/.config` is a symlink to a host directory, and
/// whose `/root/.gitconfig` is a symlink to a host file: the seed is
/// composed as root on the host, and neither may redirect a write there.
#[test]
fn symlinks_in_the_image_root_never_lead_writes_onto_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let image = tmp.path().join("image-root");
    let victim = tmp.path().join("host-etc");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("passwd"), "host file").unwrap();
    std::fs::create_dir_all(&image).unwrap();
    std::os::unix::fs::symlink(&victim, image.join(".config")).unwrap();
    std::os::unix::fs::symlink(victim.join("passwd"), image.join(".gitconfig")).unwrap();
    std::fs::create_dir_all(home.join(".config/gh")).unwrap();
    std::fs::write(home.join(".config/gh/hosts.yml"), "token: secret").unwrap();
    std::fs::write(home.join("passwd"), "synced over the host").unwrap();
    banger_sys::Cmd::new("git")
        .args(["config", "--file"])
        .arg(home.join(".gitconfig"))
        .args(["user.name", "Ada"])
        .run()
        .unwrap();
    let sync = [
        entry(
            &home.join(".config/gh/hosts.yml"),
            "/root/.config/gh/hosts.yml",
            0o600,
        ),
        entry(&home.join("passwd"), "/root/.config/passwd", 0o644),
    ];
    let dir = tmp.path().join("seed");
    let (seed, warnings) = compose(&dir, Some(&image), &sync, Some(&home)).unwrap();
    let host_files: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        host_files,
        ["passwd"],
        "a write landed in the host directory"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("passwd")).unwrap(),
        "host file",
        "a host file was overwritten"
    );
    // Inside the seed the symlink resolves to a directory that does not
    // exist there: the files are left out, and the user is told.
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings.iter().all(|w| w.contains("not copied")),
        "{warnings:?}"
    );
    assert!(
        std::fs::symlink_metadata(seed.path().join(".gitconfig"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the image's .gitconfig stays what it was"
    );
}
