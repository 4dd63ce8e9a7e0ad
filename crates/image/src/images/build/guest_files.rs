//! What banger puts into every image it builds, as data: the build writes
//! it (the `inject` step) and the recipe hash covers it
//! ([`fingerprint`]), so changing a unit here rebuilds the images.

use std::fmt::Write;

use super::recipe::Variant;

/// The agent's place in the guest (SPEC §10).
pub const AGENT_PATH: &str = "/usr/local/bin/banger-agent";
/// The init of minimal images: the agent, which runs its guest-init mode
/// when it is PID 1 under any name but `/init`. The VMM layer passes it as
/// `banger.init=` on the kernel command line.
pub const GUEST_INIT: &str = AGENT_PATH;
pub const SSHD_DROPIN_PATH: &str = "/etc/ssh/sshd_config.d/banger.conf";
/// Host keys are per VM (banger generates and pins one at create); a key
/// baked into the image would be shared by every VM.
pub const SSH_HOST_KEY_DIR: &str = "/etc/ssh";
pub const SSH_HOST_KEY_PREFIX: &str = "ssh_host_";
/// Emptied: systemd generates a fresh machine-id at each VM's first boot.
pub const MACHINE_ID_PATH: &str = "/etc/machine-id";
/// The image's `/root` becomes the work-disk seed and an empty mountpoint.
pub const ROOT_HOME: &str = "root";

const SSHD_DROPIN: &str = "\
# Written by banger: root logs in with banger's key only. The VM's host key
# and authorized key are added when the VM is created.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
";

const AGENT_UNIT: &str = "\
# Written by banger.
[Unit]
Description=banger guest agent (health, listening ports, exec over vsock)
# After the work disk is mounted on /root: identity writes
# /root/.ssh/authorized_keys, which the mount would otherwise hide.
After=banger-network.service root.mount

[Service]
ExecStart=/usr/local/bin/banger-agent service
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
";

/// Configures eth0 from the kernel command line (`banger.ip`, `banger.gw`,
/// `banger.dns`): the guest kernel has no `ip=` support, and the image has
/// no other network manager. Ordered like one, before `network.target`.
const NETWORK_UNIT: &str = "\
# Written by banger.
[Unit]
Description=banger guest network from the kernel command line
DefaultDependencies=no
Wants=network.target
After=network-pre.target systemd-udevd.service
Before=network.target network-online.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/banger-agent network

[Install]
WantedBy=multi-user.target network-online.target
";

/// The work disk (SPEC §7); `nofail` so a VM without one still boots. No
/// fsck pass at boot: ext4's journal makes a killed VM's disk consistent
/// at mount, and a full check of the disk on every boot costs seconds of
/// an emulated CPU, which the agent (ordered after the mount) would wait.
const FSTAB: &str = "\
# Written by banger: the work disk, kept across stop and start.
/dev/vdb /root ext4 defaults,nofail 0 0
";

/// Docker starts on first use, through its socket: dockerd and containerd
/// cost a systemd boot ~7 s of an emulated CPU, and most VMs never run a
/// container. `docker.service` pulls in `containerd.service` when the
/// socket activates it.
const DOCKER_ON_DEMAND: [GuestFile; 3] = [
    GuestFile::Absent {
        path: "/etc/systemd/system/multi-user.target.wants/docker.service",
    },
    GuestFile::Absent {
        path: "/etc/systemd/system/multi-user.target.wants/containerd.service",
    },
    GuestFile::Symlink {
        path: "/etc/systemd/system/sockets.target.wants/docker.socket",
        target: "/lib/systemd/system/docker.socket",
    },
];

/// Units masked (their `/etc/systemd/system/` path linked to /dev/null):
/// work a throwaway VM never needs, found on the boot measured by
/// `cargo bench --bench images`.
const MASKED: &[&str] = &[
    // Reaps e2scrub snapshots (LVM only); ~2 s at boot under TCG.
    "/etc/systemd/system/e2scrub_reap.service",
];

/// What the full variant changes in the packages' own units so a boot
/// reaches ssh sooner.
fn boot_trims() -> Vec<GuestFile> {
    let mut files = DOCKER_ON_DEMAND.to_vec();
    files.extend(MASKED.iter().map(|path| GuestFile::Symlink {
        path,
        target: "/dev/null",
    }));
    files
}

/// One thing written into the tree, its path absolute in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestFile {
    File {
        path: &'static str,
        content: &'static str,
        mode: u32,
    },
    /// What `systemctl enable` would create.
    Symlink {
        path: &'static str,
        target: &'static str,
    },
    /// Removed if the packages installed it (what `systemctl disable`
    /// removes).
    Absent { path: &'static str },
}

/// The files of `variant`, in the order they are written (the agent binary
/// is copied separately: it is an input of the build, not a constant).
pub fn files(variant: Variant) -> Vec<GuestFile> {
    let mut files = vec![
        GuestFile::File {
            path: SSHD_DROPIN_PATH,
            content: SSHD_DROPIN,
            mode: 0o644,
        },
        GuestFile::File {
            path: MACHINE_ID_PATH,
            content: "",
            mode: 0o444,
        },
    ];
    if variant == Variant::Full {
        files.extend([
            GuestFile::File {
                path: "/etc/systemd/system/banger-agent.service",
                content: AGENT_UNIT,
                mode: 0o644,
            },
            GuestFile::File {
                path: "/etc/systemd/system/banger-network.service",
                content: NETWORK_UNIT,
                mode: 0o644,
            },
            GuestFile::Symlink {
                path: "/etc/systemd/system/multi-user.target.wants/banger-agent.service",
                target: "/etc/systemd/system/banger-agent.service",
            },
            GuestFile::Symlink {
                path: "/etc/systemd/system/multi-user.target.wants/banger-network.service",
                target: "/etc/systemd/system/banger-network.service",
            },
            GuestFile::Symlink {
                path: "/etc/systemd/system/network-online.target.wants/banger-network.service",
                target: "/etc/systemd/system/banger-network.service",
            },
            GuestFile::File {
                path: "/etc/fstab",
                content: FSTAB,
                mode: 0o644,
            },
        ]);
        files.extend(boot_trims());
    }
    files
}

/// Everything the build changes in a tree besides the agent binary, as
/// bytes for the recipe hash.
pub fn fingerprint(variant: Variant) -> Vec<u8> {
    let mut out = format!(
        "agent {AGENT_PATH} 0755\nremove {SSH_HOST_KEY_DIR}/{SSH_HOST_KEY_PREFIX}*\nseed /{ROOT_HOME}\n"
    );
    for file in files(variant) {
        match file {
            GuestFile::File {
                path,
                content,
                mode,
            } => {
                let _ = write!(out, "file {path} {mode:04o} {}\n{content}\0", content.len());
            }
            GuestFile::Symlink { path, target } => {
                let _ = writeln!(out, "symlink {path} -> {target}");
            }
            GuestFile::Absent { path } => {
                let _ = writeln!(out, "absent {path}");
            }
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_full_variant_gets_units_and_fstab() {
        let full = files(Variant::Full);
        let minimal = files(Variant::Minimal);
        let paths = |files: &[GuestFile]| -> Vec<&'static str> {
            files
                .iter()
                .map(|f| match f {
                    GuestFile::File { path, .. }
                    | GuestFile::Symlink { path, .. }
                    | GuestFile::Absent { path } => *path,
                })
                .collect()
        };
        assert!(paths(&full).contains(&"/etc/systemd/system/banger-network.service"));
        assert!(paths(&full).contains(&"/etc/fstab"));
        assert_eq!(paths(&minimal), [SSHD_DROPIN_PATH, MACHINE_ID_PATH]);
    }

    #[test]
    fn the_units_run_the_agent_modes_the_agent_implements() {
        assert!(AGENT_UNIT.contains(&format!("ExecStart={AGENT_PATH} service\n")));
        assert!(NETWORK_UNIT.contains(&format!("ExecStart={AGENT_PATH} network\n")));
        assert!(NETWORK_UNIT.contains("Before=network.target network-online.target"));
        // The agent writes /root/.ssh only once the work disk is on /root
        // (the unit name systemd derives from the fstab line's mount point).
        assert!(FSTAB.contains(" /root ext4 "));
        assert!(FSTAB.contains(" 0 0\n"), "no fsck pass at boot");
        assert!(AGENT_UNIT.contains("After=banger-network.service root.mount\n"));
        assert_eq!(GUEST_INIT, AGENT_PATH);
        // Every enable symlink points at a unit this module writes, a
        // unit of the packages (Debian's /lib/systemd/system), or masks.
        let full = files(Variant::Full);
        for f in &full {
            if let GuestFile::Symlink { target, .. } = f {
                assert!(
                    full.iter()
                        .any(|g| matches!(g, GuestFile::File { path, .. } if path == target))
                        || target.starts_with("/lib/systemd/system/")
                        || *target == "/dev/null",
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn docker_waits_for_its_socket_and_masked_units_stay_masked() {
        let full = files(Variant::Full);
        let absent = |p: &str| full.contains(&GuestFile::Absent { path: leak(p) });
        assert!(absent(
            "/etc/systemd/system/multi-user.target.wants/docker.service"
        ));
        assert!(absent(
            "/etc/systemd/system/multi-user.target.wants/containerd.service"
        ));
        assert!(full.contains(&GuestFile::Symlink {
            path: "/etc/systemd/system/sockets.target.wants/docker.socket",
            target: "/lib/systemd/system/docker.socket",
        }));
        for path in MASKED {
            assert!(full.contains(&GuestFile::Symlink {
                path,
                target: "/dev/null"
            }));
        }
        // The minimal variant has no systemd to trim.
        assert!(
            !files(Variant::Minimal)
                .iter()
                .any(|f| matches!(f, GuestFile::Absent { .. }))
        );
    }

    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_owned().into_boxed_str())
    }

    #[test]
    fn sshd_allows_keys_only() {
        for line in [
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UseDNS no",
        ] {
            assert!(SSHD_DROPIN.lines().any(|l| l == line), "{line}");
        }
    }
}
