//! `vm.workspace.*` (SPEC §10): plan what of a host repository ships,
//! ship it into a running VM through the agent (a tar stream into the
//! guest's `tar`), and export the guest's changes as a binary patch.
//!
//! The host-side git work is `banger-workspace`'s; this module adds the VM:
//! its state, its lock, the agent connection and the record.

use std::path::{Path, PathBuf};
use std::time::Instant;

use banger_agent_proto::base64;
use banger_agent_proto::protocol::{ExecRequest, ExecResult, OutputStream as GuestStream};
use banger_api::protocol::{
    ErrorCode, OutputChunk, OutputStream, Workspace, WorkspaceExportParams, WorkspaceExported,
    WorkspacePlan, WorkspacePrepareParams, WorkspacePrepared, WorkspaceSource, short_commit,
};
use banger_store::VmRecord;
use banger_workspace::{Plan, Selection, guest};
use tokio_util::sync::CancellationToken;

use super::handles::running_agent;
use super::record::{check_cancel, find};
use crate::blocking::run;
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::guest::Guest;
use crate::ops::OpTracker;
use crate::state::Daemon;

/// Shipping a big repository into a TCG guest takes a while; a stalled one
/// is still bounded.
const SHIP_TIMEOUT_S: f64 = 3600.0;
/// Installing tools can download compilers.
const BOOTSTRAP_TIMEOUT_S: f64 = 1800.0;
/// Most guest stderr kept for an export's error message.
const MAX_STDERR: usize = 16 * 1024;
/// The most an export relays: far beyond a real patch (a healthy agent
/// cuts a command's output at 16 MiB anyway), and a bound on what a
/// hostile guest can make the daemon relay and the CLI write to
/// `--output`. Beyond it the export fails.
pub(super) const MAX_EXPORT_BYTES: u64 = 1 << 30;
/// What the workspace scripts run without streaming (extract, tool
/// bootstrap) may print: a line or two, and errors, of which the first
/// [`MAX_STDERR`] bytes are quoted. Shrinks the answer the client reads.
const SCRIPT_OUTPUT_BYTES: u64 = 64 * 1024;

/// `vm.workspace.plan`: checks the repository and lists what would ship.
pub async fn plan(source: WorkspaceSource) -> Result<WorkspacePlan, DaemonError> {
    let plan = plan_source(&source).await?;
    Ok(WorkspacePlan {
        root: plan.root.display().to_string(),
        base_commit: plan.base_commit.clone(),
        branch: plan.branch.clone(),
        overlay: plan.overlay,
        files: plan
            .files
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect(),
        untracked_skipped: plan.untracked_skipped,
        tooling: plan.tooling.clone(),
        default_guest_path: guest::default_path(&plan.root),
    })
}

async fn plan_source(source: &WorkspaceSource) -> Result<Plan, DaemonError> {
    let path = PathBuf::from(&source.path);
    if !path.is_absolute() {
        return Err(DaemonError::failed(
            ErrorCode::BadRequest,
            format!("workspace path {:?} must be absolute", source.path),
        ));
    }
    let selection = Selection {
        include_untracked: source.include_untracked,
        from: source.from.clone(),
        branch: source.branch.clone(),
    };
    Ok(run(move || banger_workspace::plan(&path, &selection)).await??)
}

/// `vm.workspace.prepare`: ships the repository into the running VM.
pub async fn prepare(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: WorkspacePrepareParams,
) -> Result<WorkspacePrepared, DaemonError> {
    let vm = find(daemon, &p.vm).await?;
    let mut op = OpTracker::begin(
        &daemon.store,
        ctx,
        "vm.workspace.prepare",
        Some(vm.name.to_string()),
    )
    .await?;
    let _lock = daemon.vms.lock(&vm.id).await;
    let result = prepare_locked(daemon, ctx, &mut op, vm, p).await;
    op.finish(result).await
}

async fn prepare_locked(
    daemon: &Daemon,
    ctx: &RequestCtx,
    op: &mut OpTracker,
    vm: VmRecord,
    p: WorkspacePrepareParams,
) -> Result<WorkspacePrepared, DaemonError> {
    let started = Instant::now();
    let uds = running_agent(daemon, &vm)?;
    op.stage(&format!("checking {}", p.source.path)).await?;
    let plan = plan_source(&p.source).await?;
    let guest_path = match &p.guest_path {
        Some(path) => {
            guest::check_path(path)
                .map_err(|msg| DaemonError::failed(ErrorCode::BadRequest, msg))?;
            path.trim_end_matches('/').to_owned()
        }
        None => guest::default_path(&plan.root),
    };
    let bootstrap = plan.tooling.clone().filter(|_| !p.no_bootstrap);
    if let (Some(file), false) = (&bootstrap, vm.spec.nat) {
        return Err(DaemonError::failed(
            ErrorCode::BadRequest,
            format!(
                "{} has {file}: installing its tools needs network, and VM {name} has no NAT; \
                 turn it on with `banger vm set {name} --nat` or pass --no-bootstrap",
                plan.root.display(),
                name = vm.name
            ),
        ));
    }
    check_cancel(&ctx.cancel)?;
    op.stage(&format!(
        "shallow clone of {} at {}",
        plan.root.display(),
        short_commit(&plan.base_commit)
    ))
    .await?;
    let scratch = daemon
        .paths
        .vm_dir(&vm.id)
        .join(format!("workspace-{}", ctx.op_id));
    let packed = {
        let plan = plan.clone();
        run(move || banger_workspace::pack(&plan, &scratch)).await??
    };
    check_cancel(&ctx.cancel)?;
    op.stage(&format!(
        "sending {} file(s), {} of them from the working tree, to {guest_path}",
        plan.files.len(),
        plan.overlaid.len()
    ))
    .await?;
    let ship = {
        let (root, uds, guest_path) = (plan.root.clone(), uds.clone(), guest_path.clone());
        let (guest, cancel) = (daemon.vms.guest(), ctx.cancel.clone());
        let spool = daemon
            .paths
            .vm_dir(&vm.id)
            .join(format!("workspace-{}.tar", ctx.op_id));
        run(move || {
            let shipped = ship(
                guest.as_ref(),
                &packed,
                &root,
                &spool,
                &uds,
                &guest_path,
                &cancel,
            );
            let _ = std::fs::remove_file(&spool);
            shipped
        })
    };
    let bytes = tokio::select! {
        shipped = ship => shipped??,
        () = ctx.cancel.cancelled() => return Err(DaemonError::Cancelled),
    };
    let workspace = Workspace {
        guest_path: guest_path.clone(),
        host_path: plan.root.display().to_string(),
        base_commit: plan.base_commit.clone(),
    };
    {
        let (id, ws) = (vm.id.clone(), workspace.clone());
        daemon
            .store
            .call(move |s| s.set_vm_workspace(&id, Some(&ws)))
            .await?;
    }
    let bootstrap = match bootstrap {
        Some(file) => {
            op.stage(&format!(
                "installing the tools {file} asks for (best effort)"
            ))
            .await?;
            let (name, path) = (vm.name.to_string(), guest_path.clone());
            let (guest, cancel) = (daemon.vms.guest(), ctx.cancel.clone());
            let report =
                run(move || install_tools(guest.as_ref(), &uds, &path, &name, &cancel)).await?;
            check_cancel(&ctx.cancel)?;
            Some(report)
        }
        None => None,
    };
    Ok(WorkspacePrepared {
        workspace,
        files: plan.files.len(),
        bytes,
        untracked_skipped: plan.untracked_skipped,
        bootstrap,
        duration_s: started.elapsed().as_secs_f64(),
    })
}

/// Writes the packed archive to `spool`, then sends it to the guest's `tar`
/// as raw bytes after the request (`stdin_raw_bytes`: the guest only copies
/// them, where base64 frames cost it a decode per byte on an emulated CPU);
/// an agent older than that gets the frames. Returns the archive's size.
fn ship(
    guest: &dyn Guest,
    packed: &banger_workspace::Packed,
    root: &Path,
    spool: &Path,
    uds: &Path,
    guest_path: &str,
    cancel: &CancellationToken,
) -> Result<u64, DaemonError> {
    let archive_error = |source| banger_workspace::WorkspaceError::Archive {
        root: root.to_owned(),
        source,
    };
    let mut tar = packed.archive()?;
    let spooled = std::fs::File::create(spool).and_then(|mut file| {
        let bytes = std::io::copy(&mut tar, &mut file)?;
        file.sync_data().map(|()| bytes)
    });
    // The host's archive failing explains a failure better than a short
    // file would.
    tar.finish().map_err(archive_error)?;
    let spool_error = |action: &'static str| {
        move |e: std::io::Error| {
            DaemonError::Internal(format!("cannot {action} {}: {e}", spool.display()))
        }
    };
    let bytes = spooled.map_err(spool_error("write"))?;
    let open = || std::fs::File::open(spool).map_err(spool_error("read"));
    let mut file = open()?;
    let mut request = ExecRequest::new(guest::argv(guest::EXTRACT, &[guest_path]));
    request.timeout_s = Some(SHIP_TIMEOUT_S);
    request.max_output_bytes = Some(SCRIPT_OUTPUT_BYTES);
    let mut answer =
        guest.exec_with_raw_input(uds, request.clone(), &mut file, bytes, None, cancel);
    if answer.as_ref().is_err_and(|e| e.is_raw_input_unsupported()) {
        let mut file = open()?;
        answer = guest.exec_with_input(uds, request, &mut file, None, cancel);
    }
    let result = answer.map_err(|e| {
        if e.is_stdin_stream_unsupported() {
            DaemonError::failed(
                ErrorCode::OperationFailed,
                "this VM's guest agent predates workspaces; recreate the VM to get the current agent",
            )
        } else {
            e.into()
        }
    })?;
    match result.status {
        Some(0) => Ok(bytes),
        Some(guest::EXTRACT_EXISTS) => Err(DaemonError::failed(
            ErrorCode::AlreadyExists,
            format!(
                "{guest_path} already exists in the guest and is not empty; choose another --guest-path, \
                 or export what is there first and remove it"
            ),
        )),
        _ => Err(guest_failure(
            "unpacking the workspace in the guest",
            &result,
        )),
    }
}

/// Runs the tooling bootstrap; its outcome is reported, never an error.
fn install_tools(
    guest: &dyn Guest,
    uds: &Path,
    guest_path: &str,
    vm: &str,
    cancel: &CancellationToken,
) -> String {
    let log = guest::bootstrap_log(vm);
    let mut request = ExecRequest::new(guest::argv(guest::BOOTSTRAP, &[guest_path, &log]));
    request.timeout_s = Some(BOOTSTRAP_TIMEOUT_S);
    request.max_output_bytes = Some(SCRIPT_OUTPUT_BYTES);
    match guest.exec(uds, request, cancel) {
        Ok(r) if r.status == Some(0) => format!("tools installed; log: {log}"),
        Ok(r) if r.status == Some(guest::BOOTSTRAP_NO_MISE) => {
            "mise is not installed in this image; no tools were installed".to_owned()
        }
        Ok(r) if r.timed_out => format!("installing tools timed out; log: {log}"),
        Ok(_) => format!("installing tools failed; log: {log}"),
        Err(e) => format!("installing tools failed: {}", banger_api::error_chain(&e)),
    }
}

/// `vm.workspace.export`: the binary patch of the guest workspace against
/// its base, streamed to the client as stdout output.
pub async fn export(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: WorkspaceExportParams,
) -> Result<WorkspaceExported, DaemonError> {
    let vm = find(daemon, &p.vm).await?;
    let workspace = vm.workspace.clone().ok_or_else(|| {
        DaemonError::failed(
            ErrorCode::BadRequest,
            format!(
                "VM {name} has no workspace; prepare one with `banger vm workspace prepare {name} PATH`",
                name = vm.name
            ),
        )
    })?;
    let base = p.base_commit.unwrap_or(workspace.base_commit.clone());
    if !(4..=64).contains(&base.len()) || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DaemonError::failed(
            ErrorCode::BadRequest,
            format!("--base-commit {base:?} must be a commit id (4 to 64 hex digits)"),
        ));
    }
    let uds = running_agent(daemon, &vm)?;
    let (output, guest, cancel) = (ctx.output.clone(), daemon.vms.guest(), ctx.cancel.clone());
    let (path, commit) = (workspace.guest_path.clone(), base.clone());
    let bytes = run(move || {
        let request = ExecRequest::new(guest::argv(guest::EXPORT, &[&path, &commit]));
        export_patch(
            guest.as_ref(),
            &uds,
            request,
            &output,
            &cancel,
            MAX_EXPORT_BYTES,
        )
    })
    .await??;
    Ok(WorkspaceExported {
        base_commit: base,
        guest_path: workspace.guest_path,
        bytes,
    })
}

/// Runs the export script, relaying the patch (its stdout) to the client;
/// returns its size. Fails whenever the client did not get all of it: the
/// agent cut it at its cap, dropped some for a stalled host, or the guest
/// sent more than `limit` bytes ([`MAX_EXPORT_BYTES`]; the call is then
/// aborted, which kills the command). The CLI writes a file only after a
/// success.
fn export_patch(
    guest: &dyn Guest,
    uds: &Path,
    mut request: ExecRequest,
    output: &tokio::sync::mpsc::Sender<OutputChunk>,
    cancel: &CancellationToken,
    limit: u64,
) -> Result<u64, DaemonError> {
    request.timeout_s = Some(SHIP_TIMEOUT_S);
    let cap = request.effective_max_output();
    let too_much = cancel.child_token();
    let mut bytes = 0u64;
    let mut stderr = Vec::new();
    let mut relay = |stream: GuestStream, data: &[u8]| match stream {
        GuestStream::Stdout if too_much.is_cancelled() => {}
        GuestStream::Stdout if bytes + data.len() as u64 > limit => {
            // Aborting the call kills the command in the guest.
            too_much.cancel();
        }
        GuestStream::Stdout => {
            bytes += data.len() as u64;
            let _ = output.blocking_send(OutputChunk {
                stream: OutputStream::Stdout,
                data: base64::encode(data),
            });
        }
        GuestStream::Stderr => {
            let room = MAX_STDERR.saturating_sub(stderr.len());
            stderr.extend_from_slice(&data[..data.len().min(room)]);
        }
    };
    let answer = guest.exec_streaming(uds, request, &mut relay, &too_much);
    let incomplete = |why: String| {
        DaemonError::failed(
            ErrorCode::OperationFailed,
            format!("the export failed: the patch is incomplete ({why})"),
        )
    };
    if too_much.is_cancelled() && !cancel.is_cancelled() {
        return Err(incomplete(format!(
            "the guest sent more than {limit} bytes, the most an export takes"
        )));
    }
    let mut result = answer?;
    if result.status != Some(0) {
        result.stderr = String::from_utf8_lossy(&stderr).into_owned();
        return Err(guest_failure("computing the patch in the guest", &result));
    }
    if result.stdout_truncated {
        return Err(incomplete(format!(
            "the guest agent cut it at {cap} bytes (its output cap per command)"
        )));
    }
    if result.output_dropped {
        return Err(incomplete(
            "the guest agent dropped part of it (the daemon took none for the agent's write \
             timeout)"
                .to_owned(),
        ));
    }
    Ok(bytes)
}

/// Warns when the host repository moved on since the workspace was made:
/// the guest works on an older base than the user may think.
pub(super) fn head_moved(workspace: &Workspace) -> Option<String> {
    let root = Path::new(&workspace.host_path);
    let head =
        banger_workspace::git::output(root, &["rev-parse", "--verify", "--quiet", "HEAD"]).ok()?;
    (head != workspace.base_commit).then(|| {
        format!(
            "warning: {} is at {} now, the workspace in {} was prepared from {}",
            workspace.host_path,
            short_commit(&head),
            workspace.guest_path,
            short_commit(&workspace.base_commit)
        )
    })
}

fn guest_failure(what: &str, result: &ExecResult) -> DaemonError {
    let how = match (result.status, result.signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "no status".to_owned(),
    };
    let stderr = result.stderr.trim();
    let detail = if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    };
    DaemonError::failed(
        ErrorCode::OperationFailed,
        format!("{what} failed ({how}){detail}"),
    )
}

#[cfg(test)]
mod tests;
