//! Doctor rows for storage: the state store, and how VM root disks will
//! share the image (copy-on-write strategy, device-mapper).

use std::path::Path;

use banger_image::{Backend, CowSupport};
use banger_store::MigrationStatus;

use super::{Check, Status, check};

pub fn state_store(db: &Path) -> Check {
    let name = "state store";
    if !db.exists() {
        return check(
            name,
            Status::Pass,
            format!("{} not created yet (the daemon creates it)", db.display()),
        );
    }
    match banger_store::migration_status(db) {
        Ok(MigrationStatus::UpToDate { version }) => check(
            name,
            Status::Pass,
            format!("{} (schema {version}, opened read-only)", db.display()),
        ),
        Ok(MigrationStatus::Pending {
            applied, latest, ..
        }) => check(
            name,
            Status::Warn,
            format!(
                "{} at schema {applied} of {latest}: the daemon migrates it when it next starts",
                db.display()
            ),
        ),
        Ok(MigrationStatus::NewerThanBinary {
            db_version,
            binary_version,
        }) => check(
            name,
            Status::Fail,
            format!(
                "{} has schema {db_version}, newer than this banger ({binary_version}): upgrade banger",
                db.display()
            ),
        ),
        Err(e) => check(name, Status::Fail, banger_api::error_chain(&e)),
    }
}

pub fn disk_rows(images_dir: &Path, backend: Backend) -> Vec<Check> {
    // The probe clones a small file on the images' filesystem; before the
    // first image exists, its nearest existing parent is on the same one.
    let probe_dir = images_dir
        .ancestors()
        .find(|d| d.is_dir())
        .unwrap_or(Path::new("/"));
    let support = CowSupport::detect(probe_dir);
    let strategy = banger_image::choose(&support, backend);
    let detail = banger_image::describe(&support, backend);
    let cow = if strategy.copies_the_image() {
        check(
            "cow strategy",
            Status::Warn,
            format!("{detail}; every VM copies the whole image"),
        )
    } else {
        check("cow strategy", Status::Pass, detail)
    };
    let dm = if support.device_mapper {
        check(
            "device-mapper",
            Status::Pass,
            "snapshots over loop devices available",
        )
    } else {
        check(
            "device-mapper",
            Status::Warn,
            support.notes.device_mapper.clone(),
        )
    };
    vec![cow, dm]
}

/// The default kernel and image: present, or what it takes to get them.
pub fn artifact_rows(paths: &banger_config::Paths, config: &banger_config::Config) -> Vec<Check> {
    use banger_image::images::ImageStore;
    use banger_image::kernel::KernelStore;
    use banger_sys::find_program;

    let kernel_name = config.default_kernel_name();
    let kernel = match KernelStore::new(&paths.kernels_dir).show(kernel_name) {
        Ok(k) => check(
            "default kernel",
            Status::Pass,
            format!("{kernel_name}: {} ({})", k.version, k.source),
        ),
        Err(e) if e.is_not_found() => {
            match (find_program("gpgv"), Path::new(DEBIAN_KEYRING).is_file()) {
                (Some(_), true) => check(
                    "default kernel",
                    Status::Warn,
                    format!(
                        "{kernel_name} not pulled yet: `banger kernel pull {kernel_name}` fetches it from Debian"
                    ),
                ),
                _ => check(
                    "default kernel",
                    Status::Fail,
                    format!(
                        "{kernel_name} not pulled, and pulling needs gpgv and {DEBIAN_KEYRING}: apt install gpgv debian-archive-keyring"
                    ),
                ),
            }
        }
        Err(e) => check("default kernel", Status::Fail, banger_api::error_chain(&e)),
    };
    let image_name = config.default_image_name();
    let image = match ImageStore::new(&paths.images_dir).show(image_name) {
        Ok(i) => check(
            "default image",
            Status::Pass,
            format!("{image_name}: {} ({})", i.source, i.created_at),
        ),
        Err(e) if e.is_not_found() => {
            if find_program("mmdebstrap").is_some() {
                check(
                    "default image",
                    Status::Warn,
                    format!(
                        "{image_name} not built yet: `sudo banger image build` makes it from Debian"
                    ),
                )
            } else {
                check(
                    "default image",
                    Status::Fail,
                    format!(
                        "{image_name} not built, and building needs mmdebstrap: apt install mmdebstrap"
                    ),
                )
            }
        }
        Err(e) => check("default image", Status::Fail, banger_api::error_chain(&e)),
    };
    vec![kernel, image]
}

const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
