//! Key generation against the real ssh-keygen (openssh-client).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use banger_sys::Cmd;

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn ssh_paths(root: &Path) -> SshPaths {
    SshPaths::from_parts(&root.join("state/ssh"), &root.join("config/ssh_config"))
}

/// What OpenSSH itself says the public half of `key` is.
fn derived(key: &Path) -> String {
    let out = Cmd::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(key)
        .run()
        .unwrap();
    PublicKey::parse(&out.stdout_str()).unwrap().key_material()
}

#[test]
fn user_key_is_generated_once_with_private_modes() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    let first = ensure_user_key(&paths).unwrap();
    assert_eq!(first.algorithm(), "ssh-ed25519");
    assert_eq!(first.comment(), "banger");
    assert_eq!(mode(&paths.dir), 0o700);
    assert_eq!(mode(&paths.user_key), 0o600);
    assert_eq!(derived(&paths.user_key), first.key_material());
    let on_disk = fs::read_to_string(&paths.user_public_key).unwrap();
    assert_eq!(on_disk, format!("{first}\n"));

    let private = fs::read(&paths.user_key).unwrap();
    let again = ensure_user_key(&paths).unwrap();
    assert_eq!(again, first);
    assert_eq!(
        fs::read(&paths.user_key).unwrap(),
        private,
        "never regenerated"
    );
    let leftovers: Vec<_> = fs::read_dir(&paths.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn readable_private_key_is_tightened_and_loose_dir_made_private() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    ensure_user_key(&paths).unwrap();
    fs::set_permissions(&paths.user_key, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&paths.dir, fs::Permissions::from_mode(0o755)).unwrap();
    ensure_user_key(&paths).unwrap();
    assert_eq!(mode(&paths.user_key), 0o600);
    assert_eq!(mode(&paths.dir), 0o700);
}

#[test]
fn missing_or_damaged_public_file_is_rebuilt_from_the_private_key() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    let key = ensure_user_key(&paths).unwrap();

    fs::remove_file(&paths.user_public_key).unwrap();
    assert_eq!(
        ensure_user_key(&paths).unwrap().key_material(),
        key.key_material()
    );
    assert!(paths.user_public_key.is_file());

    fs::write(&paths.user_public_key, "garbage\n").unwrap();
    assert_eq!(
        ensure_user_key(&paths).unwrap().key_material(),
        key.key_material()
    );
    let rebuilt = fs::read_to_string(&paths.user_public_key).unwrap();
    assert_eq!(
        PublicKey::parse(&rebuilt).unwrap().key_material(),
        key.key_material()
    );
}

#[test]
fn stale_public_file_without_private_key_is_replaced() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    let old = ensure_user_key(&paths).unwrap();
    fs::remove_file(&paths.user_key).unwrap();
    let new = ensure_user_key(&paths).unwrap();
    assert_ne!(new.key_material(), old.key_material());
    assert_eq!(derived(&paths.user_key), new.key_material());
    let on_disk = fs::read_to_string(&paths.user_public_key).unwrap();
    assert_eq!(PublicKey::parse(&on_disk).unwrap(), new);
}

#[test]
fn concurrent_callers_agree_on_one_key() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    let keys: Vec<PublicKey> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| ensure_user_key(&paths).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let on_disk = derived(&paths.user_key);
    for key in &keys {
        assert_eq!(key.key_material(), on_disk);
    }
}

#[test]
fn a_directory_in_place_of_the_key_is_refused_by_name() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    fs::create_dir_all(&paths.user_key).unwrap();
    let err = ensure_user_key(&paths).unwrap_err();
    assert!(matches!(err, SshError::NotAFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&paths.user_key.display().to_string()), "{msg}");
    assert!(msg.contains("move it away"), "{msg}");
}

#[test]
fn host_keys_are_fresh_consistent_and_leave_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = generate_host_key(dir.path()).unwrap();
    let b = generate_host_key(dir.path()).unwrap();
    assert_ne!(a.public, b.public);
    assert!(a.private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert!(a.private.ends_with('\n'));
    let public = PublicKey::parse(&a.public).unwrap();
    assert_eq!(public.algorithm(), "ssh-ed25519");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temp dir removed"
    );

    // The pair belongs together: ssh-keygen derives the same public half.
    let check = tempfile::tempdir().unwrap();
    let key_file = check.path().join("key");
    fs::write(&key_file, &a.private).unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(derived(&key_file), public.key_material());
}

#[test]
fn host_key_debug_never_shows_the_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = generate_host_key(dir.path()).unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let secret_line = key.private.lines().nth(1).unwrap();
    assert!(!shown.contains(secret_line), "{shown}");
    assert!(shown.contains(&key.public), "{shown}");
}

#[test]
fn host_key_in_a_missing_directory_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-vm");
    let err = generate_host_key(&missing).unwrap_err();
    assert!(matches!(err, SshError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-vm"), "{err}");
}
