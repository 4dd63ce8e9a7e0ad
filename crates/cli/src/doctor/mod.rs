//! `banger doctor`: a read-only readiness report, one PASS/WARN/FAIL row per
//! check. It never starts the daemon and opens the state store read-only, so
//! it is safe to run while something is broken.

mod install;
mod network;
mod storage;
mod vmm;

use std::path::{Path, PathBuf};

use banger_config::{Config, HostFacts, Mode, PathEnv, Paths, resolve_vm_defaults};
use banger_sys::{Cmd, find_program};
use banger_vmm::select::FirecrackerFound;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

/// The `--json` shape: `{"ok": bool, "checks": [{"name", "status", "detail"}]}`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Self {
        Self {
            ok: checks.iter().all(|c| c.status != Status::Fail),
            checks,
        }
    }

    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }

    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let status = match c.status {
                Status::Pass => "PASS",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            out.push_str(&format!("{status}  {:<width$}  {}\n", c.name, c.detail));
        }
        let (fails, warns) = (
            self.failures(),
            self.checks
                .iter()
                .filter(|c| c.status == Status::Warn)
                .count(),
        );
        out.push_str(&format!(
            "\n{} checks: {fails} failed, {warns} warnings\n",
            self.checks.len()
        ));
        out
    }
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

pub fn run(env: &PathEnv) -> Report {
    let kvm = banger_vmm::Kvm::detect();
    let mut checks = vec![
        architecture(banger_sys::os::arch()),
        vmm::kvm(&kvm),
        vmm::tun(
            banger_sys::os::is_root(),
            banger_sys::os::can_open_rw(std::path::Path::new(vmm::TUN)).map_err(|e| e.to_string()),
        ),
    ];
    let paths = match Paths::resolve(env) {
        Ok(p) => p,
        Err(e) => {
            checks.push(check("paths", Status::Fail, banger_api::error_chain(&e)));
            return Report::new(checks);
        }
    };
    let (config, config_check) = match Config::load(&paths.config_file) {
        Ok(c) => {
            let detail = if paths.config_file.exists() {
                format!("loaded {}", paths.config_file.display())
            } else {
                format!("no {}; using defaults", paths.config_file.display())
            };
            (c, check("config", Status::Pass, detail))
        }
        Err(e) => (
            Config::default(),
            check("config", Status::Fail, banger_api::error_chain(&e)),
        ),
    };
    checks.push(config_check);
    let firecracker = FirecrackerFound::detect(config.firecracker_bin());
    let choice = vmm::choice(&config, &firecracker, &kvm);
    checks.extend(vmm_checks(&config, &firecracker, &choice));
    checks.push(host_tools(&REQUIRED_TOOLS, |t| find_program(t).is_some()));
    checks.push(storage::state_store(&paths.db_file));
    let defaults = resolve_vm_defaults(&config, &HostFacts::detect());
    checks.push(check("vm defaults", Status::Pass, defaults.summary()));
    checks.extend(network::rows(&config, &paths));
    checks.extend(storage::disk_rows(
        &paths.images_dir,
        vmm::cow_backend(&choice),
    ));
    checks.extend(storage::artifact_rows(&paths, &config));
    // Development mode (BANGER_HOME, or no install file) has no install rows.
    if paths.mode == Mode::System {
        checks.extend(install::system_rows());
    }
    checks.push(daemon(&paths));
    Report::new(checks)
}

fn architecture(arch: &str) -> Check {
    match arch {
        "x86_64" => check("architecture", Status::Pass, "x86_64"),
        other => check(
            "architecture",
            Status::Fail,
            format!("{other}: banger supports x86_64 hosts only"),
        ),
    }
}

fn vmm_checks(
    config: &Config,
    found: &FirecrackerFound,
    choice: &Result<banger_vmm::select::Choice, banger_vmm::select::SelectError>,
) -> Vec<Check> {
    let firecracker = match found {
        FirecrackerFound::Supported { binary, .. } => Some(binary),
        _ => None,
    };
    let qemu = locate(config.qemu_bin(), "qemu-system-x86_64");
    let vmm_check = vmm::row(config, choice, qemu.as_deref());
    let fc_check = vmm::firecracker(found);
    let jailer_bin = config
        .jailer_enabled()
        .then(|| locate(config.jailer_bin(), "jailer"))
        .flatten();
    let jailer_output = jailer_bin.as_deref().and_then(version_output);
    let fc_version = match found {
        FirecrackerFound::Supported { version, .. } => Some(version),
        _ => None,
    };
    let jailer_check = vmm::jailer(
        config.jailer_enabled(),
        jailer_bin
            .as_deref()
            .map(|bin| (bin, jailer_output.as_deref())),
        fc_version,
    );
    let qemu_check = match (&qemu, &firecracker) {
        (Some(bin), _) => match version_output(bin) {
            Some(v) => check(
                "qemu",
                Status::Pass,
                format!("{} ({})", first_line(&v), bin.display()),
            ),
            None => check(
                "qemu",
                Status::Fail,
                format!(
                    "{} does not run: `{} --version` failed",
                    bin.display(),
                    bin.display()
                ),
            ),
        },
        (None, Some(_)) => check(
            "qemu",
            Status::Warn,
            "qemu-system-x86_64 not installed (only needed without Firecracker)",
        ),
        (None, None) => check(
            "qemu",
            Status::Fail,
            "no VMM found: install QEMU (Debian: apt install qemu-system-x86) or Firecracker",
        ),
    };
    let jailer = jailer_check
        .unwrap_or_else(|| check("jailer", Status::Pass, "disabled (jailer_enabled = false)"));
    // Nothing to install for either: Firecracker has its vsock, and under
    // QEMU bangerd itself serves the agent's virtio-serial port.
    let vsock = check(
        "vsock",
        Status::Pass,
        if firecracker.is_some() {
            "Firecracker's built-in vsock"
        } else {
            "QEMU: a virtio-serial port served by bangerd --agent-mux"
        },
    );
    vec![vmm_check, fc_check, qemu_check, jailer, vsock]
}

fn locate(configured: Option<&Path>, default: &str) -> Option<PathBuf> {
    match configured {
        Some(p) => find_program(&p.to_string_lossy()),
        None => find_program(default),
    }
}

fn version_output(bin: &Path) -> Option<String> {
    Cmd::new(bin)
        .arg("--version")
        .run()
        .ok()
        .map(|o| o.stdout_str())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// Host programs banger drives, with the Debian package that ships each.
const REQUIRED_TOOLS: [(&str, &str); 9] = [
    ("ip", "iproute2"),
    ("mkfs.ext4", "e2fsprogs"),
    // The kernels' modules disks.
    ("depmod", "kmod"),
    ("debugfs", "e2fsprogs"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("git", "git"),
    ("tar", "tar"),
    ("qemu-img", "qemu-utils"),
];

fn host_tools(tools: &[(&str, &str)], present: impl Fn(&str) -> bool) -> Check {
    let missing: Vec<&(&str, &str)> = tools.iter().filter(|(t, _)| !present(t)).collect();
    if missing.is_empty() {
        let names: Vec<&str> = tools.iter().map(|(t, _)| *t).collect();
        return check("host tools", Status::Pass, names.join(", "));
    }
    let mut packages: Vec<&str> = Vec::new();
    for (_, p) in &missing {
        if !packages.contains(p) {
            packages.push(p);
        }
    }
    let names: Vec<&str> = missing.iter().map(|(t, _)| *t).collect();
    check(
        "host tools",
        Status::Fail,
        format!(
            "missing {}; install with: apt install {}",
            names.join(", "),
            packages.join(" ")
        ),
    )
}

fn daemon(paths: &Paths) -> Check {
    use banger_api::protocol::{NoParams, Pong, Request};
    match crate::client::Client::new(&paths.socket).call::<Pong>(Request::Ping(NoParams {})) {
        Ok(p) => check(
            "daemon",
            Status::Pass,
            format!(
                "bangerd v{} answers on {} (pid {})",
                p.version,
                paths.socket.display(),
                p.pid
            ),
        ),
        Err(crate::client::ClientError::NotRunning { .. }) => check(
            "daemon",
            Status::Warn,
            format!(
                "not running on {} (banger starts it on demand in development mode)",
                paths.socket.display()
            ),
        ),
        Err(e) => check("daemon", Status::Fail, banger_api::error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_other_than_x86_64_fails() {
        assert_eq!(architecture("x86_64").status, Status::Pass);
        assert_eq!(architecture("aarch64").status, Status::Fail);
    }

    #[test]
    fn missing_tools_name_their_packages() {
        let c = host_tools(&REQUIRED_TOOLS, |t| t != "debugfs" && t != "mkfs.ext4");
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("missing mkfs.ext4, debugfs"),
            "{}",
            c.detail
        );
        assert!(c.detail.ends_with("apt install e2fsprogs"), "{}", c.detail);
        assert_eq!(host_tools(&REQUIRED_TOOLS, |_| true).status, Status::Pass);
    }

    #[test]
    fn report_fails_on_any_fail_row() {
        let r = Report::new(vec![
            check("a", Status::Pass, ""),
            check("b", Status::Warn, ""),
        ]);
        assert!(r.ok);
        let r = Report::new(vec![
            check("a", Status::Pass, ""),
            check("b", Status::Fail, "x"),
        ]);
        assert!(!r.ok);
        assert_eq!(r.failures(), 1);
        assert!(r.render().contains("FAIL  b  x"));
    }

    #[test]
    fn state_store_missing_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let c = storage::state_store(&dir.path().join("banger.db"));
        assert_eq!(c.status, Status::Pass);
        assert!(
            !dir.path().join("banger.db").exists(),
            "doctor must not create the store"
        );
    }
}
