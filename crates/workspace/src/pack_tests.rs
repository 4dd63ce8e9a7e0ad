use std::io::Read;

use super::*;
use crate::plan::{Selection, plan};
use crate::test_repo::Repo;

/// Packs `repo` and extracts the archive into a fresh directory.
fn ship(repo: &Repo, selection: &Selection) -> (tempfile::TempDir, std::path::PathBuf) {
    let p = plan(repo.path(), selection).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let packed = pack(&p, &scratch.path().join("s")).unwrap();
    let mut tar = packed.archive().unwrap();
    let mut archive = Vec::new();
    tar.read_to_end(&mut archive).unwrap();
    tar.finish().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("ws");
    std::fs::create_dir(&dest).unwrap();
    banger_sys::Cmd::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(&dest)
        .stdin_bytes(archive)
        .run()
        .unwrap();
    drop(packed);
    assert!(!scratch.path().join("s").exists(), "scratch left behind");
    (out, dest)
}

/// Git in the unpacked workspace, as the guest runs it (its own config).
fn git(dir: &Path, args: &[&str]) -> String {
    let mut out = crate::git::own_repo(dir)
        .args(args)
        .run()
        .unwrap()
        .stdout_str();
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

#[test]
fn the_guest_gets_a_shallow_clone_with_the_working_tree_laid_over() {
    let repo = Repo::new(&[("a.txt", "one"), ("gone.txt", "g"), ("keep/x", "x")]);
    repo.git(&["remote", "add", "origin", "https://example.com/r.git"]);
    repo.write("a.txt", "two");
    repo.commit("second");
    repo.write("a.txt", "edited, not committed");
    std::fs::remove_file(repo.path().join("gone.txt")).unwrap();
    repo.write("new.txt", "untracked");
    let (_keep, ws) = ship(
        &repo,
        &Selection {
            include_untracked: true,
            ..Selection::default()
        },
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("a.txt")).unwrap(),
        "edited, not committed"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("new.txt")).unwrap(),
        "untracked"
    );
    assert!(!ws.join("gone.txt").exists());
    assert_eq!(
        git(&ws, &["rev-parse", "HEAD"]),
        repo.git(&["rev-parse", "HEAD"])
    );
    assert_eq!(git(&ws, &["rev-parse", "--is-shallow-repository"]), "true");
    assert_eq!(git(&ws, &["symbolic-ref", "--short", "HEAD"]), "main");
    assert_eq!(
        git(&ws, &["remote", "get-url", "origin"]),
        "https://example.com/r.git"
    );
    assert_eq!(git(&ws, &["config", "user.email"]), "ada@example.com");
    // The guest sees the host's uncommitted work as uncommitted.
    let status = git(&ws, &["status", "--porcelain"]);
    assert!(
        status.contains(" M a.txt") && status.contains(" D gone.txt"),
        "{status}"
    );
    assert!(status.contains("?? new.txt"), "{status}");
    assert!(!ws.join(".git/FETCH_HEAD").exists());
}

#[test]
fn an_older_base_is_shipped_clean_on_the_named_branch() {
    let repo = Repo::new(&[("a.txt", "one")]);
    let first = repo.git(&["rev-parse", "HEAD"]);
    repo.write("a.txt", "two");
    repo.commit("second");
    repo.write("a.txt", "dirty");
    let (_keep, ws) = ship(
        &repo,
        &Selection {
            from: Some(first.clone()),
            branch: Some("fix".into()),
            ..Selection::default()
        },
    );
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), "one");
    assert_eq!(git(&ws, &["rev-parse", "HEAD"]), first);
    assert_eq!(git(&ws, &["symbolic-ref", "--short", "HEAD"]), "fix");
    assert_eq!(git(&ws, &["status", "--porcelain"]), "");
}

#[test]
fn the_export_script_gives_a_patch_that_applies_on_the_host() {
    let repo = Repo::new(&[("a.txt", "one\n"), ("bin", "\0\x01")]);
    let (_keep, ws) = ship(&repo, &Selection::default());
    // Work in the "guest": an edit, a commit, a new file, a binary change.
    std::fs::write(ws.join("a.txt"), "one\ntwo\n").unwrap();
    crate::git::own_repo(&ws)
        .args(["commit", "-qam", "guest"])
        .run()
        .unwrap();
    std::fs::write(ws.join("new.txt"), "fresh\n").unwrap();
    std::fs::write(ws.join("bin"), b"\0\x02\xff").unwrap();
    crate::git::own_repo(&ws)
        .args(["add", "bin"])
        .run()
        .unwrap();
    let index_before = std::fs::read(ws.join(".git/index")).unwrap();
    let base = repo.git(&["rev-parse", "HEAD"]);
    let argv = crate::guest::argv(crate::guest::EXPORT, &[ws.to_str().unwrap(), &base]);
    let patch = banger_sys::Cmd::new(&argv[0])
        .args(&argv[1..])
        .run()
        .unwrap()
        .stdout;
    assert_eq!(
        std::fs::read(ws.join(".git/index")).unwrap(),
        index_before,
        "index changed"
    );
    let file = repo.path().join("../changes.patch");
    std::fs::write(&file, &patch).unwrap();
    repo.git(&["apply", "--index", file.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(repo.path().join("a.txt")).unwrap(),
        "one\ntwo\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("new.txt")).unwrap(),
        "fresh\n"
    );
    assert_eq!(
        std::fs::read(repo.path().join("bin")).unwrap(),
        b"\0\x02\xff"
    );
}

#[test]
fn a_repository_owned_by_someone_else_ships_too() {
    // The daemon may run as root over a user's repository: git's ownership
    // check must not refuse it. Only root can hand files to another owner.
    if !banger_sys::os::is_root() {
        eprintln!("skipped: needs root to give the repository another owner");
        return;
    }
    let repo = Repo::new(&[("a.txt", "one")]);
    repo.write("a.txt", "edited");
    banger_sys::Cmd::new("chown")
        .args(["-R", "65534:65534"])
        .arg(repo.path())
        .run()
        .unwrap();
    let (_keep, ws) = ship(&repo, &Selection::default());
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), "edited");
}
