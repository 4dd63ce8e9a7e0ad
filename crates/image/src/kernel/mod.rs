//! Kernels (SPEC §9.3): Debian's cloud kernel pulled from a signed mirror,
//! or a kernel imported from a directory, stored ready for both VMMs.
//!
//! - [`KernelStore`]: `list`, `show`, `remove`, `import`, `pull_debian`,
//!   all-or-nothing installs under `kernels_dir/<name>/`;
//! - [`bzimage`]: the ELF `vmlinux` Firecracker needs, unpacked from a
//!   bzImage (gzip, xz, zstd, lz4);
//! - [`modules`]: the virtio and vsock modules in dependency order, read
//!   from `.modinfo` since the package ships no `modules.dep`;
//! - [`initramfs`]: the agent as `/init` plus those modules, as a
//!   reproducible gzip newc cpio, rebuilt before a boot when the installed
//!   agent changed (`agent_initrd`);
//! - [`modules_disk`]: the whole module tree with `depmod`'s indexes as a
//!   read-only ext4 that every VM of the kernel mounts at
//!   `/lib/modules/<release>`.

mod agent_initrd;
mod assemble;
pub mod bzimage;
pub mod config;
pub mod cpio;
pub mod decompress;
mod error;
mod import;
pub mod initramfs;
mod kernel_dir;
pub mod manifest;
pub mod modinfo;
pub mod modules;
pub mod modules_disk;
pub mod order;
mod payload;
mod pull;
mod store;

#[cfg(test)]
mod tests;

pub use agent_initrd::AGENT_STAMP;
pub use bzimage::{VmlinuxError, unpack_vmlinux};
pub use decompress::Compression;
pub use error::KernelError;
pub use kernel_dir::{BZIMAGE, CONFIG, INITRD, MANIFEST, MODULES, VMLINUX};
pub use manifest::{KernelManifest, KernelSizes, validate_name};
pub use modules_disk::MODULES_DISK;
pub use store::{DEFAULT_KERNEL_NAME, KernelPaths, KernelStore};
