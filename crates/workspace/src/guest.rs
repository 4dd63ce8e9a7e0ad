//! What the guest runs for a workspace, and where the workspace goes.
//!
//! The scripts are fixed strings run as `sh -c SCRIPT sh ARGS...`: every
//! value reaches them as a positional argument, never spliced into the
//! script, so no path or commit id is ever interpreted by a shell.

use std::path::Path;

/// Extracts the archive on stdin into `$1`, which must not exist or be an
/// empty directory (a prepared workspace is never overwritten: it may hold
/// work). Files become root's, whoever owned them on the host.
pub const EXTRACT: &str = r#"set -e
dest="$1"
if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
  echo "$dest already exists in the guest and is not empty" >&2
  exit 17
fi
mkdir -p "$dest"
tar --extract --file=- --directory="$dest" --no-same-owner --blocking-factor=2048 --read-full-records
"#;

/// The exit status of [`EXTRACT`] when the destination is taken.
pub const EXTRACT_EXISTS: i32 = 17;

/// Prints the binary patch of everything in workspace `$1` that differs
/// from commit `$2` (commits made in the guest, staged and unstaged edits,
/// new files that are not ignored), using a scratch copy of the index so
/// the guest's own staging is left as it was.
pub const EXPORT: &str = r#"set -e
cd "$1"
index=$(mktemp)
trap 'rm -f "$index"' EXIT
git_dir=$(git rev-parse --git-dir)
if [ -f "$git_dir/index" ]; then cp "$git_dir/index" "$index"; else rm -f "$index"; fi
GIT_INDEX_FILE="$index" git add --all
GIT_INDEX_FILE="$index" git -c core.pager=cat diff --cached --binary --full-index --no-color "$2" --
"#;

/// Installs the tools `.mise.toml`/`.tool-versions` ask for, logging to
/// `$2`; exits [`BOOTSTRAP_NO_MISE`] when the image has no mise.
pub const BOOTSTRAP: &str = r#"cd "$1"
mkdir -p "$(dirname "$2")"
if ! command -v mise >/dev/null 2>&1; then
  echo "mise is not installed in this image; no tools were installed" >"$2"
  exit 3
fi
{ mise trust --yes . && mise install --yes; } >"$2" 2>&1
"#;

/// The exit status of [`BOOTSTRAP`] when mise is missing.
pub const BOOTSTRAP_NO_MISE: i32 = 3;

/// Where the bootstrap of the VM named `vm` logs (SPEC §10).
pub fn bootstrap_log(vm: &str) -> String {
    format!("/root/.cache/banger/vm-run-tooling-{vm}.log")
}

/// The argv that runs `script` with `args` as `$1...`.
pub fn argv(script: &str, args: &[&str]) -> Vec<String> {
    ["sh", "-c", script, "sh"]
        .into_iter()
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// The argv that runs `cmd` in a login shell (so tools set up by profile
/// scripts, such as mise's, are on PATH) without a shell ever parsing it.
pub fn login_argv(cmd: &[String]) -> Vec<String> {
    ["sh", "-l", "-c", r#"exec "$@""#, "sh"]
        .into_iter()
        .map(str::to_owned)
        .chain(cmd.iter().cloned())
        .collect()
}

/// The default guest path for a repository whose top level is `root`:
/// `/root/<its directory name>` when that name is plain, else `/root/repo`.
pub fn default_path(root: &Path) -> String {
    let name = root.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if is_plain_name(name) {
        format!("/root/{name}")
    } else {
        "/root/repo".to_owned()
    }
}

/// Checks a guest path given by the user: absolute, under `/root/`, made of
/// plain names only (no `.`, `..` or empty parts, nothing a shell or ssh
/// command line would treat specially).
pub fn check_path(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix("/root/") else {
        return Err(format!(
            "guest path {path:?} must be under /root/ (e.g. /root/repo)"
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || !rest.split('/').all(is_plain_name) {
        return Err(format!(
            "guest path {path:?} may only use letters, digits, '.', '_' and '-' in each part, without '.' or '..' parts"
        ));
    }
    Ok(())
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_the_directory_name_when_plain() {
        assert_eq!(
            default_path(Path::new("/home/u/src/banger")),
            "/root/banger"
        );
        assert_eq!(default_path(Path::new("/home/u/my repo")), "/root/repo");
        assert_eq!(default_path(Path::new("/home/u/-x")), "/root/repo");
        assert_eq!(default_path(Path::new("/")), "/root/repo");
    }

    #[test]
    fn guest_paths_stay_plain_and_under_root() {
        assert!(check_path("/root/repo").is_ok());
        assert!(check_path("/root/src/app-1.2_x/").is_ok());
        for bad in [
            "/root/",
            "/root",
            "/etc/x",
            "root/x",
            "/root/../etc",
            "/root/a/./b",
            "/root/a//b",
            "/root/a b",
            "/root/$(x)",
            "/root/a\nb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scripts_take_values_as_arguments() {
        let argv = argv(EXTRACT, &["/root/a b"]);
        assert_eq!(&argv[..2], ["sh", "-c"]);
        assert_eq!(argv[3..], ["sh", "/root/a b"]);
        let login = login_argv(&["echo".into(), "$HOME; rm".into()]);
        assert_eq!(login[..5], ["sh", "-l", "-c", "exec \"$@\"", "sh"]);
        assert_eq!(login[5..], ["echo", "$HOME; rm"]);
    }

    #[test]
    fn scripts_run_here_as_they_would_in_the_guest() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ws");
        let run = |script: &str, args: &[&str], stdin: Vec<u8>| {
            let argv = argv(script, args);
            banger_sys::Cmd::new(&argv[0])
                .args(&argv[1..])
                .stdin_bytes(stdin)
                .run()
        };
        // An archive of one file, made by tar itself.
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f"), "hi").unwrap();
        let archive = banger_sys::Cmd::new("tar")
            .args(["-c", "-f", "-", "-C"])
            .arg(&src)
            .arg("f")
            .run()
            .unwrap()
            .stdout;
        let d = dest.to_str().unwrap();
        run(EXTRACT, &[d], archive.clone()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "hi");
        let err = run(EXTRACT, &[d], archive).unwrap_err().to_string();
        assert!(
            err.contains("exit status 17") && err.contains("not empty"),
            "{err}"
        );
    }
}
