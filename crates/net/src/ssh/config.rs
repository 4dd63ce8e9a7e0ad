//! banger's own ssh_config: one `Host *.vm` block that makes OpenSSH log in
//! as root with banger's key and check host keys only against banger's pins.

use std::path::Path;

use super::error::SshError;
use super::fs::{PRIVATE_FILE_MODE, ensure_private_dir, write_atomic};
use super::paths::SshPaths;

#[cfg(test)]
mod tests;

/// The file's text. Deterministic: the same paths always give the same bytes,
/// so rewriting it is harmless and tests can compare it whole.
///
/// Beyond the obvious settings, `UpdateHostKeys no` stops OpenSSH from
/// rewriting banger's known_hosts with keys a guest advertises, which would
/// both widen trust past the pin and drop the tags removal relies on.
/// `ForwardAgent no` and `ForwardX11 no`: a guest is untrusted, so it gets
/// neither the user's ssh agent nor their display unless asked for on the
/// command line (`banger vm ssh dev -- -A`).
pub fn render_ssh_config(paths: &SshPaths) -> Result<String, SshError> {
    let identity = config_path(&paths.user_key)?;
    let known_hosts = config_path(&paths.known_hosts)?;
    Ok(format!(
        "# banger's SSH settings for its VMs. banger rewrites this file \
         (`banger ssh-config`); put your own settings in ~/.ssh/config.\n\
         Host *.vm\n\
         \x20   User root\n\
         \x20   IdentityFile {identity}\n\
         \x20   IdentitiesOnly yes\n\
         \x20   UserKnownHostsFile {known_hosts}\n\
         \x20   StrictHostKeyChecking yes\n\
         \x20   HashKnownHosts no\n\
         \x20   UpdateHostKeys no\n\
         \x20   ForwardAgent no\n\
         \x20   ForwardX11 no\n\
         \x20   LogLevel ERROR\n\
         \x20   ServerAliveInterval 15\n"
    ))
}

/// Writes the config (0600), creating its directory (0700) if needed.
pub fn write_ssh_config(paths: &SshPaths) -> Result<(), SshError> {
    let text = render_ssh_config(paths)?;
    if let Some(parent) = paths.config_file.parent() {
        ensure_private_dir(parent, false)?;
    }
    write_atomic(&paths.config_file, text.as_bytes(), PRIVATE_FILE_MODE)
}

/// `path` as an ssh_config argument: quoted when it holds anything but the
/// plainest characters. Characters OpenSSH would expand (`%` tokens, `${}`
/// variables, globs in `Include`) or that cannot appear inside its quotes are
/// refused rather than escaped, since escaping differs between directives
/// and OpenSSH versions.
pub(super) fn config_path(path: &Path) -> Result<String, SshError> {
    if !path.is_absolute() {
        return Err(SshError::RelativePath {
            path: path.to_path_buf(),
        });
    }
    let text = path.to_str().ok_or_else(|| SshError::NonUtf8Path {
        path: path.to_path_buf(),
    })?;
    if let Some(ch) = text
        .chars()
        .find(|&c| c.is_control() || matches!(c, '"' | '\\' | '%' | '$' | '*' | '?' | '['))
    {
        return Err(SshError::UnquotablePath {
            path: path.to_path_buf(),
            ch,
        });
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._+,:@-".contains(c);
    Ok(if text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("\"{text}\"")
    })
}
