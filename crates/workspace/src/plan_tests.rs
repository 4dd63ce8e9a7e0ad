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

#[test]
fn credentials_are_stripped_from_origin_urls() {
    let cases = [
        // Tokens in http(s) userinfo, with or without a user name.
        ("https://user:TOKEN@host/x.git", "https://host/x.git"),
        (
            "https://ghp_TOKEN@github.com/o/r.git",
            "https://github.com/o/r.git",
        ),
        (
            "https://x-access-token:TOKEN@github.com:443/o/r",
            "https://github.com:443/o/r",
        ),
        (
            "HTTP://oauth2:TOKEN@gitlab.example/o/r.git",
            "HTTP://gitlab.example/o/r.git",
        ),
        // An `@` in the password: the last one before the path ends it.
        ("https://u:p@ss@host/r.git", "https://host/r.git"),
        // Query strings and fragments can carry tokens too.
        (
            "https://host/r.git?private_token=TOKEN#frag",
            "https://host/r.git",
        ),
        ("https://u:TOKEN@host?x=1", "https://host"),
        // ssh:// keeps its user, loses a password.
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("ssh://git:TOKEN@host:22/r.git", "ssh://git@host:22/r.git"),
        ("git+ssh://me@host/r", "git+ssh://me@host/r"),
        // Left alone: scp-like (a user, not a secret), paths, plain URLs,
        // `@` in a path, transports that are not URLs.
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
        ("../r", "../r"),
        ("https://host/r.git", "https://host/r.git"),
        ("https://host/@scope/r.git", "https://host/@scope/r.git"),
        ("file:///srv/r.git", "file:///srv/r.git"),
        ("ext::sh -c true", "ext::sh -c true"),
    ];
    for (url, want) in cases {
        assert_eq!(strip_credentials(url), want, "{url}");
    }
}

#[test]
fn the_plans_origin_has_no_credentials() {
    let repo = Repo::new(&[("a", "a")]);
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://alice:TOKEN@example.com/r.git",
    ]);
    assert_eq!(
        default_plan(&repo).origin_url.as_deref(),
        Some("https://example.com/r.git")
    );
}

#[test]
fn a_linked_work_tree_is_planned_from_its_own_head_and_index() {
    let repo = Repo::new(&[("a.txt", "a")]);
    let dir = tempfile::tempdir().unwrap();
    let linked = dir.path().join("linked");
    repo.git(&[
        "worktree",
        "add",
        "--quiet",
        "-b",
        "side",
        linked.to_str().unwrap(),
    ]);
    std::fs::write(linked.join("a.txt"), "edited in the linked tree").unwrap();
    std::fs::write(linked.join("b.txt"), "new").unwrap();
    banger_sys::Cmd::new("git")
        .arg("-C")
        .arg(&linked)
        .args(["add", "b.txt"])
        .run()
        .unwrap();
    let p = plan(&linked, &Selection::default()).unwrap();
    assert_eq!(p.root, linked.canonicalize().unwrap());
    assert_eq!(p.branch.as_deref(), Some("side"));
    assert_eq!(p.base_commit, repo.git(&["rev-parse", "HEAD"]));
    assert_eq!(p.overlaid, paths(&["a.txt", "b.txt"]));
    // The main tree is untouched by the linked one's edits.
    assert!(default_plan(&repo).overlaid.is_empty());
}

#[test]
fn identity_comes_from_the_repositorys_own_file_only() {
    // Included files are not followed: they could be any file on the host.
    let repo = Repo::new(&[("a", "a")]);
    let inc = repo.path().join(".git/identity.inc");
    std::fs::write(&inc, "[user]\n\tname = Included\n").unwrap();
    repo.git(&["config", "--unset", "user.name"]);
    repo.git(&["config", "include.path", "identity.inc"]);
    let p = default_plan(&repo);
    assert_eq!(
        p.identity,
        [("user.email".to_owned(), "ada@example.com".to_owned())]
    );
}

#[test]
fn the_shadow_git_directory_is_removed_and_the_repository_unchanged() {
    let repo = Repo::new(&[("a.txt", "a")]);
    repo.write("a.txt", "edited");
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let git_dir = repo.path().join(".git");
    let before = (
        listing(&git_dir),
        std::fs::read(git_dir.join("index")).unwrap(),
    );
    let shadow = {
        let host = crate::git::HostRepo::open(repo.path()).unwrap();
        let shadow = host.shadow_dir().to_owned();
        assert!(shadow.join("objects/info/alternates").is_file());
        assert!(!shadow.join("hooks").exists());
        assert_eq!(
            host.output(&["rev-parse", "HEAD"]).unwrap(),
            repo.git(&["rev-parse", "HEAD"])
        );
        shadow
    };
    assert!(!shadow.exists(), "shadow left behind");
    default_plan(&repo);
    let after = (
        listing(&git_dir),
        std::fs::read(git_dir.join("index")).unwrap(),
    );
    assert_eq!(before, after);
}

#[test]
fn a_sha256_repository_is_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        banger_sys::Cmd::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "user.name=A", "-c", "user.email=a@example.com"])
            .args(args)
            .run()
            .unwrap()
            .stdout_str()
    };
    git(&["init", "--quiet", "--object-format=sha256"]);
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    git(&["add", "a.txt"]);
    git(&["commit", "--quiet", "-m", "one"]);
    std::fs::write(dir.path().join("a.txt"), "edited").unwrap();
    let p = plan(dir.path(), &Selection::default()).unwrap();
    assert_eq!(p.base_commit, git(&["rev-parse", "HEAD"]).trim());
    assert_eq!(p.base_commit.len(), 64);
    assert_eq!(p.overlaid, paths(&["a.txt"]));
}
