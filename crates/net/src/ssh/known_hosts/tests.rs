use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsXVPj+U3bwuhGfkbrbVVzjSgW0YJFLGhE/tfQuSpo3";
const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN5bf8LRWB1Oimhdf6johIWcxWUjFmzLRbTrwf09AmXf";

/// Lines banger did not write, in every shape that must survive untouched:
/// a comment, a CRLF line, a hashed entry, non-UTF-8 bytes, a line that
/// mentions a VM without banger's tag, and a tag of a similar name.
const FOREIGN: &[u8] = b"# my hosts\n\
github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\r\n\
|1|abc=|def= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n\
caf\xe9.example ssh-ed25519 AAAA latin1\n\
dev.vm ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl by hand\n\
dev2.vm ssh-ed25519 AAAA banger:dev2\n\
# banger:dev\n";

fn name(s: &str) -> VmName {
    VmName::new(s).unwrap()
}

fn ssh_paths(root: &Path) -> SshPaths {
    SshPaths::from_parts(&root.join("ssh"), &root.join("ssh_config"))
}

fn read(paths: &SshPaths) -> Vec<u8> {
    fs::read(&paths.known_hosts).unwrap()
}

fn text(paths: &SshPaths) -> String {
    String::from_utf8_lossy(&read(paths)).into_owned()
}

#[test]
fn pin_writes_one_tagged_line_privately() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    let ip = Ipv4Addr::new(172, 16, 0, 2);
    pin_host(
        &paths,
        &name("dev"),
        Some(ip),
        &format!("{KEY_A} banger-host\n"),
    )
    .unwrap();
    assert_eq!(
        text(&paths),
        format!("dev.vm,172.16.0.2 {KEY_A} banger:dev\n")
    );
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&paths.known_hosts), 0o600);
    assert_eq!(mode(&paths.dir), 0o700);

    pin_host(&paths, &name("web"), None, KEY_B).unwrap();
    assert_eq!(
        text(&paths),
        format!("dev.vm,172.16.0.2 {KEY_A} banger:dev\nweb.vm {KEY_B} banger:web\n")
    );
}

#[test]
fn repinning_replaces_the_vms_line_and_keeps_foreign_lines_exactly() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    fs::create_dir_all(&paths.dir).unwrap();
    fs::write(&paths.known_hosts, FOREIGN).unwrap();

    pin_host(
        &paths,
        &name("dev"),
        Some(Ipv4Addr::new(10, 0, 0, 5)),
        KEY_A,
    )
    .unwrap();
    pin_host(
        &paths,
        &name("dev"),
        Some(Ipv4Addr::new(10, 0, 0, 6)),
        KEY_B,
    )
    .unwrap();
    let mut expected = FOREIGN.to_vec();
    expected.extend_from_slice(format!("dev.vm,10.0.0.6 {KEY_B} banger:dev\n").as_bytes());
    assert_eq!(read(&paths), expected);

    unpin_host(&paths, &name("dev")).unwrap();
    assert_eq!(
        read(&paths),
        FOREIGN,
        "only banger's line for dev went away"
    );
}

#[test]
fn pin_after_an_unterminated_last_line_starts_a_new_line() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    fs::create_dir_all(&paths.dir).unwrap();
    fs::write(&paths.known_hosts, "host.example ssh-ed25519 AAAA").unwrap();
    pin_host(&paths, &name("dev"), None, KEY_A).unwrap();
    assert_eq!(
        text(&paths),
        format!("host.example ssh-ed25519 AAAA\ndev.vm {KEY_A} banger:dev\n")
    );
}

#[test]
fn unpin_keeps_an_unterminated_foreign_last_line() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    fs::create_dir_all(&paths.dir).unwrap();
    let content = format!("dev.vm {KEY_A} banger:dev\nother ssh-ed25519 AAAA");
    fs::write(&paths.known_hosts, &content).unwrap();
    unpin_host(&paths, &name("dev")).unwrap();
    assert_eq!(text(&paths), "other ssh-ed25519 AAAA");
}

#[test]
fn unpin_is_idempotent_and_never_creates_the_file() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    unpin_host(&paths, &name("dev")).unwrap();
    assert!(!paths.known_hosts.exists());

    pin_host(&paths, &name("dev"), None, KEY_A).unwrap();
    pin_host(&paths, &name("dev-1"), None, KEY_B).unwrap();
    unpin_host(&paths, &name("dev")).unwrap();
    unpin_host(&paths, &name("dev")).unwrap();
    assert_eq!(text(&paths), format!("dev-1.vm {KEY_B} banger:dev-1\n"));
}

#[test]
fn a_bad_key_is_refused_before_anything_is_written() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    let err = pin_host(
        &paths,
        &name("dev"),
        None,
        "ssh-ed25519 AAAA\nevil.vm ssh-rsa AAAA",
    )
    .unwrap_err();
    assert!(matches!(err, SshError::PublicKey { .. }), "{err:?}");
    assert!(err.to_string().contains("VM dev"), "{err}");
    assert!(!paths.known_hosts.exists());
}

#[test]
fn concurrent_pins_are_all_kept() {
    let root = tempfile::tempdir().unwrap();
    let paths = ssh_paths(root.path());
    let names: Vec<VmName> = (0..16).map(|i| name(&format!("vm-{i}"))).collect();
    std::thread::scope(|s| {
        for n in &names {
            let paths = &paths;
            s.spawn(move || pin_host(paths, n, None, KEY_A).unwrap());
        }
    });
    let content = text(&paths);
    for n in &names {
        assert!(
            content.contains(&format!("\n{n}.vm ")) || content.starts_with(&format!("{n}.vm ")),
            "{n} lost:\n{content}"
        );
    }
    assert_eq!(content.lines().count(), names.len());
}
