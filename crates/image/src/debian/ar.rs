//! A minimal reader of `ar` archives, the outer container of a `.deb`:
//! `!<arch>\n`, then members of a 60-byte header (name, dates, ids, mode,
//! decimal size, `` `\n ``) and their data, padded to an even length.
//!
//! It streams: members are visited in order and the data of one can be read
//! before moving to the next. Only short names are supported (what
//! `dpkg-deb` writes); GNU and BSD long-name tables are refused.

use std::io::{self, Read};

pub const MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LEN: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum ArError {
    #[error("not an ar archive (no `!<arch>` magic)")]
    NoMagic,
    #[error("the archive ends inside a member header")]
    TruncatedHeader,
    #[error("member {name:?} ends early: {missing} of its bytes are missing")]
    TruncatedData { name: String, missing: u64 },
    #[error("bad member header: {0}")]
    BadHeader(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub struct ArReader<R> {
    inner: R,
    /// The current member: its name, the bytes of it not yet read, and
    /// whether a padding byte follows it.
    current: Option<(String, u64, bool)>,
}

impl<R: Read> ArReader<R> {
    pub fn new(mut inner: R) -> Result<Self, ArError> {
        let mut magic = [0u8; 8];
        read_full(&mut inner, &mut magic).map_err(|e| match e {
            ReadFull::Eof(_) => ArError::NoMagic,
            ReadFull::Io(e) => ArError::Io(e),
        })?;
        if &magic != MAGIC {
            return Err(ArError::NoMagic);
        }
        Ok(Self {
            inner,
            current: None,
        })
    }

    /// Moves to the next member (skipping what is left of the current one)
    /// and returns its name and size, or `None` at the end.
    pub fn next_member(&mut self) -> Result<Option<(String, u64)>, ArError> {
        if let Some((name, remaining, padded)) = self.current.take() {
            let skip = remaining + u64::from(padded);
            let skipped = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink())?;
            // The final padding byte may be absent at the very end of the
            // archive; missing data is not.
            if skipped < remaining {
                return Err(ArError::TruncatedData {
                    name,
                    missing: remaining - skipped,
                });
            }
        }
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut self.inner, &mut header) {
            Ok(()) => {}
            Err(ReadFull::Eof(0)) => return Ok(None),
            Err(ReadFull::Eof(_)) => return Err(ArError::TruncatedHeader),
            Err(ReadFull::Io(e)) => return Err(ArError::Io(e)),
        }
        let (name, size) = parse_header(&header)?;
        self.current = Some((name.clone(), size, size % 2 == 1));
        Ok(Some((name, size)))
    }

    /// The rest of the current member's data.
    pub fn data(&mut self) -> MemberReader<'_, R> {
        MemberReader { ar: self }
    }
}

pub struct MemberReader<'a, R> {
    ar: &'a mut ArReader<R>,
}

impl<R: Read> Read for MemberReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((name, remaining, _)) = self.ar.current.as_mut() else {
            return Ok(0);
        };
        if *remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
        let n = self.ar.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("ar member {name:?} ends early: {remaining} bytes missing"),
            ));
        }
        *remaining -= n as u64;
        Ok(n)
    }
}

fn parse_header(h: &[u8; HEADER_LEN]) -> Result<(String, u64), ArError> {
    if &h[58..60] != b"`\n" {
        return Err(ArError::BadHeader("no `\\n terminator".into()));
    }
    let field = |range: std::ops::Range<usize>| {
        std::str::from_utf8(&h[range])
            .map(str::trim_end)
            .map_err(|_| ArError::BadHeader("a field is not ASCII".into()))
    };
    let raw_name = field(0..16)?;
    if raw_name.starts_with("#1/") || raw_name.starts_with('/') {
        return Err(ArError::BadHeader(format!(
            "long-name member {raw_name:?} is not supported"
        )));
    }
    // GNU ar ends names with '/'; dpkg-deb does not.
    let name = raw_name.strip_suffix('/').unwrap_or(raw_name);
    if name.is_empty() {
        return Err(ArError::BadHeader("empty member name".into()));
    }
    let size_text = field(48..58)?;
    let size = size_text
        .parse::<u64>()
        .map_err(|_| ArError::BadHeader(format!("bad size {size_text:?} of {name:?}")))?;
    Ok((name.to_owned(), size))
}

enum ReadFull {
    /// End of input after this many bytes.
    Eof(usize),
    Io(io::Error),
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<(), ReadFull> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Err(ReadFull::Eof(filled)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadFull::Io(e)),
        }
    }
    Ok(())
}

/// Builds an ar archive from members, as `ar rc` would; for tests here and
/// in the kernel module.
#[cfg(test)]
pub(crate) fn build(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            format!("{name}/"),
            0,
            0,
            0,
            "100644",
            data.len()
        );
        assert_eq!(header.len(), HEADER_LEN);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ArError> {
        let mut ar = ArReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some((name, size)) = ar.next_member()? {
            let mut data = Vec::new();
            ar.data().read_to_end(&mut data)?;
            assert_eq!(data.len() as u64, size);
            out.push((name, data));
        }
        Ok(out)
    }

    #[test]
    fn members_are_read_in_order_across_odd_padding() {
        let ar = build(&[
            ("debian-binary", b"2.0\n"),
            ("odd", b"abc"),
            ("data.tar.xz", b"xyz!"),
        ]);
        let members = read_all(&ar).unwrap();
        let names: Vec<_> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["debian-binary", "odd", "data.tar.xz"]);
        assert_eq!(members[1].1, b"abc");
        assert_eq!(members[2].1, b"xyz!");
    }

    #[test]
    fn unread_members_are_skipped() {
        let ar = build(&[("a", b"12345"), ("b", b"6")]);
        let mut reader = ArReader::new(&ar[..]).unwrap();
        reader.next_member().unwrap();
        let mut first = [0u8; 2];
        reader.data().read_exact(&mut first).unwrap();
        assert_eq!(reader.next_member().unwrap(), Some(("b".into(), 1)));
        let mut rest = Vec::new();
        reader.data().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"6");
        assert_eq!(reader.next_member().unwrap(), None);
    }

    #[test]
    fn a_system_ar_archive_reads_back() {
        // Cross-check the format against binutils' `ar` when it is present.
        if banger_sys::find_program("ar").is_none() {
            eprintln!("skipping: binutils `ar` is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one"), b"1").unwrap();
        std::fs::write(dir.path().join("two"), b"22").unwrap();
        let archive = dir.path().join("x.a");
        banger_sys::Cmd::new("ar")
            .arg("rc")
            .arg(&archive)
            .arg(dir.path().join("one"))
            .arg(dir.path().join("two"))
            .run()
            .unwrap();
        let members = read_all(&std::fs::read(&archive).unwrap()).unwrap();
        assert_eq!(
            members,
            [
                ("one".to_owned(), b"1".to_vec()),
                ("two".to_owned(), b"22".to_vec())
            ]
        );
    }

    #[test]
    fn damaged_archives_are_refused() {
        assert!(matches!(
            ArReader::new(&b"!<arch"[..]),
            Err(ArError::NoMagic)
        ));
        assert!(matches!(
            ArReader::new(&b"PK\x03\x04xxxx"[..]),
            Err(ArError::NoMagic)
        ));

        let ar = build(&[("a", b"12345")]);
        let mut cut = ArReader::new(&ar[..ar.len() - 3]).unwrap();
        cut.next_member().unwrap();
        assert!(matches!(
            cut.next_member(),
            Err(ArError::TruncatedData { missing: 2, .. })
        ));
        let mut cut = ArReader::new(&ar[..20]).unwrap();
        assert!(matches!(cut.next_member(), Err(ArError::TruncatedHeader)));

        let mut bad = ar.clone();
        bad[8 + 48] = b'x';
        let mut r = ArReader::new(&bad[..]).unwrap();
        assert!(matches!(r.next_member(), Err(ArError::BadHeader(_))));
    }
}
