//! The daemon protocol (SPEC §4): newline-delimited JSON over a Unix socket.
//!
//! One connection carries one request. The client writes a single line, an
//! [`Envelope`]; the daemon answers with [`Response`] lines: progress lines
//! for long operations, output lines for a streaming `vm.exec`, then one
//! final result or error. While
//! the daemon works the client keeps the connection open; closing it (Ctrl-C)
//! cancels the request, and the daemon runs that request's cleanup.
//!
//! ```text
//! → {"version":1,"op_id":"cli-1","method":"vm.show","params":{"vm":"dev"}}
//! ← {"op_id":"cli-1","result":{...}}
//! ← {"op_id":"cli-1","error":{"code":"not_found","message":"..."}}
//! ← {"op_id":"cli-2","progress":{"stage":"downloading linux-image-..."}}   (then a final line)
//! ← {"op_id":"cli-3","output":{"stream":"stdout","data":"aGkK"}}   (streaming vm.exec)
//! ```

mod snapshot;
mod types;
mod vm_ops;
mod workspace;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use snapshot::{MAX_FORK, SnapshotInfo, VmForkParams, VmRestoreParams, VmSnapshotParams};
pub use types::{
    ImageBuilt, ImageInfo, KernelInfo, Operation, OperationState, Pong, Vm, VmExecResult,
    VmRootDisk, VmRuntime, VmSpec, Workspace,
};
pub use vm_ops::{
    DiskUsage, GuestUsage, LogChunk, MAX_LOG_CHUNK, MIN_DISK_MIB, MIN_MEMORY_MIB, PortProto,
    PruneEntry, PruneOutcome, VmLogs, VmLogsParams, VmPort, VmPorts, VmPruneParams, VmSetParams,
    VmStats, VmmUsage,
};

pub use workspace::{
    WorkspaceExportParams, WorkspaceExported, WorkspacePlan, WorkspacePrepareParams,
    WorkspacePrepared, WorkspaceSource, short_commit,
};

use crate::model::ByteSize;

/// Bumped on any incompatible change to the envelope or a method's shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the daemon reads; longer ones are `bad_request`.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// What the client writes: one JSON object on one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub version: u32,
    /// Chosen by the client, or minted by the daemon when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
    pub method: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
}

/// Parameters of methods that take none. Unknown keys are still refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmRef {
    /// A VM name, or a unique prefix of its ID.
    pub vm: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsListParams {
    /// Most recent finished operations to include (in-flight ones are always listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A kernel or image by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameParams {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelImportParams {
    pub name: String,
    /// A directory with `vmlinux` or a bzImage (`bzImage`, `vmlinuz*`), and
    /// optionally `initrd*` and `modules/`.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRegisterParams {
    pub name: String,
    pub rootfs: String,
    pub kernel_ref: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageVariant {
    /// systemd, sshd, Docker and the SPEC §9.3 package set.
    Full,
    /// No systemd: the agent is PID 1; boots in seconds (tests).
    Minimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBuildParams {
    pub name: String,
    pub variant: ImageVariant,
    /// Rebuild even when the recipe is unchanged.
    #[serde(default)]
    pub force: bool,
}

/// `vm.create`: every field but `nat` falls back to config `[vm_defaults]`
/// and the host-aware defaults (SPEC §6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmCreateParams {
    /// Generated (adjective-noun) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `default_image_name` from config when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<ByteSize>,
    #[serde(default)]
    pub nat: bool,
    /// Prepare disks and record the VM (`created`) without booting it;
    /// `vm.start` boots it later.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_start: bool,
    /// Boot even when a warm snapshot of this VM's kind exists, and bake
    /// none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold: bool,
}

/// `vm.exec`: one program by argv in the guest, through the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmExecParams {
    pub vm: String,
    pub argv: Vec<String>,
    /// Absolute; `/root` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Seconds before the guest kills the command; the agent's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Send the output as [`Outcome::Output`] lines while the command runs;
    /// the result then carries none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// Test builds only: sleep, observably, so cancellation can be tested.
#[cfg(feature = "test-methods")]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugSleepParams {
    pub millis: u64,
    /// The daemon writes `started` here when the work begins and
    /// `cleaned-up` when its cleanup has run.
    pub marker_dir: String,
}

/// Every method the daemon serves: one closed set of typed requests. The
/// transport only parses an [`Envelope`] into one of these and dispatches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum Request {
    #[serde(rename = "ping")]
    Ping(NoParams),
    #[serde(rename = "vm.list")]
    VmList(NoParams),
    #[serde(rename = "vm.show")]
    VmShow(VmRef),
    #[serde(rename = "vm.create")]
    VmCreate(VmCreateParams),
    #[serde(rename = "vm.start")]
    VmStart(VmRef),
    #[serde(rename = "vm.stop")]
    VmStop(VmRef),
    #[serde(rename = "vm.kill")]
    VmKill(VmRef),
    #[serde(rename = "vm.delete")]
    VmDelete(VmRef),
    #[serde(rename = "vm.exec")]
    VmExec(VmExecParams),
    #[serde(rename = "vm.restart")]
    VmRestart(VmRef),
    #[serde(rename = "vm.prune")]
    VmPrune(VmPruneParams),
    #[serde(rename = "vm.set")]
    VmSet(VmSetParams),
    #[serde(rename = "vm.logs")]
    VmLogs(VmLogsParams),
    #[serde(rename = "vm.stats")]
    VmStats(VmRef),
    #[serde(rename = "vm.ports")]
    VmPorts(VmRef),
    #[serde(rename = "vm.snapshot")]
    VmSnapshot(VmSnapshotParams),
    #[serde(rename = "vm.restore")]
    VmRestore(VmRestoreParams),
    #[serde(rename = "vm.fork")]
    VmFork(VmForkParams),
    #[serde(rename = "snapshot.list")]
    SnapshotList(NoParams),
    #[serde(rename = "snapshot.show")]
    SnapshotShow(NameParams),
    #[serde(rename = "snapshot.delete")]
    SnapshotDelete(NameParams),
    #[serde(rename = "vm.workspace.plan")]
    WorkspacePlan(WorkspaceSource),
    #[serde(rename = "vm.workspace.prepare")]
    WorkspacePrepare(WorkspacePrepareParams),
    #[serde(rename = "vm.workspace.export")]
    WorkspaceExport(WorkspaceExportParams),
    #[serde(rename = "daemon.operations.list")]
    OperationsList(OperationsListParams),
    #[serde(rename = "kernel.list")]
    KernelList(NoParams),
    #[serde(rename = "kernel.show")]
    KernelShow(NameParams),
    #[serde(rename = "kernel.rm")]
    KernelRemove(NameParams),
    #[serde(rename = "kernel.import")]
    KernelImport(KernelImportParams),
    #[serde(rename = "kernel.pull")]
    KernelPull(NameParams),
    #[serde(rename = "image.list")]
    ImageList(NoParams),
    #[serde(rename = "image.show")]
    ImageShow(NameParams),
    #[serde(rename = "image.delete")]
    ImageDelete(NameParams),
    #[serde(rename = "image.register")]
    ImageRegister(ImageRegisterParams),
    #[serde(rename = "image.promote")]
    ImagePromote(NameParams),
    #[serde(rename = "image.build")]
    ImageBuild(ImageBuildParams),
    #[cfg(feature = "test-methods")]
    #[serde(rename = "debug.sleep")]
    DebugSleep(DebugSleepParams),
}

impl Request {
    /// The wire names of every method, in declaration order.
    pub const METHODS: &'static [&'static str] = &[
        "ping",
        "vm.list",
        "vm.show",
        "vm.create",
        "vm.start",
        "vm.stop",
        "vm.kill",
        "vm.delete",
        "vm.exec",
        "vm.restart",
        "vm.prune",
        "vm.set",
        "vm.logs",
        "vm.stats",
        "vm.ports",
        "vm.snapshot",
        "vm.restore",
        "vm.fork",
        "snapshot.list",
        "snapshot.show",
        "snapshot.delete",
        "vm.workspace.plan",
        "vm.workspace.prepare",
        "vm.workspace.export",
        "daemon.operations.list",
        "kernel.list",
        "kernel.show",
        "kernel.rm",
        "kernel.import",
        "kernel.pull",
        "image.list",
        "image.show",
        "image.delete",
        "image.register",
        "image.promote",
        "image.build",
        #[cfg(feature = "test-methods")]
        "debug.sleep",
    ];

    pub fn method(&self) -> &'static str {
        match self {
            Request::Ping(_) => "ping",
            Request::VmList(_) => "vm.list",
            Request::VmShow(_) => "vm.show",
            Request::VmCreate(_) => "vm.create",
            Request::VmStart(_) => "vm.start",
            Request::VmStop(_) => "vm.stop",
            Request::VmKill(_) => "vm.kill",
            Request::VmDelete(_) => "vm.delete",
            Request::VmExec(_) => "vm.exec",
            Request::VmRestart(_) => "vm.restart",
            Request::VmPrune(_) => "vm.prune",
            Request::VmSet(_) => "vm.set",
            Request::VmLogs(_) => "vm.logs",
            Request::VmStats(_) => "vm.stats",
            Request::VmPorts(_) => "vm.ports",
            Request::VmSnapshot(_) => "vm.snapshot",
            Request::VmRestore(_) => "vm.restore",
            Request::VmFork(_) => "vm.fork",
            Request::SnapshotList(_) => "snapshot.list",
            Request::SnapshotShow(_) => "snapshot.show",
            Request::SnapshotDelete(_) => "snapshot.delete",
            Request::WorkspacePlan(_) => "vm.workspace.plan",
            Request::WorkspacePrepare(_) => "vm.workspace.prepare",
            Request::WorkspaceExport(_) => "vm.workspace.export",
            Request::OperationsList(_) => "daemon.operations.list",
            Request::KernelList(_) => "kernel.list",
            Request::KernelShow(_) => "kernel.show",
            Request::KernelRemove(_) => "kernel.rm",
            Request::KernelImport(_) => "kernel.import",
            Request::KernelPull(_) => "kernel.pull",
            Request::ImageList(_) => "image.list",
            Request::ImageShow(_) => "image.show",
            Request::ImageDelete(_) => "image.delete",
            Request::ImageRegister(_) => "image.register",
            Request::ImagePromote(_) => "image.promote",
            Request::ImageBuild(_) => "image.build",
            #[cfg(feature = "test-methods")]
            Request::DebugSleep(_) => "debug.sleep",
        }
    }

    /// Builds the typed request from an envelope's method and params.
    pub fn parse(method: &str, params: Value) -> Result<Request, ProtocolError> {
        if !Self::METHODS.contains(&method) {
            return Err(ProtocolError::new(
                ErrorCode::UnknownMethod,
                format!(
                    "unknown method {method:?}; this daemon serves: {}",
                    Self::METHODS.join(", ")
                ),
            ));
        }
        let params = if params.is_null() {
            Value::Object(Default::default())
        } else {
            params
        };
        serde_json::from_value(serde_json::json!({ "method": method, "params": params })).map_err(
            |e| {
                ProtocolError::new(
                    ErrorCode::BadRequest,
                    format!("invalid params for {method}: {e}"),
                )
            },
        )
    }

    pub fn into_envelope(self, op_id: Option<String>) -> Envelope {
        let method = self.method().to_owned();
        let mut value = serde_json::to_value(self).expect("requests always serialise");
        let params = value
            .get_mut("params")
            .map(Value::take)
            .unwrap_or(Value::Null);
        Envelope {
            version: PROTOCOL_VERSION,
            op_id,
            method,
            params,
        }
    }
}

/// The error codes of SPEC §4. Their wire names are part of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    AlreadyExists,
    BadVersion,
    Unauthorized,
    UnknownMethod,
    OperationFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::BadVersion => "bad_version",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::OperationFailed => "operation_failed",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What the daemon writes back: zero or more [`Outcome::Progress`] lines while
/// a long request works, then exactly one result or error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub op_id: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Result(Value),
    Error(ProtocolError),
    /// A stage of a long operation (pull, build, create) has begun.
    Progress(Progress),
    /// A piece of a streaming `vm.exec`'s output, as the guest sent it.
    Output(OutputChunk),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: String,
}

/// Which of the guest command's streams a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// `{"stream":"stdout","data":"<base64>"}`: at most 64 KiB of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    pub stream: OutputStream,
    /// Padded base64 of the exact bytes (the output need not be UTF-8).
    pub data: String,
}

impl Response {
    /// Whether this is the last line of the answer.
    pub fn is_final(&self) -> bool {
        !matches!(self.outcome, Outcome::Progress(_) | Outcome::Output(_))
    }
}

/// Operation ids travel in logs and file names: keep them short and plain.
pub fn validate_op_id(id: &str) -> Result<(), ProtocolError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::new(
            ErrorCode::BadRequest,
            format!(
                "invalid op_id {id:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_round_trip_through_envelopes() {
        let reqs = vec![
            #[cfg(feature = "test-methods")]
            Request::DebugSleep(DebugSleepParams {
                millis: 1,
                marker_dir: "/m".into(),
            }),
            Request::Ping(NoParams {}),
            Request::VmList(NoParams {}),
            Request::VmShow(VmRef { vm: "dev".into() }),
            Request::VmCreate(VmCreateParams {
                name: Some("dev".into()),
                image: Some("img".into()),
                vcpu: Some(2),
                memory_mib: Some(1024),
                disk_size: Some("8G".parse().unwrap()),
                nat: true,
                no_start: true,
                cold: false,
            }),
            Request::VmStart(VmRef { vm: "dev".into() }),
            Request::VmStop(VmRef { vm: "dev".into() }),
            Request::VmKill(VmRef { vm: "dev".into() }),
            Request::VmDelete(VmRef { vm: "dev".into() }),
            Request::VmExec(VmExecParams {
                vm: "dev".into(),
                argv: vec!["sh".into(), "-c".into(), "exit 7".into()],
                cwd: Some("/tmp".into()),
                timeout_s: Some(1.5),
                stream: true,
            }),
            Request::VmRestart(VmRef { vm: "dev".into() }),
            Request::VmPrune(VmPruneParams {
                ids: Some(vec!["0123".into()]),
            }),
            Request::VmSet(VmSetParams {
                vm: "dev".into(),
                vcpu: Some(4),
                memory_mib: None,
                disk_size: Some("16G".parse().unwrap()),
                nat: Some(false),
            }),
            Request::VmLogs(VmLogsParams {
                vm: "dev".into(),
                console_offset: Some(10),
                vmm_offset: None,
            }),
            Request::VmStats(VmRef { vm: "dev".into() }),
            Request::VmPorts(VmRef { vm: "dev".into() }),
            Request::VmSnapshot(VmSnapshotParams {
                vm: "dev".into(),
                name: Some("base".into()),
            }),
            Request::VmRestore(VmRestoreParams {
                snapshot: "base".into(),
                name: None,
            }),
            Request::VmFork(VmForkParams {
                vm: "dev".into(),
                count: 3,
                name_prefix: Some("try".into()),
            }),
            Request::SnapshotList(NoParams {}),
            Request::SnapshotShow(NameParams {
                name: "base".into(),
            }),
            Request::SnapshotDelete(NameParams {
                name: "base".into(),
            }),
            Request::WorkspacePlan(WorkspaceSource {
                path: "/src/app".into(),
                include_untracked: true,
                from: Some("HEAD~1".into()),
                branch: Some("fix".into()),
            }),
            Request::WorkspacePrepare(WorkspacePrepareParams {
                vm: "dev".into(),
                source: WorkspaceSource {
                    path: "/src/app".into(),
                    ..WorkspaceSource::default()
                },
                guest_path: Some("/root/app".into()),
                no_bootstrap: true,
            }),
            Request::WorkspaceExport(WorkspaceExportParams {
                vm: "dev".into(),
                base_commit: Some("abc".into()),
            }),
            Request::OperationsList(OperationsListParams { limit: Some(3) }),
            Request::KernelList(NoParams {}),
            Request::KernelShow(NameParams { name: "k".into() }),
            Request::KernelRemove(NameParams { name: "k".into() }),
            Request::KernelImport(KernelImportParams {
                name: "k".into(),
                from: "/d".into(),
            }),
            Request::KernelPull(NameParams { name: "k".into() }),
            Request::ImageList(NoParams {}),
            Request::ImageShow(NameParams { name: "i".into() }),
            Request::ImageDelete(NameParams { name: "i".into() }),
            Request::ImageRegister(ImageRegisterParams {
                name: "i".into(),
                rootfs: "/r".into(),
                kernel_ref: None,
            }),
            Request::ImagePromote(NameParams { name: "i".into() }),
            Request::ImageBuild(ImageBuildParams {
                name: "i".into(),
                variant: ImageVariant::Minimal,
                force: true,
            }),
        ];
        assert_eq!(
            reqs.len(),
            Request::METHODS.len(),
            "every method is covered"
        );
        for req in reqs {
            let env = req.clone().into_envelope(Some("x".into()));
            assert_eq!(env.method, req.method());
            assert!(Request::METHODS.contains(&req.method()));
            let line = serde_json::to_string(&env).unwrap();
            let back: Envelope = serde_json::from_str(&line).unwrap();
            assert_eq!(Request::parse(&back.method, back.params).unwrap(), req);
        }
    }

    #[test]
    fn absent_params_mean_none() {
        let env: Envelope = serde_json::from_str(r#"{"version":1,"method":"ping"}"#).unwrap();
        assert_eq!(
            Request::parse(&env.method, env.params).unwrap(),
            Request::Ping(NoParams {})
        );
    }

    #[test]
    fn unknown_method_and_bad_params_have_their_codes() {
        let e = Request::parse("vm.explode", Value::Null).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownMethod);
        let e = Request::parse("vm.show", json!({})).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(e.message.contains("vm"), "{}", e.message);
        let e = Request::parse("ping", json!({"surprise": 1})).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
    }

    #[test]
    fn envelope_rejects_unknown_keys() {
        assert!(
            serde_json::from_str::<Envelope>(r#"{"version":1,"method":"ping","x":1}"#).is_err()
        );
    }

    #[test]
    fn response_shape_is_stable() {
        let ok = Response {
            op_id: "a".into(),
            outcome: Outcome::Result(json!([])),
        };
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"op_id":"a","result":[]})
        );
        let err = Response {
            op_id: "b".into(),
            outcome: Outcome::Error(ProtocolError::new(ErrorCode::NotFound, "no VM")),
        };
        let progress = Response {
            op_id: "c".into(),
            outcome: Outcome::Progress(Progress {
                stage: "extracting".into(),
            }),
        };
        assert!(!progress.is_final() && err.is_final() && ok.is_final());
        assert_eq!(
            serde_json::to_value(&progress).unwrap(),
            json!({"op_id":"c","progress":{"stage":"extracting"}})
        );
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({"op_id":"b","error":{"code":"not_found","message":"no VM"}})
        );
    }

    #[test]
    fn output_lines_have_their_wire_form() {
        let output = Response {
            op_id: "d".into(),
            outcome: Outcome::Output(OutputChunk {
                stream: OutputStream::Stderr,
                data: "aGkK".into(),
            }),
        };
        assert!(!output.is_final());
        let line = serde_json::to_value(&output).unwrap();
        assert_eq!(
            line,
            json!({"op_id":"d","output":{"stream":"stderr","data":"aGkK"}})
        );
        assert_eq!(serde_json::from_value::<Response>(line).unwrap(), output);
        let bad = json!({"op_id":"d","output":{"stream":"tty","data":""}});
        assert!(serde_json::from_value::<Response>(bad).is_err());
    }

    #[test]
    fn exec_streams_only_when_asked() {
        let plain = VmExecParams {
            vm: "dev".into(),
            argv: vec!["true".into()],
            cwd: None,
            timeout_s: None,
            stream: false,
        };
        let env = Request::VmExec(plain).into_envelope(None);
        assert_eq!(env.params, json!({"vm": "dev", "argv": ["true"]}));
        let parsed = Request::parse(
            "vm.exec",
            json!({"vm": "dev", "argv": ["true"], "stream": true}),
        );
        assert!(matches!(
            parsed,
            Ok(Request::VmExec(VmExecParams { stream: true, .. }))
        ));
    }

    #[test]
    fn op_ids_are_checked() {
        assert!(validate_op_id("cli-01.2_x").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(65), "é"] {
            assert_eq!(validate_op_id(bad).unwrap_err().code, ErrorCode::BadRequest);
        }
    }

    #[test]
    fn set_params_say_what_they_touch() {
        let mut p = VmSetParams {
            vm: "dev".into(),
            ..Default::default()
        };
        assert!(p.changes_nothing() && !p.needs_stopped_vm());
        p.nat = Some(true);
        assert!(
            !p.changes_nothing() && !p.needs_stopped_vm(),
            "NAT is switched live"
        );
        p.memory_mib = Some(1024);
        assert!(p.needs_stopped_vm());
        let e = Request::parse("vm.set", json!({"vm": "dev", "disk_size": "0G"})).unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::BadRequest,
            "sizes are positive: {}",
            e.message
        );
        let e = Request::parse("vm.prune", json!({"ids": "all"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
    }
}
