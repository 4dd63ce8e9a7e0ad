//! The `init` mode: PID 1 of the initramfs.
//!
//! Mount /proc, /sys, /dev and /run; load the virtio and vsock modules the
//! kernel lacks; wait for the root disk; mount it at [`NEWROOT`], the
//! kernel's modules disk and the work disk under it; move the virtual
//! filesystems into it; free the initramfs; switch root; configure the NIC
//! with the image's `ip`; exec the real init.
//! Any failure is printed on the console and the guest is stopped after a
//! pause, rather than letting PID 1 exit into a kernel panic that would bury
//! the reason.

mod console;
mod free_initramfs;
pub mod plan;
mod switch_root;
pub mod wait;

use std::convert::Infallible;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use thiserror::Error;

use crate::boot_config::{BootConfig, BootConfigError, HaltAction};
use crate::cmdline::{Cmdline, PROC_CMDLINE};
use crate::mount_spec::{self, MountError};
use crate::{halt, modules, network, workdisk};

/// Where the root disk is mounted before the switch.
pub const NEWROOT: &str = "/newroot";

/// How long a fatal message stays on the console before the guest stops.
const FATAL_DELAY: Duration = Duration::from_secs(10);

/// Why the initramfs could not hand over to the real init.
#[derive(Debug, Error)]
pub enum InitError {
    #[error("early mount failed: {0}")]
    EarlyMount(MountError),
    #[error("cannot read {PROC_CMDLINE}: {0}")]
    Cmdline(io::Error),
    #[error(transparent)]
    Config(#[from] BootConfigError),
    #[error(
        "root device {} did not appear within {:.1} s (is its driver in {}?)",
        device.display(),
        waited.as_secs_f64(),
        modules::ORDER_FILE
    )]
    RootMissing { device: PathBuf, waited: Duration },
    #[error("cannot mount the root filesystem: {0}")]
    MountRoot(MountError),
    #[error("init {} not found on the root filesystem ({})", init.display(), device.display())]
    InitMissing { init: PathBuf, device: PathBuf },
    #[error("cannot move {0}")]
    Move(MountError),
    #[error(transparent)]
    SwitchRoot(#[from] switch_root::SwitchRootError),
    #[error("cannot exec {}: {source}", init.display())]
    Exec { init: PathBuf, source: io::Error },
}

/// Runs the initramfs init; never returns.
pub fn run() -> ! {
    let mut halt_action = HaltAction::PowerOff;
    let err = match boot(&mut halt_action) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    halt::fatal(&err.to_string(), halt_action, FATAL_DELAY)
}

fn boot(halt_action: &mut HaltAction) -> Result<Infallible, InitError> {
    let mounted = mount_spec::current_mounts();
    for spec in mount_spec::missing(&plan::early_mounts(), &mounted) {
        mount_spec::apply(spec).map_err(InitError::EarlyMount)?;
    }
    console::reopen_stdio();
    crate::log::use_kmsg();
    crate::info!("initramfs init {} starting", crate::AGENT_VERSION);

    let cmdline = Cmdline::parse(&fs::read_to_string(PROC_CMDLINE).map_err(InitError::Cmdline)?);
    *halt_action = BootConfig::halt_from_cmdline(&cmdline);
    let config = BootConfig::from_cmdline(&cmdline)?;

    // The booted kernel's release names its module directory, for the
    // initramfs's modules and the modules disk alike.
    let release = match fs::read_to_string(modules::PROC_OSRELEASE) {
        Ok(r) => Some(r.trim().to_string()),
        Err(e) => {
            crate::error!(
                "cannot read {}: {e}; loading no modules",
                modules::PROC_OSRELEASE
            );
            None
        }
    };
    if let Some(release) = &release {
        load_modules(release);
    }

    let device = &config.root.device;
    match wait::wait_for_path(device, config.root.wait, wait::POLL) {
        Ok(waited) => crate::info!(
            "{} present after {:.2} s",
            device.display(),
            waited.as_secs_f64()
        ),
        Err(waited) => {
            return Err(InitError::RootMissing {
                device: device.clone(),
                waited,
            });
        }
    }
    let newroot = Path::new(NEWROOT);
    mount_spec::mount_device(
        device,
        newroot,
        &config.root.fstype,
        plan::root_mount_flags(config.root.read_only),
    )
    .map_err(InitError::MountRoot)?;
    crate::info!(
        "mounted {} ({}, {}) on {NEWROOT}",
        device.display(),
        config.root.fstype,
        if config.root.read_only { "ro" } else { "rw" }
    );

    // Checked before anything is moved, so a bad banger.init still fails
    // with the console and /proc in place.
    let init_path = plan::path_inside(newroot, &config.init);
    if fs::symlink_metadata(&init_path).is_err() {
        return Err(InitError::InitMissing {
            init: config.init.clone(),
            device: device.clone(),
        });
    }

    if let Some(modules) = &config.modules {
        if let Some(release) = &release {
            mount_modules(modules, newroot, release);
        }
    }
    // Here rather than by the real init: systemd would wait for udev to
    // announce the device first, seconds of an emulated CPU.
    if let Some(device) = &config.workdisk {
        if wait::wait_for_path(device, WORKDISK_WAIT, wait::POLL).is_ok() {
            workdisk::mount(device, newroot);
        } else {
            crate::info!("no work disk at {}", device.display());
        }
    }

    for dir in plan::MOVED_MOUNTS {
        mount_spec::move_mount(Path::new(dir), &plan::path_inside(newroot, Path::new(dir)))
            .map_err(InitError::Move)?;
    }
    match free_initramfs::free(newroot) {
        Ok(removed) => crate::info!("freed the initramfs ({removed} entries)"),
        Err(e) => crate::warn!("could not free the initramfs: {e}"),
    }
    switch_root::switch_root(newroot)?;

    // With the image's own `ip`, now that its root is ours; the marker in
    // /run tells the real init's network step that it is done.
    if config.net.is_some() {
        if let Err(e) = network::configure(config.net.as_ref(), Path::new("/")) {
            crate::error!("network setup failed: {e}; the real init will try again");
        }
    }

    crate::info!("switching to {}", config.init.display());
    let source = Command::new(&config.init).arg0(&config.init).exec();
    Err(InitError::Exec {
        init: config.init,
        source,
    })
}

/// How long the work disk may take to appear once the root disk has.
const WORKDISK_WAIT: Duration = Duration::from_secs(2);

/// How long the modules disk may take to appear once the root disk has.
const MODULES_WAIT: Duration = Duration::from_secs(5);

/// Mounts the kernel's modules disk at `/lib/modules/<release>` of the new
/// root, so `modprobe` (and the kernel's own module requests) find exactly
/// the booted kernel's modules whatever the image. Failures are logged, not
/// fatal: the guest still boots, without loadable modules.
fn mount_modules(device: &Path, newroot: &Path, release: &str) {
    if let Err(waited) = wait::wait_for_path(device, MODULES_WAIT, wait::POLL) {
        crate::error!(
            "modules disk {} did not appear within {:.1} s; no loadable modules",
            device.display(),
            waited.as_secs_f64()
        );
        return;
    }
    let target = plan::resolve_inside(newroot, &plan::modules_dir(release));
    match mount_spec::mount_device(device, &target, "ext4", plan::modules_mount_flags()) {
        Ok(()) => crate::info!(
            "mounted the modules of {release} from {} on {}",
            device.display(),
            target.display()
        ),
        Err(e) => crate::error!("cannot mount the modules disk: {e}"),
    }
}

/// Loads [`modules::ORDER_FILE`] in order. Failures are logged, not fatal:
/// a missing driver shows up as the root device not appearing, with a
/// message that says where to look.
fn load_modules(release: &str) {
    let text = match fs::read_to_string(modules::ORDER_FILE) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            crate::info!("no {}: loading no modules", modules::ORDER_FILE);
            return;
        }
        Err(e) => {
            crate::error!("cannot read {}: {e}", modules::ORDER_FILE);
            return;
        }
    };
    let paths = match modules::parse_order(&text, release) {
        Ok(paths) => paths,
        Err(e) => {
            crate::error!("{e}");
            return;
        }
    };
    for path in paths {
        match modules::load(&path) {
            Ok(modules::LoadOutcome::Loaded) => crate::info!("loaded {}", path.display()),
            Ok(modules::LoadOutcome::AlreadyLoaded) => {
                crate::info!("{} already loaded", path.display())
            }
            Err(e) => crate::error!("{e}"),
        }
    }
}
