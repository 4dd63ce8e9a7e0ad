//! `vm workspace prepare|export` and the workspace half of `vm run PATH`.

use std::io::Write;
use std::path::Path;

use banger_api::protocol::{
    OutputStream, Request, WorkspaceExportParams, WorkspaceExported, WorkspacePlan,
    WorkspacePrepareParams, WorkspacePrepared, WorkspaceSource, short_commit,
};
use banger_api::text::{clean_guest_bytes, clean_guest_text};

use super::absolute;
use crate::args::WorkspaceArgs;
use crate::client::Client;
use crate::error::CliError;

/// Checks the repository and what shipping it needs, before any VM exists.
pub(super) fn preflight(
    client: &Client,
    path: &Path,
    args: &WorkspaceArgs,
    nat: bool,
    no_bootstrap: bool,
) -> Result<WorkspacePlan, CliError> {
    let plan: WorkspacePlan = client.call(Request::WorkspacePlan(source(path, args)?))?;
    if let (Some(file), false, false) = (&plan.tooling, nat, no_bootstrap) {
        return Err(CliError::Usage(format!(
            "{} has {file}: installing its tools needs network; add --nat, or --no-bootstrap to skip them",
            plan.root
        )));
    }
    Ok(plan)
}

fn source(path: &Path, args: &WorkspaceArgs) -> Result<WorkspaceSource, CliError> {
    Ok(args.clone().into_source(absolute(path)?))
}

/// `--dry-run`: the files that would be copied, one per line on stdout,
/// and what else would happen on stderr.
pub(super) fn print_plan(plan: &WorkspacePlan) -> Result<(), CliError> {
    let mut text = String::new();
    for file in &plan.files {
        text.push_str(file);
        text.push('\n');
    }
    super::print(&text)?;
    let base = short_commit(&plan.base_commit);
    let on = plan
        .branch
        .as_deref()
        .map_or_else(|| "detached".to_owned(), |b| format!("on branch {b}"));
    let tree = if plan.overlay {
        "with your uncommitted changes"
    } else {
        "as committed"
    };
    eprintln!(
        "would copy {} of {} at {base} ({on}, {tree}) to {}",
        files(plan.files.len()),
        plan.root,
        plan.default_guest_path
    );
    untracked_note(plan.untracked_skipped);
    if let Some(file) = &plan.tooling {
        eprintln!("would install the tools {file} asks for (unless --no-bootstrap)");
    }
    Ok(())
}

/// Copies the repository into the running VM, with progress on stderr.
pub(super) fn prepare(
    client: &Client,
    vm: &str,
    path: &Path,
    args: &WorkspaceArgs,
    guest_path: Option<String>,
    no_bootstrap: bool,
) -> Result<WorkspacePrepared, CliError> {
    let prepared: WorkspacePrepared =
        client.call(Request::WorkspacePrepare(WorkspacePrepareParams {
            vm: vm.to_owned(),
            source: source(path, args)?,
            guest_path,
            no_bootstrap,
        }))?;
    let ws = &prepared.workspace;
    eprintln!(
        "workspace {} ready: {} ({}) at {} in {:.1} s",
        ws.guest_path,
        files(prepared.files),
        crate::render::human_bytes(prepared.bytes),
        short_commit(&ws.base_commit),
        prepared.duration_s
    );
    untracked_note(prepared.untracked_skipped);
    if let Some(bootstrap) = &prepared.bootstrap {
        eprintln!("tools: {}", clean_guest_text(bootstrap));
    }
    Ok(prepared)
}

fn files(n: usize) -> String {
    if n == 1 {
        "1 file".to_owned()
    } else {
        format!("{n} files")
    }
}

fn untracked_note(skipped: usize) {
    if skipped > 0 {
        eprintln!(
            "note: {skipped} untracked file{} not copied; --include-untracked copies them",
            if skipped == 1 { " was" } else { "s were" }
        );
    }
}

/// What the guest's `git` says on stderr during an export, cleaned for the
/// terminal (the patch itself, on stdout or in the file, stays exact).
/// Each piece is cleaned on its own: a sequence split between two pieces
/// loses its introducer and shows as plain text, never as a sequence.
fn guest_stderr(data: &[u8]) -> std::io::Result<()> {
    std::io::stderr().write_all(clean_guest_bytes(data).as_bytes())
}

/// `vm workspace export`: the patch to stdout, or to `output` through a
/// temporary file renamed into place once the patch is complete, so a
/// failed export never leaves a truncated patch under that name. The
/// daemon fails an export whose patch came incomplete; the bytes received
/// are checked against the size it reports too.
pub(super) fn export(
    client: &Client,
    vm: String,
    base_commit: Option<String>,
    output: Option<&Path>,
) -> Result<(), CliError> {
    let request = Request::WorkspaceExport(WorkspaceExportParams { vm, base_commit });
    let mut received = 0u64;
    let exported: WorkspaceExported = match output {
        None => client.call_streaming(request, &mut |stream, data| match stream {
            OutputStream::Stdout => {
                received += data.len() as u64;
                let mut out = std::io::stdout().lock();
                out.write_all(data).and_then(|()| out.flush())
            }
            OutputStream::Stderr => guest_stderr(data),
        })?,
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let io = |what: &str| {
                let what = format!("{what} {}", path.display());
                move |source| CliError::Io { what, source }
            };
            let mut file =
                tempfile::NamedTempFile::new_in(dir).map_err(io("create a file beside"))?;
            let exported = client
                .call_streaming(request, &mut |stream, data| match stream {
                    OutputStream::Stdout => {
                        received += data.len() as u64;
                        file.write_all(data)
                    }
                    OutputStream::Stderr => guest_stderr(data),
                })
                .inspect_err(|_| not_written(path))?;
            // Dropping the temporary file removes it.
            check_complete(&exported, received).inspect_err(|_| not_written(path))?;
            file.as_file().sync_all().map_err(io("write"))?;
            file.persist(path).map_err(|e| io("write")(e.error))?;
            exported
        }
    };
    if output.is_none() {
        check_complete(&exported, received)?;
    }
    if exported.bytes == 0 {
        eprintln!(
            "no changes in {} since {}",
            exported.guest_path, exported.base_commit
        );
    } else {
        eprintln!(
            "patch of {} against {}: {} bytes",
            exported.guest_path, exported.base_commit, exported.bytes
        );
    }
    Ok(())
}

fn not_written(path: &Path) {
    eprintln!("nothing was written to {}", path.display());
}

/// The patch is whole only when every byte the daemon relayed arrived.
fn check_complete(exported: &WorkspaceExported, received: u64) -> Result<(), CliError> {
    if received == exported.bytes {
        Ok(())
    } else {
        Err(CliError::Incomplete(format!(
            "the export failed: the patch is incomplete (received {received} of {} bytes)",
            exported.bytes
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_is_complete_only_with_every_byte() {
        let exported = WorkspaceExported {
            base_commit: "abcd".into(),
            guest_path: "/root/app".into(),
            bytes: 10,
        };
        assert!(check_complete(&exported, 10).is_ok());
        let err = check_complete(&exported, 7).unwrap_err();
        assert!(err.to_string().contains("received 7 of 10 bytes"), "{err}");
        assert_eq!(err.exit_code(), 1);
    }
}
