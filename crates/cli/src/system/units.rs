//! The two systemd units of a system install (SPEC §2), generated from the
//! install's facts. Both restart on any exit (`banger update` restarts a
//! service by ending it and waiting for the new binary to answer), and both
//! are hardened as far as their work allows; each exception says why.

use std::path::Path;

use banger_config::InstallOwner;

use super::layout::{DAEMON_UNIT, HELPER_UNIT, Layout};

/// The owner daemon's unit. The VMMs it starts (QEMU, the agent-mux sidecar,
/// the log cappers) are its children in this unit's cgroup, so
/// `KillMode=process`: a stop, restart or update ends the daemon only, the
/// VMs keep running, and the next daemon adopts them (reconcile).
pub fn daemon_unit(owner: &InstallOwner, kvm_group: Option<&str>) -> String {
    let sys = Layout::system();
    let [config_dir, state_dir] = Layout::owner_dirs(&owner.home);
    let groups = kvm_group
        .map(|g| {
            format!("# /dev/kvm is reached through its group, not root.\nSupplementaryGroups={g}\n")
        })
        .unwrap_or_default();
    format!(
        "\
[Unit]
Description=banger daemon: VMs, images and kernels of {user}
Wants={HELPER_UNIT}
After=network.target {HELPER_UNIT}

[Service]
Type=simple
User={user}
Group={gid}
{groups}Environment=HOME={home}
ExecStart={bangerd}
Restart=always
RestartSec=1
KillMode=process
UMask=0077
StateDirectory=banger
StateDirectoryMode=0700
CacheDirectory=banger
CacheDirectoryMode=0700
RuntimeDirectory=banger
RuntimeDirectoryMode=0700
# Running VMs keep their sockets there across a restart.
RuntimeDirectoryPreserve=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
# Repositories and [[file_sync]] files are read from the home; only banger's
# own directories there are written (ssh key, known_hosts, ssh config).
ProtectHome=read-only
ReadWritePaths=-{config_dir} -{state_dir}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
# Not set, on purpose: PrivateTmp (a repository under /tmp must stay
# visible), PrivateDevices (QEMU opens /dev/kvm and /dev/net/tun),
# MemoryDenyWriteExecute (QEMU's TCG writes the code it runs).

[Install]
WantedBy=multi-user.target
",
        user = owner.user,
        gid = owner.gid,
        home = owner.home.display(),
        bangerd = sys.bangerd().display(),
        config_dir = config_dir.display(),
        state_dir = state_dir.display(),
    )
}

/// The root helper's unit: root, but only the capabilities its validated
/// operations use: links, taps and nftables; loop and device-mapper
/// snapshots; giving the owner its socket, taps and built images; reading
/// the owner's private state directory; and the image build, where
/// mmdebstrap chroots and dpkg sets owners, setuid bits and file
/// capabilities and apt drops to its own user.
pub fn helper_unit(owner: &InstallOwner) -> String {
    let sys = Layout::system();
    let roots = [sys.state_dir(), sys.cache_dir(), sys.run_dir()]
        .iter()
        .map(|r| format!(" --managed-root {}", r.display()))
        .collect::<String>();
    format!(
        "\
[Unit]
Description=banger root helper: validated host operations for bangerd of {user}
Before={DAEMON_UNIT}

[Service]
Type=simple
ExecStart={bangerd} --root-helper --owner-uid {uid}{roots} --socket {socket}
Restart=always
RestartSec=1
UMask=0077
RuntimeDirectory=banger-root
RuntimeDirectoryMode=0711
# Holds what ip_forward was before the first NAT guest.
RuntimeDirectoryPreserve=yes
NoNewPrivileges=yes
CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_ADMIN CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_MKNOD CAP_SYS_CHROOT CAP_SETUID CAP_SETGID CAP_SETFCAP CAP_FSETID CAP_KILL
# Root's own scratch for image builds (npm's cache); never the owner's.
CacheDirectory=banger-root
CacheDirectoryMode=0700
Environment=HOME=/var/cache/banger-root npm_config_cache=/var/cache/banger-root/npm
ProtectSystem=strict
ReadWritePaths={state} {cache} {run}
ProtectHome=yes
PrivateTmp=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
# Not set, on purpose: ProtectKernelTunables (NAT turns ip_forward on),
# PrivateDevices (snapshots use loop and device-mapper devices), and for the
# image build (dpkg in a chroot, running packages' maintainer scripts):
# RestrictSUIDSGID (dpkg installs setuid programs), RestrictNamespaces and
# MemoryDenyWriteExecute (what a maintainer script runs is not ours).

[Install]
WantedBy=multi-user.target
",
        user = owner.user,
        uid = owner.uid,
        bangerd = sys.bangerd().display(),
        socket = banger_host::helper::HELPER_SOCKET,
        state = sys.state_dir().display(),
        cache = sys.cache_dir().display(),
        run = sys.run_dir().display(),
    )
}

/// The value of `key=` in a unit's text.
#[cfg(test)]
pub fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// The home of an owner as a unit line can carry it: no whitespace, no
/// `%` specifier, no quote, absolute.
pub fn unit_safe_path(path: &Path) -> bool {
    let Some(s) = path.to_str() else {
        return false;
    };
    path.is_absolute()
        && !s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '%' | '"' | '\'' | '\\' | '$')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> InstallOwner {
        InstallOwner {
            user: "alice".into(),
            uid: 1000,
            gid: 1001,
            home: "/home/alice".into(),
        }
    }

    #[test]
    fn the_daemon_runs_as_the_owner_and_leaves_vms_running() {
        let unit = daemon_unit(&owner(), Some("kvm"));
        assert_eq!(unit_value(&unit, "User"), Some("alice"));
        assert_eq!(unit_value(&unit, "Group"), Some("1001"));
        assert_eq!(unit_value(&unit, "SupplementaryGroups"), Some("kvm"));
        assert_eq!(unit_value(&unit, "KillMode"), Some("process"));
        assert_eq!(unit_value(&unit, "CapabilityBoundingSet"), Some(""));
        assert_eq!(unit_value(&unit, "Environment"), Some("HOME=/home/alice"));
        assert_eq!(
            unit_value(&unit, "ExecStart"),
            Some("/usr/local/bin/bangerd")
        );
        assert!(
            unit_value(&unit, "ReadWritePaths")
                .unwrap()
                .contains("/home/alice/.local/state/banger")
        );
        assert!(!daemon_unit(&owner(), None).contains("SupplementaryGroups"));
    }

    #[test]
    fn the_helper_serves_the_owner_uid_over_the_installed_socket() {
        let unit = helper_unit(&owner());
        let exec = unit_value(&unit, "ExecStart").unwrap();
        assert!(exec.starts_with("/usr/local/bin/bangerd --root-helper --owner-uid 1000 "));
        assert!(exec.contains("--managed-root /var/lib/banger"));
        assert!(exec.ends_with("--socket /run/banger-root/bangerd-root.sock"));
        assert_eq!(unit_value(&unit, "RuntimeDirectoryMode"), Some("0711"));
        assert!(
            !unit_value(&unit, "CapabilityBoundingSet")
                .unwrap()
                .contains("CAP_SYS_MODULE")
        );
        assert!(unit_value(&unit, "User").is_none(), "the helper is root");
    }

    #[test]
    fn homes_a_unit_cannot_carry_are_refused() {
        assert!(unit_safe_path(Path::new("/home/alice")));
        assert!(!unit_safe_path(Path::new("/home/a lice")));
        assert!(!unit_safe_path(Path::new("/home/%u")));
        assert!(!unit_safe_path(Path::new("home/alice")));
    }
}
