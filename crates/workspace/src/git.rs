//! Running git on a repository the daemon does not trust (SPEC §12
//! "Repositories are data").
//!
//! The daemon may run as root over a user's repository, and a repository's
//! config can name programs in a great many places: filter drivers (clean,
//! smudge, process), diff drivers (textconv, command), `diff.external`,
//! `core.fsmonitor`, hooks and `core.hooksPath`, pagers, credential helpers,
//! `core.sshCommand`, `core.askPass`, `gpg.program`, `uploadpack.*` hooks,
//! `core.alternateRefsCommand`, … and it can pull more config in through
//! `include.path`/`includeIf`, `config.worktree`, and point git elsewhere
//! with `core.worktree`. Attributes (`.gitattributes`, `info/attributes`)
//! then choose which driver applies to which file. Listing the dangerous
//! keys and overriding each with `-c` is a losing game (new keys, includes,
//! drivers of any name), so instead **git never loads the repository's
//! config at all**:
//!
//! - [`HostRepo::open`] finds the repository itself (a `.git` directory or
//!   `gitdir:` file, walking up; the work tree is the directory holding
//!   `.git`, whatever `core.worktree` says) and builds a *shadow git
//!   directory* of the daemon's own in a fresh 0700 temporary directory:
//!   `objects/info/alternates` pointing at the repository's object store,
//!   copies of `HEAD` and the other `*HEAD` files, `refs/`, `packed-refs`
//!   (or `reftable/`), `shallow`, `index` (and split-index `sharedindex.*`)
//!   and `info/exclude`, and a `config` written by banger. That config holds
//!   only a few data-only keys copied from the repository's config after
//!   checking their values (format version, object format, ref storage,
//!   `core.filemode`, `core.symlinks`, `core.ignorecase`, `core.autocrlf`,
//!   `core.eol`, `core.precomposeunicode`); hooks are never copied.
//! - Every command on the repository runs with `GIT_DIR` = the shadow,
//!   `GIT_WORK_TREE` = the repository's top, `GIT_CONFIG_NOSYSTEM=1` and
//!   `GIT_CONFIG_GLOBAL=/dev/null`: the only config git reads is banger's.
//!   Attributes still come from the work tree and `.git/info/attributes` is
//!   not even copied, but an attribute naming a driver that no config
//!   defines does nothing. Objects, refs and the index are data.
//! - The few values banger needs from the repository's config (`origin`'s
//!   URL, `user.name`, `user.email`) are read as data with `git config
//!   --file <config> --no-includes --list`, run with `GIT_DIR` set to the
//!   (still empty) shadow so that git neither discovers nor loads any
//!   repository while reading the file.
//! - The `-c` overrides below (no fsmonitor, hooks path `/dev/null`, `cat`
//!   as pager) stay as a second line on every call.
//!
//! Git's ownership check (`safe.directory`) cannot refuse a repository the
//! daemon does not own: with `GIT_DIR` given, git does no discovery and so
//! no ownership check, and the shadow belongs to the daemon anyway.
//!
//! Repositories banger made itself (the scratch clone, the guest's
//! workspace in tests) are run with [`own_repo`], which reads their config
//! (written by banger) but still no system or global config.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use banger_sys::{Cmd, ProcessError};

use crate::error::WorkspaceError;

/// Config every call carries, on top of the shadow's own config.
const SAFE_CONFIG: &[&str] = &[
    "safe.directory=*",
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
];

/// What `git fetch` runs on the shadow git directory (see
/// [`HostRepo::shadow_dir`]): the same safety, and any commit may be asked
/// for (`--from` need not be a branch tip). Run by git through a shell, so
/// it is a fixed string; `GIT_CONFIG_NOSYSTEM` and `GIT_CONFIG_GLOBAL` are
/// inherited from the fetch.
pub const UPLOAD_PACK: &str = "git -c safe.directory=* -c core.fsmonitor=false \
                               -c core.hooksPath=/dev/null -c uploadpack.allowAnySHA1InWant=true upload-pack";

/// Environment every git call carries: no system or global config, no
/// prompts, no optional locks.
fn base(cmd: Cmd) -> Cmd {
    let mut cmd = cmd
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0");
    for config in SAFE_CONFIG {
        cmd = cmd.args(["-c", config]);
    }
    cmd
}

/// `git -C dir <safe config> ARGS...` on a repository banger made itself
/// (the scratch clone): its config is banger's, so it is read. Never for a
/// user's repository; that is [`HostRepo`].
pub fn own_repo(dir: &Path) -> Cmd {
    base(Cmd::new("git").arg("-C").arg(dir))
}

/// Runs git on the repository holding `dir` and returns its stdout, trimmed
/// of the final newline. Opens a [`HostRepo`] for the one call.
pub fn output(dir: &Path, args: &[&str]) -> Result<String, WorkspaceError> {
    HostRepo::open(dir)?.output(args)
}

/// A user's repository, seen through a shadow git directory of the
/// daemon's own (see the module docs); the shadow is removed when dropped.
#[derive(Debug)]
pub struct HostRepo {
    work_tree: PathBuf,
    shadow: tempfile::TempDir,
    config: Vec<(String, String)>,
}

impl HostRepo {
    /// Finds the repository holding `path` (a directory or a file in one)
    /// and builds its shadow. Errors are the preflight ones a user can act
    /// on: missing path, not a repository, a bare repository.
    pub fn open(path: &Path) -> Result<HostRepo, WorkspaceError> {
        let (work_tree, git_dir) = discover(path)?;
        let common_dir = match read_small(&git_dir.join("commondir")) {
            Some(text) => git_dir.join(text.trim_end_matches(['\n', '\r'])),
            None => git_dir.clone(),
        };
        let shadow = tempfile::Builder::new()
            .prefix(".banger-git-")
            .tempdir()
            .map_err(|source| WorkspaceError::Io {
                what: "cannot create a temporary directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        let config = read_config(&common_dir.join("config"), shadow.path()).map_err(|source| {
            WorkspaceError::Git {
                root: work_tree.clone(),
                source,
            }
        })?;
        let repo = HostRepo {
            work_tree,
            shadow,
            config,
        };
        repo.fill_shadow(&git_dir, &common_dir)
            .map_err(|(what, path, source)| WorkspaceError::Io { what, path, source })?;
        Ok(repo)
    }

    /// The work tree's top level (canonical).
    pub fn work_tree(&self) -> &Path {
        &self.work_tree
    }

    /// The shadow git directory: what `git fetch` fetches from.
    pub fn shadow_dir(&self) -> &Path {
        self.shadow.path()
    }

    /// `git <safe config> ARGS...` on the work tree through the shadow.
    pub fn cmd(&self) -> Cmd {
        base(
            Cmd::new("git")
                .arg("-C")
                .arg(&self.work_tree)
                .env("GIT_DIR", self.shadow.path())
                .env("GIT_WORK_TREE", &self.work_tree),
        )
    }

    /// Runs git and returns its stdout, trimmed of the final newline.
    pub fn output(&self, args: &[&str]) -> Result<String, WorkspaceError> {
        let out = self.run(args)?;
        let mut text = out.stdout_str();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }

    /// Runs git and splits its `-z` output into paths, byte for byte (a
    /// file name need not be UTF-8).
    pub fn paths(&self, args: &[&str]) -> Result<Vec<PathBuf>, WorkspaceError> {
        let out = self.run(args)?;
        Ok(out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
            .collect())
    }

    fn run(&self, args: &[&str]) -> Result<banger_sys::Output, WorkspaceError> {
        self.cmd()
            .args(args)
            .run()
            .map_err(|source| WorkspaceError::Git {
                root: self.work_tree.clone(),
                source,
            })
    }

    /// The last value of `key` in the repository's own config file
    /// (includes not followed), read as data.
    pub fn config(&self, key: &str) -> Option<String> {
        let key = normalise_key(key);
        self.config
            .iter()
            .rev()
            .find(|(k, _)| normalise_key(k) == key)
            .map(|(_, v)| v.clone())
    }

    /// Copies what git needs to read the repository (never its config or
    /// hooks) and writes banger's config.
    fn fill_shadow(&self, git_dir: &Path, common_dir: &Path) -> Result<(), CopyError> {
        let shadow = self.shadow.path();
        let mkdir = |p: PathBuf| std::fs::create_dir_all(&p).map_err(|e| ("cannot create", p, e));
        mkdir(shadow.join("objects/info"))?;
        mkdir(shadow.join("refs"))?;
        mkdir(shadow.join("info"))?;
        let mut alternates = common_dir.join("objects").into_os_string().into_vec();
        if alternates.iter().any(|b| *b == b'\n' || *b == b'\r') {
            // One path a line: a newline would let the path name a second
            // object store.
            return Err((
                "cannot read a repository whose path has a line break:",
                common_dir.to_owned(),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        }
        alternates.push(b'\n');
        let path = shadow.join("objects/info/alternates");
        std::fs::write(&path, alternates).map_err(|e| ("cannot write", path, e))?;
        copy_tree(&common_dir.join("refs"), &shadow.join("refs"))?;
        copy_tree(&common_dir.join("reftable"), &shadow.join("reftable"))?;
        for name in ["packed-refs", "shallow", "info/exclude"] {
            copy_file(&common_dir.join(name), &shadow.join(name))?;
        }
        if git_dir != common_dir {
            // A linked work tree: its own HEAD, index and per-worktree refs.
            copy_tree(&git_dir.join("refs"), &shadow.join("refs"))?;
        }
        let entries = std::fs::read_dir(git_dir).map_err(|e| ("cannot read", git_dir.into(), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with("HEAD") || name == "index" || name.starts_with("sharedindex.") {
                copy_file(&entry.path(), &shadow.join(&*name))?;
            }
        }
        let path = shadow.join("config");
        std::fs::write(&path, self.shadow_config()).map_err(|e| ("cannot write", path, e))
    }

    /// Banger's config for the shadow: the repository's format, and the
    /// data-only settings that change what `status` sees, each value
    /// checked against the few its key can have.
    fn shadow_config(&self) -> String {
        let mut text = String::from("[core]\n\tbare = false\n");
        let mut extensions = String::new();
        let version = self
            .config("core.repositoryformatversion")
            .filter(|v| v == "0" || v == "1")
            .unwrap_or_else(|| "0".to_owned());
        text.push_str(&format!("\trepositoryformatversion = {version}\n"));
        for key in SHADOW_KEYS {
            let Some(value) = self.config(key).filter(|v| valid_value(key, v)) else {
                continue;
            };
            let (section, name) = key.split_once('.').unwrap_or(("core", key));
            let line = format!("\t{name} = {value}\n");
            if section == "extensions" {
                extensions.push_str(&line);
            } else {
                text.push_str(&line);
            }
        }
        if !extensions.is_empty() {
            text.push_str("[extensions]\n");
            text.push_str(&extensions);
        }
        text
    }
}

/// The repository's settings the shadow carries over: data only, never a
/// program, a path or anything git would act on beyond reading.
const SHADOW_KEYS: &[&str] = &[
    "core.filemode",
    "core.symlinks",
    "core.ignorecase",
    "core.precomposeunicode",
    "core.autocrlf",
    "core.eol",
    "extensions.objectformat",
    "extensions.refstorage",
];

/// Whether `value` is one that `key` (of [`SHADOW_KEYS`]) can have; only
/// such values are written into the shadow's config.
fn valid_value(key: &str, value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    let boolean = matches!(
        value.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
    );
    match key {
        "core.autocrlf" => boolean || value == "input",
        "core.eol" => matches!(value.as_str(), "lf" | "crlf" | "native"),
        "extensions.objectformat" => matches!(value.as_str(), "sha1" | "sha256"),
        "extensions.refstorage" => matches!(value.as_str(), "files" | "reftable"),
        _ => boolean,
    }
}

/// Finds the work tree and git directory holding `path`, as git's own
/// discovery would but without reading any config: at each level up, a
/// `.git` directory or a `gitdir:` file makes that level the work tree; a
/// directory that is itself a git directory is a bare repository.
fn discover(path: &Path) -> Result<(PathBuf, PathBuf), WorkspaceError> {
    let meta = std::fs::metadata(path).map_err(|_| WorkspaceError::Missing {
        path: path.to_owned(),
    })?;
    let start = if meta.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("/"))
    };
    let start = std::fs::canonicalize(start).map_err(|_| WorkspaceError::Missing {
        path: path.to_owned(),
    })?;
    let not_a_repo = || WorkspaceError::NotARepo {
        path: path.to_owned(),
    };
    for dir in start.ancestors() {
        let dot = dir.join(".git");
        match std::fs::metadata(&dot) {
            Ok(m) if m.is_dir() && is_git_dir(&dot) => return Ok((dir.to_owned(), dot)),
            Ok(m) if m.is_file() => {
                let target = read_small(&dot)
                    .as_deref()
                    .and_then(|t| t.strip_prefix("gitdir:"))
                    .map(|t| dir.join(t.trim()))
                    .and_then(|t| std::fs::canonicalize(t).ok())
                    .filter(|t| is_git_dir(t))
                    .ok_or_else(not_a_repo)?;
                return Ok((dir.to_owned(), target));
            }
            _ => {}
        }
        if is_git_dir(dir) {
            // Inside a `.git` directory is not a work tree either.
            if dir.file_name().is_some_and(|n| n == ".git") {
                return Err(not_a_repo());
            }
            return Err(WorkspaceError::Bare {
                path: path.to_owned(),
            });
        }
    }
    Err(not_a_repo())
}

/// Whether `dir` looks like a git directory: `HEAD`, and objects and refs
/// of its own or through `commondir`.
fn is_git_dir(dir: &Path) -> bool {
    let has_common = dir.join("commondir").is_file();
    dir.join("HEAD").is_file()
        && (has_common || (dir.join("objects").is_dir() && dir.join("refs").is_dir()))
}

/// A small text file (`.git` files, `commondir`), or `None`.
fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 4096 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Reads a config file as data: every `key=value`, in order, includes not
/// followed. Git runs with `GIT_DIR` set to `empty_dir` (not a repository
/// yet) so that it neither discovers nor loads any repository's config.
fn read_config(file: &Path, empty_dir: &Path) -> Result<Vec<(String, String)>, ProcessError> {
    if !file.is_file() {
        return Ok(Vec::new());
    }
    let out = base(Cmd::new("git"))
        .env("GIT_DIR", empty_dir)
        .args(["config", "--no-includes", "--null", "--list", "--file"])
        .arg(file)
        .run()?;
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let text = String::from_utf8_lossy(entry);
            match text.split_once('\n') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                // A key with no `=` is a boolean true.
                None => (text.into_owned(), "true".to_owned()),
            }
        })
        .collect())
}

/// `Section.sub.Name` → `section.sub.name`: section and name are
/// case-insensitive, a subsection is not.
fn normalise_key(key: &str) -> String {
    match (key.find('.'), key.rfind('.')) {
        (Some(first), Some(last)) if first != last => format!(
            "{}{}{}",
            key[..first].to_ascii_lowercase(),
            &key[first..last],
            key[last..].to_ascii_lowercase()
        ),
        _ => key.to_ascii_lowercase(),
    }
}

type CopyError = (&'static str, PathBuf, std::io::Error);

/// Copies `from` to `to` if it is a regular file (never through a symlink).
fn copy_file(from: &Path, to: &Path) -> Result<(), CopyError> {
    match std::fs::symlink_metadata(from) {
        Ok(m) if m.is_file() => {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| ("cannot create", parent.to_owned(), e))?;
            }
            std::fs::copy(from, to)
                .map(|_| ())
                .map_err(|e| ("cannot copy", from.to_owned(), e))
        }
        _ => Ok(()),
    }
}

/// Copies the regular files under `from` into `to`, merging with what is
/// there; symlinks are skipped, a missing `from` is nothing to copy.
fn copy_tree(from: &Path, to: &Path) -> Result<(), CopyError> {
    let Ok(meta) = std::fs::symlink_metadata(from) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(|e| ("cannot create", to.to_owned(), e))?;
    let entries = std::fs::read_dir(from).map_err(|e| ("cannot read", from.to_owned(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ("cannot read", from.to_owned(), e))?;
        let kind = entry
            .file_type()
            .map_err(|e| ("cannot read", entry.path(), e))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            copy_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}
