//! Checking an `exec` request and filling in its defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::base64::{self, Base64Error};
use crate::protocol::{ExecRequest, MAX_EXEC_TIMEOUT_S, MAX_OUTPUT_BYTES, OutputEncoding};

/// A validated `exec` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub cap: usize,
    pub encoding: OutputEncoding,
    /// Output goes out as frames while the command runs (`exec_stream`).
    pub stream: bool,
    /// Stdin comes as input frames on the connection (`exec_input`).
    pub stdin_stream: bool,
    /// Stdin comes as exactly this many raw bytes on the connection.
    pub stdin_raw: Option<u64>,
}

impl ExecSpec {
    /// Whether stdin comes on the connection after the request.
    pub fn input_follows(&self) -> bool {
        self.stdin_stream || self.stdin_raw.is_some()
    }
}

/// Why an `exec` request is malformed (`bad_request`).
#[derive(Debug, Error, PartialEq)]
pub enum InvalidExec {
    #[error("argv is empty")]
    EmptyArgv,
    #[error("argv[0] is empty")]
    EmptyProgram,
    #[error("{0} contains a NUL byte")]
    Nul(String),
    #[error("environment variable name {0:?} is empty or contains '='")]
    EnvKey(String),
    #[error("cwd {0:?} is not an absolute path")]
    RelativeCwd(String),
    #[error("stdin is not valid base64: {0}")]
    Stdin(Base64Error),
    #[error(
        "stdin, stdin_stream and stdin_raw_bytes are exclusive: the input comes either in the request or after it, one way"
    )]
    StdinTwice,
    #[error("timeout_s {0} is not in (0, {MAX_EXEC_TIMEOUT_S}]")]
    Timeout(f64),
    #[error("max_output_bytes {0} is above the limit of {MAX_OUTPUT_BYTES}")]
    Cap(u64),
}

/// Checks a request and fills in its defaults.
pub fn validate(request: ExecRequest) -> Result<ExecSpec, InvalidExec> {
    let Some(program) = request.argv.first() else {
        return Err(InvalidExec::EmptyArgv);
    };
    if program.is_empty() {
        return Err(InvalidExec::EmptyProgram);
    }
    for (i, arg) in request.argv.iter().enumerate() {
        if arg.contains('\0') {
            return Err(InvalidExec::Nul(format!("argv[{i}]")));
        }
    }
    for (key, value) in &request.env {
        if key.is_empty() || key.contains('=') {
            return Err(InvalidExec::EnvKey(key.clone()));
        }
        if key.contains('\0') || value.contains('\0') {
            return Err(InvalidExec::Nul(format!("env {key:?}")));
        }
    }
    let cwd = match &request.cwd {
        None => None,
        Some(cwd) if cwd.contains('\0') => return Err(InvalidExec::Nul("cwd".into())),
        Some(cwd) if !cwd.starts_with('/') => return Err(InvalidExec::RelativeCwd(cwd.clone())),
        Some(cwd) => Some(PathBuf::from(cwd)),
    };
    let ways = [
        request.stdin.is_some(),
        request.stdin_stream,
        request.stdin_raw_bytes.is_some(),
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        return Err(InvalidExec::StdinTwice);
    }
    let stdin = request
        .stdin
        .as_deref()
        .map(base64::decode)
        .transpose()
        .map_err(InvalidExec::Stdin)?;
    if let Some(t) = request.timeout_s {
        if !t.is_finite() || t <= 0.0 || t > MAX_EXEC_TIMEOUT_S {
            return Err(InvalidExec::Timeout(t));
        }
    }
    let cap = match request.max_output_bytes {
        None => MAX_OUTPUT_BYTES,
        Some(n) if n > MAX_OUTPUT_BYTES as u64 => return Err(InvalidExec::Cap(n)),
        Some(n) => n as usize,
    };
    Ok(ExecSpec {
        timeout: request.effective_timeout(),
        argv: request.argv,
        cwd,
        env: request.env,
        stdin,
        cap,
        encoding: request.output,
        stream: request.stream,
        stdin_stream: request.stdin_stream,
        stdin_raw: request.stdin_raw_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_malformed_requests() {
        let check = |request: ExecRequest| validate(request).unwrap_err();
        assert_eq!(
            check(ExecRequest::new(Vec::<String>::new())),
            InvalidExec::EmptyArgv
        );
        assert_eq!(check(ExecRequest::new([""])), InvalidExec::EmptyProgram);
        assert_eq!(
            check(ExecRequest::new(["a", "b\0c"])),
            InvalidExec::Nul("argv[1]".into())
        );
        assert_eq!(
            check(ExecRequest::new(["a"]).env("A=B", "x")),
            InvalidExec::EnvKey("A=B".into())
        );
        assert_eq!(
            check(ExecRequest::new(["a"]).cwd("relative")),
            InvalidExec::RelativeCwd("relative".into())
        );
        let mut bad_stdin = ExecRequest::new(["a"]);
        bad_stdin.stdin = Some("!!".into());
        assert!(matches!(check(bad_stdin), InvalidExec::Stdin(_)));
        let mut both = ExecRequest::new(["a"]).stdin_bytes(b"x");
        both.stdin_stream = true;
        assert_eq!(check(both), InvalidExec::StdinTwice);
        let mut framed_and_raw = ExecRequest::new(["a"]);
        framed_and_raw.stdin_stream = true;
        framed_and_raw.stdin_raw_bytes = Some(10);
        assert_eq!(check(framed_and_raw), InvalidExec::StdinTwice);
        let mut inline_and_raw = ExecRequest::new(["a"]).stdin_bytes(b"x");
        inline_and_raw.stdin_raw_bytes = Some(10);
        assert_eq!(check(inline_and_raw), InvalidExec::StdinTwice);
        let mut zero = ExecRequest::new(["a"]);
        zero.timeout_s = Some(0.0);
        assert_eq!(check(zero), InvalidExec::Timeout(0.0));
        let mut huge = ExecRequest::new(["a"]);
        huge.timeout_s = Some(1e9);
        assert_eq!(check(huge), InvalidExec::Timeout(1e9));
        let mut cap = ExecRequest::new(["a"]);
        cap.max_output_bytes = Some(MAX_OUTPUT_BYTES as u64 + 1);
        assert_eq!(check(cap), InvalidExec::Cap(MAX_OUTPUT_BYTES as u64 + 1));
    }

    #[test]
    fn validation_fills_defaults() {
        let s = validate(ExecRequest::new(["true"])).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(600));
        assert_eq!(s.cap, MAX_OUTPUT_BYTES);
        assert_eq!(s.cwd, None);
        assert_eq!(s.stdin, None);
        assert_eq!(s.encoding, OutputEncoding::Utf8);
        assert!(!s.stream && !s.stdin_stream);
    }
}
