//! The VM commands that act on several VMs at once (`start`, `stop`,
//! `restart`, `kill`, `delete`, `set`, `ports`), `prune` with its
//! confirmation, and `stats`.

use std::io::{BufRead, IsTerminal};

use banger_api::model::VmState;
use banger_api::protocol::{
    NoParams, PruneEntry, PruneOutcome, Request, Vm, VmPorts, VmPruneParams, VmRef, VmSetParams,
    VmStats,
};
use banger_api::text::clean_guest_text;

use super::multi::{Tally, in_order};
use super::{print, print_json};
use crate::args::JsonFlag;
use crate::client::{Client, ClientError};
use crate::error::CliError;
use crate::render;

/// What a lifecycle command says of each VM once it is done.
pub enum Done {
    /// The state the VM is in afterwards (`dev: stopped`).
    State,
    /// A fixed word (`dev: deleted`).
    Word(&'static str),
}

/// One request per VM, all at once; one line per VM in the order given:
/// `NAME: STATE` on stdout, or `banger: REF: error` on stderr.
pub fn lifecycle(
    client: &Client,
    refs: &[String],
    done: Done,
    request: impl Fn(String) -> Request + Sync,
) -> Result<(), CliError> {
    let mut tally = Tally::new(refs.len());
    let mut stdout_ok = true;
    in_order(
        client,
        refs,
        |c, r, progress| c.call_with::<Vm>(request(r.to_owned()), progress),
        |r, result| match result {
            Ok(vm) => {
                let word = match done {
                    Done::State => vm.state.as_str(),
                    Done::Word(w) => w,
                };
                stdout_ok = stdout_ok && print(&format!("{}: {word}\n", vm.name)).is_ok();
            }
            Err(e) => tally.failed(r, e),
        },
    );
    if !stdout_ok {
        return Err(stdout_gone());
    }
    tally.finish()
}

pub fn set(client: &Client, refs: &[String], change: VmSetParams) -> Result<(), CliError> {
    let mut tally = Tally::new(refs.len());
    let mut stdout_ok = true;
    in_order(
        client,
        refs,
        |c, r, progress| {
            let params = VmSetParams {
                vm: r.to_owned(),
                ..change.clone()
            };
            c.call_with::<Vm>(Request::VmSet(params), progress)
        },
        |r, result| match result {
            Ok(vm) => {
                let line = format!("{}: {}\n", vm.name, render::spec_line(&vm));
                stdout_ok = stdout_ok && print(&line).is_ok();
            }
            Err(e) => tally.failed(r, e),
        },
    );
    if !stdout_ok {
        return Err(stdout_gone());
    }
    tally.finish()
}

/// `print` fails only when stdout is gone; that is reported once, after
/// every VM's request has finished.
fn stdout_gone() -> CliError {
    CliError::Stdout(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
}

pub fn ports(client: &Client, refs: &[String], json: JsonFlag) -> Result<(), CliError> {
    let mut tally = Tally::new(refs.len());
    let mut found: Vec<VmPorts> = Vec::new();
    let mut text = String::new();
    in_order(
        client,
        refs,
        |c, r, progress| {
            c.call_with::<VmPorts>(Request::VmPorts(VmRef { vm: r.to_owned() }), progress)
        },
        |r, result| match result {
            Ok(ports) => {
                if refs.len() > 1 {
                    text.push_str(&format!("{}:\n", ports.name));
                }
                text.push_str(&render::ports(&ports));
                found.push(ports);
            }
            Err(e) => tally.failed(r, e),
        },
    );
    if json.json {
        print_json(&found)?;
    } else {
        print(&text)?;
    }
    tally.finish()
}

pub fn stats(client: &Client, vm: String, json: JsonFlag) -> Result<(), CliError> {
    let stats: VmStats = client.call(Request::VmStats(VmRef { vm }))?;
    if json.json {
        print_json(&stats)
    } else {
        print(&render::stats(&stats))
    }
}

/// Lists the VMs that are not running, asks (on a terminal) unless
/// `force`, then deletes exactly those, each only if it is still not
/// running by then.
pub fn prune(client: &Client, force: bool) -> Result<(), CliError> {
    let ids = if force {
        None
    } else {
        let vms: Vec<Vm> = client.call(Request::VmList(NoParams {}))?;
        let doomed: Vec<&Vm> = vms
            .iter()
            .filter(|vm| {
                matches!(
                    vm.state,
                    VmState::Created | VmState::Stopped | VmState::Error
                )
            })
            .collect();
        if doomed.is_empty() {
            return print("Nothing to prune: no VM is created, stopped or failed.\n");
        }
        if !std::io::stdin().is_terminal() {
            return Err(ClientError::NeedsConfirmation {
                what: format!("deleting {} VMs", doomed.len()),
            }
            .into());
        }
        eprint!("{}", render::prune_question(&doomed));
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(ClientError::Stdin)?;
        if !is_yes(&answer) {
            return print("Nothing deleted.\n");
        }
        Some(doomed.iter().map(|vm| vm.id.clone()).collect())
    };
    let entries: Vec<PruneEntry> = client.call(Request::VmPrune(VmPruneParams { ids }))?;
    if entries.is_empty() {
        return print("Nothing to prune: no VM is created, stopped or failed.\n");
    }
    let mut failed = 0;
    for e in &entries {
        match e.outcome {
            PruneOutcome::Deleted => print(&format!("deleted {}\n", e.name))?,
            PruneOutcome::Skipped => print(&format!(
                "kept {}: {}\n",
                e.name,
                clean_guest_text(e.message.as_deref().unwrap_or("it is running"))
            ))?,
            PruneOutcome::Failed => {
                failed += 1;
                eprintln!(
                    "banger: {}: {}",
                    e.name,
                    clean_guest_text(e.message.as_deref().unwrap_or("delete failed"))
                );
            }
        }
    }
    match failed {
        0 => Ok(()),
        failed => Err(CliError::Some {
            failed,
            total: entries.len(),
        }),
    }
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_yes_means_yes() {
        for yes in ["y\n", "YES\n", " yes "] {
            assert!(super::is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n\n", "yep\n", "no"] {
            assert!(!super::is_yes(no), "{no:?}");
        }
    }
}
