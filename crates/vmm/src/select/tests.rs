//! Every branch of the backend choice, with the facts made up.

use super::*;

fn v(minor: u32) -> FirecrackerVersion {
    FirecrackerVersion {
        major: 1,
        minor,
        patch: 0,
    }
}

fn supported() -> FirecrackerFound {
    FirecrackerFound::Supported {
        binary: "/usr/local/bin/firecracker".into(),
        version: v(17),
    }
}

fn missing() -> FirecrackerFound {
    FirecrackerFound::Missing {
        looked_for: "firecracker".into(),
    }
}

fn too_old() -> FirecrackerFound {
    FirecrackerFound::Unusable {
        binary: "/opt/fc".into(),
        problem: "Firecracker 1.4.0 at /opt/fc is too old (banger needs 1.5.0 or newer)".into(),
    }
}

fn no_kvm() -> Kvm {
    Kvm::Unavailable("no /dev/kvm (KVM is not enabled on this host)".into())
}

fn not_asked_fc() -> FirecrackerFound {
    panic!("Firecracker must not be probed")
}

fn not_asked_kvm() -> Kvm {
    panic!("KVM must not be probed")
}

#[test]
fn qemu_configured_probes_nothing() {
    let c = choose(Preference::Qemu, not_asked_fc, not_asked_kvm).unwrap();
    assert_eq!(c.kind, BackendKind::Qemu);
    assert!(c.reason.contains("vmm = \"qemu\""), "{}", c.reason);
    assert_eq!(c.firecracker, None);
}

#[test]
fn auto_takes_firecracker_only_with_a_supported_binary_and_usable_kvm() {
    let c = choose(Preference::Auto, supported, || Kvm::Usable).unwrap();
    assert_eq!(c.kind, BackendKind::Firecracker);
    assert_eq!(c.reason, "Firecracker 1.17.0 with KVM");
    assert_eq!(
        c.firecracker,
        Some(("/usr/local/bin/firecracker".into(), v(17)))
    );
    assert_eq!(
        c.summary(Preference::Auto),
        "auto → firecracker (Firecracker 1.17.0 with KVM)"
    );
}

#[test]
fn auto_falls_back_to_qemu_and_says_why() {
    // Without a binary KVM is not even looked at.
    let c = choose(Preference::Auto, missing, not_asked_kvm).unwrap();
    assert_eq!(
        (c.kind, c.reason.as_str()),
        (BackendKind::Qemu, "firecracker not installed")
    );
    let c = choose(Preference::Auto, too_old, not_asked_kvm).unwrap();
    assert_eq!(c.kind, BackendKind::Qemu);
    assert!(c.reason.contains("too old"), "{}", c.reason);
    let c = choose(Preference::Auto, supported, no_kvm).unwrap();
    assert_eq!(c.kind, BackendKind::Qemu);
    assert!(
        c.reason.contains("needs KVM") && c.reason.contains("no /dev/kvm"),
        "{}",
        c.reason
    );
    // Nested KVM: QEMU, with how to insist on Firecracker.
    let c = choose(Preference::Auto, supported, || Kvm::Nested).unwrap();
    assert_eq!(c.kind, BackendKind::Qemu);
    assert!(
        c.reason.contains("nested") && c.reason.contains("vmm = \"firecracker\""),
        "{}",
        c.reason
    );
}

#[test]
fn firecracker_configured_is_honoured_on_nested_kvm() {
    let c = choose(Preference::Firecracker, supported, || Kvm::Nested).unwrap();
    assert_eq!(c.kind, BackendKind::Firecracker);
    assert!(c.reason.contains("nested"), "{}", c.reason);
    let c = choose(Preference::Firecracker, supported, || Kvm::Usable).unwrap();
    assert_eq!(c.kind, BackendKind::Firecracker);
}

#[test]
fn firecracker_configured_but_unusable_names_what_is_missing_and_the_fix() {
    let e = choose(Preference::Firecracker, missing, not_asked_kvm)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("firecracker was not found") && e.contains("firecracker_bin"),
        "{e}"
    );
    let e = choose(Preference::Firecracker, too_old, not_asked_kvm)
        .unwrap_err()
        .to_string();
    assert!(e.contains("too old") && e.contains("1.5 or newer"), "{e}");
    let e = choose(Preference::Firecracker, supported, no_kvm)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "vmm = \"firecracker\" in config.toml, but Firecracker needs KVM and no /dev/kvm"
        ) && e.contains("vmm = \"auto\""),
        "{e}"
    );
}

#[test]
fn detection_finds_versions_and_reports_missing_or_broken_binaries() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let good = script("fc-good", "echo 'Firecracker v1.10.1'; echo");
    assert_eq!(
        FirecrackerFound::detect(Some(&good)),
        FirecrackerFound::Supported {
            binary: good.clone(),
            version: v(10).with_patch(1)
        }
    );
    let old = script("fc-old", "echo 'Firecracker v1.4.0'");
    let found = FirecrackerFound::detect(Some(&old));
    assert!(
        matches!(&found, FirecrackerFound::Unusable { problem, .. } if problem.contains("1.4.0") && problem.contains("too old")),
        "{found:?}"
    );
    let broken = script("fc-broken", "echo oops >&2; exit 3");
    let found = FirecrackerFound::detect(Some(&broken));
    assert!(
        matches!(&found, FirecrackerFound::Unusable { problem, .. } if problem.contains("oops")),
        "{found:?}"
    );
    let nowhere = dir.path().join("no-such-firecracker");
    assert_eq!(
        FirecrackerFound::detect(Some(&nowhere)),
        FirecrackerFound::Missing {
            looked_for: nowhere.display().to_string()
        }
    );
}

impl FirecrackerVersion {
    fn with_patch(mut self, patch: u32) -> Self {
        self.patch = patch;
        self
    }
}
