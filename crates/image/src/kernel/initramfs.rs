//! The initramfs a VM boots with: banger's agent as `/init` (it runs its
//! init mode as PID 1), the virtio and vsock modules with their load order,
//! and the few directories and device node init needs before it mounts
//! anything. A gzip-compressed newc cpio, byte-for-byte reproducible.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use super::cpio::Cpio;
use super::error::KernelError;
use super::modules::ModuleFile;

/// Where the agent's init reads the module order (banger-agent's
/// `modules::ORDER_FILE`, without the leading slash).
pub const ORDER_FILE: &str = "lib/modules/banger.order";

/// Largest agent binary accepted.
const MAX_AGENT: u64 = 256 << 20;

/// Writes the initramfs for kernel `release` to `dest`.
pub fn build_initramfs(
    agent: &Path,
    release: &str,
    modules: &[ModuleFile],
    dest: &Path,
) -> Result<(), KernelError> {
    let agent_missing = |source| KernelError::AgentMissing {
        path: agent.to_owned(),
        source,
    };
    let mut init = Vec::new();
    File::open(agent)
        .and_then(|f| f.take(MAX_AGENT).read_to_end(&mut init))
        .map_err(agent_missing)?;
    if init.is_empty() {
        return Err(agent_missing(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty",
        )));
    }
    let cpio = assemble(init, release, modules)
        .map_err(|e| KernelError::io("assemble the initramfs for", dest, e))?;
    let file = File::create(dest).map_err(|e| KernelError::io("create", dest, e))?;
    // GzBuilder writes mtime 0 and no file name, keeping the output
    // reproducible.
    let mut gz =
        flate2::GzBuilder::new().write(BufWriter::new(file), flate2::Compression::default());
    cpio.write(&mut gz)
        .and_then(|()| gz.finish())
        .and_then(|mut w| w.flush())
        .map_err(|e| KernelError::io("write", dest, e))
}

fn assemble(init: Vec<u8>, release: &str, modules: &[ModuleFile]) -> std::io::Result<Cpio> {
    let mut cpio = Cpio::new();
    cpio.file("init", 0o755, init)?;
    for dir in ["proc", "sys", "dev", "newroot", "run", "tmp"] {
        cpio.dir(dir, 0o755)?;
    }
    // So the kernel and init have somewhere to print before devtmpfs is up,
    // and Rust's runtime finds /dev/null if a standard stream is closed.
    cpio.char_dev("dev/console", 0o600, 5, 1)?;
    cpio.char_dev("dev/null", 0o666, 1, 3)?;
    let mut order =
        String::from("# Load order, dependencies first; paths under /lib/modules/<release>/.\n");
    for module in modules {
        cpio.file(
            &format!("lib/modules/{release}/{}", module.rel),
            0o644,
            module.data.clone(),
        )?;
        order.push_str(&module.rel);
        order.push('\n');
    }
    cpio.file(ORDER_FILE, 0o644, order.into_bytes())?;
    Ok(cpio)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::kernel::cpio::read_newc;

    fn modules() -> Vec<ModuleFile> {
        ["virtio", "virtio_ring"]
            .iter()
            .map(|n| ModuleFile {
                name: n.to_string(),
                rel: format!("kernel/drivers/virtio/{n}.ko"),
                data: format!("\x7fELF {n}").into_bytes(),
            })
            .collect()
    }

    fn unpack(path: &Path) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        read_newc(&raw)
    }

    #[test]
    fn init_modules_order_and_console_are_in_place_reproducibly() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent");
        std::fs::write(&agent, b"agent binary").unwrap();
        let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
        build_initramfs(&agent, "6.1.0-1-cloud-amd64", &modules(), &a).unwrap();
        build_initramfs(&agent, "6.1.0-1-cloud-amd64", &modules(), &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

        let entries = unpack(&a);
        let get = |name: &str| {
            entries
                .iter()
                .find(|e| e.0 == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert_eq!(get("init").4, b"agent binary");
        assert_eq!(get("init").1 & 0o777, 0o755);
        assert_eq!((get("dev/console").2, get("dev/console").3), (5, 1));
        assert_eq!((get("dev/null").2, get("dev/null").3), (1, 3));
        for dir in ["proc", "sys", "dev", "newroot"] {
            assert_eq!(get(dir).1 & 0o170_000, 0o040_000, "{dir}");
        }
        assert_eq!(
            get("lib/modules/6.1.0-1-cloud-amd64/kernel/drivers/virtio/virtio_ring.ko").4,
            b"\x7fELF virtio_ring"
        );
        let order = String::from_utf8(get(ORDER_FILE).4.clone()).unwrap();
        let listed: Vec<&str> = order.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            listed,
            [
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko"
            ]
        );
    }

    #[test]
    fn a_missing_agent_says_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            build_initramfs(&dir.path().join("none"), "r", &[], &dir.path().join("i")).unwrap_err();
        assert!(matches!(err, KernelError::AgentMissing { .. }), "{err}");
        assert!(err.to_string().contains("banger-agent"), "{err}");
    }
}
