//! banger's SSH files against real OpenSSH: a throwaway `sshd` on
//! 127.0.0.1 with a host key from `generate_host_key`, and the system `ssh`
//! client driven by banger's own ssh_config. The pinned key lets the client
//! in with no prompt; a different pinned key, or none, is a hard failure
//! that `explain_ssh_failure` names; re-pinning the right key restores access.
//!
//! Needs root (sshd's privilege separation) and openssh-server's
//! `/usr/sbin/sshd`; skipped with a message otherwise.

use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use banger_api::model::VmName;
use banger_net::ssh::{
    SshPaths, ensure_user_key, explain_ssh_failure, generate_host_key, install_include, pin_host,
    ssh_command, unpin_host, write_ssh_config,
};
use banger_sys::{Cmd, ProcessError};

const SSHD: &str = "/usr/sbin/sshd";
/// Compiled into Debian's sshd; the package's service unit creates it.
const PRIVSEP_DIR: &str = "/run/sshd";
const START_TIMEOUT: Duration = Duration::from_secs(10);

fn missing_prerequisite() -> Option<String> {
    if !banger_sys::os::is_root() {
        return Some("needs root: sshd's privilege separation drops to a system user".into());
    }
    if !Path::new(SSHD).is_file() {
        return Some(format!(
            "{SSHD} is missing; install it with `apt-get install -y openssh-server`"
        ));
    }
    missing_client()
}

fn missing_client() -> Option<String> {
    ["ssh", "ssh-keygen"]
        .into_iter()
        .find(|tool| banger_sys::find_program(tool).is_none())
        .map(|tool| format!("{tool} is not installed (package openssh-client)"))
}

/// A foreground sshd, killed and reaped when dropped (also on panic).
///
/// This is the one program not run through `banger_sys::Cmd`: `Cmd` runs
/// programs to completion or detaches them, and the test must own the
/// child to kill it.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Starts sshd on a free port, retrying if another program takes the
    /// port between choosing it and sshd binding it.
    fn start(dir: &Path, host_key: &Path, authorized_keys: &Path) -> Sshd {
        if !Path::new(PRIVSEP_DIR).is_dir() {
            fs::create_dir_all(PRIVSEP_DIR).unwrap();
            fs::set_permissions(PRIVSEP_DIR, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1:{port}\n\
                     HostKey {}\n\
                     AuthorizedKeysFile {}\n\
                     PermitRootLogin prohibit-password\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     UseDNS no\n\
                     PidFile none\n",
                    host_key.display(),
                    authorized_keys.display()
                ),
            )
            .unwrap();
            let log = dir.join(format!("sshd-{attempt}.log"));
            let child = Command::new(SSHD)
                .arg("-f")
                .arg(&config)
                .args(["-D", "-e"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut sshd = Sshd { child, port, log };
            if sshd.wait_listening() {
                return sshd;
            }
            last_log = sshd.log_text();
        }
        panic!("sshd did not start; its last log:\n{last_log}");
    }

    /// True once the port accepts connections; false if sshd exited.
    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "sshd did not listen within {START_TIMEOUT:?}; its log:\n{}",
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// `vm ssh`'s exact argv plus what only this test needs: the address and
/// port of the throwaway sshd, and `HostKeyAlias` so OpenSSH checks the key
/// under `test.vm`, as it does for a real VM on port 22 (for any other port
/// it would look up `[127.0.0.1]:<port>`). `BatchMode` turns any prompt
/// into a failure.
fn vm_ssh(paths: &SshPaths, name: &VmName, port: u16) -> Result<String, ProcessError> {
    let extra: Vec<String> = [
        "-o",
        "HostName=127.0.0.1",
        "-o",
        &format!("Port={port}"),
        "-o",
        &format!("HostKeyAlias={name}.vm"),
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "echo",
        "connected-as-$(id -un)",
    ]
    .map(str::to_owned)
    .to_vec();
    ssh_command(paths, name, &extra)
        .run()
        .map(|out| out.stdout_str().trim().to_owned())
}

fn failure_stderr(result: Result<String, ProcessError>) -> String {
    match result {
        Err(ProcessError::Failed { stderr, .. }) => stderr,
        other => panic!("expected ssh to fail, got {other:?}"),
    }
}

fn write_private(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn pinned_host_key_is_the_only_key_ssh_accepts() {
    if let Some(reason) = missing_prerequisite() {
        eprintln!("skipped pinned_host_key_is_the_only_key_ssh_accepts: {reason}");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("banger-ssh-pinning-")
        .tempdir()
        .unwrap();
    let paths = SshPaths::from_parts(
        &root.path().join("state/ssh"),
        &root.path().join("config/ssh_config"),
    );
    let name = VmName::new("test").unwrap();

    let user_key = ensure_user_key(&paths).unwrap();
    write_ssh_config(&paths).unwrap();

    let sshd_dir = root.path().join("sshd");
    fs::create_dir(&sshd_dir).unwrap();
    let host_key = generate_host_key(&sshd_dir).unwrap();
    let host_key_file = sshd_dir.join("ssh_host_ed25519_key");
    write_private(&host_key_file, &host_key.private);
    let authorized_keys = sshd_dir.join("authorized_keys");
    write_private(&authorized_keys, &format!("{user_key}\n"));
    let sshd = Sshd::start(&sshd_dir, &host_key_file, &authorized_keys);

    // Pinned before the first connection: no trust-on-first-use.
    pin_host(&paths, &name, Some(Ipv4Addr::LOCALHOST), &host_key.public).unwrap();
    assert_eq!(
        vm_ssh(&paths, &name, sshd.port).unwrap_or_else(|e| panic!(
            "ssh with the pinned key failed: {e}\nsshd log:\n{}",
            sshd.log_text()
        )),
        "connected-as-root"
    );

    // The same through the user's ~/.ssh/config and the Include block, as a
    // plain `ssh test.vm` outside banger would go.
    let user_config = root.path().join("home/.ssh/config");
    fs::create_dir_all(user_config.parent().unwrap()).unwrap();
    fs::write(
        &user_config,
        format!(
            "Host test.vm\n    HostName 127.0.0.1\n    Port {}\n    HostKeyAlias test.vm\n    \
             BatchMode yes\n",
            sshd.port
        ),
    )
    .unwrap();
    install_include(&user_config, &paths.config_file).unwrap();
    let out = Cmd::new("ssh")
        .arg("-F")
        .arg(&user_config)
        .args(["test.vm", "echo", "via-include"])
        .run()
        .unwrap_or_else(|e| panic!("ssh through the include failed: {e}"));
    assert_eq!(out.stdout_str().trim(), "via-include");

    // Another key pinned for the VM: a hard failure, explained.
    let other = generate_host_key(&sshd_dir).unwrap();
    pin_host(&paths, &name, Some(Ipv4Addr::LOCALHOST), &other.public).unwrap();
    let pins = fs::read(&paths.known_hosts).unwrap();
    let stderr = failure_stderr(vm_ssh(&paths, &name, sshd.port));
    let explained = explain_ssh_failure(&stderr, &name)
        .unwrap_or_else(|| panic!("not recognised as a host key failure:\n{stderr}"));
    assert!(
        explained.starts_with(
            "the host key of test.vm does not match the one banger pinned when it created the VM"
        ),
        "{explained}"
    );
    assert_eq!(
        fs::read(&paths.known_hosts).unwrap(),
        pins,
        "ssh must not touch banger's known_hosts"
    );

    // No pin at all: refused too (strict checking never asks).
    unpin_host(&paths, &name).unwrap();
    let stderr = failure_stderr(vm_ssh(&paths, &name, sshd.port));
    let explained = explain_ssh_failure(&stderr, &name)
        .unwrap_or_else(|| panic!("not recognised as a missing pin:\n{stderr}"));
    assert!(
        explained.starts_with("banger has no pinned host key for test.vm"),
        "{explained}"
    );

    // The right key pinned again: back in.
    pin_host(&paths, &name, Some(Ipv4Addr::LOCALHOST), &host_key.public).unwrap();
    assert_eq!(
        vm_ssh(&paths, &name, sshd.port).unwrap(),
        "connected-as-root"
    );
    drop(sshd);
}

/// Real ssh output for a failure that has nothing to do with keys (nobody
/// listening) is not blamed on them. Needs only openssh-client.
#[test]
fn refused_ssh_connection_is_not_blamed_on_the_host_key() {
    if let Some(reason) = missing_client() {
        eprintln!("skipped refused_ssh_connection_is_not_blamed_on_the_host_key: {reason}");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("banger-ssh-refused-")
        .tempdir()
        .unwrap();
    let paths = SshPaths::from_parts(
        &root.path().join("state/ssh"),
        &root.path().join("config/ssh_config"),
    );
    let name = VmName::new("test").unwrap();
    ensure_user_key(&paths).unwrap();
    write_ssh_config(&paths).unwrap();
    let port = free_port();
    let stderr = failure_stderr(vm_ssh(&paths, &name, port));
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert_eq!(explain_ssh_failure(&stderr, &name), None);
    let err = fs::metadata(&paths.known_hosts).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "nothing pinned, nothing written"
    );
}
