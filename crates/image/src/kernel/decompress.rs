//! The four compressions a bzImage payload may use, detected by magic.
//!
//! Pure-Rust decoders do the work, with one exception: x86 kernels
//! compressed with xz use the BCJ x86 filter, which lzma-rs does not
//! implement, so when lzma-rs gives up the `xz` tool takes over through
//! `banger_sys::Cmd`.

use std::io::{self, BufReader};

use banger_sys::Cmd;

pub use super::payload::Compression;
use super::payload::VmlinuxError;
use crate::debian::limit::{LimitedWriter, is_limit};

/// Largest vmlinux accepted (Debian's is about 65 MiB).
pub const MAX_VMLINUX: u64 = 1 << 30;

/// Magic of the LZ4 legacy frame (`lz4 -l`), which the kernel build uses.
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
/// Every block of a legacy frame decompresses to at most this.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

impl Compression {
    pub fn detect(payload: &[u8]) -> Result<Self, VmlinuxError> {
        if payload.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if payload.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Ok(Compression::Xz)
        } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if payload.starts_with(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
            Ok(Compression::Lz4)
        } else {
            Err(VmlinuxError::UnknownCompression {
                magic: hex::encode(&payload[..payload.len().min(6)]),
            })
        }
    }
}

/// Decompresses a kernel payload and checks its length against the size
/// the build appended.
pub fn unpack(payload: &[u8], format: Compression) -> Result<Vec<u8>, VmlinuxError> {
    let corrupt = |detail: String| VmlinuxError::Corrupt { format, detail };
    if format == Compression::Gzip {
        // gzip's own trailer (CRC32 and ISIZE) is checked by the decoder.
        return decode_with(format, |out| {
            io::copy(&mut flate2::read::GzDecoder::new(payload), out).map(drop)
        });
    }
    let Some(split) = payload.len().checked_sub(4) else {
        return Err(corrupt("shorter than its size trailer".into()));
    };
    let (stream, trailer) = payload.split_at(split);
    let expected = u32::from_le_bytes(trailer.try_into().expect("four bytes"));
    let out = match format {
        Compression::Lz4 => lz4_legacy(stream).map_err(corrupt)?,
        Compression::Xz => decode_with(format, |out| {
            lzma_rs::xz_decompress(&mut BufReader::new(stream), out)
                .map_err(crate::debian::lzma_io_error)
        })
        .or_else(|e| xz_tool_fallback(e, stream))?,
        Compression::Zstd => match ruzstd::decoding::StreamingDecoder::new(stream) {
            Err(e) => return Err(corrupt(e.to_string())),
            Ok(mut decoder) => decode_with(format, |out| io::copy(&mut decoder, out).map(drop))?,
        },
        Compression::Gzip => unreachable!("handled above"),
    };
    // The trailer holds the size modulo 2^32.
    if out.len() as u32 != expected || out.len() as u64 > MAX_VMLINUX {
        return Err(VmlinuxError::LengthMismatch {
            format,
            expected,
            actual: out.len() as u64,
        });
    }
    Ok(out)
}

/// Runs a push-style decoder into a capped buffer.
fn decode_with(
    format: Compression,
    decode: impl FnOnce(&mut LimitedWriter<Vec<u8>>) -> io::Result<()>,
) -> Result<Vec<u8>, VmlinuxError> {
    let mut out = LimitedWriter::new(Vec::new(), MAX_VMLINUX);
    match decode(&mut out) {
        Ok(()) => Ok(out.into_inner()),
        Err(e) if is_limit(&e) => Err(VmlinuxError::TooLarge {
            format,
            limit: MAX_VMLINUX,
        }),
        Err(e) => Err(VmlinuxError::Corrupt {
            format,
            detail: e.to_string(),
        }),
    }
}

/// lzma-rs failed: try the `xz` tool, and if that fails too, report both.
fn xz_tool_fallback(lib_error: VmlinuxError, stream: &[u8]) -> Result<Vec<u8>, VmlinuxError> {
    if matches!(lib_error, VmlinuxError::TooLarge { .. }) {
        return Err(lib_error);
    }
    xz_tool(stream).map_err(|tool_error| match tool_error {
        VmlinuxError::Corrupt { format, detail } => VmlinuxError::Corrupt {
            format,
            detail: format!("{lib_error}; {detail}"),
        },
        other => other,
    })
}

/// Decompresses with `xz -dc` from a temporary file (a file, not a pipe:
/// `Cmd` writes stdin before reading stdout, so a large stream on both would
/// deadlock). The output is checked against the cap once complete.
fn xz_tool(stream: &[u8]) -> Result<Vec<u8>, VmlinuxError> {
    const TOOL: &str = "xz";
    let format = Compression::Xz;
    let corrupt = |detail: String| VmlinuxError::Corrupt { format, detail };
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| corrupt(format!("cannot stage the payload for `{TOOL}`: {e}")))?;
    io::Write::write_all(&mut file, stream)
        .map_err(|e| corrupt(format!("cannot stage the payload for `{TOOL}`: {e}")))?;
    let out = Cmd::new(TOOL)
        .args(["-d", "-c", "--"])
        .arg(file.path())
        .run()
        .map_err(|e| corrupt(format!("{e} (install xz-utils to unpack such kernels)")))?
        .stdout;
    if out.len() as u64 > MAX_VMLINUX {
        return Err(VmlinuxError::TooLarge {
            format,
            limit: MAX_VMLINUX,
        });
    }
    Ok(out)
}

/// The LZ4 legacy frame: a magic, then blocks of `[u32 LE compressed
/// size][raw LZ4 block]`, each at most 8 MiB when decompressed, until the
/// input ends. A size equal to the magic starts another frame (the kernel's
/// own decompressor accepts concatenated frames too).
fn lz4_legacy(stream: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut rest = stream
        .strip_prefix(&LZ4_LEGACY_MAGIC.to_le_bytes())
        .ok_or("no LZ4 legacy magic")?;
    while !rest.is_empty() {
        let Some((size, body)) = rest.split_first_chunk::<4>() else {
            return Err(format!("{} stray bytes after the last block", rest.len()));
        };
        let size = u32::from_le_bytes(*size);
        if size == LZ4_LEGACY_MAGIC {
            rest = body;
            continue;
        }
        let size = size as usize;
        if size > body.len() {
            return Err(format!(
                "a block of {size} bytes with only {} left",
                body.len()
            ));
        }
        let (block, next) = body.split_at(size);
        let decoded = lz4_flex::block::decompress(block, LZ4_LEGACY_BLOCK)
            .map_err(|e| format!("bad LZ4 block at offset {}: {e}", stream.len() - rest.len()))?;
        if (out.len() + decoded.len()) as u64 > MAX_VMLINUX {
            return Err(format!("unpacks to more than {MAX_VMLINUX} bytes"));
        }
        out.extend_from_slice(&decoded);
        rest = next;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// A compressible stand-in for a vmlinux: the ELF magic, then patterned
    /// bytes.
    pub(crate) fn fake_vmlinux(len: usize) -> Vec<u8> {
        let mut v = ELF_PREFIX.to_vec();
        v.extend((0..len - ELF_PREFIX.len()).map(|i| ((i / 7) % 251) as u8 ^ (i % 13) as u8));
        v
    }
    const ELF_PREFIX: &[u8] = b"\x7fELF\x02\x01\x01";

    /// `data` compressed the way the kernel build does, with the size
    /// trailer appended (gzip carries its own).
    pub(crate) fn kernel_payload(data: &[u8], format: Compression) -> Vec<u8> {
        let mut out = match format {
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                return e.finish().unwrap();
            }
            Compression::Xz => {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut &data[..], &mut out).unwrap();
                out
            }
            Compression::Zstd => {
                ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
            }
            Compression::Lz4 => lz4_legacy_frame(data, 1 << 20),
        };
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// An LZ4 legacy stream in blocks of `block` bytes, with a second frame
    /// magic after the first block, as concatenated frames would have.
    fn lz4_legacy_frame(data: &[u8], block: usize) -> Vec<u8> {
        let mut out = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        for (i, chunk) in data.chunks(block).enumerate() {
            if i == 1 {
                out.extend_from_slice(&LZ4_LEGACY_MAGIC.to_le_bytes());
            }
            let c = lz4_flex::block::compress(chunk);
            out.extend_from_slice(&(c.len() as u32).to_le_bytes());
            out.extend_from_slice(&c);
        }
        out
    }

    #[test]
    fn magics_are_recognised() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 8]).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::detect(b"\xfd7zXZ\x00rest").unwrap(),
            Compression::Xz
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            Compression::detect(&[0x02, 0x21, 0x4c, 0x18]).unwrap(),
            Compression::Lz4
        );
        // The LZ4 *frame* format (04 22 4d 18) is not what kernels use.
        assert!(Compression::detect(&[0x04, 0x22, 0x4d, 0x18]).is_err());
        assert!(Compression::detect(b"\xfd7zXY\x00").is_err());
    }

    #[test]
    fn lz4_blocks_across_frames_decode_in_order() {
        let data = fake_vmlinux(2_500_000);
        let payload = kernel_payload(&data, Compression::Lz4);
        assert!(unpack(&payload, Compression::Lz4).unwrap() == data);
    }

    #[test]
    fn a_wrong_size_trailer_is_a_length_mismatch() {
        let data = fake_vmlinux(100_000);
        let mut payload = kernel_payload(&data, Compression::Lz4);
        let n = payload.len();
        payload[n - 4..].copy_from_slice(&99u32.to_le_bytes());
        let err = unpack(&payload, Compression::Lz4).unwrap_err();
        assert!(
            matches!(
                err,
                VmlinuxError::LengthMismatch {
                    expected: 99,
                    actual: 100_000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn stray_bytes_after_the_last_lz4_block_are_refused() {
        let data = fake_vmlinux(10_000);
        let mut payload = kernel_payload(&data, Compression::Lz4);
        payload.splice(payload.len() - 4..payload.len() - 4, [1, 2]);
        let err = unpack(&payload, Compression::Lz4).unwrap_err();
        assert!(err.to_string().contains("stray bytes"), "{err}");
    }

    #[test]
    fn xz_with_the_x86_filter_is_unpacked_by_the_xz_tool() {
        if banger_sys::find_program("xz").is_none() {
            eprintln!("skipping: xz is not installed (apt-get install xz-utils)");
            return;
        }
        let data = fake_vmlinux(200_000);
        let mut input = tempfile::NamedTempFile::new().unwrap();
        input.write_all(&data).unwrap();
        // What the kernel's scripts/xz_wrap.sh does on x86.
        let mut payload = Cmd::new("xz")
            .args([
                "--format=xz",
                "--check=crc32",
                "--x86",
                "--lzma2=preset=1",
                "-c",
                "--",
            ])
            .arg(input.path())
            .run()
            .unwrap()
            .stdout;
        // lzma-rs alone cannot read it...
        let mut sink = Vec::new();
        assert!(lzma_rs::xz_decompress(&mut &payload[..], &mut sink).is_err());
        payload.extend_from_slice(&(data.len() as u32).to_le_bytes());
        assert!(unpack(&payload, Compression::Xz).unwrap() == data);
    }

    #[test]
    fn zstd_with_a_kernel_sized_window_is_unpacked() {
        if banger_sys::find_program("zstd").is_none() {
            eprintln!("skipping: zstd is not installed (apt-get install zstd)");
            return;
        }
        let data = fake_vmlinux(20_000);
        // From a pipe, level 22 declares a 128 MiB window, as kernel builds
        // (`zstd -22 --ultra`) do.
        let mut payload = Cmd::new("zstd")
            .args(["-c", "--ultra", "-22"])
            .stdin_bytes(data.clone())
            .run()
            .unwrap()
            .stdout;
        payload.extend_from_slice(&(data.len() as u32).to_le_bytes());
        assert!(unpack(&payload, Compression::Zstd).unwrap() == data);
    }
}
