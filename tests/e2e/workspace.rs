//! Workspace scenarios of the end-to-end suite (SPEC §1 flows 2, 3 and 6,
//! §10): `vm run PATH -- CMD` ships the repository with the uncommitted
//! work and runs the command in it; `workspace export` brings the guest's
//! changes back as a patch that applies on the host.

use std::path::PathBuf;
use std::time::Instant;

use crate::common::vmenv::{MINIMAL_IMAGE, VmEnv, report};
use crate::common::{assert_success, git, stderr, stdout};

/// A host repository: committed files, one uncommitted edit, one untracked
/// file, one ignored file.
pub(crate) struct HostRepo {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    head: String,
}

pub(crate) fn host_repo() -> HostRepo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop");
    std::fs::create_dir(&path).unwrap();
    git(&path, &["init", "--quiet", "--initial-branch=main"]);
    git(&path, &["config", "user.name", "Ada Host"]);
    git(&path, &["config", "user.email", "ada@example.com"]);
    std::fs::write(path.join("a.txt"), "committed\n").unwrap();
    std::fs::create_dir(path.join("src")).unwrap();
    std::fs::write(path.join("src/main.sh"), "echo main\n").unwrap();
    std::fs::write(path.join(".gitignore"), "*.log\n").unwrap();
    git(&path, &["add", "--all"]);
    git(&path, &["commit", "--quiet", "-m", "first"]);
    let head = git(&path, &["rev-parse", "HEAD"]);
    std::fs::write(path.join("a.txt"), "edited on the host\n").unwrap();
    std::fs::write(path.join("notes.txt"), "untracked\n").unwrap();
    std::fs::write(path.join("debug.log"), "ignored\n").unwrap();
    HostRepo {
        _dir: dir,
        path,
        head,
    }
}

pub fn run_in_workspace(env: &VmEnv) {
    let repo = host_repo();
    let repo_arg = repo.path.to_str().unwrap();
    let started = Instant::now();
    let out = env.banger(&[
        "vm",
        "run",
        "--rm",
        "--name",
        "e2e-ws-run",
        "--image",
        MINIMAL_IMAGE,
        "--memory",
        "512",
        repo_arg,
        "--",
        "sh",
        "-c",
        "pwd; cat a.txt; git rev-parse HEAD; git status --porcelain; \
         test ! -e notes.txt && test ! -e debug.log && echo clean-selection; exit 5",
    ]);
    report(&format!(
        "  vm run --rm PATH -- CMD: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("/root/shop\n"), "{text}");
    assert!(text.contains("edited on the host"), "{text}");
    assert!(text.contains(&repo.head), "{text}");
    assert!(text.contains(" M a.txt"), "{text}");
    assert!(text.contains("clean-selection"), "{text}");
    assert!(
        stderr(&out).contains("1 untracked file was not copied"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.banger(&["vm", "show", "e2e-ws-run"]).status.code(),
        Some(1)
    );
}

pub fn export_round_trip(env: &VmEnv) {
    let repo = host_repo();
    let repo_arg = repo.path.to_str().unwrap();
    let out = env.banger(&[
        "vm",
        "run",
        "--detach",
        "--name",
        "e2e-ws",
        "--image",
        MINIMAL_IMAGE,
        "--memory",
        "512",
        "--include-untracked",
        repo_arg,
    ]);
    assert_success(&out);
    let shown = env.show("e2e-ws");
    assert_eq!(shown["workspace"]["guest_path"], "/root/shop");
    assert_eq!(shown["workspace"]["base_commit"], repo.head.as_str());
    // Work in the guest: an edit, a commit, a new staged file, a new
    // unstaged one; `vm exec` runs in the workspace.
    let work = env.exec(
        "e2e-ws",
        "test -e notes.txt && echo guest >> a.txt && git commit -qam 'guest work' && \
         echo staged > staged.txt && git add staged.txt && echo loose > loose.txt",
    );
    assert_success(&work);
    // Preparing again would overwrite that work: refused, work kept.
    let again = env.banger(&["vm", "workspace", "prepare", "e2e-ws", repo_arg]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    let patch = repo.path.parent().unwrap().join("changes.patch");
    let out = env.banger(&[
        "vm",
        "workspace",
        "export",
        "e2e-ws",
        "--output",
        patch.to_str().unwrap(),
    ]);
    assert_success(&out);
    // The guest's staging area is as it was.
    let status = env.exec("e2e-ws", "git status --porcelain");
    assert!(
        stdout(&status).contains("A  staged.txt"),
        "{}",
        stdout(&status)
    );
    assert!(
        stdout(&status).contains("?? loose.txt"),
        "{}",
        stdout(&status)
    );
    // The patch applies to a clean checkout of the base on the host.
    let clean = repo.path.parent().unwrap().join("clean");
    git(
        repo.path.parent().unwrap(),
        &["clone", "--quiet", repo_arg, clean.to_str().unwrap()],
    );
    git(&clean, &["apply", "--index", patch.to_str().unwrap()]);
    let read = |rel: &str| std::fs::read_to_string(clean.join(rel)).unwrap();
    assert_eq!(read("a.txt"), "edited on the host\nguest\n");
    assert_eq!(read("notes.txt"), "untracked\n");
    assert_eq!(read("staged.txt"), "staged\n");
    assert_eq!(read("loose.txt"), "loose\n");
    assert!(!clean.join("debug.log").exists());
    assert_success(&env.banger(&["vm", "delete", "e2e-ws"]));
}
