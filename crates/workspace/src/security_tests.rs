//! SPEC §12 "Repositories are data": host git never runs a program that the
//! repository names. Each test plants one way a repository can name a
//! program (the program only touches a marker file), then plans, packs and
//! unpacks the repository as the daemon would, and checks both that nothing
//! ran and that the result is still right (the edited file ships with its
//! real bytes).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::pack::pack;
use crate::plan::{Selection, plan};
use crate::test_repo::Repo;

/// A repository with `a.txt` committed as "one" and edited to "edited"
/// (so git has to hash it: no racy-clean shortcut), plus a place for the
/// marker the planted program would create.
struct Evil {
    repo: Repo,
    marks: tempfile::TempDir,
}

impl Evil {
    fn new(extra: &[(&str, &str)]) -> Evil {
        let mut files = vec![("a.txt", "one\n"), ("b.txt", "bee\n")];
        files.extend_from_slice(extra);
        let repo = Repo::new(&files);
        repo.write("a.txt", "edited on the host, longer than before\n");
        Evil {
            repo,
            marks: tempfile::tempdir().unwrap(),
        }
    }

    fn marker(&self) -> PathBuf {
        self.marks.path().join("pwned")
    }

    /// Shell code that leaves the marker; what git would run.
    fn touch(&self) -> String {
        format!("touch '{}'", self.marker().display())
    }

    /// An executable script that leaves the marker, for config keys and
    /// hooks that name a program file.
    fn script(&self, dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{}\ncat\n", self.touch())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn git_dir(&self) -> PathBuf {
        self.repo.path().join(".git")
    }

    /// Sets a key in the repository's own config (`git config` only writes
    /// the file; it runs nothing).
    fn config(&self, key: &str, value: &str) {
        self.repo.git(&["config", key, value]);
    }

    /// Plans, packs, unpacks; then checks the result and that no program
    /// ran. Returns the unpacked workspace for more checks.
    fn ship(&self) -> (tempfile::TempDir, PathBuf) {
        let p = plan(self.repo.path(), &Selection::default()).unwrap();
        assert_eq!(p.root, self.repo.path().canonicalize().unwrap());
        assert!(
            p.overlaid.contains(&PathBuf::from("a.txt")),
            "{:?}",
            p.overlaid
        );
        assert!(!self.marker().exists(), "plan ran the repository's program");
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
        assert!(!self.marker().exists(), "pack ran the repository's program");
        assert_eq!(
            std::fs::read_to_string(dest.join("a.txt")).unwrap(),
            "edited on the host, longer than before\n"
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("b.txt")).unwrap(),
            "bee\n"
        );
        (out, dest)
    }
}

#[test]
fn a_clean_filter_is_not_run() {
    let evil = Evil::new(&[(".gitattributes", "* filter=x\n")]);
    evil.config("filter.x.clean", &format!("{}; cat", evil.touch()));
    evil.ship();
}

#[test]
fn a_clean_filter_named_by_info_attributes_is_not_run() {
    let evil = Evil::new(&[]);
    std::fs::create_dir_all(evil.git_dir().join("info")).unwrap();
    std::fs::write(evil.git_dir().join("info/attributes"), "* filter=x\n").unwrap();
    evil.config("filter.x.clean", &format!("{}; cat", evil.touch()));
    evil.ship();
}

#[test]
fn a_clean_filter_named_by_core_attributes_file_is_not_run() {
    let evil = Evil::new(&[]);
    let attributes = evil.git_dir().join("more-attributes");
    std::fs::write(&attributes, "* filter=x\n").unwrap();
    evil.config("core.attributesFile", attributes.to_str().unwrap());
    evil.config("filter.x.clean", &format!("{}; cat", evil.touch()));
    evil.ship();
}

#[test]
fn a_smudge_filter_is_not_run_by_the_clones_checkout() {
    let evil = Evil::new(&[(".gitattributes", "* filter=x\n")]);
    evil.config("filter.x.smudge", &format!("{}; cat", evil.touch()));
    evil.ship();
}

#[test]
fn a_process_filter_is_not_run() {
    let evil = Evil::new(&[(".gitattributes", "* filter=x\n")]);
    evil.config("filter.x.process", &format!("{}; exit 1", evil.touch()));
    evil.ship();
}

#[test]
fn a_textconv_driver_is_not_run() {
    let evil = Evil::new(&[(".gitattributes", "* diff=x\n")]);
    evil.config("diff.x.textconv", &format!("{}; cat", evil.touch()));
    evil.ship();
}

#[test]
fn an_external_diff_driver_is_not_run() {
    let evil = Evil::new(&[(".gitattributes", "* diff=x\n")]);
    evil.config("diff.x.command", &format!("{}; true", evil.touch()));
    evil.ship();
}

#[test]
fn diff_external_is_not_run() {
    let evil = Evil::new(&[]);
    evil.config("diff.external", &format!("{}; true", evil.touch()));
    evil.ship();
}

#[test]
fn an_fsmonitor_hook_is_not_run() {
    let evil = Evil::new(&[]);
    let hook = evil.script(&evil.marks.path().join("bin"), "fsmonitor");
    evil.config("core.fsmonitor", hook.to_str().unwrap());
    evil.ship();
}

const HOOKS: &[&str] = &[
    "post-checkout",
    "reference-transaction",
    "post-index-change",
    "pre-auto-gc",
    "post-merge",
];

#[test]
fn hooks_in_the_repositorys_hooks_directory_are_not_run() {
    let evil = Evil::new(&[]);
    for hook in HOOKS {
        evil.script(&evil.git_dir().join("hooks"), hook);
    }
    evil.ship();
}

#[test]
fn hooks_in_a_core_hooks_path_are_not_run() {
    let evil = Evil::new(&[]);
    let dir = evil.marks.path().join("hooks");
    for hook in HOOKS {
        evil.script(&dir, hook);
    }
    evil.config("core.hooksPath", dir.to_str().unwrap());
    evil.ship();
}

#[test]
fn pagers_are_not_run() {
    let evil = Evil::new(&[]);
    let cmd = format!("{}; cat", evil.touch());
    for key in [
        "core.pager",
        "pager.diff",
        "pager.ls-files",
        "pager.status",
        "pager.config",
    ] {
        evil.config(key, &cmd);
    }
    evil.ship();
}

#[test]
fn a_credential_helper_is_not_run() {
    let evil = Evil::new(&[]);
    evil.config("credential.helper", &format!("!{}", evil.touch()));
    evil.ship();
}

#[test]
fn an_ssh_command_is_not_run() {
    let evil = Evil::new(&[]);
    evil.config("core.sshCommand", &format!("{}; false", evil.touch()));
    evil.ship();
}

#[test]
fn an_askpass_program_is_not_run() {
    let evil = Evil::new(&[]);
    let askpass = evil.script(&evil.marks.path().join("bin"), "askpass");
    evil.config("core.askPass", askpass.to_str().unwrap());
    evil.ship();
}

#[test]
fn a_filter_pulled_in_by_include_path_is_not_run() {
    let evil = Evil::new(&[(".gitattributes", "* filter=x\n")]);
    std::fs::write(
        evil.git_dir().join("evil.inc"),
        format!("[filter \"x\"]\n\tclean = {}; cat\n", evil.touch()),
    )
    .unwrap();
    evil.config("include.path", "evil.inc");
    evil.ship();
}

#[test]
fn a_filter_pulled_in_by_include_if_is_not_run() {
    let evil = Evil::new(&[(".gitattributes", "* filter=x\n")]);
    std::fs::write(
        evil.git_dir().join("evil.inc"),
        format!("[filter \"x\"]\n\tclean = {}; cat\n", evil.touch()),
    )
    .unwrap();
    evil.config("includeIf.onbranch:main.path", "evil.inc");
    evil.ship();
}

#[test]
fn a_filter_in_the_worktree_config_is_not_run() {
    let evil = Evil::new(&[(".gitattributes", "* filter=x\n")]);
    evil.config("core.repositoryFormatVersion", "1");
    evil.config("extensions.worktreeConfig", "true");
    std::fs::write(
        evil.git_dir().join("config.worktree"),
        format!("[filter \"x\"]\n\tclean = {}; cat\n", evil.touch()),
    )
    .unwrap();
    evil.ship();
}

#[test]
fn core_worktree_cannot_point_the_work_tree_elsewhere() {
    // Not a program, but the same trust: the repository's config must not
    // choose which host directory is read (and shipped) as root.
    let evil = Evil::new(&[]);
    let elsewhere = evil.marks.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("a.txt"), "a host file outside the repo\n").unwrap();
    std::fs::write(elsewhere.join("b.txt"), "another\n").unwrap();
    evil.config("core.worktree", elsewhere.to_str().unwrap());
    evil.ship();
}

#[test]
fn an_upload_pack_objects_hook_is_not_run() {
    let evil = Evil::new(&[]);
    evil.config("uploadpack.packObjectsHook", &format!("{};", evil.touch()));
    evil.ship();
}

#[test]
fn an_alternate_refs_command_is_not_run() {
    let evil = Evil::new(&[]);
    evil.config(
        "core.alternateRefsCommand",
        &format!("{}; true", evil.touch()),
    );
    evil.ship();
}

#[test]
fn a_gpg_program_is_not_run() {
    let evil = Evil::new(&[]);
    let gpg = evil.script(&evil.marks.path().join("bin"), "gpg");
    evil.config("gpg.program", gpg.to_str().unwrap());
    evil.config("commit.gpgSign", "true");
    evil.config("tag.gpgSign", "true");
    evil.config("log.showSignature", "true");
    evil.ship();
}

#[test]
fn an_ext_origin_url_is_copied_as_text_and_never_fetched() {
    let evil = Evil::new(&[]);
    let url = format!("ext::sh -c touch% {}", evil.marker().display());
    evil.config("remote.origin.url", &url);
    let (_keep, ws) = evil.ship();
    let got = crate::git::own_repo(&ws)
        .args(["config", "--get", "remote.origin.url"])
        .run()
        .unwrap()
        .stdout_str();
    assert_eq!(got.trim_end(), url);
}

#[test]
fn credentials_in_the_origin_url_do_not_reach_the_clone() {
    let evil = Evil::new(&[]);
    evil.config(
        "remote.origin.url",
        "https://alice:ghp_SECRETTOKEN@github.com/org/repo.git",
    );
    let (_keep, ws) = evil.ship();
    let got = crate::git::own_repo(&ws)
        .args(["config", "--get", "remote.origin.url"])
        .run()
        .unwrap()
        .stdout_str();
    assert_eq!(got.trim_end(), "https://github.com/org/repo.git");
    let config = std::fs::read_to_string(ws.join(".git/config")).unwrap();
    assert!(!config.contains("SECRETTOKEN"), "{config}");
}
