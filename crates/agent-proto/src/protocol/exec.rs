//! `exec`: run one program by argv and capture its output.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::base64::{self, Base64Error};

/// The most output kept per stream (stdout, stderr); the rest is drained and
/// counted as truncated so the child never blocks on a full pipe.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// The timeout when the request names none.
pub const DEFAULT_EXEC_TIMEOUT_S: f64 = 600.0;

/// The longest timeout a request may ask for (one day).
pub const MAX_EXEC_TIMEOUT_S: f64 = 86_400.0;

/// How `stdout`/`stderr` are carried in [`ExecResult`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputEncoding {
    /// UTF-8 text; invalid sequences become U+FFFD (lossy, easy to read).
    #[default]
    Utf8,
    /// Padded base64 of the exact bytes.
    Base64,
}

impl OutputEncoding {
    fn is_default(&self) -> bool {
        *self == OutputEncoding::Utf8
    }
}

/// Parameters of `exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The program and its arguments; `argv[0]` is looked up in `PATH` when
    /// it has no slash. Never run through a shell.
    pub argv: Vec<String>,
    /// Absolute working directory; default `/root` when it exists, else `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Variables added to (or overriding) the agent's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Standard input, base64; absent means `/dev/null` (unless
    /// `stdin_stream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Seconds before the process group is killed; default
    /// [`DEFAULT_EXEC_TIMEOUT_S`], at most [`MAX_EXEC_TIMEOUT_S`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Cap per stream, at most (and by default) [`MAX_OUTPUT_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
    /// How output is encoded in the result.
    #[serde(default, skip_serializing_if = "OutputEncoding::is_default")]
    pub output: OutputEncoding,
    /// Send output as frames while the command runs (see `PROTOCOL.md`);
    /// the result then carries none. Never sent when false, so a request
    /// that does not stream is exactly what an older agent understands.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Standard input follows the request as input frames (see
    /// `PROTOCOL.md`), for input too large for the request line. Excludes
    /// `stdin`. Never sent when false, for the same reason as `stream`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_stream: bool,
    /// Standard input follows the request as exactly this many raw bytes
    /// (no framing, no base64): for large input such as a workspace's tar
    /// stream, which the guest then never decodes. Excludes `stdin` and
    /// `stdin_stream`. Never sent when absent, like `stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_raw_bytes: Option<u64>,
}

impl ExecRequest {
    /// A request running `argv` with every option at its default.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: None,
            env: BTreeMap::new(),
            stdin: None,
            timeout_s: None,
            max_output_bytes: None,
            output: OutputEncoding::Utf8,
            stream: false,
            stdin_stream: false,
            stdin_raw_bytes: None,
        }
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets standard input (encoded as base64 on the wire).
    pub fn stdin_bytes(mut self, data: &[u8]) -> Self {
        self.stdin = Some(base64::encode(data));
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_s = Some(timeout.as_secs_f64());
        self
    }

    /// Asks for output as base64 (exact bytes) instead of lossy UTF-8.
    pub fn binary_output(mut self) -> Self {
        self.output = OutputEncoding::Base64;
        self
    }

    /// The cap per stream the agent will apply, in bytes.
    pub fn effective_max_output(&self) -> u64 {
        self.max_output_bytes
            .unwrap_or(MAX_OUTPUT_BYTES as u64)
            .min(MAX_OUTPUT_BYTES as u64)
    }

    /// The timeout the agent will apply.
    pub fn effective_timeout(&self) -> Duration {
        let secs = self
            .timeout_s
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(DEFAULT_EXEC_TIMEOUT_S)
            .min(MAX_EXEC_TIMEOUT_S);
        Duration::from_secs_f64(secs)
    }
}

/// Result of `exec`. Exactly one of `status` and `signal` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecResult {
    /// The exit code, when the process exited.
    pub status: Option<i32>,
    /// The signal that killed the process, when it was killed.
    pub signal: Option<i32>,
    /// The timeout expired and the process group was killed (`signal` is 9).
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// More output was produced than the cap; the rest was discarded.
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Output the agent had to drop although it was within the cap: with
    /// `stream`, a frame that could not be written within the write timeout
    /// (the host stalled), and everything after it. What the host received
    /// is incomplete. Absent (false) from agents older than this field.
    #[serde(default)]
    pub output_dropped: bool,
    /// How `stdout` and `stderr` are encoded.
    pub encoding: OutputEncoding,
    /// Wall-clock run time in seconds.
    pub duration_s: f64,
}

impl ExecResult {
    /// The captured standard output as bytes.
    pub fn stdout_bytes(&self) -> Result<Vec<u8>, Base64Error> {
        self.decode(&self.stdout)
    }

    /// The captured standard error as bytes.
    pub fn stderr_bytes(&self) -> Result<Vec<u8>, Base64Error> {
        self.decode(&self.stderr)
    }

    /// True when the process exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    fn decode(&self, text: &str) -> Result<Vec<u8>, Base64Error> {
        match self.encoding {
            OutputEncoding::Utf8 => Ok(text.as_bytes().to_vec()),
            OutputEncoding::Base64 => base64::decode(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_timeout_defaults_and_clamps() {
        let base = ExecRequest::new(["true"]);
        assert_eq!(base.effective_timeout(), Duration::from_secs(600));
        let short = base.clone().timeout(Duration::from_millis(250));
        assert_eq!(short.effective_timeout(), Duration::from_millis(250));
        let mut huge = base.clone();
        huge.timeout_s = Some(1e12);
        assert_eq!(huge.effective_timeout(), Duration::from_secs(86_400));
        let mut nan = base;
        nan.timeout_s = Some(f64::NAN);
        assert_eq!(nan.effective_timeout(), Duration::from_secs(600));
    }

    #[test]
    fn result_decodes_both_encodings() {
        let mut result = ExecResult {
            status: Some(0),
            signal: None,
            timed_out: false,
            stdout: "hi\n".into(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            output_dropped: false,
            encoding: OutputEncoding::Utf8,
            duration_s: 0.1,
        };
        assert_eq!(result.stdout_bytes().unwrap(), b"hi\n");
        assert!(result.success());
        result.encoding = OutputEncoding::Base64;
        result.stdout = base64::encode(&[0xff, 0x00]);
        assert_eq!(result.stdout_bytes().unwrap(), [0xff, 0x00]);
    }
}
