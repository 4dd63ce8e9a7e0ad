//! The marked block in the user's `~/.ssh/config` that includes banger's
//! ssh_config, so plain `ssh dev.vm` works outside banger:
//!
//! ```text
//! # >>> banger >>> (managed by `banger ssh-config`; remove with `banger ssh-config --uninstall`)
//! Include /home/u/.config/banger/ssh_config
//! # <<< banger <<<
//! ```
//!
//! It goes at the very top: OpenSSH takes the first value it finds for each
//! setting, and an `Include` after a `Host` line would only apply inside
//! that host's block. Everything outside the block is the user's and is kept
//! byte for byte; a blank line separates the block from it and goes away
//! with the block.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::config::config_path;
use super::error::SshError;
use super::fs::{PRIVATE_FILE_MODE, ensure_private_dir, read_optional, write_atomic};

#[cfg(test)]
mod tests;

const BEGIN: &str = "# >>> banger >>>";
const BEGIN_LINE: &str = "# >>> banger >>> (managed by `banger ssh-config`; remove with `banger ssh-config --uninstall`)";
const END: &str = "# <<< banger <<<";

/// What [`install_include`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeChange {
    /// There was no block; one was added.
    Installed,
    /// A block that differed (another path, or not at the top) was replaced.
    Updated,
    /// The right block was already at the top; the file was not written.
    Unchanged,
}

/// Whether the user's config includes banger's (for `doctor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeStatus {
    /// No banger block (or no file).
    Missing,
    /// The block is at the top and includes the given config.
    Current,
    /// A block exists but `install_include` would change it.
    Outdated,
}

/// `~/.ssh/config` for the given home directory.
pub fn user_ssh_config(home: &Path) -> PathBuf {
    home.join(".ssh").join("config")
}

/// Puts the block including `banger_config` at the top of `user_config`,
/// replacing any banger block already there. Creates `~/.ssh` (0700) and
/// the file (0600) if missing; an existing file keeps its mode, and a
/// symlinked one (dotfile managers) is written through the link.
pub fn install_include(
    user_config: &Path,
    banger_config: &Path,
) -> Result<IncludeChange, SshError> {
    let block = render_block(banger_config)?;
    let target = resolve_link(user_config)?;
    let existing = read_optional(&target)?;
    let content = existing.as_deref().unwrap_or_default();
    let (new, replaced) = with_block_on_top(content, &block, &target)?;
    if existing.is_some() && new == content {
        return Ok(IncludeChange::Unchanged);
    }
    let mode = match existing {
        Some(_) => current_mode(&target)?,
        None => {
            if let Some(dir) = target.parent() {
                ensure_private_dir(dir, false)?;
            }
            PRIVATE_FILE_MODE
        }
    };
    write_atomic(&target, &new, mode)?;
    Ok(if replaced == 0 {
        IncludeChange::Installed
    } else {
        IncludeChange::Updated
    })
}

/// Removes banger's block (and the blank line it added after it) from
/// `user_config`. Returns whether there was one; without one, or without
/// the file, nothing is written.
pub fn uninstall_include(user_config: &Path) -> Result<bool, SshError> {
    let target = resolve_link(user_config)?;
    let Some(content) = read_optional(&target)? else {
        return Ok(false);
    };
    let (rest, removed) = without_blocks(&content, &target)?;
    if removed == 0 {
        return Ok(false);
    }
    write_atomic(&target, &rest, current_mode(&target)?)?;
    Ok(true)
}

pub fn include_status(user_config: &Path, banger_config: &Path) -> Result<IncludeStatus, SshError> {
    let block = render_block(banger_config)?;
    let target = resolve_link(user_config)?;
    let Some(content) = read_optional(&target)? else {
        return Ok(IncludeStatus::Missing);
    };
    let (new, found) = with_block_on_top(&content, &block, &target)?;
    Ok(match (found, new == content) {
        (0, _) => IncludeStatus::Missing,
        (_, true) => IncludeStatus::Current,
        (_, false) => IncludeStatus::Outdated,
    })
}

fn render_block(banger_config: &Path) -> Result<String, SshError> {
    Ok(format!(
        "{BEGIN_LINE}\nInclude {}\n{END}\n",
        config_path(banger_config)?
    ))
}

/// The file as install leaves it, and how many old blocks it replaced.
fn with_block_on_top(
    content: &[u8],
    block: &str,
    path: &Path,
) -> Result<(Vec<u8>, usize), SshError> {
    let (rest, removed) = without_blocks(content, path)?;
    let mut new = block.as_bytes().to_vec();
    if !rest.is_empty() {
        new.push(b'\n');
    }
    new.extend_from_slice(&rest);
    Ok((new, removed))
}

/// `content` without any banger block, each with the one blank line that
/// follows it; every other line is copied unchanged.
fn without_blocks(content: &[u8], path: &Path) -> Result<(Vec<u8>, usize), SshError> {
    let mut rest = Vec::with_capacity(content.len());
    let mut removed = 0;
    let mut lines = content
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .peekable();
    while let Some((index, line)) = lines.next() {
        if !line.trim_ascii().starts_with(BEGIN.as_bytes()) {
            rest.extend_from_slice(line);
            continue;
        }
        // A begin marker without an end is refused rather than guessed at:
        // removing "up to somewhere" could eat the user's settings.
        if !lines.any(|(_, l)| l.trim_ascii() == END.as_bytes()) {
            return Err(SshError::UnclosedBlock {
                path: path.to_path_buf(),
                line: index + 1,
            });
        }
        removed += 1;
        if lines
            .peek()
            .is_some_and(|(_, next)| matches!(*next, b"\n" | b"\r\n"))
        {
            lines.next();
        }
    }
    Ok((rest, removed))
}

/// The file a symlink points to, so writing replaces the target and leaves
/// the link in place; other paths are returned as they are.
fn resolve_link(path: &Path) -> Result<PathBuf, SshError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|source| SshError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
        _ => Ok(path.to_path_buf()),
    }
}

fn current_mode(path: &Path) -> Result<u32, SshError> {
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|source| SshError::Read {
            path: path.to_path_buf(),
            source,
        })
}
