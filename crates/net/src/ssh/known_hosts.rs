//! Host keys pinned in banger's own known_hosts, one line per VM:
//!
//! ```text
//! dev.vm,172.16.0.2 ssh-ed25519 AAAA… banger:dev
//! ```
//!
//! The trailing comment tags the line with the VM it belongs to, so removal
//! matches exactly that VM's lines and never a line banger did not write;
//! those are kept byte for byte (line endings, comments, non-UTF-8 bytes).

use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};

use banger_api::model::VmName;

use super::VM_DOMAIN;
use super::error::SshError;
use super::fs::{PRIVATE_FILE_MODE, read_optional, write_atomic};
use super::keys::PublicKey;
use super::paths::SshPaths;

#[cfg(test)]
mod tests;

/// Serialises read-modify-write of known_hosts within the process: the
/// daemon, the only writer, creates and deletes VMs concurrently, and two
/// unserialised updates would lose one of the pins.
static UPDATE: Mutex<()> = Mutex::new(());

const TAG_PREFIX: &str = "banger:";

/// Pins `public_key` as the host key of `name` (and of `ip`, so `ssh <ip>`
/// is checked too), replacing any key pinned for that VM before.
pub fn pin_host(
    paths: &SshPaths,
    name: &VmName,
    ip: Option<Ipv4Addr>,
    public_key: &str,
) -> Result<(), SshError> {
    let key = PublicKey::parse(public_key).map_err(|source| SshError::PublicKey {
        origin: format!("the host key given for VM {name}"),
        source,
    })?;
    paths.ensure_dir()?;
    let _guard = UPDATE.lock().unwrap_or_else(PoisonError::into_inner);
    let old = read_optional(&paths.known_hosts)?.unwrap_or_default();
    let mut new = without_pins(&old, name);
    append_line(&mut new, &pin_line(name, ip, &key));
    // Written even when unchanged, so the file always ends up 0600.
    write_atomic(&paths.known_hosts, &new, PRIVATE_FILE_MODE)
}

/// Removes every line pinned for `name`. Idempotent: no file, or no line for
/// that VM, is not an error and leaves the file untouched.
pub fn unpin_host(paths: &SshPaths, name: &VmName) -> Result<(), SshError> {
    let _guard = UPDATE.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(old) = read_optional(&paths.known_hosts)? else {
        return Ok(());
    };
    let new = without_pins(&old, name);
    if new == old {
        return Ok(());
    }
    write_atomic(&paths.known_hosts, &new, PRIVATE_FILE_MODE)
}

fn pin_line(name: &VmName, ip: Option<Ipv4Addr>, key: &PublicKey) -> String {
    let hosts = match ip {
        Some(ip) => format!("{name}.{VM_DOMAIN},{ip}"),
        None => format!("{name}.{VM_DOMAIN}"),
    };
    format!("{hosts} {} {TAG_PREFIX}{name}", key.key_material())
}

/// `content` without the lines tagged for `name`; every other line, with
/// its own terminator, is copied unchanged.
fn without_pins(content: &[u8], name: &VmName) -> Vec<u8> {
    content
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| !is_pin_of(line, name))
        .flatten()
        .copied()
        .collect()
}

/// A pin is a non-comment line of at least three fields (hosts, type, key)
/// whose last field is exactly `banger:<name>`.
fn is_pin_of(line: &[u8], name: &VmName) -> bool {
    let fields: Vec<&[u8]> = line
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .collect();
    if fields.len() < 3 || fields[0].starts_with(b"#") {
        return false;
    }
    let tag = fields[fields.len() - 1];
    tag.strip_prefix(TAG_PREFIX.as_bytes()) == Some(name.as_str().as_bytes())
}

/// Appends `line`, first ending an unterminated last line so the two do not
/// run together.
fn append_line(content: &mut Vec<u8>, line: &str) {
    if !content.is_empty() && !content.ends_with(b"\n") {
        content.push(b'\n');
    }
    content.extend_from_slice(line.as_bytes());
    content.push(b'\n');
}
