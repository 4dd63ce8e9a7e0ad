//! Paths a privileged operation may touch: only under banger's own
//! directories, and never through a symlink (SPEC §4, §12).
//!
//! Time of check: [`ManagedPath::new`] inspects the filesystem when it runs.
//! Whoever can write to a directory on the path can swap a component for a
//! symlink afterwards. banger's directories belong to the owner user, so the
//! check defeats mistakes and names chosen by guests or images, not an owner
//! racing the helper; code that opens a managed path as root must still
//! open it with `O_NOFOLLOW` (or `openat2` with `RESOLVE_NO_SYMLINKS`) so
//! the kernel repeats the check atomically where it matters.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ValidationError;

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathProblem {
    #[error("it is not absolute")]
    NotAbsolute,
    #[error("it has an empty, `.` or `..` component; pass the normalised path")]
    NotNormalised,
    #[error("it is not inside banger's directories ({})", list(roots))]
    OutsideRoots { roots: Vec<PathBuf> },
    #[error("{} is a symlink, and banger never follows symlinks in paths it acts on as root", component.display())]
    Symlink { component: PathBuf },
    #[error("{} is not a directory", component.display())]
    NotADirectory { component: PathBuf },
    #[error("cannot inspect {}: {source}", component.display())]
    Inspect {
        component: PathBuf,
        source: io::Error,
    },
}

fn list(roots: &[PathBuf]) -> String {
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Syntax only: absolute, and no empty, `.` or `..` component (so `a//b`,
/// a trailing `/` and `/` itself are refused).
fn check_syntax(path: &Path) -> Result<(), PathProblem> {
    let bytes = path.as_os_str().as_bytes();
    let Some(rest) = bytes.strip_prefix(b"/") else {
        return Err(PathProblem::NotAbsolute);
    };
    if rest
        .split(|&b| b == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        return Err(PathProblem::NotNormalised);
    }
    Ok(())
}

/// Walks from `/` down to `path`, refusing any existing component that is a
/// symlink. A missing tail (a file about to be created) is fine: nothing
/// below a missing directory can exist.
fn check_no_symlinks(path: &Path) -> Result<(), PathProblem> {
    let mut current = PathBuf::from("/");
    let mut components = path.components().skip(1).peekable();
    while let Some(component) = components.next() {
        current.push(component);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(PathProblem::Symlink { component: current });
            }
            Ok(meta) if components.peek().is_some() && !meta.is_dir() => {
                return Err(PathProblem::NotADirectory { component: current });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(PathProblem::Inspect {
                    component: current,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// The directories banger manages (the daemon's state, cache and run
/// directories). Each is absolute and normalised, so prefix checks are
/// component-wise and exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRoots(Vec<PathBuf>);

impl ManagedRoots {
    pub fn new<I, P>(roots: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        let roots: Vec<PathBuf> = roots.into_iter().map(Into::into).collect();
        for root in &roots {
            check_syntax(root).map_err(|problem| ValidationError::Root {
                root: root.clone(),
                problem,
            })?;
        }
        Ok(Self(roots))
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.0
    }

    fn strictly_contains(&self, path: &Path) -> bool {
        self.0.iter().any(|r| path != r && path.starts_with(r))
    }
}

/// A path strictly under one of the [`ManagedRoots`], with no symlink in
/// any existing component, checked when built (see the module docs for the
/// time-of-check window).
///
/// Serialised as the bare path. Deserialising checks only the syntax,
/// because the roots are not known there: the receiving side (the root
/// helper) must call [`ManagedPath::revalidate`] with its own roots before
/// acting on the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManagedPath(PathBuf);

impl ManagedPath {
    pub fn new(path: impl Into<PathBuf>, roots: &ManagedRoots) -> Result<Self, ValidationError> {
        let path = ManagedPath(path.into());
        path.revalidate(roots)?;
        Ok(path)
    }

    /// Repeats every check of [`ManagedPath::new`] against `roots` and the
    /// filesystem as it is now.
    pub fn revalidate(&self, roots: &ManagedRoots) -> Result<(), ValidationError> {
        let refuse = |problem| ValidationError::Path {
            path: self.0.clone(),
            problem,
        };
        check_syntax(&self.0).map_err(refuse)?;
        if !roots.strictly_contains(&self.0) {
            return Err(refuse(PathProblem::OutsideRoots {
                roots: roots.0.clone(),
            }));
        }
        check_no_symlinks(&self.0).map_err(refuse)
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    pub fn into_path_buf(self) -> PathBuf {
        self.0
    }
}

impl AsRef<Path> for ManagedPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for ManagedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

impl Serialize for ManagedPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ManagedPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let path = PathBuf::deserialize(d)?;
        check_syntax(&path).map_err(|problem| {
            serde::de::Error::custom(ValidationError::Path {
                path: path.clone(),
                problem,
            })
        })?;
        Ok(ManagedPath(path))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use proptest::prelude::*;

    use super::*;

    /// A real (symlink-free) temporary directory and roots made of it.
    fn sandbox() -> (tempfile::TempDir, PathBuf, ManagedRoots) {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        let root = real.join("state");
        std::fs::create_dir(&root).unwrap();
        let roots = ManagedRoots::new([root.clone()]).unwrap();
        (dir, root, roots)
    }

    fn problem(r: Result<ManagedPath, ValidationError>) -> PathProblem {
        match r {
            Err(ValidationError::Path { problem, .. }) => problem,
            other => panic!("expected a path error, got {other:?}"),
        }
    }

    #[test]
    fn paths_under_the_root_are_accepted_even_before_they_exist() {
        let (_dir, root, roots) = sandbox();
        std::fs::create_dir(root.join("images")).unwrap();
        std::fs::write(root.join("images/base.ext4"), b"").unwrap();
        for p in ["images", "images/base.ext4", "images/new.cow", "vms/x/cow"] {
            let path = ManagedPath::new(root.join(p), &roots).unwrap();
            assert_eq!(path.as_path(), root.join(p));
        }
    }

    #[test]
    fn paths_outside_the_roots_are_rejected() {
        let (_dir, root, roots) = sandbox();
        let sibling = root.with_file_name("state2").join("x");
        for p in [PathBuf::from("/etc/shadow"), sibling, root.clone()] {
            assert!(
                matches!(
                    problem(ManagedPath::new(&p, &roots)),
                    PathProblem::OutsideRoots { .. }
                ),
                "{}",
                p.display()
            );
        }
        let msg = ManagedPath::new("/etc/shadow", &roots)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/etc/shadow") && msg.contains(root.to_str().unwrap()),
            "{msg}"
        );
    }

    #[test]
    fn unnormalised_and_relative_paths_are_rejected() {
        let (_dir, root, roots) = sandbox();
        let r = root.to_str().unwrap();
        for p in [
            format!("{r}/a/../../etc"),
            format!("{r}/./a"),
            format!("{r}//a"),
            format!("{r}/a/"),
        ] {
            assert!(
                matches!(
                    problem(ManagedPath::new(&p, &roots)),
                    PathProblem::NotNormalised
                ),
                "{p}"
            );
        }
        assert!(matches!(
            problem(ManagedPath::new("state/a", &roots)),
            PathProblem::NotAbsolute
        ));
        assert!(ManagedRoots::new(["relative"]).is_err());
        assert!(ManagedRoots::new(["/a/../b"]).is_err());
    }

    #[test]
    fn a_symlinked_directory_inside_the_root_is_rejected() {
        let (dir, root, roots) = sandbox();
        let outside = dir.path().canonicalize().unwrap().join("outside");
        std::fs::create_dir(&outside).unwrap();
        symlink(&outside, root.join("images")).unwrap();
        match problem(ManagedPath::new(root.join("images/base.ext4"), &roots)) {
            PathProblem::Symlink { component } => assert_eq!(component, root.join("images")),
            other => panic!("{other:?}"),
        }
        // The final component too.
        symlink("/etc/passwd", root.join("cow")).unwrap();
        assert!(matches!(
            problem(ManagedPath::new(root.join("cow"), &roots)),
            PathProblem::Symlink { .. }
        ));
    }

    #[test]
    fn a_symlinked_ancestor_of_the_root_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(real.join("real/state")).unwrap();
        symlink(real.join("real"), real.join("link")).unwrap();
        let roots = ManagedRoots::new([real.join("link/state")]).unwrap();
        match problem(ManagedPath::new(real.join("link/state/cow"), &roots)) {
            PathProblem::Symlink { component } => assert_eq!(component, real.join("link")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_in_the_middle_is_not_a_directory() {
        let (_dir, root, roots) = sandbox();
        std::fs::write(root.join("file"), b"").unwrap();
        assert!(matches!(
            problem(ManagedPath::new(root.join("file/x"), &roots)),
            PathProblem::NotADirectory { .. }
        ));
    }

    #[test]
    fn deserialised_paths_must_be_revalidated() {
        let (_dir, root, roots) = sandbox();
        let path: ManagedPath = serde_json::from_str("\"/etc/shadow\"").unwrap();
        assert!(
            path.revalidate(&roots).is_err(),
            "syntax alone let it through; the roots must not"
        );
        assert!(serde_json::from_str::<ManagedPath>("\"/a/../etc\"").is_err());
        assert!(serde_json::from_str::<ManagedPath>("\"etc\"").is_err());

        let good = ManagedPath::new(root.join("dir/cow"), &roots).unwrap();
        let back: ManagedPath =
            serde_json::from_str(&serde_json::to_string(&good).unwrap()).unwrap();
        assert_eq!(back, good);
        back.revalidate(&roots).unwrap();
        // The filesystem changed since: a component became a symlink.
        symlink("/tmp", root.join("dir")).unwrap();
        assert!(back.revalidate(&roots).is_err());
    }

    /// The rule written independently, on strings: absolute, every
    /// component non-empty and not `.`/`..`, strictly below the root.
    fn rule(s: &str, root: &str) -> bool {
        s.starts_with('/')
            && s[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && s.len() > root.len() + 1
            && s.starts_with(&format!("{root}/"))
    }

    proptest! {
        #[test]
        fn managed_paths_follow_the_rule(
            prefix in 0usize..5,
            parts in proptest::collection::vec(prop_oneof![
                Just("a"), Just("b c"), Just("."), Just(".."), Just(""), Just(".x"), Just("state"),
            ], 0..5),
            junk in any::<String>(),
        ) {
            let (_dir, root, roots) = sandbox();
            let r = root.to_str().unwrap().to_owned();
            let base = match prefix {
                0 => r.clone(),
                1 => String::new(),
                2 => "/etc".to_owned(),
                3 => format!("{r}x"),
                _ => junk,
            };
            let s = if parts.is_empty() { base } else { format!("{base}/{}", parts.join("/")) };
            let made = ManagedPath::new(&s, &roots);
            prop_assert_eq!(made.is_ok(), rule(&s, &r), "{:?}", s);
            if let Ok(p) = made {
                prop_assert_eq!(p.to_string(), s.clone());
                let back: ManagedPath = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
                prop_assert_eq!(&back, &p);
                prop_assert!(back.revalidate(&roots).is_ok());
            }
        }
    }
}
