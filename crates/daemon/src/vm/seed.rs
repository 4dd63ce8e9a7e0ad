//! What a new work disk starts with (SPEC §7): the image's `/root`, then
//! the `[[file_sync]]` entries, then the owner's git identity as
//! `/root/.gitconfig` unless a synced file already is one. Composed in a
//! staging directory that `mkfs.ext4 -d` copies, removed afterwards.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use banger_config::ResolvedFileSync;
use banger_image::images::GuestTree;
use banger_sys::Cmd;

use crate::error::DaemonError;

/// A composed seed directory, removed when dropped.
pub(super) struct Seed {
    dir: PathBuf,
}

impl Seed {
    pub(super) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Composes the seed in `dir` (must not exist). Returns it with warnings
/// for the user: synced files that are missing or not regular files.
pub(super) fn compose(
    dir: &Path,
    image_seed: Option<&Path>,
    sync: &[ResolvedFileSync],
    owner_home: Option<&Path>,
) -> Result<(Seed, Vec<String>), DaemonError> {
    let io = |what: &str, path: &Path, source: std::io::Error| DaemonError::Seed {
        what: format!("{what} {}", path.display()),
        source,
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("create", dir, e))?;
    let seed = Seed {
        dir: dir.to_owned(),
    };
    if let Some(image_seed) = image_seed {
        Cmd::new("cp")
            .args(["-a", "--reflink=auto", "--"])
            .arg(image_seed.join("."))
            .arg(dir)
            .run()?;
    }
    // Everything below writes through the tree: a symlink the image put in
    // its /root (`.config -> /etc`, say) resolves inside the seed, never
    // onto the host's own files.
    let tree = GuestTree::open(dir)?.with_dir_mode(0o700);
    let mut warnings = Vec::new();
    for entry in sync {
        match copy_synced(entry, &tree, owner_home) {
            Ok(()) => {}
            Err(Skip(why)) => warnings.push(format!(
                "warning: [[file_sync]] {}: {why}; not copied",
                entry.host.display()
            )),
        }
    }
    if !tree.exists("/.gitconfig") {
        if let Some(text) = owner_home.and_then(git_identity) {
            tree.write_file("/.gitconfig", &mut text.as_bytes(), 0o644)?;
        }
    }
    Ok((seed, warnings))
}

/// Why one synced file was left out.
struct Skip(String);

fn copy_synced(
    entry: &ResolvedFileSync,
    tree: &GuestTree,
    home: Option<&Path>,
) -> Result<(), Skip> {
    let host = &entry.host;
    let real = match std::fs::canonicalize(host) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Skip("not found on the host".into()));
        }
        Err(e) => return Err(Skip(format!("cannot be read: {e}"))),
    };
    // The config only names paths inside the owner's home; a symlink there
    // must not lead the daemon elsewhere.
    if let Some(home) = home.and_then(|h| std::fs::canonicalize(h).ok()) {
        if !real.starts_with(&home) {
            return Err(Skip(format!(
                "leads outside the owner's home (to {})",
                real.display()
            )));
        }
    }
    if !real.is_file() {
        return Err(Skip("is not a regular file".into()));
    }
    let rel = entry
        .guest
        .strip_prefix("/root")
        .map_err(|_| Skip("guest path is not under /root".into()))?;
    let mut file = std::fs::File::open(&real).map_err(|e| Skip(format!("cannot be read: {e}")))?;
    // A synced file replaces what the image had there.
    tree.write_file(&format!("/{}", rel.display()), &mut file, entry.mode)
        .map_err(|e| Skip(format!("cannot be copied: {}", banger_api::error_chain(&e))))
}

/// The owner's `user.name` and `user.email` as a `.gitconfig`, if git
/// knows either.
fn git_identity(home: &Path) -> Option<String> {
    let get = |key: &str| {
        Cmd::new("git")
            .args(["config", "--global", "--get", key])
            .env("HOME", home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .run()
            .ok()
            .map(|o| o.stdout_str().trim_end_matches('\n').to_owned())
            .filter(|v| !v.is_empty() && !v.contains('\n'))
    };
    let (name, email) = (get("user.name"), get("user.email"));
    if name.is_none() && email.is_none() {
        return None;
    }
    let mut text = String::from("[user]\n");
    for (key, value) in [("name", name), ("email", email)] {
        if let Some(value) = value {
            let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
            text.push_str(&format!("\t{key} = \"{quoted}\"\n"));
        }
    }
    Some(text)
}

#[cfg(test)]
#[path = "seed_tests.rs"]
mod tests;
