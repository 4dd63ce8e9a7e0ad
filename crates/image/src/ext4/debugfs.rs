//! Running e2fsprogs' `debugfs` and reading what it prints.
//!
//! debugfs exits 0 when its commands fail; it reports them on stderr as
//! `<command or path>: <message>`, after a version banner. In batch mode
//! (`-f FILE`) it echoes each command on stdout as `debugfs: <command>`
//! before that command's output, which is how a batch's stdout is split
//! back into one section per command. stderr cannot be matched to commands
//! that way (it is a separate stream), so callers treat any stderr line they
//! did not expect as a failure and verify results by reading them back.

use std::path::{Path, PathBuf};

use banger_sys::Cmd;

use super::{FileInfo, FileKind};
use crate::error::DiskError;

/// What one debugfs run printed.
pub(super) struct Outcome {
    pub argv: String,
    pub stdout: Vec<u8>,
    /// stderr lines other than the version banner, trimmed.
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn errors_joined(&self) -> String {
        self.errors.join("; ")
    }
}

fn debugfs() -> Cmd {
    // Never page (stat output would wait for a pager on a terminal).
    Cmd::new("debugfs")
        .env("DEBUGFS_PAGER", "__none__")
        .env("PAGER", "__none__")
}

fn run(cmd: Cmd, image: &Path) -> Result<Outcome, DiskError> {
    let argv = cmd.argv();
    let out = cmd.run().map_err(|source| DiskError::Command {
        action: format!("run debugfs on {}", image.display()),
        source,
    })?;
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_banner(l))
        .map(str::to_owned)
        .collect();
    Ok(Outcome {
        argv,
        stdout: out.stdout,
        errors,
    })
}

/// `debugfs 1.47.0 (5-Feb-2023)`, printed on every start.
fn is_banner(line: &str) -> bool {
    line.strip_prefix("debugfs ")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()) && rest.ends_with(')'))
}

/// One read-only request (`-R`).
pub(super) fn request(image: &Path, command: &str) -> Result<Outcome, DiskError> {
    run(debugfs().arg("-R").arg(command).arg(image), image)
}

/// A batch of commands from a file written to `scratch`, read-write when
/// `write` is set. Returns the run and each command's stdout section.
pub(super) fn batch(
    image: &Path,
    commands: &[String],
    write: bool,
    scratch: &Path,
) -> Result<(Outcome, Vec<String>), DiskError> {
    let file = scratch.join(if write { "edits.cmd" } else { "queries.cmd" });
    let mut text = commands.join("\n");
    text.push('\n');
    std::fs::write(&file, text)
        .map_err(|e| DiskError::io("write the debugfs command file", &file, e))?;
    let mut cmd = debugfs();
    if write {
        cmd = cmd.arg("-w");
    }
    let outcome = run(cmd.arg("-f").arg(&file).arg(image), image)?;
    let stdout = String::from_utf8_lossy(&outcome.stdout).into_owned();
    match split_sections(&stdout, commands) {
        Ok(sections) => Ok((outcome, sections)),
        Err(done) => Err(DiskError::Debugfs {
            image: image.to_owned(),
            argv: outcome.argv.clone(),
            errors: format!(
                "it stopped after {done} of {} commands ({})",
                commands.len(),
                outcome.errors_joined()
            ),
        }),
    }
}

/// Splits batch stdout at the echo of each command, in order. `Err(n)`
/// when only the first `n` echoes were found.
fn split_sections(stdout: &str, commands: &[String]) -> Result<Vec<String>, usize> {
    let mut sections: Vec<String> = Vec::with_capacity(commands.len());
    for line in stdout.lines() {
        let next = sections.len();
        if next < commands.len()
            && line
                .strip_prefix("debugfs: ")
                .is_some_and(|echo| echo == commands[next])
        {
            sections.push(String::new());
        } else if let Some(current) = sections.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    if sections.len() == commands.len() {
        Ok(sections)
    } else {
        Err(sections.len())
    }
}

/// An argument for a debugfs command line that banger does not control
/// (host temporary paths): quoted, with `"` doubled as libss expects.
pub(super) fn quote(path: &Path) -> Result<String, DiskError> {
    let invalid = |why: &str| {
        DiskError::io(
            "use the temporary directory",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{why}; point TMPDIR elsewhere"),
            ),
        )
    };
    let s = path
        .to_str()
        .ok_or_else(|| invalid("its path is not UTF-8"))?;
    if s.contains(['\n', '\r']) {
        return Err(invalid("its path contains a line break"));
    }
    Ok(format!("\"{}\"", s.replace('"', "\"\"")))
}

/// Whether an error line is debugfs saying `path` does not exist, or that
/// a component above it is not a directory (so it cannot exist).
pub(super) fn says_missing(line: &str, path: &str) -> bool {
    line.strip_prefix(path)
        .and_then(|rest| rest.strip_prefix(": "))
        .is_some_and(|msg| {
            msg.starts_with("File not found by ext2_lookup")
                || msg.starts_with("Ext2 inode is not a directory")
        })
}

/// Parses the output of `stat PATH`:
///
/// ```text
/// Inode: 13   Type: regular    Mode:  04755   Flags: 0x80000
/// Generation: 0    Version: 0x00000000:00000000
/// User: 100000   Group:  1000   Project:     0   Size: 11
/// ```
pub(super) fn parse_stat(text: &str) -> Result<FileInfo, String> {
    let inode_line = text
        .lines()
        .find(|l| l.starts_with("Inode:"))
        .ok_or("no `Inode:` line")?;
    let user_line = text
        .lines()
        .find(|l| l.starts_with("User:"))
        .ok_or("no `User:` line")?;

    let type_name = between(inode_line, "Type:", "Mode:").ok_or("no `Type:` field")?;
    let kind = match type_name {
        "regular" => FileKind::Regular,
        "directory" => FileKind::Directory,
        "symlink" => FileKind::Symlink,
        "FIFO" => FileKind::Fifo,
        "socket" => FileKind::Socket,
        "character special" => FileKind::CharDevice,
        "block special" => FileKind::BlockDevice,
        other => return Err(format!("unknown inode type {other:?}")),
    };
    let perm = field(inode_line, "Mode:")
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .filter(|&m| m <= 0o7777)
        .ok_or("no octal `Mode:` field")?;
    let number = |name: &str| {
        field(user_line, name)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("no numeric `{name}` field"))
    };
    let id = |name: &str| {
        number(name).and_then(|v| u32::try_from(v).map_err(|_| format!("`{name}` out of range")))
    };
    Ok(FileInfo {
        kind,
        mode: kind.type_bits() | perm,
        uid: id("User:")?,
        gid: id("Group:")?,
        size: number("Size:")?,
    })
}

/// The whitespace-separated token after `label` on `line`.
fn field<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let at = line.find(label)? + label.len();
    line[at..].split_whitespace().next()
}

/// The trimmed text between two labels on `line`.
fn between<'a>(line: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = line.find(start)? + start.len();
    let to = from + line[from..].find(end)?;
    Some(line[from..to].trim())
}

/// A private scratch directory (0700) for command files and file content
/// on their way into an image; removed when dropped.
pub(super) fn scratch_dir() -> Result<tempfile::TempDir, DiskError> {
    tempfile::Builder::new()
        .prefix("banger-debugfs-")
        .tempdir()
        .map_err(|e| DiskError::io("create a temporary directory in", std::env::temp_dir(), e))
}

/// Where the content of the `index`th upload is staged.
pub(super) fn upload_path(scratch: &Path, index: usize) -> PathBuf {
    scratch.join(format!("content-{index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_FILE: &str = "\
Inode: 13   Type: regular    Mode:  04755   Flags: 0x80000
Generation: 0    Version: 0x00000000:00000000
User: 100000   Group:  1000   Project:     0   Size: 11
File ACL: 0
Links: 1   Blockcount: 2
Fragment:  Address: 0    Number: 0    Size: 0
";

    #[test]
    fn stat_output_is_parsed_with_type_bits() {
        let info = parse_stat(STAT_FILE).unwrap();
        assert_eq!(info.kind, FileKind::Regular);
        assert_eq!(info.mode, 0o104755);
        assert_eq!((info.uid, info.gid, info.size), (100_000, 1000, 11));

        let dev = STAT_FILE.replace("regular   ", "character special");
        assert_eq!(parse_stat(&dev).unwrap().kind, FileKind::CharDevice);
        assert!(
            parse_stat("Inode: 1   Type: bad type    Mode:  0644\nUser: 0 Group: 0 Size: 1")
                .is_err()
        );
        assert!(parse_stat("").is_err());
    }

    #[test]
    fn batch_output_splits_at_each_echo_in_order() {
        let commands = vec![
            "stat /a".to_owned(),
            "stat /b".to_owned(),
            "stat /a".to_owned(),
        ];
        let out = "debugfs: stat /a\nA1\nA2\ndebugfs: stat /b\ndebugfs: stat /a\nA3\n";
        assert_eq!(
            split_sections(out, &commands).unwrap(),
            ["A1\nA2\n", "", "A3\n"]
        );
        assert_eq!(split_sections("debugfs: stat /a\nx\n", &commands), Err(1));
        // An echo out of order is content, not a section.
        assert_eq!(split_sections("debugfs: stat /b\n", &commands), Err(0));
    }

    #[test]
    fn the_banner_is_not_an_error_but_anything_else_is() {
        assert!(is_banner("debugfs 1.47.0 (5-Feb-2023)"));
        assert!(!is_banner(
            "debugfs: Bad magic number in super-block while trying to open x"
        ));
        assert!(says_missing(
            "/nope: File not found by ext2_lookup",
            "/nope"
        ));
        assert!(says_missing(
            "/a/f/x: Ext2 inode is not a directory",
            "/a/f/x"
        ));
        assert!(!says_missing("/nope: File not found by ext2_lookup", "/no"));
        assert!(!says_missing("write: Ext2 file already exists", "/nope"));
    }

    #[test]
    fn host_paths_are_quoted_for_libss() {
        assert_eq!(quote(Path::new("/tmp/a b/c")).unwrap(), "\"/tmp/a b/c\"");
        assert_eq!(quote(Path::new("/tmp/q\"x")).unwrap(), "\"/tmp/q\"\"x\"");
        assert!(quote(Path::new("/tmp/a\nb")).is_err());
    }
}
