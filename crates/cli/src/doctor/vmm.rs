//! The VMM rows: KVM, Firecracker, and which backend `vmm = ...` resolves
//! to and why, by the same decision and the same KVM probe the daemon uses
//! (`banger_vmm::select`, `banger_vmm::Kvm`).

use std::path::Path;

use banger_config::{Config, Vmm};
use banger_vmm::firecracker::FirecrackerVersion;
use banger_vmm::qemu::Accel;
use banger_vmm::select::{self, Choice, FirecrackerFound, Preference};
use banger_vmm::{BackendKind, Kvm};

use super::{Check, Status, check};

pub(super) fn kvm(kvm: &Kvm) -> Check {
    match kvm {
        Kvm::Usable => check("kvm", Status::Pass, kvm.describe()),
        Kvm::Nested => check(
            "kvm",
            Status::Warn,
            format!(
                "{}: VMs run under QEMU with software emulation unless vmm = \"firecracker\" \
                 (or BANGER_QEMU_ACCEL=kvm for QEMU) says this host's nested KVM works",
                kvm.describe()
            ),
        ),
        Kvm::Unavailable(why) => check(
            "kvm",
            Status::Warn,
            format!("{why}: VMs run under QEMU with software emulation (much slower)"),
        ),
    }
}

/// Where a VMM opens its tap.
pub(super) const TUN: &str = "/dev/net/tun";

/// A daemon that is not root starts the VMM as itself, and the VMM opens
/// its tap through [`TUN`]: that must be open to it (Debian's udev rules
/// make it 0666; a tap is usable only by the uid it was made for).
pub(super) fn tun(as_root: bool, openable: Result<(), String>) -> Check {
    match (as_root, openable) {
        (true, _) => check("tun", Status::Pass, "the daemon runs as root"),
        (false, Ok(())) => check("tun", Status::Pass, format!("{TUN} is open to this user")),
        (false, Err(why)) => check(
            "tun",
            Status::Fail,
            format!(
                "{TUN} cannot be opened by this user ({why}), so a VMM started by a daemon that                  is not root cannot open its tap; `sudo chmod 0666 {TUN}` (Debian's default)"
            ),
        ),
    }
}

pub(super) fn firecracker(found: &FirecrackerFound) -> Check {
    match found {
        FirecrackerFound::Supported { binary, version } => check(
            "firecracker",
            Status::Pass,
            format!("Firecracker {version} ({})", binary.display()),
        ),
        FirecrackerFound::Missing { looked_for } => check(
            "firecracker",
            Status::Warn,
            format!("{looked_for} not installed: VMs use the QEMU backend"),
        ),
        FirecrackerFound::Unusable { problem, .. } => {
            check("firecracker", Status::Fail, problem.clone())
        }
    }
}

/// With `jailer_enabled`, the jailer must be installed and come from
/// Firecracker's own release (`jailer --version` prints `Jailer vX.Y.Z`);
/// without it, no row. `found`: where it is and what `--version` printed.
pub(super) fn jailer(
    enabled: bool,
    found: Option<(&Path, Option<&str>)>,
    firecracker: Option<&FirecrackerVersion>,
) -> Option<Check> {
    if !enabled {
        return None;
    }
    let Some((binary, output)) = found else {
        return Some(check(
            "jailer",
            Status::Fail,
            "jailer_enabled = true, but no jailer is installed; install it from the same              Firecracker release, or set jailer_bin",
        ));
    };
    let version = output.and_then(|out| {
        out.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("Jailer ")?;
            FirecrackerVersion::parse(rest.split_whitespace().next()?)
        })
    });
    Some(match (version, firecracker) {
        (None, _) => check(
            "jailer",
            Status::Fail,
            format!(
                "{} --version did not print a jailer version",
                binary.display()
            ),
        ),
        (Some(j), Some(fc)) if j != *fc => check(
            "jailer",
            Status::Fail,
            format!(
                "jailer {j} ({}) but Firecracker {fc}: install both from the same release",
                binary.display()
            ),
        ),
        (Some(j), _) => check(
            "jailer",
            Status::Pass,
            format!("jailer {j} ({})", binary.display()),
        ),
    })
}

fn preference(vmm: Vmm) -> Preference {
    match vmm {
        Vmm::Auto => Preference::Auto,
        Vmm::Firecracker => Preference::Firecracker,
        Vmm::Qemu => Preference::Qemu,
    }
}

/// The backend new VMs get, and why; the same decision the daemon makes.
pub(super) fn choice(
    config: &Config,
    found: &FirecrackerFound,
    kvm: &Kvm,
) -> Result<Choice, select::SelectError> {
    select::choose(preference(config.vmm()), || found.clone(), || kvm.clone())
}

/// The `vmm` row: e.g. `qemu (tcg): firecracker not installed` or
/// `firecracker: Firecracker 1.17.0 with KVM`, with the configured value.
/// `qemu` is the located QEMU binary, whose accelerator is detected the way
/// the daemon detects it.
pub(super) fn row(
    config: &Config,
    choice: &Result<Choice, select::SelectError>,
    qemu: Option<&Path>,
) -> Check {
    let configured = format!("vmm = \"{}\"", config.vmm().as_str());
    match choice {
        Err(e) => check("vmm", Status::Fail, e.to_string()),
        Ok(c) if c.kind == BackendKind::Firecracker => check(
            "vmm",
            Status::Pass,
            format!("firecracker: {} ({configured})", c.reason),
        ),
        Ok(c) => match qemu.map(Accel::detect) {
            Some(Ok(accel)) => check(
                "vmm",
                Status::Pass,
                format!("qemu ({}): {} ({configured})", accel.as_str(), c.reason),
            ),
            Some(Err(e)) => check(
                "vmm",
                Status::Fail,
                format!("qemu: {} ({configured}), but {e}", c.reason),
            ),
            None => check(
                "vmm",
                Status::Fail,
                format!(
                    "qemu: {} ({configured}), but qemu-system-x86_64 is not installed",
                    c.reason
                ),
            ),
        },
    }
}

/// The copy-on-write strategy's view of the backend; Firecracker's (raw
/// disks only) when an explicit `vmm = "firecracker"` cannot run yet.
pub(super) fn cow_backend(choice: &Result<Choice, select::SelectError>) -> banger_image::Backend {
    match choice {
        Ok(c) if c.kind == BackendKind::Qemu => banger_image::Backend::Qemu,
        _ => banger_image::Backend::Firecracker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_vmm::firecracker::FirecrackerVersion;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("config.toml")).unwrap()
    }

    fn supported() -> FirecrackerFound {
        FirecrackerFound::Supported {
            binary: "/usr/local/bin/firecracker".into(),
            version: FirecrackerVersion {
                major: 1,
                minor: 17,
                patch: 0,
            },
        }
    }

    fn missing() -> FirecrackerFound {
        FirecrackerFound::Missing {
            looked_for: "firecracker".into(),
        }
    }

    #[test]
    fn the_row_names_the_backend_and_the_reason() {
        let auto = config("");
        let c = choice(&auto, &supported(), &Kvm::Usable);
        let r = row(&auto, &c, None);
        assert_eq!(r.status, Status::Pass);
        assert_eq!(
            r.detail,
            "firecracker: Firecracker 1.17.0 with KVM (vmm = \"auto\")"
        );
        assert_eq!(cow_backend(&c), banger_image::Backend::Firecracker);

        // QEMU chosen but not installed: the row fails.
        let c = choice(&auto, &missing(), &Kvm::Usable);
        let r = row(&auto, &c, None);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.detail.starts_with("qemu: firecracker not installed")
                && r.detail.contains("not installed"),
            "{}",
            r.detail
        );
        assert_eq!(cow_backend(&c), banger_image::Backend::Qemu);
    }

    #[test]
    fn an_explicit_firecracker_that_cannot_run_fails_the_row() {
        let fc = config("vmm = \"firecracker\"\n");
        let c = choice(&fc, &missing(), &Kvm::Usable);
        let r = row(&fc, &c, None);
        assert_eq!(r.status, Status::Fail);
        assert!(r.detail.contains("firecracker_bin"), "{}", r.detail);
    }

    #[test]
    fn the_tun_row_matters_only_without_root() {
        assert_eq!(tun(true, Err("EACCES".into())).status, Status::Pass);
        assert_eq!(tun(false, Ok(())).status, Status::Pass);
        let row = tun(false, Err("Permission denied".into()));
        assert_eq!(row.status, Status::Fail);
        assert!(
            row.detail.contains("chmod 0666 /dev/net/tun"),
            "{}",
            row.detail
        );
    }

    #[test]
    fn the_jailer_must_match_firecrackers_release() {
        let fc = FirecrackerVersion::parse("1.17.0").unwrap();
        let bin = Path::new("/usr/local/bin/jailer");
        assert!(jailer(false, None, Some(&fc)).is_none());
        let row = jailer(true, None, Some(&fc)).unwrap();
        assert_eq!(row.status, Status::Fail);
        assert!(row.detail.contains("no jailer"), "{}", row.detail);
        let ok = jailer(true, Some((bin, Some("Jailer v1.17.0\n"))), Some(&fc)).unwrap();
        assert_eq!(ok.status, Status::Pass, "{}", ok.detail);
        assert!(ok.detail.contains("1.17.0"), "{}", ok.detail);
        let old = jailer(true, Some((bin, Some("Jailer v1.7.0\n"))), Some(&fc)).unwrap();
        assert_eq!(old.status, Status::Fail);
        assert!(old.detail.contains("same release"), "{}", old.detail);
        let mute = jailer(true, Some((bin, None)), Some(&fc)).unwrap();
        assert_eq!(mute.status, Status::Fail);
    }

    #[test]
    fn kvm_and_firecracker_rows() {
        assert_eq!(kvm(&Kvm::Usable).status, Status::Pass);
        let nested = kvm(&Kvm::Nested);
        assert_eq!(nested.status, Status::Warn);
        assert!(nested.detail.contains("nested"), "{}", nested.detail);
        let none = kvm(&Kvm::Unavailable("no /dev/kvm".into()));
        assert_eq!(none.status, Status::Warn);
        assert!(
            none.detail.contains("software emulation"),
            "{}",
            none.detail
        );

        assert_eq!(firecracker(&supported()).status, Status::Pass);
        assert_eq!(firecracker(&missing()).status, Status::Warn);
        let old = FirecrackerFound::Unusable {
            binary: "/opt/fc".into(),
            problem: "Firecracker 1.4.0 at /opt/fc is too old".into(),
        };
        assert_eq!(firecracker(&old).status, Status::Fail);
    }
}
