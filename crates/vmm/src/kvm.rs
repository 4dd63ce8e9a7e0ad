//! Whether KVM can run guests on this host: one answer for both drivers
//! (Firecracker needs it; QEMU uses it when it demonstrably works).
//!
//! A read-write `/dev/kvm` is necessary but not sufficient: on a host that
//! is itself a guest (the `hypervisor` CPU flag), nested KVM often opens and
//! even starts a VMM, yet standard guest kernels cannot boot on it (SPEC
//! §13), and no cheap probe tells the two apart. Such a host is reported as
//! [`Kvm::Nested`], which callers treat as "not for automatic use".

use std::io::ErrorKind;
use std::path::Path;

const KVM_DEVICE: &str = "/dev/kvm";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kvm {
    /// `/dev/kvm` is read-write and the host is not itself a guest.
    Usable,
    /// `/dev/kvm` is read-write but the host is itself a guest.
    Nested,
    /// KVM cannot be used; the reason, in words for the user.
    Unavailable(String),
}

impl Kvm {
    /// Looks at `/dev/kvm` and `/proc/cpuinfo`.
    pub fn detect() -> Kvm {
        Kvm::from_facts(
            banger_sys::os::can_open_rw(Path::new(KVM_DEVICE)),
            host_is_a_guest,
        )
    }

    /// The policy over the facts; `nested` is only asked when the device
    /// opens.
    pub(crate) fn from_facts(open: std::io::Result<()>, nested: impl FnOnce() -> bool) -> Kvm {
        match open {
            Ok(()) if nested() => Kvm::Nested,
            Ok(()) => Kvm::Usable,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Kvm::Unavailable(format!("no {KVM_DEVICE} (KVM is not enabled on this host)"))
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Kvm::Unavailable(format!(
                "{KVM_DEVICE} is not readable and writable by this user (add it to the `kvm` group)"
            )),
            Err(e) => Kvm::Unavailable(format!("cannot open {KVM_DEVICE}: {e}")),
        }
    }

    /// One phrase, for stage lines, doctor and errors.
    pub fn describe(&self) -> String {
        match self {
            Kvm::Usable => format!("{KVM_DEVICE} is usable"),
            Kvm::Nested => format!(
                "{KVM_DEVICE} opens, but this host is itself a VM (nested KVM), on which \
                 standard guest kernels often cannot boot"
            ),
            Kvm::Unavailable(why) => why.clone(),
        }
    }
}

fn host_is_a_guest() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|text| cpuinfo_has_hypervisor_flag(&text))
}

pub(crate) fn cpuinfo_has_hypervisor_flag(cpuinfo: &str) -> bool {
    cpuinfo.lines().any(|line| {
        line.split_once(':').is_some_and(|(key, flags)| {
            key.trim() == "flags" && flags.split_whitespace().any(|f| f == "hypervisor")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> bool {
        panic!("the nested check must not run when the device does not open")
    }

    #[test]
    fn an_open_device_is_usable_unless_the_host_is_a_guest() {
        assert_eq!(Kvm::from_facts(Ok(()), || false), Kvm::Usable);
        assert_eq!(Kvm::from_facts(Ok(()), || true), Kvm::Nested);
        assert!(Kvm::Nested.describe().contains("nested"));
    }

    #[test]
    fn a_device_that_does_not_open_says_why() {
        let missing = Kvm::from_facts(Err(ErrorKind::NotFound.into()), never);
        assert!(
            matches!(&missing, Kvm::Unavailable(w) if w.contains("no /dev/kvm")),
            "{missing:?}"
        );
        let denied = Kvm::from_facts(Err(ErrorKind::PermissionDenied.into()), never);
        assert!(denied.describe().contains("`kvm` group"), "{denied:?}");
        let other = Kvm::from_facts(Err(std::io::Error::other("boom")), never);
        assert!(other.describe().contains("boom"), "{other:?}");
    }

    #[test]
    fn hypervisor_flag_is_found_only_in_flags() {
        let guest = "processor\t: 0\nflags\t\t: fpu vme hypervisor lahf_lm\n";
        let metal = "processor\t: 0\nflags\t\t: fpu vme lahf_lm\nmodel name\t: hypervisor\n";
        assert!(cpuinfo_has_hypervisor_flag(guest));
        assert!(!cpuinfo_has_hypervisor_flag(metal));
    }
}
