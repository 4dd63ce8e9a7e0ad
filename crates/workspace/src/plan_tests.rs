use super::*;
use crate::test_repo::{Repo, paths};

fn default_plan(repo: &Repo) -> Plan {
    plan(repo.path(), &Selection::default()).unwrap()
}

#[test]
fn a_clean_repository_ships_its_tracked_files_at_head() {
    let repo = Repo::new(&[("a.txt", "a"), ("src/b.rs", "b")]);
    let p = default_plan(&repo);
    assert_eq!(p.root, repo.path().canonicalize().unwrap());
    assert_eq!(p.base_commit, repo.git(&["rev-parse", "HEAD"]));
    assert_eq!(p.branch.as_deref(), Some("main"));
    assert!(p.overlay);
    assert_eq!(p.files, paths(&["a.txt", "src/b.rs"]));
    assert!(p.removed.is_empty() && p.untracked_skipped == 0 && p.tooling.is_none());
    assert_eq!(
        p.identity,
        [
            ("user.name".to_owned(), "Ada Host".to_owned()),
            ("user.email".to_owned(), "ada@example.com".to_owned())
        ]
    );
}

#[test]
fn the_working_tree_decides_with_untracked_files_only_when_asked() {
    let repo = Repo::new(&[("a.txt", "a"), ("gone.txt", "g"), (".gitignore", "*.log\n")]);
    std::fs::remove_file(repo.path().join("gone.txt")).unwrap();
    repo.write("new.txt", "untracked");
    repo.write("staged.txt", "staged");
    repo.git(&["add", "staged.txt"]);
    repo.write("debug.log", "ignored");
    repo.write("a.txt", "edited");
    let p = default_plan(&repo);
    assert_eq!(p.files, paths(&[".gitignore", "a.txt", "staged.txt"]));
    // Only what differs from the base travels from the working tree.
    assert_eq!(p.overlaid, paths(&["a.txt", "staged.txt"]));
    assert_eq!(p.removed, paths(&["gone.txt"]));
    assert_eq!(p.untracked_skipped, 1);
    let with = plan(
        repo.path(),
        &Selection {
            include_untracked: true,
            ..Selection::default()
        },
    )
    .unwrap();
    assert_eq!(
        with.files,
        paths(&[".gitignore", "a.txt", "new.txt", "staged.txt"])
    );
    assert_eq!(with.untracked_skipped, 0);
}

#[test]
fn another_base_ships_that_commit_alone_and_a_branch_can_be_named() {
    let repo = Repo::new(&[("a.txt", "a")]);
    let first = repo.git(&["rev-parse", "HEAD"]);
    repo.write("b.txt", "b");
    repo.commit("second");
    repo.write("dirty.txt", "x");
    let p = plan(
        repo.path(),
        &Selection {
            from: Some("HEAD~1".into()),
            branch: Some("try-it".into()),
            ..Selection::default()
        },
    )
    .unwrap();
    assert_eq!(p.base_commit, first);
    assert!(!p.overlay && p.overlaid.is_empty());
    assert_eq!(p.files, paths(&["a.txt"]));
    assert_eq!(p.branch.as_deref(), Some("try-it"));
    let detached = plan(
        repo.path(),
        &Selection {
            from: Some(first.clone()),
            ..Selection::default()
        },
    )
    .unwrap();
    assert_eq!(detached.branch, None);
}

#[test]
fn a_subdirectory_path_means_its_repository_and_tooling_is_noticed() {
    let repo = Repo::new(&[("sub/x", "x"), (".tool-versions", "nodejs 20\n")]);
    let p = plan(&repo.path().join("sub"), &Selection::default()).unwrap();
    assert_eq!(p.root, repo.path().canonicalize().unwrap());
    assert_eq!(p.tooling.as_deref(), Some(".tool-versions"));
}

#[test]
fn files_behind_a_symlinked_directory_are_not_shipped() {
    let repo = Repo::new(&[("dir/secret", "in repo"), ("link", "x")]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host file").unwrap();
    std::fs::remove_dir_all(repo.path().join("dir")).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path().join("dir")).unwrap();
    let p = default_plan(&repo);
    assert!(!p.files.contains(&"dir/secret".into()), "{:?}", p.files);
    assert!(p.removed.contains(&"dir/secret".into()));
}

#[test]
fn preflight_errors_say_what_is_wrong() {
    let err = |path: &Path, sel: &Selection| plan(path, sel).unwrap_err().to_string();
    let dir = tempfile::tempdir().unwrap();
    assert!(err(&dir.path().join("nope"), &Selection::default()).contains("does not exist"));
    assert!(err(dir.path(), &Selection::default()).contains("not inside a git work tree"));
    let bare = dir.path().join("bare.git");
    banger_sys::Cmd::new("git")
        .args(["init", "--quiet", "--bare"])
        .arg(&bare)
        .run()
        .unwrap();
    assert!(err(&bare, &Selection::default()).contains("bare git repository"));
    let empty = dir.path().join("empty");
    banger_sys::Cmd::new("git")
        .args(["init", "--quiet"])
        .arg(&empty)
        .run()
        .unwrap();
    assert!(err(&empty, &Selection::default()).contains("no commits"));
    let repo = Repo::new(&[("a", "a")]);
    let from = |rev: &str| Selection {
        from: Some(rev.into()),
        ..Selection::default()
    };
    assert!(err(repo.path(), &from("no-such")).contains("not a commit"));
    assert!(err(repo.path(), &from("--all")).contains("not a commit"));
    let branch = Selection {
        branch: Some("bad..name".into()),
        ..Selection::default()
    };
    assert!(err(repo.path(), &branch).contains("not a valid branch name"));
    repo.write(".gitmodules", "[submodule \"x\"]\n");
    assert!(err(repo.path(), &Selection::default()).contains("submodules"));
}
