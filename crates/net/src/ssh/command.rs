//! `vm ssh`: the argv that hands the terminal to the system OpenSSH client,
//! and the explanation of the host key failures banger's pins cause.

use std::ffi::OsString;

use banger_api::model::VmName;
use banger_sys::Cmd;

use super::VM_DOMAIN;
use super::paths::SshPaths;

/// `ssh -F <banger's ssh_config> <name>.vm [extra…]`. `-F` makes OpenSSH use
/// banger's settings whether or not the user installed the include, and
/// ignore their own config for this connection. `extra_args` follow the host,
/// where OpenSSH accepts both options and the remote command.
pub fn ssh_argv(paths: &SshPaths, name: &VmName, extra_args: &[String]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        "ssh".into(),
        "-F".into(),
        paths.config_file.clone().into(),
        format!("{name}.{VM_DOMAIN}").into(),
    ];
    argv.extend(extra_args.iter().map(OsString::from));
    argv
}

/// [`ssh_argv`] as a [`Cmd`].
pub fn ssh_command(paths: &SshPaths, name: &VmName, extra_args: &[String]) -> Cmd {
    let argv = ssh_argv(paths, name, extra_args);
    Cmd::new(&argv[0]).args(&argv[1..])
}

/// What to tell the user when ssh failed on banger's host key check, given
/// ssh's stderr; `None` for any other failure.
///
/// OpenSSH's own advice on a changed key ("remove with ssh-keygen -R") would
/// make the user trust whatever answers, so the message says what banger
/// knows instead: it pinned the key itself when it created the VM.
pub fn explain_ssh_failure(stderr: &str, name: &VmName) -> Option<String> {
    let host = format!("{name}.{VM_DOMAIN}");
    let changed = stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || (stderr.contains("Host key for") && stderr.contains("has changed"));
    let unknown = stderr.contains("host key is known for");
    if changed || (!unknown && stderr.contains("Host key verification failed")) {
        return Some(format!(
            "the host key of {host} does not match the one banger pinned when it created the \
             VM; the VM may have been replaced outside banger, or its disk was reused; if you \
             trust it, delete and recreate the VM (`banger vm delete {name}`); do not remove \
             the pin with `ssh-keygen -R`, which would trust whatever answers at that address"
        ));
    }
    if unknown {
        return Some(format!(
            "banger has no pinned host key for {host}, so ssh refuses to connect; the VM was \
             not created by this banger installation, or its pin was removed; recreate the VM \
             (`banger vm delete {name}`, then create it again) so banger pins a fresh key"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn dev() -> VmName {
        VmName::new("dev").unwrap()
    }

    /// ssh's stderr for a changed key, as OpenSSH 9.2 prints it.
    const CHANGED: &str = "\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Offending ED25519 key in /home/u/.local/state/banger/ssh/known_hosts:1
  remove with:
  ssh-keygen -f \"/home/u/.local/state/banger/ssh/known_hosts\" -R \"dev.vm\"
Host key for dev.vm has changed and you have requested strict checking.
Host key verification failed.
";

    const UNKNOWN: &str = "\
No ED25519 host key is known for dev.vm and you have requested strict checking.
Host key verification failed.
";

    #[test]
    fn argv_uses_banger_config_and_the_vm_host() {
        let paths = SshPaths::from_parts(Path::new("/s/ssh"), Path::new("/c/ssh_config"));
        let extra = [
            "-L".to_owned(),
            "3000:localhost:3000".to_owned(),
            "uptime".to_owned(),
        ];
        assert_eq!(
            ssh_argv(&paths, &dev(), &extra),
            [
                "ssh",
                "-F",
                "/c/ssh_config",
                "dev.vm",
                "-L",
                "3000:localhost:3000",
                "uptime"
            ]
            .map(OsString::from)
        );
        assert_eq!(
            ssh_command(&paths, &dev(), &[]).argv(),
            "ssh -F /c/ssh_config dev.vm"
        );
    }

    #[test]
    fn a_changed_key_names_the_cause() {
        let msg = explain_ssh_failure(CHANGED, &dev()).unwrap();
        assert!(
            msg.starts_with("the host key of dev.vm does not match the one banger pinned"),
            "{msg}"
        );
        assert!(msg.contains("replaced outside banger"), "{msg}");
        assert!(msg.contains("banger vm delete dev"), "{msg}");
        // ssh prints only this last line when its banner is filtered out.
        let bare = explain_ssh_failure("Host key verification failed.\r\n", &dev()).unwrap();
        assert_eq!(bare, msg);
    }

    #[test]
    fn a_missing_pin_is_told_apart() {
        let msg = explain_ssh_failure(UNKNOWN, &dev()).unwrap();
        assert!(
            msg.starts_with("banger has no pinned host key for dev.vm"),
            "{msg}"
        );
    }

    #[test]
    fn other_failures_are_left_alone() {
        for stderr in [
            "",
            "ssh: connect to host dev.vm port 22: Connection refused\n",
            "root@dev.vm: Permission denied (publickey).\n",
            "ssh: Could not resolve hostname dev.vm: Name or service not known\n",
        ] {
            assert_eq!(explain_ssh_failure(stderr, &dev()), None, "{stderr:?}");
        }
    }
}
