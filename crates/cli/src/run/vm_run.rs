//! `vm run [PATH] [-- CMD]`: create a VM, copy the repository in (with a
//! PATH), then run the command there or open a shell; with `--rm`, delete
//! the VM afterwards, also after Ctrl-C.

use banger_api::protocol::{Request, Vm, VmExecParams, VmRef};
use banger_config::{PathEnv, Paths};

use super::{client, print_spec, vm_exec, vm_ssh, workspace};
use crate::args::{RunArgs, WorkspaceArgs};
use crate::client::Client;
use crate::error::CliError;

pub(crate) fn vm_run(a: RunArgs) -> Result<(), CliError> {
    let params = a.spec.clone().into_params();
    let paths = Paths::resolve(&PathEnv::from_process())?;
    let client = Client::connect_or_start(&paths)?;
    // Everything about the repository is checked before a VM exists.
    let plan = match &a.path {
        Some(path) => Some(workspace::preflight(
            &client,
            path,
            &a.source,
            params.nat,
            a.no_bootstrap,
        )?),
        None => None,
    };
    if a.dry_run {
        let plan = plan.expect("clap requires PATH with --dry-run");
        return workspace::print_plan(&plan);
    }
    print_spec(&paths, &params);
    // A VM that never became reachable is kept even with --rm, so its logs
    // can be read: the daemon records it as `error`.
    let vm: Vm = client.call(Request::VmCreate(params))?;
    let name = vm.name.to_string();
    let guard = if a.rm {
        let (n, p) = (name.clone(), paths.clone());
        let guard =
            crate::interrupt::RmGuard::install(name.clone(), move || delete_quietly(&p, &n))
                .map_err(|e| CliError::Io {
                    what: "listen for Ctrl-C".into(),
                    source: e,
                })?;
        Some(guard)
    } else {
        None
    };
    let outcome = session(&client, &name, &a);
    if let Some(guard) = guard {
        if guard.claim() {
            delete_quietly(&paths, &name);
        }
    } else if outcome.is_ok() && a.detach {
        eprintln!(
            "banger: {name} is running; `banger vm ssh {name}` opens a shell, `banger vm stop {name}` stops it"
        );
    } else {
        eprintln!(
            "banger: {name} is still running; stop it with `banger vm stop {name}`, remove it with `banger vm delete {name}`"
        );
    }
    outcome
}

/// The part after create: workspace, then the command or a shell.
fn session(client: &Client, name: &str, a: &RunArgs) -> Result<(), CliError> {
    let guest_path = match &a.path {
        Some(path) => {
            let prepared = workspace::prepare(client, name, path, &a.source, None, a.no_bootstrap)?;
            Some(prepared.workspace.guest_path)
        }
        None => None,
    };
    if a.detach {
        return Ok(());
    }
    if !a.cmd.is_empty() {
        // The daemon runs it in the workspace when there is one.
        return vm_exec(VmExecParams {
            vm: name.to_owned(),
            argv: a.cmd.clone(),
            cwd: None,
            timeout_s: None,
            stream: true,
        });
    }
    match guest_path {
        // Guest paths are plain names (checked by the daemon), so the
        // remote command needs no quoting.
        Some(dir) => vm_ssh(
            name,
            &[
                "-t".to_owned(),
                format!("cd {dir} && exec \"${{SHELL:-/bin/sh}}\" -l"),
            ],
        ),
        None => vm_ssh(name, &[]),
    }
}

/// `vm exec --auto-prepare`: a VM without a workspace first gets the
/// repository of the current directory.
pub(crate) fn prepare_if_missing(vm: &str) -> Result<(), CliError> {
    let client = client()?;
    let shown: Vm = client.call(Request::VmShow(VmRef { vm: vm.to_owned() }))?;
    if shown.workspace.is_some() {
        return Ok(());
    }
    let here = std::env::current_dir().map_err(|source| CliError::Io {
        what: "find the current directory".into(),
        source,
    })?;
    workspace::prepare(&client, vm, &here, &WorkspaceArgs::default(), None, false).map(|_| ())
}

/// `--rm`'s deletion: a failure is reported, not returned, so the guest
/// command's status still decides the exit code.
fn delete_quietly(paths: &Paths, name: &str) {
    let deleted = Client::connect_or_start(paths).and_then(|c| {
        c.call::<Vm>(Request::VmDelete(VmRef {
            vm: name.to_owned(),
        }))
    });
    if let Err(e) = deleted {
        eprintln!(
            "banger: could not delete {name}: {}; remove it with `banger vm delete {name}`",
            crate::error_line::error_line(&e)
        );
    }
}
