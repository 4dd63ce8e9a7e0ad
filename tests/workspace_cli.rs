//! `vm run PATH` and `vm workspace` without a VM: the repository checks and
//! `--dry-run` go through the real banger and bangerd, and bad input is
//! refused before anything is created.

mod common;

use std::path::Path;

use common::{Home, assert_success, git, stderr, stdout};

/// A repository with two committed files, an uncommitted edit, an
/// untracked file and an ignored one.
fn repo(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("app");
    std::fs::create_dir_all(path.join("src")).unwrap();
    git(&path, &["init", "--quiet", "--initial-branch=main"]);
    git(&path, &["config", "user.name", "T"]);
    git(&path, &["config", "user.email", "t@example.com"]);
    std::fs::write(path.join("src/lib.rs"), "x").unwrap();
    std::fs::write(path.join(".gitignore"), "*.log\n").unwrap();
    git(&path, &["add", "--all"]);
    git(&path, &["commit", "--quiet", "-m", "first"]);
    std::fs::write(path.join("src/lib.rs"), "edited").unwrap();
    std::fs::write(path.join("todo.txt"), "untracked").unwrap();
    std::fs::write(path.join("x.log"), "ignored").unwrap();
    path
}

fn no_vms(home: &Home) {
    let list = home.banger(&["vm", "list", "--json"]);
    assert_success(&list);
    assert_eq!(stdout(&list).trim(), "[]", "a VM was created");
}

#[test]
fn dry_run_lists_the_files_that_would_ship_and_creates_nothing() {
    let home = Home::new();
    let repo = repo(home.path());
    let repo_arg = repo.to_str().unwrap();
    let out = home.banger(&["vm", "run", repo_arg, "--dry-run", "--", "make"]);
    assert_success(&out);
    assert_eq!(stdout(&out), ".gitignore\nsrc/lib.rs\n");
    let err = stderr(&out);
    assert!(
        err.contains("would copy 2 files") && err.contains("/root/app"),
        "{err}"
    );
    assert!(
        err.contains("on branch main, with your uncommitted changes"),
        "{err}"
    );
    assert!(err.contains("1 untracked file was not copied"), "{err}");
    let out = home.banger(&[
        "vm",
        "workspace",
        "prepare",
        "any-vm",
        repo_arg,
        "--include-untracked",
        "--dry-run",
    ]);
    assert_success(&out);
    assert_eq!(stdout(&out), ".gitignore\nsrc/lib.rs\ntodo.txt\n");
    no_vms(&home);
}

#[test]
fn a_path_that_cannot_ship_is_refused_before_any_vm_exists() {
    let home = Home::new();
    let plain = home.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let repo = repo(home.path());
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["vm", "run", plain.to_str().unwrap(), "--", "true"],
            "not inside a git work tree",
        ),
        (
            vec!["vm", "run", "/nonexistent/banger-repo", "--", "true"],
            "does not exist",
        ),
        (
            vec!["vm", "run", repo.to_str().unwrap(), "--from", "no-such-rev"],
            "is not a commit",
        ),
        (
            vec!["vm", "run", repo.to_str().unwrap(), "--branch", "a..b"],
            "not a valid branch name",
        ),
    ];
    for (args, why) in cases {
        let out = home.banger(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    // A repository that asks for tools needs the network to get them.
    std::fs::write(repo.join(".mise.toml"), "[tools]\n").unwrap();
    git(&repo, &["add", ".mise.toml"]);
    let out = home.banger(&["vm", "run", repo.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(".mise.toml") && stderr(&out).contains("--nat"),
        "{}",
        stderr(&out)
    );
    no_vms(&home);
}

#[test]
fn export_of_a_vm_without_a_workspace_says_how_to_make_one() {
    let home = Home::new();
    home.start_daemon();
    common::insert_vm(&home.db(), "abcd000000000001", "plain", "stopped");
    let out = home.banger(&["vm", "workspace", "export", "plain"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("banger vm workspace prepare plain"),
        "{}",
        stderr(&out)
    );
}
