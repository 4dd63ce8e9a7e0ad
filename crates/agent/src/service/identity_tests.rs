//! Tests of `identity`: files and modes, validation of the first parts, sshd.

use super::*;
use crate::protocol::HostKey;
use crate::service::test_support::{config, mode};

fn key() -> HostKey {
    HostKey {
        private: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
            .into(),
        public: "ssh-ed25519 AAAAC3Nza host@dev\n".into(),
    }
}

#[test]
fn writes_every_file_with_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let request = IdentityRequest {
        hostname: Some("dev".into()),
        authorized_keys: Some("ssh-ed25519 AAAA me@host".into()),
        host_key: Some(key()),
        ..Default::default()
    };
    validate(&request).unwrap();
    let result = apply(&request, &config(root)).unwrap();
    assert_eq!(
        result.written,
        [
            "/etc/hostname",
            "/root/.ssh/authorized_keys",
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssh/ssh_host_ed25519_key.pub"
        ]
    );
    assert!(!result.hostname_set);
    assert!(!result.sshd_reloaded);
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "dev\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("root/.ssh/authorized_keys")).unwrap(),
        "ssh-ed25519 AAAA me@host\n"
    );
    assert_eq!(mode(&root.join("root/.ssh")), 0o700);
    assert_eq!(mode(&root.join("root/.ssh/authorized_keys")), 0o600);
    assert_eq!(mode(&root.join("etc/ssh/ssh_host_ed25519_key")), 0o600);
    assert_eq!(mode(&root.join("etc/ssh/ssh_host_ed25519_key.pub")), 0o644);
    assert_eq!(mode(&root.join("etc/hostname")), 0o644);
    assert!(
        fs::read_to_string(root.join("etc/ssh/ssh_host_ed25519_key"))
            .unwrap()
            .ends_with("-----END OPENSSH PRIVATE KEY-----\n")
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap(),
        "ssh-ed25519 AAAAC3Nza host@dev\n"
    );
}

#[test]
fn only_given_parts_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let request = IdentityRequest {
        hostname: Some("only-name".into()),
        ..Default::default()
    };
    let result = apply(&request, &config(dir.path())).unwrap();
    assert_eq!(result.written, ["/etc/hostname"]);
    assert!(!dir.path().join("root").exists());
}

#[test]
fn a_symlinked_ssh_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::create_dir_all(dir.path().join("root")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("root/.ssh")).unwrap();
    let request = IdentityRequest {
        authorized_keys: Some("ssh-ed25519 AAAA".into()),
        ..Default::default()
    };
    assert!(apply(&request, &config(dir.path())).is_err());
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn validation() {
    assert_eq!(
        validate(&IdentityRequest::default()),
        Err(InvalidIdentity::Empty)
    );
    for bad in [
        "",
        "-dev",
        "dev-",
        "de_v",
        "a..b",
        "dev space",
        &"a".repeat(64),
    ] {
        let request = IdentityRequest {
            hostname: Some(bad.into()),
            ..Default::default()
        };
        assert!(
            matches!(validate(&request), Err(InvalidIdentity::Hostname(_))),
            "{bad:?}"
        );
    }
    for good in ["dev", "my-vm-1", "dev.vm", "A1"] {
        let request = IdentityRequest {
            hostname: Some(good.into()),
            ..Default::default()
        };
        assert_eq!(validate(&request), Ok(()), "{good}");
    }
    let mut wrong_type = key();
    wrong_type.public = "ssh-rsa AAAA".into();
    let request = IdentityRequest {
        host_key: Some(wrong_type),
        ..Default::default()
    };
    assert_eq!(validate(&request), Err(InvalidIdentity::PublicKey));
    let mut not_openssh = key();
    not_openssh.private = "hello".into();
    let request = IdentityRequest {
        host_key: Some(not_openssh),
        ..Default::default()
    };
    assert_eq!(validate(&request), Err(InvalidIdentity::PrivateKey));
    let request = IdentityRequest {
        authorized_keys: Some("a\0b".into()),
        ..Default::default()
    };
    assert_eq!(
        validate(&request),
        Err(InvalidIdentity::Nul("authorized_keys"))
    );
}

#[test]
fn sshd_is_signalled_only_when_the_pid_really_is_sshd() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sshd.pid");
    // No pid file.
    assert!(!reload_sshd(&pid_file, Path::new("/proc")));
    // A live process that is not sshd: must be left alone.
    let mut child = std::process::Command::new("sleep")
        .arg("10")
        .spawn()
        .unwrap();
    fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
    assert!(!reload_sshd(&pid_file, Path::new("/proc")));
    assert!(child.try_wait().unwrap().is_none(), "sleep was signalled");
    // The same process seen through a fake /proc that calls it sshd.
    let fake_proc = dir.path().join("proc");
    fs::create_dir_all(fake_proc.join(child.id().to_string())).unwrap();
    fs::write(
        fake_proc.join(child.id().to_string()).join("comm"),
        "sshd\n",
    )
    .unwrap();
    assert!(reload_sshd(&pid_file, &fake_proc));
    if sighup_ignored() {
        // Run under nohup: the child inherited SIGHUP ignored, so the
        // signal was sent but cannot end it.
        let _ = child.kill();
        return;
    }
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(1), "SIGHUP was not delivered");
}

/// Whether this process ignores SIGHUP (`SigIgn` bit 0 in /proc).
fn sighup_ignored() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & 1 == 1)
}

#[test]
fn pid_parsing() {
    assert_eq!(parse_pid("123\n"), Some(123));
    assert_eq!(parse_pid("1"), None);
    assert_eq!(parse_pid("0"), None);
    assert_eq!(parse_pid("-5"), None);
    assert_eq!(parse_pid("abc"), None);
}
