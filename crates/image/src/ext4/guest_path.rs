//! Paths inside an image, checked before they reach debugfs.
//!
//! debugfs reads its commands through libss, which splits a line at
//! whitespace and treats `"` as quoting; its commands then resolve the path
//! inside the image. So a guest path must be absolute and normalised (no
//! empty, `.` or `..` component: what is written is exactly what was
//! named), and may not contain whitespace, quotes, backslashes or control
//! characters. This is a limit of banger's writer, not of ext4: files with
//! such names cannot be written into images (none of the files banger
//! writes has one).

use std::fmt;

/// Longest name of one directory entry in ext4.
const NAME_MAX: usize = 255;
/// Longest path the kernel accepts.
const PATH_MAX: usize = 4095;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestPathProblem {
    #[error("it is not absolute (guest paths start with /)")]
    NotAbsolute,
    #[error("it is the root directory itself")]
    Root,
    #[error("it has an empty, `.` or `..` component; pass the normalised path")]
    NotNormalised,
    #[error("it is empty")]
    Empty,
    #[error(
        "it contains {0}, which debugfs's command parser would misread \
         (whitespace, quotes, backslashes and control characters are not supported)"
    )]
    BadChar(BadChar),
    #[error("a component is longer than {NAME_MAX} bytes")]
    NameTooLong,
    #[error("it is longer than {PATH_MAX} bytes")]
    TooLong,
}

/// A character refused in a guest path, shown escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChar(pub char);

impl fmt::Display for BadChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

fn check_chars(s: &str) -> Result<(), GuestPathProblem> {
    match s
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        Some(c) => Err(GuestPathProblem::BadChar(BadChar(c))),
        None => Ok(()),
    }
}

/// Checks a path banger writes or reads in an image (not `/` itself).
pub fn check_guest_path(path: &str) -> Result<(), GuestPathProblem> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(GuestPathProblem::NotAbsolute);
    };
    if rest.is_empty() {
        return Err(GuestPathProblem::Root);
    }
    if path.len() > PATH_MAX {
        return Err(GuestPathProblem::TooLong);
    }
    for component in rest.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(GuestPathProblem::NotNormalised);
        }
        if component.len() > NAME_MAX {
            return Err(GuestPathProblem::NameTooLong);
        }
    }
    check_chars(path)
}

/// Checks a symlink target: any path, relative and `..` included (the
/// guest resolves it), but non-empty and free of what the parser misreads.
pub fn check_symlink_target(target: &str) -> Result<(), GuestPathProblem> {
    if target.is_empty() {
        return Err(GuestPathProblem::Empty);
    }
    if target.len() > PATH_MAX {
        return Err(GuestPathProblem::TooLong);
    }
    check_chars(target)
}

/// The directories above a checked guest path, outermost first, without
/// `/`: `/a/b/c` gives `/a`, `/a/b`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .skip(1)
        .map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_absolute_paths_are_accepted() {
        for p in [
            "/etc/hostname",
            "/root/.ssh/authorized_keys",
            "/a",
            "/x;y#z$é",
            "/etc/systemd/system/x.service.d",
        ] {
            assert_eq!(check_guest_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn relative_unnormalised_and_odd_paths_are_refused() {
        use GuestPathProblem::*;
        let cases: &[(&str, GuestPathProblem)] = &[
            ("../x", NotAbsolute),
            ("a/b", NotAbsolute),
            ("", NotAbsolute),
            ("/", Root),
            ("/a/../etc", NotNormalised),
            ("/a/./b", NotNormalised),
            ("/a//b", NotNormalised),
            ("/a/", NotNormalised),
            ("/..", NotNormalised),
            ("/with space", BadChar(super::BadChar(' '))),
            ("/tab\there", BadChar(super::BadChar('\t'))),
            ("/new\nline", BadChar(super::BadChar('\n'))),
            ("/q\"uote", BadChar(super::BadChar('"'))),
            ("/q'uote", BadChar(super::BadChar('\''))),
            ("/back\\slash", BadChar(super::BadChar('\\'))),
            ("/nul\0", BadChar(super::BadChar('\0'))),
            ("/nbsp\u{a0}", BadChar(super::BadChar('\u{a0}'))),
        ];
        for (p, want) in cases {
            assert_eq!(check_guest_path(p).as_ref(), Err(want), "{p:?}");
        }
        assert_eq!(
            check_guest_path(&format!("/{}", "a".repeat(256))),
            Err(NameTooLong)
        );
        assert_eq!(check_guest_path(&format!("/{}", "a".repeat(255))), Ok(()));
        assert_eq!(check_guest_path(&"/abcdefg".repeat(600)), Err(TooLong));
    }

    #[test]
    fn the_message_names_the_character() {
        let msg = check_guest_path("/with space").unwrap_err().to_string();
        assert!(msg.contains("' '") && msg.contains("debugfs"), "{msg}");
    }

    #[test]
    fn symlink_targets_may_be_relative_but_not_misparsed() {
        assert_eq!(check_symlink_target("../lib/x.so"), Ok(()));
        assert_eq!(check_symlink_target("/usr/bin/python3"), Ok(()));
        assert_eq!(check_symlink_target(""), Err(GuestPathProblem::Empty));
        assert!(check_symlink_target("a b").is_err());
    }

    #[test]
    fn ancestors_are_the_directories_above_outermost_first() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a", "/a/b"]);
        assert_eq!(ancestors("/a").count(), 0);
    }
}
