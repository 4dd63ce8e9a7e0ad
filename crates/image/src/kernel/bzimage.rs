//! Turning a bzImage into the ELF `vmlinux` Firecracker boots.
//!
//! A bzImage is real-mode setup code followed by the protected-mode part,
//! which carries the compressed kernel. The x86 boot protocol's setup header
//! says where: `setup_sects` at 0x1f1 (0 means 4) gives the size of the
//! setup code, and `payload_offset`/`payload_length` at 0x248/0x24c locate
//! the compressed payload inside the protected-mode part (protocol 2.08+).
//! The kernel build appends the uncompressed size (u32 LE) to every payload;
//! for gzip that is the format's own ISIZE trailer.

use super::decompress::{self, Compression};
pub use super::payload::VmlinuxError;

/// The ELF magic every vmlinux starts with.
pub const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

const SETUP_SECTS: usize = 0x1f1;
const BOOT_FLAG: usize = 0x1fe;
const HEADER_MAGIC: usize = 0x202;
const PROTOCOL_VERSION: usize = 0x206;
const KERNEL_VERSION: usize = 0x20e;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
/// Where the header fields banger reads end.
const HEADER_END: usize = 0x250;

/// The setup header fields banger uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupHeader {
    /// Size of the real-mode setup code in 512-byte sectors.
    pub setup_sects: u32,
    pub protocol: u16,
    pub payload_offset: u32,
    pub payload_length: u32,
    /// Offset of the NUL-terminated kernel version string, if given.
    pub kernel_version_offset: Option<usize>,
}

impl SetupHeader {
    pub fn parse(image: &[u8]) -> Result<Self, VmlinuxError> {
        if image.len() < HEADER_END {
            return Err(VmlinuxError::NotBzImage("shorter than a setup header"));
        }
        if &image[HEADER_MAGIC..HEADER_MAGIC + 4] != b"HdrS" {
            return Err(VmlinuxError::NotBzImage("no \"HdrS\" magic at 0x202"));
        }
        if u16_at(image, BOOT_FLAG) != 0xaa55 {
            return Err(VmlinuxError::NotBzImage("no 0xAA55 boot flag at 0x1fe"));
        }
        let protocol = u16_at(image, PROTOCOL_VERSION);
        if protocol < 0x0208 {
            let [major, minor] = protocol.to_be_bytes();
            return Err(VmlinuxError::OldProtocol { major, minor });
        }
        let setup_sects = match image[SETUP_SECTS] {
            0 => 4,
            n => u32::from(n),
        };
        let version = usize::from(u16_at(image, KERNEL_VERSION));
        Ok(Self {
            setup_sects,
            protocol,
            payload_offset: u32_at(image, PAYLOAD_OFFSET),
            payload_length: u32_at(image, PAYLOAD_LENGTH),
            kernel_version_offset: (version != 0).then_some(version + 0x200),
        })
    }

    /// Where the protected-mode kernel starts in the file.
    pub fn protected_mode_start(&self) -> u64 {
        (u64::from(self.setup_sects) + 1) * 512
    }
}

/// The compressed payload of a bzImage.
pub fn payload(image: &[u8]) -> Result<&[u8], VmlinuxError> {
    let header = SetupHeader::parse(image)?;
    let offset = header.protected_mode_start() + u64::from(header.payload_offset);
    let length = u64::from(header.payload_length);
    let end = offset.saturating_add(length);
    if end > image.len() as u64 || length == 0 {
        return Err(VmlinuxError::PayloadOutOfBounds {
            offset,
            length,
            file_len: image.len() as u64,
        });
    }
    Ok(&image[offset as usize..end as usize])
}

/// The kernel release a bzImage names (`6.1.0-50-cloud-amd64`), if any.
pub fn kernel_release(image: &[u8]) -> Option<String> {
    let start = SetupHeader::parse(image).ok()?.kernel_version_offset?;
    let text = image.get(start..)?;
    let end = text.iter().take(256).position(|&b| b == 0)?;
    let full = std::str::from_utf8(&text[..end]).ok()?;
    // "6.1.0-50-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP ..."
    let release = full.split_whitespace().next()?;
    release
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b))
        .then(|| release.to_owned())
}

/// Unpacks the ELF vmlinux from a bzImage, and says how it was compressed.
pub fn unpack_vmlinux(image: &[u8]) -> Result<(Vec<u8>, Compression), VmlinuxError> {
    let payload = payload(image)?;
    let format = Compression::detect(payload)?;
    let vmlinux = decompress::unpack(payload, format)?;
    if !vmlinux.starts_with(ELF_MAGIC) {
        return Err(VmlinuxError::NotElf { format });
    }
    Ok((vmlinux, format))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Builds a minimal bzImage around `payload` the way the kernel build lays
/// one out; for tests.
#[cfg(test)]
pub(crate) fn synthetic_bzimage(payload: &[u8], setup_sects: u8) -> Vec<u8> {
    let sects = if setup_sects == 0 {
        4
    } else {
        usize::from(setup_sects)
    };
    let pm_start = (sects + 1) * 512;
    // Some decompressor code sits before the payload, and more after it.
    let payload_offset = 0x2c0;
    let mut image = vec![0u8; pm_start + payload_offset];
    image[SETUP_SECTS] = setup_sects;
    image[BOOT_FLAG..BOOT_FLAG + 2].copy_from_slice(&0xaa55u16.to_le_bytes());
    image[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
    image[PROTOCOL_VERSION..PROTOCOL_VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
    let version = b"6.1.0-99-test-amd64 (test@example) #1 SMP\0";
    let version_at = 0x300;
    image[version_at..version_at + version.len()].copy_from_slice(version);
    image[KERNEL_VERSION..KERNEL_VERSION + 2]
        .copy_from_slice(&((version_at - 0x200) as u16).to_le_bytes());
    image[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4]
        .copy_from_slice(&(payload_offset as u32).to_le_bytes());
    image[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4]
        .copy_from_slice(&(payload.len() as u32).to_le_bytes());
    image.extend_from_slice(payload);
    image.extend_from_slice(&[0xcc; 300]);
    image
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::decompress::tests::{fake_vmlinux, kernel_payload};

    #[test]
    fn each_compression_unpacks_to_the_elf() {
        let elf = fake_vmlinux(3 << 20);
        for format in [
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
            Compression::Lz4,
        ] {
            for setup_sects in [0, 27] {
                let image = synthetic_bzimage(&kernel_payload(&elf, format), setup_sects);
                let (vmlinux, found) = unpack_vmlinux(&image).unwrap();
                assert_eq!(found, format);
                assert!(vmlinux == elf, "{format} with setup_sects {setup_sects}");
            }
        }
    }

    #[test]
    fn the_header_gives_the_payload_and_release() {
        let image = synthetic_bzimage(b"payload!", 0);
        let h = SetupHeader::parse(&image).unwrap();
        assert_eq!(h.setup_sects, 4);
        assert_eq!(h.protected_mode_start(), 2560);
        assert_eq!(payload(&image).unwrap(), b"payload!");
        assert_eq!(
            kernel_release(&image).as_deref(),
            Some("6.1.0-99-test-amd64")
        );
    }

    #[test]
    fn damaged_images_are_refused_with_the_reason() {
        let elf = fake_vmlinux(1 << 20);
        let good = synthetic_bzimage(&kernel_payload(&elf, Compression::Lz4), 5);

        let mut bad_magic = good.clone();
        bad_magic[HEADER_MAGIC] = b'X';
        assert!(matches!(
            unpack_vmlinux(&bad_magic),
            Err(VmlinuxError::NotBzImage(_))
        ));

        let mut old = good.clone();
        old[PROTOCOL_VERSION..PROTOCOL_VERSION + 2].copy_from_slice(&0x0206u16.to_le_bytes());
        assert!(matches!(
            unpack_vmlinux(&old),
            Err(VmlinuxError::OldProtocol { .. })
        ));

        let pm_end = 6 * 512 + 0x2c0 + 10;
        assert!(matches!(
            unpack_vmlinux(&good[..pm_end]),
            Err(VmlinuxError::PayloadOutOfBounds { .. })
        ));

        let unknown = synthetic_bzimage(b"BZh91AY&SYxxxxxxxx", 5);
        let err = unpack_vmlinux(&unknown).unwrap_err();
        assert!(err.to_string().contains("425a6839"), "{err}");

        let not_elf = synthetic_bzimage(&kernel_payload(&[0u8; 4096], Compression::Gzip), 5);
        assert!(matches!(
            unpack_vmlinux(&not_elf),
            Err(VmlinuxError::NotElf { .. })
        ));

        assert!(matches!(
            unpack_vmlinux(&[0u8; 100]),
            Err(VmlinuxError::NotBzImage(_))
        ));
    }

    #[test]
    fn a_truncated_payload_is_refused_in_every_format() {
        let elf = fake_vmlinux(1 << 20);
        for format in [
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
            Compression::Lz4,
        ] {
            let mut payload = kernel_payload(&elf, format);
            // Drop bytes from the middle, keep the size trailer: the
            // stream itself is damaged.
            let mid = payload.len() / 2;
            payload.drain(mid..mid + 64);
            let image = synthetic_bzimage(&payload, 5);
            let err = unpack_vmlinux(&image).unwrap_err();
            assert!(
                matches!(
                    err,
                    VmlinuxError::Corrupt { .. } | VmlinuxError::LengthMismatch { .. }
                ),
                "{format}: {err}"
            );
        }
    }
}
