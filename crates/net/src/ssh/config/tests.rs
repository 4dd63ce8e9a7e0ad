use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use banger_sys::Cmd;

use super::*;

fn paths_under(root: &Path) -> SshPaths {
    SshPaths::from_parts(&root.join("state/ssh"), &root.join("config/ssh_config"))
}

#[test]
fn renders_the_exact_block() {
    let paths = paths_under(Path::new("/home/u/banger"));
    assert_eq!(
        render_ssh_config(&paths).unwrap(),
        "# banger's SSH settings for its VMs. banger rewrites this file (`banger ssh-config`); \
         put your own settings in ~/.ssh/config.\n\
         Host *.vm\n\
         \x20   User root\n\
         \x20   IdentityFile /home/u/banger/state/ssh/id_ed25519\n\
         \x20   IdentitiesOnly yes\n\
         \x20   UserKnownHostsFile /home/u/banger/state/ssh/known_hosts\n\
         \x20   StrictHostKeyChecking yes\n\
         \x20   HashKnownHosts no\n\
         \x20   UpdateHostKeys no\n\
         \x20   ForwardAgent no\n\
         \x20   ForwardX11 no\n\
         \x20   LogLevel ERROR\n\
         \x20   ServerAliveInterval 15\n"
    );
}

#[test]
fn paths_with_spaces_are_quoted() {
    let paths = paths_under(Path::new("/home/John Smith/banger"));
    let text = render_ssh_config(&paths).unwrap();
    assert!(
        text.contains("    IdentityFile \"/home/John Smith/banger/state/ssh/id_ed25519\"\n"),
        "{text}"
    );
    assert!(
        text.contains("    UserKnownHostsFile \"/home/John Smith/banger/state/ssh/known_hosts\"\n"),
        "{text}"
    );
}

#[test]
fn paths_openssh_would_expand_are_refused_by_name() {
    for (path, ch) in [
        ("/home/100%/b", '%'),
        ("/home/${X}/b", '$'),
        ("/home/a\nHost evil/b", '\n'),
        ("/home/a\"b", '"'),
    ] {
        let err = config_path(Path::new(path)).unwrap_err();
        assert!(
            matches!(&err, SshError::UnquotablePath { ch: c, .. } if *c == ch),
            "{path:?}: {err:?}"
        );
        assert!(err.to_string().contains("set BANGER_HOME or HOME"), "{err}");
    }
    let err = config_path(Path::new("relative/key")).unwrap_err();
    assert!(matches!(err, SshError::RelativePath { .. }), "{err:?}");
    assert_eq!(config_path(Path::new("/a/b-c_d.e")).unwrap(), "/a/b-c_d.e");
    assert_eq!(config_path(Path::new("/a/it's")).unwrap(), "\"/a/it's\"");
}

#[test]
fn write_creates_a_private_file_in_a_private_dir() {
    let root = tempfile::tempdir().unwrap();
    let paths = paths_under(root.path());
    write_ssh_config(&paths).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&paths.config_file), 0o600);
    assert_eq!(mode(paths.config_file.parent().unwrap()), 0o700);
    assert_eq!(
        fs::read_to_string(&paths.config_file).unwrap(),
        render_ssh_config(&paths).unwrap()
    );
}

/// OpenSSH itself reads the file (`ssh -G` prints the settings it would
/// use), including through a directory whose name needs quoting.
#[test]
fn openssh_reads_the_settings_back() {
    let root = tempfile::tempdir().unwrap();
    let base: PathBuf = root.path().join("with space");
    let paths = paths_under(&base);
    write_ssh_config(&paths).unwrap();
    let out = Cmd::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(&paths.config_file)
        .arg("dev.vm")
        .run()
        .unwrap()
        .stdout_str();
    let lines: Vec<&str> = out.lines().collect();
    let want = [
        "user root".to_owned(),
        format!("identityfile {}", paths.user_key.display()),
        "identitiesonly yes".to_owned(),
        format!("userknownhostsfile {}", paths.known_hosts.display()),
        "stricthostkeychecking true".to_owned(),
        "hashknownhosts no".to_owned(),
        "updatehostkeys false".to_owned(),
        "loglevel ERROR".to_owned(),
        "serveraliveinterval 15".to_owned(),
    ];
    for line in &want {
        assert!(
            lines.contains(&line.as_str()),
            "missing {line:?} in:\n{out}"
        );
    }
    // Hosts outside .vm are not affected.
    let other = Cmd::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(&paths.config_file)
        .arg("example.com")
        .run()
        .unwrap()
        .stdout_str();
    assert!(
        !other.contains(&paths.user_key.display().to_string()),
        "{other}"
    );
}

/// What OpenSSH itself makes of it, for a user whose own config forwards
/// their agent and display everywhere: banger's block, included on top of
/// `~/.ssh/config` by `ssh-config --install`, turns both off for VMs (the
/// first value OpenSSH obtains wins), and leaves other hosts alone.
#[test]
fn ssh_applies_no_agent_and_no_x11_forwarding_for_vms() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = paths_under(tmp.path());
    write_ssh_config(&paths).unwrap();
    let user = tmp.path().join("user_ssh_config");
    fs::write(&user, "Host *\n    ForwardAgent yes\n    ForwardX11 yes\n").unwrap();
    crate::ssh::install_include(&user, &paths.config_file).unwrap();
    let effective = |host: &str| {
        Cmd::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&user)
            .arg(host)
            .run()
            .unwrap()
            .stdout_str()
    };
    let vm = effective("dev.vm");
    for line in [
        "forwardagent no",
        "forwardx11 no",
        "stricthostkeychecking true",
    ] {
        assert!(vm.lines().any(|l| l == line), "{line} missing:\n{vm}");
    }
    let other = effective("example.org");
    assert!(other.lines().any(|l| l == "forwardagent yes"), "{other}");
}
