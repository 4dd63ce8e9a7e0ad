//! Real git repositories for the tests.

use std::path::{Path, PathBuf};

pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    /// A repository with one commit of `files`, on branch `main`.
    pub fn new(files: &[(&str, &str)]) -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.git(&["config", "user.name", "Ada Host"]);
        repo.git(&["config", "user.email", "ada@example.com"]);
        for (path, text) in files {
            repo.write(path, text);
        }
        repo.commit("first");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn git(&self, args: &[&str]) -> String {
        banger_sys::Cmd::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .run()
            .unwrap()
            .stdout_str()
            .trim()
            .to_owned()
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

pub fn paths(list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(PathBuf::from).collect()
}
