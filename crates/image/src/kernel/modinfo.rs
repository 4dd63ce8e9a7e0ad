//! Reading a module's `.modinfo` ELF section: NUL-separated `key=value`
//! strings, of which banger needs `name=` and `depends=` (the modules that
//! must be loaded first, comma-separated; what `depmod` would have put in
//! `modules.dep`, which Debian's cloud kernel package does not ship).

use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modinfo {
    pub name: Option<String>,
    pub depends: Vec<String>,
}

/// Parses the `.modinfo` section of an uncompressed `.ko`.
pub fn parse_modinfo(ko: &[u8]) -> Result<Modinfo, String> {
    // `object` reads ELF structures in place and needs them 8-byte aligned;
    // a `Vec<u8>` from the allocator usually is, but that is not promised.
    let aligned;
    let ko = if ko.as_ptr().align_offset(8) == 0 {
        ko
    } else {
        aligned = AlignedCopy::new(ko);
        aligned.bytes()
    };
    let elf =
        ElfFile64::<Endianness>::parse(ko).map_err(|e| format!("not a 64-bit ELF module: {e}"))?;
    let section = elf
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let data = section
        .data()
        .map_err(|e| format!("cannot read .modinfo: {e}"))?;
    let mut info = Modinfo::default();
    for entry in data.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let Ok(entry) = std::str::from_utf8(entry) else {
            continue; // descriptions may hold any bytes; banger needs none of them
        };
        match entry.split_once('=') {
            Some(("name", v)) => info.name = Some(v.to_owned()),
            Some(("depends", v)) => {
                info.depends = v
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    Ok(info)
}

/// A copy of some bytes starting on an 8-byte boundary, made without
/// `unsafe`: over-allocate, then start at the first aligned offset.
struct AlignedCopy {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedCopy {
    fn new(data: &[u8]) -> Self {
        let mut buf = vec![0u8; data.len() + 8];
        let start = buf.as_ptr().align_offset(8);
        buf[start..start + data.len()].copy_from_slice(data);
        Self {
            buf,
            start,
            len: data.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// A minimal relocatable x86-64 ELF holding just a `.modinfo` section with
/// `entries`; for tests.
#[cfg(test)]
pub(crate) fn synthetic_ko(entries: &[&str]) -> Vec<u8> {
    let mut modinfo = Vec::new();
    for e in entries {
        modinfo.extend_from_slice(e.as_bytes());
        modinfo.push(0);
    }
    let shstrtab = b"\0.modinfo\0.shstrtab\0";
    let modinfo_off = 64;
    let shstr_off = modinfo_off + modinfo.len();
    let sh_off = (shstr_off + shstrtab.len()).div_ceil(8) * 8;
    let mut elf = vec![0u8; sh_off + 3 * 64];
    elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    let put16 =
        |e: &mut Vec<u8>, at: usize, v: u16| e[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |e: &mut Vec<u8>, at: usize, v: u32| e[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |e: &mut Vec<u8>, at: usize, v: u64| e[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put16(&mut elf, 16, 1); // ET_REL
    put16(&mut elf, 18, 62); // EM_X86_64
    put32(&mut elf, 20, 1);
    put64(&mut elf, 40, sh_off as u64);
    put16(&mut elf, 52, 64);
    put16(&mut elf, 58, 64);
    put16(&mut elf, 60, 3);
    put16(&mut elf, 62, 2);
    elf[modinfo_off..shstr_off].copy_from_slice(&modinfo);
    elf[shstr_off..shstr_off + shstrtab.len()].copy_from_slice(shstrtab);
    // [1] .modinfo: PROGBITS; [2] .shstrtab: STRTAB.
    for (i, (name, kind, off, size)) in [
        (1u32, 1u32, modinfo_off, modinfo.len()),
        (10, 3, shstr_off, shstrtab.len()),
    ]
    .into_iter()
    .enumerate()
    {
        let h = sh_off + (i + 1) * 64;
        put32(&mut elf, h, name);
        put32(&mut elf, h + 4, kind);
        put64(&mut elf, h + 24, off as u64);
        put64(&mut elf, h + 32, size as u64);
        put64(&mut elf, h + 48, 1);
    }
    elf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_depends_are_read() {
        let ko = synthetic_ko(&[
            "license=GPL",
            "depends=virtio_ring,virtio_pci_modern_dev,virtio",
            "description=has = signs",
            "name=virtio_pci",
        ]);
        let info = parse_modinfo(&ko).unwrap();
        assert_eq!(info.name.as_deref(), Some("virtio_pci"));
        assert_eq!(
            info.depends,
            ["virtio_ring", "virtio_pci_modern_dev", "virtio"]
        );
    }

    #[test]
    fn an_empty_depends_means_no_dependencies() {
        let info = parse_modinfo(&synthetic_ko(&["depends=", "name=virtio"])).unwrap();
        assert!(info.depends.is_empty());
    }

    #[test]
    fn misaligned_input_is_read_the_same() {
        let ko = synthetic_ko(&["depends=a,b", "name=c"]);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&ko);
        let info = parse_modinfo(&shifted[1..]).unwrap();
        assert_eq!(info.depends, ["a", "b"]);
    }

    #[test]
    fn non_modules_are_refused() {
        assert!(parse_modinfo(b"not an elf").is_err());
        let mut no_section = synthetic_ko(&["name=x"]);
        // Rename `.modinfo` in the string table.
        let at = no_section
            .windows(8)
            .position(|w| w == b".modinfo")
            .unwrap();
        no_section[at + 1] = b'X';
        let err = parse_modinfo(&no_section).unwrap_err();
        assert!(err.contains(".modinfo"), "{err}");
    }
}
