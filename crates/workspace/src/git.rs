//! Running git on a repository the daemon may not own.
//!
//! The daemon can run as another user than the repository's owner (root in
//! development mode), so git's ownership check is switched off for these
//! calls; in exchange, nothing in the repository's config may run a
//! program: no fsmonitor hook, no hooks path, no pager.

use std::path::{Path, PathBuf};

use banger_sys::{Cmd, ProcessError};

/// Config every call carries.
const SAFE_CONFIG: &[&str] = &[
    "safe.directory=*",
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
];

/// What `git fetch` runs on the source repository: the same safety, and
/// any commit may be asked for (`--from` need not be a branch tip). Run by
/// git through a shell, so it is a fixed string.
pub const UPLOAD_PACK: &str = "git -c safe.directory=* -c core.fsmonitor=false \
                               -c core.hooksPath=/dev/null -c uploadpack.allowAnySHA1InWant=true upload-pack";

/// `git -C dir <safe config> ARGS...`.
pub fn cmd(dir: &Path) -> Cmd {
    let mut cmd = Cmd::new("git")
        .arg("-C")
        .arg(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0");
    for config in SAFE_CONFIG {
        cmd = cmd.args(["-c", config]);
    }
    cmd
}

/// Runs git in `dir` and returns its stdout, trimmed of the final newline.
pub fn output(dir: &Path, args: &[&str]) -> Result<String, ProcessError> {
    let out = cmd(dir).args(args).run()?;
    let mut text = out.stdout_str();
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

/// Runs git in `dir` and splits its `-z` output into paths, byte for byte
/// (a file name need not be UTF-8).
pub fn paths(dir: &Path, args: &[&str]) -> Result<Vec<PathBuf>, ProcessError> {
    use std::os::unix::ffi::OsStrExt;
    let out = cmd(dir).args(args).run()?;
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
        .collect())
}

/// Git on a repository banger made itself (temporary alias for the tests).
pub fn own_repo(dir: &Path) -> Cmd {
    cmd(dir)
}
