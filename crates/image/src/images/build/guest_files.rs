//! What banger puts into every image it builds, as data: the build writes
//! it (the `inject` step) and the recipe hash covers it
//! ([`fingerprint`]), so changing a unit here rebuilds the images.

use std::fmt::Write;

use super::variant::Variant;

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

/// The agent starts with the first units, not after `basic.target`: it
/// needs only vsock and the work disk on /root, both there before systemd
/// starts (banger's initramfs mounts the disk; booted through another, the
/// agent does). Commands it runs wait for `banger-booted.service`.
const AGENT_UNIT: &str = "\
# Written by banger.
[Unit]
Description=banger guest agent (health, listening ports, exec over vsock)
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStart=/usr/local/bin/banger-agent service
Restart=always
RestartSec=1
# First in line for the CPU while the boot runs (the host waits for the
# agent); an ordinary service once it is done.
StartupCPUWeight=1000

[Install]
WantedBy=multi-user.target
";

/// Configures eth0 from the kernel command line (`banger.ip`, `banger.gw`,
/// `banger.dns`): the guest kernel has no `ip=` support, and the image has
/// no other network manager. Ordered like one, before `network.target`.
/// banger's initramfs has usually done it (its marker in /run), and then
/// this costs nothing.
const NETWORK_UNIT: &str = "\
# Written by banger.
[Unit]
Description=banger guest network from the kernel command line
ConditionPathExists=!/run/banger/network-configured
DefaultDependencies=no
Wants=network.target
After=network-pre.target
Before=network.target network-online.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/banger-agent network

[Install]
WantedBy=multi-user.target network-online.target
";

/// No entries: the root disk is mounted by the initramfs, and so is the
/// work disk (SPEC §7) on /root. An fstab line for it would make systemd
/// wait for udev to announce the device before anything ordered after
/// the mount, seconds of an emulated CPU at every boot.
const FSTAB: &str = "\
# Written by banger. The root disk and the work disk (/dev/vdb on /root,
# kept across stop and start) are mounted by banger's initramfs.
";

/// sshd starts once the VM's host key exists: the host delivers it through
/// the agent after boot (identity), and sshd without a key exits, which
/// systemd retries only a few times before giving up for good.
const SSHD_PATH_UNIT: &str = "\
# Written by banger.
[Unit]
Description=Start sshd once the VM's ssh host key is in place
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target

[Path]
PathExists=/etc/ssh/ssh_host_ed25519_key
Unit=ssh.service

[Install]
WantedBy=paths.target
";

/// sshd, like the agent, does not wait for `basic.target`: the host waits
/// for its banner before a VM is `running`. Its configuration was checked
/// when the image was built, so the `sshd -t` before each start goes.
const SSHD_DROPIN_UNIT: &str = "\
# Written by banger.
[Unit]
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStartPre=
StartupCPUWeight=1000
";

/// Marks the boot as past `basic.target` (sockets listen, /tmp and /run
/// are set up); the agent runs commands only from then on.
const BOOTED_UNIT: &str = "\
# Written by banger.
[Unit]
Description=Mark the boot as past basic.target for banger's agent
After=basic.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/install -D -m 0644 /dev/null /run/banger/basic-reached

[Install]
WantedBy=multi-user.target
";

/// systemd generators (run before any unit, each an exec of an emulated
/// CPU's time) for what a banger VM has none of: encrypted, integrity or
/// verity volumes, GPT auto-discovery, hibernation, offline updates,
/// System V scripts (every package has a unit), rc.local, `systemd.run=`,
/// and gettys (masked below). The fstab and debug generators stay.
const MASKED_GENERATORS: &[&str] = &[
    "/etc/systemd/system-generators/systemd-cryptsetup-generator",
    "/etc/systemd/system-generators/systemd-getty-generator",
    "/etc/systemd/system-generators/systemd-gpt-auto-generator",
    "/etc/systemd/system-generators/systemd-hibernate-resume-generator",
    "/etc/systemd/system-generators/systemd-integritysetup-generator",
    "/etc/systemd/system-generators/systemd-rc-local-generator",
    "/etc/systemd/system-generators/systemd-run-generator",
    "/etc/systemd/system-generators/systemd-system-update-generator",
    "/etc/systemd/system-generators/systemd-sysv-generator",
    "/etc/systemd/system-generators/systemd-veritysetup-generator",
];

/// udev's coldplug (replaying the devices present at boot) after
/// `basic.target` instead of before `sysinit.target`: the kernel's drivers
/// are loaded by then (banger's initramfs loads what boot needs), so
/// nothing before it waits for a device; /dev/disk/by-* and the device
/// units appear a moment later. `systemd-udev-trigger.service`, which does
/// the same before `sysinit.target`, is masked.
const COLDPLUG_UNIT: &str = "\
# Written by banger.
[Unit]
Description=Replay the devices present at boot to udev, after basic.target
Wants=systemd-udevd.service
After=basic.target systemd-udevd-kernel.socket systemd-udevd-control.socket

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/udevadm trigger --type=subsystems --action=add
ExecStart=/usr/bin/udevadm trigger --type=devices --action=add

[Install]
WantedBy=multi-user.target
";

/// Modules udev would load for devices of the emulated machine that a
/// sandbox does not use (each a `modprobe` at boot). `modprobe NAME` still
/// loads them: a blacklist only stops loading by device alias.
const MODPROBE_BLACKLIST: &str = "\
# Written by banger: not loaded for the machine's devices at boot.
# Nested virtualisation (modprobe kvm_intel / kvm_amd to use it).
blacklist kvm
blacklist kvm_intel
blacklist kvm_amd
blacklist pcspkr
";

/// The journal stays in memory: a VM is thrown away or restarted, and
/// flushing to disk is a second of an emulated CPU on every boot.
const JOURNALD_DROPIN: &str = "\
# Written by banger.
[Journal]
Storage=volatile
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
/// `cargo bench --bench images` (figures under TCG, 1 vCPU).
const MASKED: &[&str] = &[
    // Reaps e2scrub snapshots (LVM only); ~2 s.
    "/etc/systemd/system/e2scrub_reap.service",
    // Loads configfs, drm, efi_pstore, dm_mod, fuse and loop ahead of use,
    // ~2 s each: the kernel loads them itself when first used.
    "/etc/systemd/system/modprobe@.service",
    // Logins on the console and the serial port: root has no password,
    // so nobody can log in there; ssh and the agent are the ways in.
    "/etc/systemd/system/getty@.service",
    "/etc/systemd/system/serial-getty@.service",
    // Debugging and huge-page filesystems, mountable by hand when wanted.
    "/etc/systemd/system/sys-kernel-debug.mount",
    "/etc/systemd/system/sys-kernel-tracing.mount",
    "/etc/systemd/system/dev-hugepages.mount",
    // The journal is volatile (JOURNALD_DROPIN): nothing to flush.
    "/etc/systemd/system/systemd-journal-flush.service",
    // Replaced by banger-udev-coldplug.service (COLDPLUG_UNIT).
    "/etc/systemd/system/systemd-udev-trigger.service",
    // No fstab entry to remount by: the initramfs mounts root read-write.
    "/etc/systemd/system/systemd-remount-fs.service",
    // Users and groups of sysusers.d: made when the packages were
    // installed; the image's are complete.
    "/etc/systemd/system/systemd-sysusers.service",
    // The kernel's RNG is seeded at boot (RDRAND); a seed file copied
    // with the image into every VM would be the same in all of them.
    "/etc/systemd/system/systemd-random-seed.service",
    // Boot and runlevel records in utmp/wtmp (`last reboot`).
    "/etc/systemd/system/systemd-update-utmp.service",
    "/etc/systemd/system/systemd-update-utmp-runlevel.service",
    // A sandbox does not update its packages behind the user's back.
    "/etc/systemd/system/apt-daily.timer",
    "/etc/systemd/system/apt-daily-upgrade.timer",
    // Loads every AppArmor profile at boot. apparmor_parser stays (Docker
    // loads its docker-default profile when it starts a container).
    "/etc/systemd/system/apparmor.service",
];

/// What the full variant changes in the packages' own units so a boot
/// reaches ssh sooner.
fn boot_trims() -> Vec<GuestFile> {
    let mut files = DOCKER_ON_DEMAND.to_vec();
    files.extend([
        GuestFile::File {
            path: "/etc/systemd/system/banger-sshd.path",
            content: SSHD_PATH_UNIT,
            mode: 0o644,
        },
        GuestFile::Symlink {
            path: "/etc/systemd/system/paths.target.wants/banger-sshd.path",
            target: "/etc/systemd/system/banger-sshd.path",
        },
        GuestFile::Absent {
            path: "/etc/systemd/system/multi-user.target.wants/ssh.service",
        },
        GuestFile::File {
            path: "/etc/systemd/journald.conf.d/banger.conf",
            content: JOURNALD_DROPIN,
            mode: 0o644,
        },
        GuestFile::File {
            path: "/etc/systemd/system/ssh.service.d/banger.conf",
            content: SSHD_DROPIN_UNIT,
            mode: 0o644,
        },
        GuestFile::File {
            path: "/etc/systemd/system/banger-booted.service",
            content: BOOTED_UNIT,
            mode: 0o644,
        },
        GuestFile::Symlink {
            path: "/etc/systemd/system/multi-user.target.wants/banger-booted.service",
            target: "/etc/systemd/system/banger-booted.service",
        },
        GuestFile::File {
            path: "/etc/systemd/system/banger-udev-coldplug.service",
            content: COLDPLUG_UNIT,
            mode: 0o644,
        },
        GuestFile::Symlink {
            path: "/etc/systemd/system/multi-user.target.wants/banger-udev-coldplug.service",
            target: "/etc/systemd/system/banger-udev-coldplug.service",
        },
        // Debian's link to the (empty) /etc/modules: with it gone and
        // nothing else in modules-load.d, systemd-modules-load is skipped
        // (its ConditionDirectoryNotEmpty), ~1.4 s; a file added there
        // brings it back.
        GuestFile::Absent {
            path: "/etc/modules-load.d/modules.conf",
        },
        GuestFile::File {
            path: "/etc/modprobe.d/banger.conf",
            content: MODPROBE_BLACKLIST,
            mode: 0o644,
        },
    ]);
    files.extend(
        MASKED
            .iter()
            .chain(MASKED_GENERATORS)
            .map(|path| GuestFile::Symlink {
                path,
                target: "/dev/null",
            }),
    );
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
        // No mount waits for udev: the initramfs mounts the disks, and the
        // agent is ordered after no mount unit.
        assert!(FSTAB.lines().all(|l| l.starts_with('#')), "{FSTAB}");
        // The agent and sshd wait for nothing of the boot; commands wait
        // for the marker banger-booted leaves (the agent's boot_barrier
        // reads these two paths).
        assert!(AGENT_UNIT.contains("DefaultDependencies=no\n"));
        assert!(!AGENT_UNIT.contains("After="));
        assert!(SSHD_DROPIN_UNIT.contains("DefaultDependencies=no\n"));
        assert!(BOOTED_UNIT.contains("After=basic.target\n"));
        assert!(BOOTED_UNIT.contains(" /run/banger/basic-reached\n"));
        assert!(
            files(Variant::Full).iter().any(|f| matches!(f,
                GuestFile::File { path, .. } if *path == "/etc/systemd/system/banger-booted.service"))
        );
        assert!(NETWORK_UNIT.contains(&format!(
            "ConditionPathExists=!/run/{}\n",
            "banger/network-configured"
        )));
        // sshd waits for the host key identity writes.
        assert!(
            SSHD_PATH_UNIT.contains("PathExists=/etc/ssh/ssh_host_ed25519_key\nUnit=ssh.service\n")
        );
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
        for path in MASKED.iter().chain(MASKED_GENERATORS) {
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
