//! Disks (SPEC §7): copy-on-write root disks over the read-only images
//! ([`cow`]), work disks ([`workdisk`]), and writing files into ext4 images
//! without mounting them ([`ext4`]). Images and kernels (SPEC §9) join later.
#![forbid(unsafe_code)]

pub mod agent_bin;
pub mod cow;
pub mod debian;
mod digest;
mod error;
pub mod ext4;
pub mod images;
pub mod kernel;
mod newfile;
#[cfg(test)]
mod test_support;
pub mod workdisk;

pub use cow::{
    Backend, CowStrategy, CowSupport, DiskFormat, ProbeNotes, RootDisk, choose, describe,
    provision_root_disk, teardown_root_disk,
};
pub use error::DiskError;
pub use ext4::{Entry, Ext4Image, FileInfo, FileKind};
pub use workdisk::{create_work_disk, give_seed_to_root};
