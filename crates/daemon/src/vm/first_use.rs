//! First use (SPEC §1, §6): a VM asked of the default kernel, or of an image
//! banger knows how to build, that is not there yet fetches or builds it, as
//! stages of the `vm.create` operation, so the first `banger vm run` works on
//! a fresh machine and shows where its minutes go.

use banger_api::protocol::ErrorCode;
use banger_image::images::{ImageError, ImageManifest, ImageName, ImageStore};
use banger_image::kernel::{KernelError, KernelStore};

use crate::blocking::run;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::state::Daemon;
use crate::supply;

/// The image's manifest, building the image first when it is missing and
/// one banger builds itself.
pub(super) async fn ensure_image(
    daemon: &Daemon,
    op: &mut OpTracker,
    name: &str,
) -> Result<ImageManifest, DaemonError> {
    let store = ImageStore::new(&daemon.paths.images_dir);
    let n = name.to_owned();
    match run(move || store.show(&n)).await? {
        Ok(m) => return Ok(m),
        Err(ImageError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(variant) = supply::buildable_variant(name) else {
        return Err(DaemonError::failed(
            ErrorCode::NotFound,
            format!(
                "image {name} not found; `banger image list` shows the images there are, \
                 `banger image build` builds the default one"
            ),
        ));
    };
    op.stage(&format!(
        "image {name} is not built yet: building it from Debian (first use; this takes minutes)"
    ))
    .await?;
    let built = supply::build_staged(daemon, op, ImageName::new(name)?, variant, false).await?;
    Ok(built.manifest)
}

/// Makes sure kernel `name` is in the store, pulling it when missing and
/// pullable.
pub(super) async fn ensure_kernel(
    daemon: &Daemon,
    op: &mut OpTracker,
    name: &str,
) -> Result<(), DaemonError> {
    let store = KernelStore::new(&daemon.paths.kernels_dir);
    let n = name.to_owned();
    match run(move || store.show(&n)).await? {
        Ok(_) => return Ok(()),
        Err(KernelError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    if !supply::is_pullable(name) {
        return Err(DaemonError::failed(
            ErrorCode::NotFound,
            format!(
                "kernel {name} not found; `banger kernel list --available` shows what can be \
                 pulled, `banger kernel import` adds your own"
            ),
        ));
    }
    op.stage(&format!(
        "kernel {name} is not here yet: fetching it from Debian (first use)"
    ))
    .await?;
    supply::pull_staged(daemon, op, name.to_owned()).await?;
    Ok(())
}
