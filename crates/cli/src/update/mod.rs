//! `banger update [--check] [--to V] [--dry-run] [--force]` (SPEC §3): a
//! signed manifest, downloads that are size-capped, hash-checked and staged
//! where only root can write, a sanity run of the new programs, an atomic
//! swap that keeps the previous copies, a restart of both services, and a
//! rollback to the previous programs when anything after the swap fails.
//! Running VMs are untouched throughout: the services are restarted by
//! ending their processes (both units restart on any exit), and the new
//! daemon adopts the VMs.

use std::path::{Path, PathBuf};

use banger_api::protocol::{Operation, OperationState, OperationsListParams, Request};
use banger_config::InstallInfo;
use banger_image::debian::{Fetch, HttpFetch, read_capped};

use crate::args::UpdateArgs;
use crate::system::layout::Layout;
use crate::system::steps::Steps;

mod manifest;
mod restart;
mod stage;
mod swap;

pub use restart::Services;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(
        "banger update needs root (it replaces programs in /usr/local): run `sudo banger update`"
    )]
    NotRoot,
    #[error("banger is not installed system-wide ({} is missing); a development build is updated by rebuilding it", .0.display())]
    NotInstalled(PathBuf),
    #[error(transparent)]
    Config(#[from] Box<banger_config::ConfigError>),
    #[error("the release key: {0}")]
    Key(String),
    #[error("the release manifest's signature: {0}")]
    Signature(String),
    #[error("the release manifest: {0}")]
    Manifest(String),
    #[error("cannot download {what}")]
    Download {
        what: String,
        #[source]
        source: Box<banger_image::debian::DebianError>,
    },
    #[error("the new {program} failed its sanity run: {why}")]
    Sanity { program: &'static str, why: String },
    #[error("{n} operation(s) are in flight ({list}); wait for them, or pass --force")]
    Busy { n: usize, list: String },
    #[error("the daemon does not answer at {}: {why}", socket.display())]
    DaemonDown { socket: PathBuf, why: String },
    #[error("{0}")]
    Restart(String),
    #[error(transparent)]
    System(#[from] Box<crate::system::SystemError>),
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the update to v{version} failed and was rolled back; v{previous} is serving again")]
    RolledBack {
        version: String,
        previous: String,
        #[source]
        cause: Box<UpdateError>,
    },
}

impl UpdateError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UpdateError {
        let path = path.to_owned();
        move |source| UpdateError::Io { what, path, source }
    }
}

pub fn update(args: &UpdateArgs) -> Result<(), UpdateError> {
    let layout = args
        .install_root
        .as_ref()
        .map_or_else(Layout::system, Layout::new);
    let install_file = layout.install_file();
    if !install_file.exists() {
        return Err(UpdateError::NotInstalled(install_file));
    }
    if !args.check && !banger_sys::os::is_root() {
        return Err(UpdateError::NotRoot);
    }
    let info = InstallInfo::load(&install_file).map_err(Box::new)?;
    let base = info.release_url.clone().ok_or_else(|| {
        UpdateError::Manifest(format!("{} names no release_url", install_file.display()))
    })?;
    let manifest_url = format!("{}/manifest.json", base.trim_end_matches('/'));
    let fetch = HttpFetch::new();
    let manifest = fetch_manifest(&fetch, &manifest_url, args.release_key.as_deref())?;
    let target = manifest.select(args.to.as_deref())?;
    let current = &info.release;
    if target.version == current.version && target.commit == current.commit {
        println!(
            "banger is up to date: v{} (commit {}).",
            current.version, current.commit
        );
        return Ok(());
    }
    if args.check {
        println!(
            "installed: v{} (commit {})\navailable: v{} (commit {}); `sudo banger update{}` installs it",
            current.version,
            current.commit,
            target.version,
            target.commit,
            args.to
                .as_ref()
                .map(|v| format!(" --to {v}"))
                .unwrap_or_default()
        );
        return Ok(());
    }
    let services = Services::locate()?;
    if !args.force {
        refuse_if_busy(&services.daemon_socket)?;
    }
    let mut steps = Steps::open(&layout.log_file());
    println!(
        "Updating v{} (commit {}) to v{} (commit {}); full output in {}",
        current.version,
        current.commit,
        target.version,
        target.commit,
        steps.log_path().display()
    );
    let staged = steps.step("download and verify the new programs", |_| {
        stage::download(&layout, &fetch, &manifest_url, target)
    })?;
    steps.step("sanity run of the new programs", |_| {
        stage::sanity(&staged, target)
    })?;
    if args.dry_run {
        println!(
            "Dry run: v{} is verified and runs; nothing was changed.",
            target.version
        );
        return Ok(());
    }
    let swapped = steps.step(
        "swap them in (the previous ones stay as *.previous)",
        |_| swap::swap_in(&layout, &staged, &info, target),
    )?;
    let outcome = steps
        .step("restart both services on the new programs", |_| {
            services.restart(&layout, &target.commit)
        })
        .and_then(|()| steps.step("doctor", |_| run_doctor(&layout)));
    match outcome {
        Ok(()) => {
            println!("Updated to v{}; running VMs kept running.", target.version);
            Ok(())
        }
        Err(cause) => {
            println!("    {}", crate::error_line::error_line(&cause));
            steps.step("put the previous programs back", |_| swapped.roll_back())?;
            steps.step("restart both services on the previous programs", |_| {
                services.restart(&layout, &current.commit)
            })?;
            Err(UpdateError::RolledBack {
                version: target.version.clone(),
                previous: current.version.clone(),
                cause: Box::new(cause),
            })
        }
    }
}

fn fetch_manifest(
    fetch: &dyn Fetch,
    url: &str,
    key_override: Option<&str>,
) -> Result<manifest::Manifest, UpdateError> {
    let download = |what: &str, url: &str, cap| {
        read_capped(fetch, url, cap).map_err(|source| UpdateError::Download {
            what: what.to_owned(),
            source: Box::new(source),
        })
    };
    let bytes = download("the release manifest", url, manifest::MAX_MANIFEST)?;
    let sig_url = format!("{url}.sig");
    let signature = download(
        "the manifest's signature",
        &sig_url,
        manifest::MAX_SIGNATURE,
    )?;
    manifest::verify(&bytes, &signature, &manifest::key(key_override)?)
}

/// An update restarts the daemon, which cancels what it is doing.
fn refuse_if_busy(socket: &Path) -> Result<(), UpdateError> {
    let ops: Vec<Operation> = crate::client::Client::new(socket)
        .call(Request::OperationsList(OperationsListParams {
            limit: Some(0),
        }))
        .map_err(|e| UpdateError::DaemonDown {
            socket: socket.to_owned(),
            why: crate::error_line::error_line(&e),
        })?;
    let running: Vec<String> = ops
        .iter()
        .filter(|o| o.state == OperationState::Running)
        .map(|o| {
            format!("{} {}", o.kind, o.target.as_deref().unwrap_or(""))
                .trim()
                .to_owned()
        })
        .collect();
    if running.is_empty() {
        Ok(())
    } else {
        Err(UpdateError::Busy {
            n: running.len(),
            list: running.join(", "),
        })
    }
}

/// The new `banger doctor`: it must run (a crash fails the update); the
/// rows it fails are the host's state, reported but not a reason to roll
/// back.
fn run_doctor(layout: &Layout) -> Result<(), UpdateError> {
    let (status, out) = banger_sys::Cmd::new(layout.banger())
        .args(["doctor", "--json"])
        .run_any_status()
        .map_err(|e| UpdateError::Sanity {
            program: "banger",
            why: e.to_string(),
        })?;
    match status.code() {
        Some(0 | 1) => {
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let fails = report["checks"]
                .as_array()
                .map_or(0, |c| c.iter().filter(|c| c["status"] == "fail").count());
            if fails > 0 {
                println!(
                    "    doctor: {fails} row(s) FAIL on this host; `banger doctor` lists them"
                );
            }
            Ok(())
        }
        _ => Err(UpdateError::Sanity {
            program: "banger",
            why: format!("`banger doctor` ended with {status}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A daemon that lists one operation in `state`.
    fn daemon_with(state: &'static str) -> (tempfile::TempDir, PathBuf) {
        crate::client::tests::one_connection_daemon(move |_request, conn| {
            let op = serde_json::json!({
                "id": "op-1", "kind": "vm.create", "target": "dev", "state": state,
                "stage": "waiting for ssh", "error": null,
                "started_at": "2026-12-03T00:00:00Z", "finished_at": null,
            });
            let answer = serde_json::json!({"op_id": "op-x", "result": [op]});
            let _ = (&*conn).write_all(format!("{answer}\n").as_bytes());
        })
    }

    #[test]
    fn an_operation_in_flight_refuses_the_update() {
        let (_dir, socket) = daemon_with("running");
        let err = refuse_if_busy(&socket).unwrap_err().to_string();
        assert!(
            err.contains("vm.create dev") && err.contains("--force"),
            "{err}"
        );
        let (_dir, socket) = daemon_with("succeeded");
        refuse_if_busy(&socket).unwrap();
    }

    #[test]
    fn a_daemon_that_does_not_answer_refuses_the_update() {
        let dir = tempfile::tempdir().unwrap();
        let err = refuse_if_busy(&dir.path().join("none.sock")).unwrap_err();
        assert!(matches!(err, UpdateError::DaemonDown { .. }), "{err}");
    }
}
