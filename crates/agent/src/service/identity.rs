//! `identity`: give the guest its name, its owner's key and its ssh host
//! key. Every file is replaced atomically with its exact mode.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use thiserror::Error;

use super::config::ServiceConfig;
use crate::fsutil::{self, FsError};
use crate::protocol::{IdentityRequest, IdentityResult};

const HOSTNAME_FILE: &str = "etc/hostname";
const SSH_DIR: &str = "root/.ssh";
const AUTHORIZED_KEYS: &str = "root/.ssh/authorized_keys";
const SSH_CONFIG_DIR: &str = "etc/ssh";
const HOST_KEY: &str = "etc/ssh/ssh_host_ed25519_key";
const HOST_KEY_PUB: &str = "etc/ssh/ssh_host_ed25519_key.pub";
/// Where sshd (Debian's default `PidFile`) records its pid.
const SSHD_PID_FILE: &str = "run/sshd.pid";

/// Why an `identity` request is malformed (`bad_request`).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidIdentity {
    #[error("nothing to change: give hostname, authorized_keys or host_key")]
    Empty,
    #[error("hostname {0:?} is not a valid host name (labels of a-z, 0-9, '-', at most 253 bytes)")]
    Hostname(String),
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    #[error("host_key.public is not an ssh-ed25519 public key")]
    PublicKey,
    #[error("host_key.private is not an OpenSSH private key")]
    PrivateKey,
}

/// Why applying a valid request failed (`failed`).
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("sethostname({name:?}) failed: {errno}")]
    SetHostname {
        name: String,
        errno: nix::errno::Errno,
    },
}

/// Checks the request's contents.
pub fn validate(request: &IdentityRequest) -> Result<(), InvalidIdentity> {
    if request.hostname.is_none() && request.authorized_keys.is_none() && request.host_key.is_none()
    {
        return Err(InvalidIdentity::Empty);
    }
    if let Some(name) = &request.hostname {
        if !valid_hostname(name) {
            return Err(InvalidIdentity::Hostname(name.clone()));
        }
    }
    if let Some(keys) = &request.authorized_keys {
        if keys.contains('\0') {
            return Err(InvalidIdentity::Nul("authorized_keys"));
        }
    }
    if let Some(key) = &request.host_key {
        if key.private.contains('\0') || key.public.contains('\0') {
            return Err(InvalidIdentity::Nul("host_key"));
        }
        let public = key.public.trim();
        if !public.starts_with("ssh-ed25519 ") || public.contains('\n') {
            return Err(InvalidIdentity::PublicKey);
        }
        if !key
            .private
            .trim_start()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        {
            return Err(InvalidIdentity::PrivateKey);
        }
    }
    Ok(())
}

/// RFC 1123 host names: dot-separated labels of letters, digits and
/// hyphens, no label starting or ending with a hyphen.
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Writes what the request carries under `config.fs_root`.
pub fn apply(
    request: &IdentityRequest,
    config: &ServiceConfig,
) -> Result<IdentityResult, IdentityError> {
    let root = &config.fs_root;
    let mut result = IdentityResult::default();
    let mut write = |relative: &str, contents: &str, mode: u32| -> Result<(), IdentityError> {
        fsutil::write_atomic(
            &root.join(relative),
            fsutil::with_final_newline(contents).as_bytes(),
            mode,
        )?;
        result.written.push(format!("/{relative}"));
        Ok(())
    };

    if let Some(name) = &request.hostname {
        write(HOSTNAME_FILE, name, 0o644)?;
    }
    if let Some(keys) = &request.authorized_keys {
        // sshd's StrictModes refuses keys in a group/world-writable dir.
        fsutil::ensure_dir(&root.join(SSH_DIR), 0o700)?;
        write(AUTHORIZED_KEYS, keys, 0o600)?;
    }
    if let Some(key) = &request.host_key {
        let ssh_dir = root.join(SSH_CONFIG_DIR);
        if !ssh_dir.is_dir() {
            fsutil::ensure_dir(&ssh_dir, 0o755)?;
        }
        write(HOST_KEY, &key.private, 0o600)?;
        write(HOST_KEY_PUB, key.public.trim(), 0o644)?;
    }

    if let Some(name) = &request.hostname {
        if config.set_kernel_hostname {
            nix::unistd::sethostname(name).map_err(|errno| IdentityError::SetHostname {
                name: name.clone(),
                errno,
            })?;
            result.hostname_set = true;
        }
    }
    // sshd reads authorized_keys at each login, but loads host keys only at
    // start: SIGHUP makes it re-exec and pick up the new one.
    if request.host_key.is_some() {
        result.sshd_reloaded = reload_sshd(&root.join(SSHD_PID_FILE), Path::new("/proc"));
    }
    Ok(result)
}

/// Sends SIGHUP to the sshd named by `pid_file` if that process is really
/// sshd (a stale pid file may name a reused pid).
fn reload_sshd(pid_file: &Path, proc_root: &Path) -> bool {
    let Some(pid) = fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| parse_pid(&text))
    else {
        return false;
    };
    if !is_sshd(proc_root, pid) {
        return false;
    }
    match kill(Pid::from_raw(pid), Signal::SIGHUP) {
        Ok(()) => true,
        Err(e) => {
            crate::warn!("cannot signal sshd (pid {pid}): {e}");
            false
        }
    }
}

fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse::<i32>().ok().filter(|pid| *pid > 1)
}

fn is_sshd(proc_root: &Path, pid: i32) -> bool {
    let comm: PathBuf = proc_root.join(pid.to_string()).join("comm");
    fs::read_to_string(comm).is_ok_and(|c| c.trim() == "sshd")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HostKey;
    use crate::service::power::DisabledPower;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    /// A guest root: like every real one, it has /etc.
    fn config(root: &Path) -> ServiceConfig {
        fs::create_dir_all(root.join("etc")).unwrap();
        let mut config = ServiceConfig::guest(Arc::new(DisabledPower));
        config.fs_root = root.to_path_buf();
        config.set_kernel_hostname = false;
        config
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

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
}
