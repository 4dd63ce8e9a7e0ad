//! What a kernel payload is compressed with, and what goes wrong unpacking
//! one: shared by the bzImage reader and the decompressors, below both.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Lz4,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    #[error("it is not a bzImage: {0}")]
    NotBzImage(&'static str),
    #[error(
        "boot protocol {major}.{minor:02} is too old to describe its payload (2.08 or newer needed)"
    )]
    OldProtocol { major: u8, minor: u8 },
    #[error(
        "the payload ({length} bytes at offset {offset}) lies outside the {file_len}-byte file; \
         the file is truncated"
    )]
    PayloadOutOfBounds {
        offset: u64,
        length: u64,
        file_len: u64,
    },
    #[error(
        "the payload's compression is not supported (first bytes {magic}); \
         banger unpacks gzip, xz, zstd and lz4 kernels"
    )]
    UnknownCompression { magic: String },
    #[error("the {format} payload is corrupt or truncated: {detail}")]
    Corrupt { format: Compression, detail: String },
    #[error("the {format} payload unpacked to {actual} bytes but the bzImage says {expected}")]
    LengthMismatch {
        format: Compression,
        expected: u32,
        actual: u64,
    },
    #[error("the {format} payload unpacks to more than {limit} bytes; refusing to continue")]
    TooLarge { format: Compression, limit: u64 },
    #[error("the unpacked {format} payload is not an ELF file")]
    NotElf { format: Compression },
    #[error("it is neither an ELF vmlinux nor a bzImage")]
    NotAKernel,
}
