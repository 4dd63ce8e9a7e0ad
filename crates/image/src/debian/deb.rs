//! Extracting chosen files from a `.deb`: the `ar` container, then its
//! `data.tar` (xz, zstd, gzip or plain).
//!
//! Nothing may land outside the destination: entry names are checked
//! component by component (no absolute paths, no `..`), only regular files
//! and directories are created (symlinks, hard links and device nodes are
//! skipped, so no link can redirect a later write), and every file is created
//! new, so an entry cannot overwrite one written before it.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::ar::ArReader;
use super::error::DebianError;
use super::fetch::open_file;
use super::index::lzma_io_error;
use super::limit::LimitedWriter;

/// Largest decompressed `data.tar` accepted (the cloud kernel's is ~100 MB).
const MAX_DATA_TAR: u64 = 4 << 30;

/// Which paths of a package to extract, written as in the package without
/// a leading `./` or `/` (`boot/vmlinuz-6.1.0-50-cloud-amd64`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    paths: Vec<String>,
    prefixes: Vec<String>,
}

impl Selection {
    pub fn new() -> Self {
        Self::default()
    }

    /// Extracts exactly this file.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.paths.push(path.into());
        self
    }

    /// Extracts everything under this directory.
    pub fn prefix(mut self, dir: impl Into<String>) -> Self {
        let mut dir = dir.into();
        if !dir.ends_with('/') {
            dir.push('/');
        }
        self.prefixes.push(dir);
        self
    }

    fn matches(&self, rel: &str) -> bool {
        self.paths.iter().any(|p| p == rel)
            || self
                .prefixes
                .iter()
                .any(|p| rel.starts_with(p.as_str()) || format!("{rel}/") == *p)
    }
}

/// Extracts the selected files of `deb` under `dest` (an existing
/// directory, normally a fresh staging directory) and returns their paths
/// relative to it, in archive order.
pub fn extract_deb(
    deb: &Path,
    dest: &Path,
    selection: &Selection,
) -> Result<Vec<String>, DebianError> {
    let bad = |detail: String| DebianError::BadDeb {
        path: deb.to_owned(),
        detail,
    };
    let mut ar = ArReader::new(BufReader::new(open_file(deb)?)).map_err(|e| bad(e.to_string()))?;
    match ar.next_member().map_err(|e| bad(e.to_string()))? {
        Some((name, _)) if name == "debian-binary" => {
            let mut version = String::new();
            ar.data()
                .take(16)
                .read_to_string(&mut version)
                .map_err(|e| bad(format!("cannot read debian-binary: {e}")))?;
            if !version.starts_with("2.") {
                return Err(bad(format!(
                    "unsupported format version {:?}",
                    version.trim()
                )));
            }
        }
        _ => return Err(bad("the first member is not debian-binary".into())),
    }
    let tar = loop {
        let Some((name, _)) = ar.next_member().map_err(|e| bad(e.to_string()))? else {
            return Err(bad("no data.tar member".into()));
        };
        if let Some(suffix) = name.strip_prefix("data.tar") {
            break unpack_data_tar(&mut ar.data(), suffix, deb, dest)?;
        }
    };
    extract_tar(tar, deb, dest, selection)
}

/// Decompresses the `data.tar` member into an unnamed temporary file inside
/// `dest` (it vanishes when closed), because xz can only be decoded by
/// pushing into a writer while `tar` wants to pull from a reader.
fn unpack_data_tar(
    member: &mut impl Read,
    suffix: &str,
    deb: &Path,
    dest: &Path,
) -> Result<File, DebianError> {
    let file = tempfile::tempfile_in(dest)
        .map_err(|e| DebianError::io("create a temporary file in", dest, e))?;
    let mut out = LimitedWriter::new(BufWriter::new(file), MAX_DATA_TAR);
    let (format, result) = match suffix {
        ".xz" => (
            "xz",
            lzma_rs::xz_decompress(&mut BufReader::new(member), &mut out).map_err(lzma_io_error),
        ),
        ".zst" => (
            "zstd",
            ruzstd::decoding::StreamingDecoder::new(member)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
                .and_then(|mut d| io::copy(&mut d, &mut out).map(drop)),
        ),
        ".gz" => (
            "gzip",
            io::copy(&mut flate2::read::GzDecoder::new(member), &mut out).map(drop),
        ),
        "" => ("tar", io::copy(member, &mut out).map(drop)),
        other => {
            return Err(DebianError::BadDeb {
                path: deb.to_owned(),
                detail: format!("unsupported data.tar{other} compression"),
            });
        }
    };
    let decompress = |source| DebianError::Decompress {
        what: format!("{} data.tar{suffix}", deb.display()),
        format,
        source,
    };
    result.map_err(decompress)?;
    let mut file = out
        .into_inner()
        .into_inner()
        .map_err(|e| decompress(e.into_error()))?;
    file.rewind()
        .map_err(|e| DebianError::io("rewind the temporary file in", dest, e))?;
    Ok(file)
}

fn extract_tar(
    tar_file: File,
    deb: &Path,
    dest: &Path,
    selection: &Selection,
) -> Result<Vec<String>, DebianError> {
    let tar_error = |source| DebianError::Tar {
        path: deb.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(BufReader::new(tar_file));
    let mut extracted = Vec::new();
    for entry in archive.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        let raw = entry.path().map_err(tar_error)?.into_owned();
        let rel = safe_relative(&raw).map_err(|reason| DebianError::UnsafeEntry {
            path: deb.to_owned(),
            entry: raw.display().to_string(),
            reason,
        })?;
        let Some(rel_str) = rel.to_str().filter(|s| !s.is_empty()) else {
            continue;
        };
        if !selection.matches(rel_str) {
            continue;
        }
        let target = dest.join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(|e| DebianError::io("create", &target, e))?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| DebianError::io("create", parent, e))?;
            }
            let mode = entry.header().mode().unwrap_or(0o644);
            let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&target)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => DebianError::UnsafeEntry {
                        path: deb.to_owned(),
                        entry: rel_str.to_owned(),
                        reason: "appears twice",
                    },
                    _ => DebianError::io("create", &target, e),
                })?;
            io::copy(&mut entry, &mut file).map_err(tar_error)?;
            file.flush()
                .map_err(|e| DebianError::io("write", &target, e))?;
            extracted.push(rel_str.to_owned());
        } else {
            tracing::debug!(
                entry = rel_str,
                ?kind,
                "skipping a non-regular entry of a package"
            );
        }
    }
    Ok(extracted)
}

/// The entry's path as a plain relative path, or why it is unsafe.
fn safe_relative(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("climbs out with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok(out)
}

/// Builds a `.deb` with a gzip-, xz- or zstd-compressed `data.tar` from
/// `(path, contents)` files and raw tar headers; for tests.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    pub(crate) enum Comp {
        Xz,
        Zstd,
        Gzip,
    }

    /// A tar holding `files` as regular files (paths written verbatim, so a
    /// test can plant unsafe names).
    pub(crate) fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the name field directly.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    pub(crate) fn deb(tar: &[u8], comp: Comp) -> Vec<u8> {
        let (name, data) = match comp {
            Comp::Xz => {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut &tar[..], &mut out).unwrap();
                ("data.tar.xz", out)
            }
            Comp::Zstd => (
                "data.tar.zst",
                ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest),
            ),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).unwrap();
                ("data.tar.gz", e.finish().unwrap())
            }
        };
        crate::debian::ar::build(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", b"not read"),
            (name, &data),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::build::{Comp, deb, tar};
    use super::*;

    fn extract(
        bytes: &[u8],
        sel: &Selection,
    ) -> (tempfile::TempDir, Result<Vec<String>, DebianError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.deb");
        fs::write(&path, bytes).unwrap();
        let dest = dir.path().join("out");
        fs::create_dir(&dest).unwrap();
        let result = extract_deb(&path, &dest, sel);
        (dir, result)
    }

    fn kernel_like() -> Vec<u8> {
        tar(&[
            ("./boot/vmlinuz-1", b"kernel"),
            ("./boot/System.map-1", b"map"),
            ("./lib/modules/1/kernel/a.ko", b"a"),
            ("./lib/modules/1/modules.builtin", b"b"),
            ("./usr/share/doc/x", b"doc"),
        ])
    }

    #[test]
    fn only_selected_files_are_extracted_from_each_compression() {
        let sel = Selection::new()
            .path("boot/vmlinuz-1")
            .prefix("lib/modules/1");
        for comp in [Comp::Xz, Comp::Zstd, Comp::Gzip] {
            let (dir, got) = extract(&deb(&kernel_like(), comp), &sel);
            let got = got.unwrap();
            assert_eq!(
                got,
                [
                    "boot/vmlinuz-1",
                    "lib/modules/1/kernel/a.ko",
                    "lib/modules/1/modules.builtin"
                ]
            );
            let out = dir.path().join("out");
            assert_eq!(fs::read(out.join("boot/vmlinuz-1")).unwrap(), b"kernel");
            assert!(!out.join("boot/System.map-1").exists());
            assert!(!out.join("usr").exists());
        }
    }

    #[test]
    fn entries_escaping_the_destination_are_refused() {
        let sel = Selection::new().prefix("x");
        for evil in ["../escape", "/abs/escape", "./a/../../escape"] {
            let (dir, got) = extract(&deb(&tar(&[(evil, b"!")]), Comp::Gzip), &sel);
            let err = got.unwrap_err();
            assert!(
                matches!(err, DebianError::UnsafeEntry { .. }),
                "{evil}: {err}"
            );
            assert!(!dir.path().join("escape").exists());
        }
    }

    #[test]
    fn symlinks_are_never_created() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "x/link", "/etc").unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "x/link/passwd", &b"!"[..])
            .unwrap();
        let bytes = deb(&builder.into_inner().unwrap(), Comp::Gzip);
        let (dir, got) = extract(&bytes, &Selection::new().prefix("x"));
        // The file lands in a real directory named `link`, never via /etc.
        assert_eq!(got.unwrap(), ["x/link/passwd"]);
        let link = dir.path().join("out/x/link");
        assert!(link.symlink_metadata().unwrap().is_dir());
    }

    #[test]
    fn a_duplicate_entry_does_not_overwrite_the_first() {
        let bytes = deb(&tar(&[("x/f", b"first"), ("x/f", b"second")]), Comp::Gzip);
        let (dir, got) = extract(&bytes, &Selection::new().prefix("x"));
        assert!(matches!(
            got,
            Err(DebianError::UnsafeEntry {
                reason: "appears twice",
                ..
            })
        ));
        assert_eq!(fs::read(dir.path().join("out/x/f")).unwrap(), b"first");
    }

    #[test]
    fn a_package_without_debian_binary_or_data_is_refused() {
        let no_header = crate::debian::ar::build(&[("data.tar.gz", b"x")]);
        let (_d, got) = extract(&no_header, &Selection::new());
        assert!(matches!(got, Err(DebianError::BadDeb { .. })));
        let no_data = crate::debian::ar::build(&[("debian-binary", b"2.0\n")]);
        let (_d, got) = extract(&no_data, &Selection::new());
        let err = got.unwrap_err();
        assert!(err.to_string().contains("no data.tar"), "{err}");
        let (_d, got) = extract(b"not an ar archive", &Selection::new());
        assert!(matches!(got, Err(DebianError::BadDeb { .. })));
    }
}
