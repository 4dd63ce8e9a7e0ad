//! Images (SPEC §9): the image store and the golden image built from Debian.
//!
//! An image lives in `images_dir/<name>/`: a read-only `rootfs.ext4`, a
//! `manifest.json` ([`ImageManifest`]) and, for built images, `root-seed/`
//! (the image's `/root` content, copied onto every new work disk). An
//! unmanaged image (`image register`) is only a manifest pointing at a
//! rootfs that lives elsewhere; `image promote` copies it in.
//!
//! Every change is prepared in a staging directory inside `images_dir`
//! and renamed into place in one step, so readers see the old image or the
//! new one, never a mix, and a failure leaves the old image as it was.
//! Writers of one image name take that name's lock, which is also what
//! makes two builds of the same image coalesce into one ([`build`]).

pub mod build;
mod error;
mod lock;
mod manifest;
mod mounts;
mod name;
mod name_rule;
mod promote;
mod staging;
mod store;

pub use build::mise::{MISE, MiseError, MisePin, MiseSource, NpmView, ResolveTarball};
pub use build::{
    Bootstrap, BuildOptions, BuildOutcome, GuestTree, Mmdebstrap, Recipe, Variant, build_image,
    build_image_with,
};
pub use error::ImageError;
pub use manifest::{ImageKind, ImageManifest};
pub use name::{ImageName, NameProblem};
pub use store::{ImageStore, MANIFEST_FILE, ROOT_SEED_DIR, ROOTFS_FILE, STAGING_PREFIX};
