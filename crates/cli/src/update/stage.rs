//! The new programs, downloaded into a staging directory only root can
//! write (under the install's lib directory: the cache directory belongs to
//! the owner, who must not be able to swap a file between its check and its
//! install), then run once to see that they are what the manifest says.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use banger_image::debian::{Fetch, download_verified};
use banger_sys::Cmd;

use super::UpdateError;
use super::manifest::{PROGRAMS, Release, resolve_url};
use crate::system::layout::Layout;

/// The staging directory, removed when dropped (after a swap it is empty).
pub struct Staged {
    dir: PathBuf,
}

impl Staged {
    /// An existing directory as the staging directory (tests).
    #[cfg(test)]
    pub fn at(dir: PathBuf) -> Staged {
        Staged { dir }
    }

    pub fn path(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn download(
    layout: &Layout,
    fetch: &dyn Fetch,
    manifest_url: &str,
    release: &Release,
) -> Result<Staged, UpdateError> {
    let dir = layout
        .lib_dir()
        .join(format!(".update-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(UpdateError::io("create", &dir))?;
    let staged = Staged { dir };
    for program in PROGRAMS {
        let entry = release.files.by_name(program);
        let url = resolve_url(manifest_url, &entry.url)?;
        let dest = staged.path(program);
        download_verified(fetch, &url, &entry.expected()?, &dest).map_err(|source| {
            UpdateError::Download {
                what: format!("{program} of v{}", release.version),
                source: Box::new(source),
            }
        })?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
            .map_err(UpdateError::io("make executable", &dest))?;
    }
    Ok(staged)
}

/// `--version` of both binaries names the release's version and commit;
/// `bangerd --check-migrations` accepts the current store (pending
/// migrations are fine: the new daemon applies them; a store newer than the
/// release is not); the agent is static.
pub fn sanity(staged: &Staged, release: &Release) -> Result<(), UpdateError> {
    for program in ["banger", "bangerd"] {
        let out = run(&staged.path(program), &["--version"], program)?;
        let want = format!("{program} v{} (commit {},", release.version, release.commit);
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !said.starts_with(&want) {
            return Err(UpdateError::Sanity {
                program,
                why: format!(
                    "`--version` printed {:?}, not {want:?}...",
                    banger_api::text::clean_guest_text(said.trim())
                ),
            });
        }
    }
    let out = run(&staged.path("bangerd"), &["--check-migrations"], "bangerd")?;
    match out.status.code() {
        Some(0 | 1) => {}
        Some(2) => {
            return Err(UpdateError::Sanity {
                program: "bangerd",
                why: "the state store is newer than this release (a downgrade across a schema change)".into(),
            });
        }
        _ => {
            return Err(UpdateError::Sanity {
                program: "bangerd",
                why: format!(
                    "`--check-migrations` failed: {}",
                    banger_api::text::clean_guest_text(String::from_utf8_lossy(&out.stderr).trim())
                ),
            });
        }
    }
    banger_image::agent_bin::check_static(&staged.path("banger-agent")).map_err(|e| {
        UpdateError::Sanity {
            program: "banger-agent",
            why: e.to_string(),
        }
    })
}

/// What a run ended with: its exit status and output.
struct Ran {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run(path: &Path, args: &[&str], program: &'static str) -> Result<Ran, UpdateError> {
    let (status, out) =
        Cmd::new(path)
            .args(args)
            .run_any_status()
            .map_err(|e| UpdateError::Sanity {
                program,
                why: format!("cannot run it: {e}"),
            })?;
    Ok(Ran {
        status,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}
