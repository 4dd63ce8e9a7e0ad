//! Which repository, which commit, which files: everything decided before
//! anything is shipped, so `--dry-run` and the real run agree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::WorkspaceError;
use crate::git::HostRepo;

/// The files that mark a repository as wanting a tooling bootstrap.
pub const TOOLING_FILES: &[&str] = &[".mise.toml", ".tool-versions"];

/// What the user chose to ship.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Also ship untracked files that are not ignored.
    pub include_untracked: bool,
    /// The base commit (any commit-ish); the checked-out HEAD when absent.
    pub from: Option<String>,
    /// The branch the guest's checkout is on; see [`Plan::branch`].
    pub branch: Option<String>,
}

/// A checked repository and what shipping it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The work tree's top level.
    pub root: PathBuf,
    /// The full id of the commit the guest's clone has.
    pub base_commit: String,
    /// The guest's branch: `--branch`, else the host's current branch when
    /// the base is what is checked out; `None` is a detached checkout.
    pub branch: Option<String>,
    /// The working tree is laid over the base commit: true exactly when the
    /// base is the checked-out commit (another commit's tree would be mixed
    /// with this one's edits otherwise).
    pub overlay: bool,
    /// Every file the guest's working tree gets, relative, sorted.
    pub files: Vec<PathBuf>,
    /// Of those, the ones taken from the host's working tree (overlay):
    /// the ones that differ from the base commit.
    pub overlaid: Vec<PathBuf>,
    /// Files of the base commit that the working tree no longer has.
    pub removed: Vec<PathBuf>,
    /// Untracked, non-ignored files left out (no `--include-untracked`).
    pub untracked_skipped: usize,
    /// The host repository's `origin`, which the guest's clone points at.
    pub origin_url: Option<String>,
    /// `user.name` and `user.email` as the host repository sees them.
    pub identity: Vec<(String, String)>,
    /// The tooling file found at the top level, if any.
    pub tooling: Option<String>,
}

/// Checks the repository at `path` and decides what ships.
///
/// Git runs through a [`HostRepo`]: never under the repository's own
/// config, so nothing the repository names is run (SPEC §12).
pub fn plan(path: &Path, selection: &Selection) -> Result<Plan, WorkspaceError> {
    let repo = HostRepo::open(path)?;
    let root = repo.work_tree().to_owned();
    let run = |args: &[&str]| repo.output(args);
    let list = |args: &[&str]| repo.paths(args);
    if root.join(".gitmodules").exists()
        || run(&["ls-files", "--stage"])?
            .lines()
            .any(|l| l.starts_with("160000 "))
    {
        return Err(WorkspaceError::Submodules { root });
    }
    let head = run(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .map_err(|_| WorkspaceError::NoCommits { root: root.clone() })?;
    let base_commit = match &selection.from {
        None => head.clone(),
        Some(rev) => resolve(&repo, rev)?,
    };
    let overlay = base_commit == head;
    let branch = match &selection.branch {
        Some(name) => Some(check_branch(&repo, name)?),
        None if overlay => run(&["symbolic-ref", "--quiet", "--short", "HEAD"]).ok(),
        None => None,
    };
    let base_files = list(&[
        "ls-tree",
        "-r",
        "-z",
        "--name-only",
        "--full-tree",
        &base_commit,
    ])?;
    let (files, overlaid, removed, untracked_skipped) = if overlay {
        let deleted: BTreeSet<PathBuf> = list(&["ls-files", "-z", "--deleted"])?
            .into_iter()
            .collect();
        let mut shipped: BTreeSet<PathBuf> = list(&["ls-files", "-z", "--cached"])?
            .into_iter()
            .filter(|p| !deleted.contains(p))
            .collect();
        let untracked = list(&["ls-files", "-z", "--others", "--exclude-standard"])?;
        // What differs from the base (staged or not): only these travel
        // from the working tree; the clone has every other file already.
        let mut changed: BTreeSet<PathBuf> = list(&[
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            "--no-textconv",
            "--no-ext-diff",
            "HEAD",
            "--",
        ])?
        .into_iter()
        .collect();
        let skipped = if selection.include_untracked {
            changed.extend(untracked.iter().cloned());
            shipped.extend(untracked);
            0
        } else {
            untracked.len()
        };
        let shipped = only_real_files(&root, shipped);
        let removed = base_files
            .into_iter()
            .filter(|p| !shipped.contains(p))
            .collect();
        let overlaid = shipped.intersection(&changed).cloned().collect();
        (shipped.into_iter().collect(), overlaid, removed, skipped)
    } else {
        let mut files = base_files;
        files.sort();
        (files, Vec::new(), Vec::new(), 0)
    };
    // Read from the repository's config file as data (no includes).
    let identity = ["user.name", "user.email"]
        .into_iter()
        .filter_map(|key| repo.config(key).map(|v| (key.to_owned(), v)))
        .collect();
    let tooling = TOOLING_FILES
        .iter()
        .find(|name| files.iter().any(|f| f.as_os_str() == **name))
        .map(|name| (*name).to_owned());
    Ok(Plan {
        origin_url: repo
            .config("remote.origin.url")
            .map(|url| strip_credentials(&url)),
        root,
        base_commit,
        branch,
        overlay,
        files,
        overlaid,
        removed,
        untracked_skipped,
        identity,
        tooling,
    })
}

fn resolve(repo: &HostRepo, rev: &str) -> Result<String, WorkspaceError> {
    let bad = |reason: &str| WorkspaceError::BadRevision {
        rev: rev.to_owned(),
        root: repo.work_tree().to_owned(),
        reason: reason.to_owned(),
    };
    if rev.is_empty() || rev.starts_with('-') {
        return Err(bad("not a revision"));
    }
    let spec = format!("{rev}^{{commit}}");
    repo.output(&[
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &spec,
    ])
    .map_err(|_| bad("no such commit"))
}

fn check_branch(repo: &HostRepo, name: &str) -> Result<String, WorkspaceError> {
    let bad = || WorkspaceError::BadBranch {
        name: name.to_owned(),
    };
    if name.is_empty() || name.starts_with('-') || name.starts_with('@') {
        return Err(bad());
    }
    repo.output(&["check-ref-format", "--branch", name])
        .map_err(|_| bad())?;
    Ok(name.to_owned())
}

/// `url` without the credentials it may carry, for the guest's `origin`
/// (SPEC §12 "Secrets stay where they belong"). For `http(s)`/`ftp(s)`
/// URLs every userinfo goes (`user:TOKEN@`, a bare `TOKEN@` — the guest
/// authenticates its own way) and so do a query and a fragment; for other
/// `scheme://` URLs (`ssh://git@…`) the user stays and a `:password` goes.
/// As in git, a userinfo is what precedes an `@` before the first `/`, `?`
/// or `#` after `://`. Scp-like `git@host:path`, local paths and `ext::`
/// remain as they are: a user name is not a secret.
pub fn strip_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let scheme = &url[..scheme_end];
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return url.to_owned();
    }
    let webby = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "http" | "https" | "ftp" | "ftps"
    );
    let rest = &url[scheme_end + 3..];
    // As git: the host part ends at the first `/`, `?` or `#`.
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let authority = match authority.rfind('@') {
        Some(at) if webby => authority[at + 1..].to_owned(),
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _password)) => format!("{user}@{}", &authority[at + 1..]),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = if webby {
        tail.split(['?', '#']).next().unwrap_or("")
    } else {
        tail
    };
    format!("{scheme}://{authority}{tail}")
}

/// Keeps the paths that are really files (or symlinks) under `root`: none
/// missing, and none reached through a symlinked directory, whose target
/// could be anywhere on the host.
fn only_real_files(root: &Path, paths: BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let mut real_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    paths
        .into_iter()
        .filter(|rel| {
            let mut dir = PathBuf::new();
            for part in rel.parent().into_iter().flat_map(|p| p.components()) {
                dir.push(part);
                if real_dirs.contains(&dir) {
                    continue;
                }
                match std::fs::symlink_metadata(root.join(&dir)) {
                    Ok(m) if m.is_dir() => {
                        real_dirs.insert(dir.clone());
                    }
                    _ => return false,
                }
            }
            std::fs::symlink_metadata(root.join(rel)).is_ok_and(|m| !m.is_dir())
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
