//! `identity`: give the guest its name, its owner's key and its ssh host
//! key, and a copy restored from a snapshot what must differ from its
//! parent's (machine id, NIC, RNG state, clock; see [`super::refresh`]).
//! Every file is replaced atomically with its exact mode.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use thiserror::Error;

use super::config::ServiceConfig;
pub use super::invalid_identity::InvalidIdentity;
use super::refresh::{self, Refresh, RefreshError};
use crate::fsutil::{self, FsError};
use crate::protocol::{IdentityRequest, IdentityResult};

const HOSTNAME_FILE: &str = "etc/hostname";
const SSH_DIR: &str = "root/.ssh";
const AUTHORIZED_KEYS: &str = "root/.ssh/authorized_keys";
const SSH_CONFIG_DIR: &str = "etc/ssh";
const HOST_KEY: &str = "etc/ssh/ssh_host_ed25519_key";
const HOST_KEY_PUB: &str = "etc/ssh/ssh_host_ed25519_key.pub";
const MACHINE_ID_FILE: &str = "etc/machine-id";
/// Where sshd (Debian's default `PidFile`) records its pid.
const SSHD_PID_FILE: &str = "run/sshd.pid";

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
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    #[error(transparent)]
    Invalid(#[from] InvalidIdentity),
}

/// Checks the request's contents.
pub fn validate(request: &IdentityRequest) -> Result<(), InvalidIdentity> {
    let IdentityRequest {
        hostname,
        authorized_keys,
        host_key,
        machine_id,
        network,
        entropy,
        realtime_ns,
    } = request;
    if hostname.is_none()
        && authorized_keys.is_none()
        && host_key.is_none()
        && machine_id.is_none()
        && network.is_none()
        && entropy.is_none()
        && realtime_ns.is_none()
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
    Refresh::parse(request)?;
    Ok(())
}

/// Whether a successful `identity` with this request ends a freeze: it
/// gave the RNG a new seed and the clock the host's time, the two things a
/// copy of a snapshot must not run anything without.
pub fn thaws(request: &IdentityRequest) -> bool {
    request.entropy.is_some() && request.realtime_ns.is_some()
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

/// Writes what the request carries under `config.fs_root` and, with
/// `config.apply_live`, applies it to the running kernel. The RNG is
/// reseeded and the clock stepped first, so whatever follows (sshd
/// re-executing for its new host key) already runs on them.
pub fn apply(
    request: &IdentityRequest,
    config: &ServiceConfig,
) -> Result<IdentityResult, IdentityError> {
    let refresh = Refresh::parse(request)?;
    let root = &config.fs_root;
    let mut result = IdentityResult::default();
    if config.apply_live {
        if let Some(seed) = &refresh.entropy {
            refresh::reseed(seed)?;
            result.reseeded = true;
        }
        if let Some(ns) = refresh.realtime_ns {
            refresh::step_clock(ns)?;
            result.clock_stepped = true;
        }
    }
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
    if let Some(id) = refresh.machine_id {
        write(MACHINE_ID_FILE, id, 0o444)?;
        result.machine_id_set = true;
    }

    if config.apply_live {
        if let Some(name) = &request.hostname {
            nix::unistd::sethostname(name).map_err(|errno| IdentityError::SetHostname {
                name: name.clone(),
                errno,
            })?;
            result.hostname_set = true;
        }
        if let Some(readdress) = &refresh.network {
            readdress.apply()?;
            result.network_set = true;
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
#[path = "identity_tests.rs"]
mod tests;
