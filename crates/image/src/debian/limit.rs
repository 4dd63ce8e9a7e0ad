//! A writer that refuses to grow past a limit, so that decompressing
//! untrusted input (a "zip bomb") fails instead of filling memory or disk.
//! Used by the kernel unpacker too.

use std::io::{self, Write};

pub(crate) struct LimitedWriter<W> {
    inner: W,
    written: u64,
    limit: u64,
}

impl<W: Write> LimitedWriter<W> {
    pub(crate) fn new(inner: W, limit: u64) -> Self {
        Self {
            inner,
            written: 0,
            limit,
        }
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

/// The error [`LimitedWriter`] fails with; recognise it with [`is_limit`].
fn limit_error(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("the output exceeds the limit of {limit} bytes"),
    )
}

/// True when `err` (or the error it wraps) is the limit being hit.
pub(crate) fn is_limit(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::FileTooLarge
}

impl<W: Write> Write for LimitedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit - self.written;
        if buf.len() as u64 > room {
            return Err(limit_error(self.limit));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_up_to_the_limit_succeed_and_beyond_fail() {
        let mut w = LimitedWriter::new(Vec::new(), 5);
        w.write_all(b"abc").unwrap();
        w.write_all(b"de").unwrap();
        let err = w.write_all(b"f").unwrap_err();
        assert!(is_limit(&err), "{err}");
        assert_eq!(w.into_inner(), b"abcde");
    }
}
