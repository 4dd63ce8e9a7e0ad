//! The agent's wire protocol, version 1 (see `PROTOCOL.md`).
//!
//! One request per connection, one JSON object per line each way:
//!
//! ```text
//! → {"version":1,"method":"exec","params":{"argv":["true"]}}
//! ← {"ok":true,"result":{...}}   or   {"ok":false,"error":{"code":"...","message":"..."}}
//! ```
//!
//! The host (`client`) and the guest (`service`) both use these types, so the
//! two sides cannot drift apart.

mod exec;
mod input;
mod output;
mod response;
mod types;

pub use exec::{
    DEFAULT_EXEC_TIMEOUT_S, ExecRequest, ExecResult, MAX_EXEC_TIMEOUT_S, MAX_OUTPUT_BYTES,
    OutputEncoding,
};
pub use input::{BadInputFrame, InputChunk, InputEvent, InputFrame};
pub use output::{MAX_FRAME_DATA, MAX_FRAME_LINE_BYTES, OutputChunk, OutputFrame, OutputStream};
pub(crate) use response::Envelope;
pub use response::{ErrorBody, ErrorCode, Response, ResponseError};
pub use types::{
    Empty, FROZEN_REFUSAL, HealthResult, HostKey, IdentityRequest, IdentityResult, ListeningPort,
    MAX_AGENT_VERSION_BYTES, MAX_BOOT_ID_BYTES, MAX_ENTROPY_BYTES, MAX_GUEST_PATH_BYTES,
    MAX_HOSTNAME_BYTES, MAX_IDENTITY_WRITTEN, MIN_ENTROPY_BYTES, NetworkIdentity, Proto,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this crate speaks; any other is `bad_version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The guest vsock port the agent listens on.
pub const AGENT_PORT: u32 = 1024;

/// The longest request line the agent reads (excluding the newline).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// The longest answer line of all: an `exec` result at the largest output
/// cap, two captures of [`MAX_OUTPUT_BYTES`], each of which JSON may expand
/// six-fold (a control byte becomes `\u00XX`), plus room for the envelope.
/// The client never reads this much for one call: each call gets the limit
/// of its own answer ([`Call::answer_limit`]).
pub const MAX_RESPONSE_BYTES: usize = 2 * 6 * MAX_OUTPUT_BYTES + (1 << 20);

/// The longest answer line to `health`, `identity`, `freeze`, `thaw` or
/// `poweroff` (their results are a few hundred bytes), and the room for the envelope and an
/// error message in every other answer.
pub const MAX_SMALL_ANSWER_BYTES: usize = 64 * 1024;

/// The most listening sockets the client accepts in a `ports` answer.
pub const MAX_PORTS: usize = 4096;

/// Room for one `ports` entry as the agent writes it: the longest,
/// `{"proto":"tcp","addr":"<45-character IPv6>","port":65535,"inode":<20 digits>},`,
/// is about 110 bytes.
pub const MAX_PORT_ENTRY_BYTES: usize = 128;

/// The longest `ports` answer line: [`MAX_PORTS`] of the longest entries
/// and the envelope (576 KiB).
pub const MAX_PORTS_ANSWER_BYTES: usize = MAX_PORTS * MAX_PORT_ENTRY_BYTES + MAX_SMALL_ANSWER_BYTES;

/// The longest error message the client keeps from an agent's error
/// answer; a longer one is cut with a visible marker.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// The longest answer line to a non-streaming `exec` of `request`: both
/// captures at the request's cap (`max_output_bytes`, else
/// [`MAX_OUTPUT_BYTES`]) in the request's encoding at their largest on the
/// wire (six bytes per byte as JSON-escaped UTF-8, 4/3 as base64), plus
/// the envelope. A streaming `exec` instead has every line bounded by
/// [`MAX_FRAME_LINE_BYTES`].
pub fn exec_answer_limit(request: &ExecRequest) -> usize {
    let cap = request.max_output_bytes.map_or(MAX_OUTPUT_BYTES, |n| {
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(MAX_OUTPUT_BYTES)
    });
    let per_stream = match request.output {
        OutputEncoding::Utf8 => 6 * cap,
        OutputEncoding::Base64 => cap.div_ceil(3) * 4,
    };
    2 * per_stream + MAX_SMALL_ANSWER_BYTES
}

/// The method names of protocol v1, as they appear on the wire.
pub const METHODS: [&str; 7] = [
    "health", "ports", "exec", "identity", "freeze", "thaw", "poweroff",
];

/// The methods without parameters: their `params` may be absent, `null`
/// or `{}`.
const METHODS_WITHOUT_PARAMS: [&str; 5] = ["health", "ports", "freeze", "thaw", "poweroff"];

/// One call: the method and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Call {
    /// Agent version, hostname, uptime and boot id.
    Health,
    /// Listening TCP and unconnected UDP sockets.
    Ports,
    /// Run a program (argv, never a shell) and capture its output.
    Exec(ExecRequest),
    /// Refresh the hostname, authorized keys and ssh host key, and what a
    /// snapshot's copies share: machine id, NIC, RNG state and clock.
    Identity(IdentityRequest),
    /// About to be snapshotted: refuse `exec` and `ports` until `thaw` or
    /// an `identity` with a new RNG seed and clock.
    Freeze,
    /// The snapshot is taken: serve everything again.
    Thaw,
    /// Reply, then power the guest off.
    Poweroff,
}

impl Call {
    /// The longest answer line the client reads for this call; see
    /// [`MAX_SMALL_ANSWER_BYTES`], [`MAX_PORTS_ANSWER_BYTES`] and
    /// [`exec_answer_limit`] (a streaming `exec` reads lines of at most
    /// [`MAX_FRAME_LINE_BYTES`] instead).
    pub fn answer_limit(&self) -> usize {
        match self {
            Call::Health | Call::Identity(_) | Call::Freeze | Call::Thaw | Call::Poweroff => {
                MAX_SMALL_ANSWER_BYTES
            }
            Call::Ports => MAX_PORTS_ANSWER_BYTES,
            Call::Exec(request) if request.stream => MAX_FRAME_LINE_BYTES,
            Call::Exec(request) => exec_answer_limit(request),
        }
    }

    /// The method's wire name.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Health => "health",
            Call::Ports => "ports",
            Call::Exec(_) => "exec",
            Call::Identity(_) => "identity",
            Call::Freeze => "freeze",
            Call::Thaw => "thaw",
            Call::Poweroff => "poweroff",
        }
    }
}

/// A request: the protocol version and the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub version: u32,
    pub call: Call,
}

impl Request {
    /// A request of the current protocol version.
    pub fn new(call: Call) -> Self {
        Request {
            version: PROTOCOL_VERSION,
            call,
        }
    }

    /// The request as one JSON line, without the trailing newline.
    pub fn encode(&self) -> Vec<u8> {
        let mut object = match serde_json::to_value(&self.call) {
            Ok(Value::Object(map)) => map,
            // `Call` is an adjacently tagged enum of plain data: it always
            // serializes to an object.
            _ => unreachable!("Call serializes to a JSON object"),
        };
        object.insert("version".into(), Value::from(self.version));
        serde_json::to_vec(&Value::Object(object)).expect("a JSON value always serializes")
    }

    /// Parses one request line, checking in this order so each mistake gets
    /// its own code: JSON object → `version` → `method` → `params`.
    pub fn decode(line: &[u8]) -> Result<Request, ErrorBody> {
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, format!("not JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "a request is a JSON object",
            ));
        };
        let version = match object.remove("version") {
            None => {
                return Err(ErrorBody::new(ErrorCode::BadRequest, "missing \"version\""));
            }
            Some(v) => v,
        };
        if version.as_u64() != Some(u64::from(PROTOCOL_VERSION)) {
            return Err(ErrorBody::new(
                ErrorCode::BadVersion,
                format!(
                    "unsupported protocol version {version}; this agent speaks {PROTOCOL_VERSION}"
                ),
            ));
        }
        let method = match object.get("method") {
            Some(Value::String(m)) => m.clone(),
            Some(_) => {
                return Err(ErrorBody::new(
                    ErrorCode::BadRequest,
                    "\"method\" must be a string",
                ));
            }
            None => return Err(ErrorBody::new(ErrorCode::BadRequest, "missing \"method\"")),
        };
        if !METHODS.contains(&method.as_str()) {
            return Err(ErrorBody::new(
                ErrorCode::UnknownMethod,
                format!("unknown method {method:?}"),
            ));
        }
        if let Some(extra) = object.keys().find(|k| *k != "method" && *k != "params") {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                format!("unknown field {extra:?}"),
            ));
        }
        // Methods without parameters accept an absent, null or empty params.
        if matches!(object.get("params"), Some(Value::Object(m)) if m.is_empty())
            && METHODS_WITHOUT_PARAMS.contains(&method.as_str())
        {
            object.remove("params");
        }
        let call: Call =
            serde_json::from_value(Value::Object(Map::from_iter(object))).map_err(|e| {
                ErrorBody::new(
                    ErrorCode::BadRequest,
                    format!("bad params for {method}: {e}"),
                )
            })?;
        Ok(Request {
            version: PROTOCOL_VERSION,
            call,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn decode_str(s: &str) -> Result<Request, ErrorBody> {
        Request::decode(s.as_bytes())
    }

    #[test]
    fn every_call_round_trips() {
        let calls = [
            Call::Health,
            Call::Ports,
            Call::Freeze,
            Call::Thaw,
            Call::Poweroff,
            Call::Exec(ExecRequest {
                argv: vec!["sh".into(), "-c".into(), "exit 7".into()],
                cwd: Some("/root".into()),
                env: BTreeMap::from([("A".into(), "b".into())]),
                stdin: Some(crate::base64::encode(b"in")),
                timeout_s: Some(2.5),
                max_output_bytes: Some(10),
                output: OutputEncoding::Base64,
                stream: true,
                stdin_stream: false,
                stdin_raw_bytes: None,
            }),
            Call::Exec(ExecRequest {
                stdin_raw_bytes: Some(1 << 20),
                ..ExecRequest::new(["tar", "-x"])
            }),
            Call::Exec(ExecRequest {
                stdin_stream: true,
                ..ExecRequest::new(["tar", "-x"])
            }),
            Call::Exec(ExecRequest::new(["true"])),
            Call::Identity(IdentityRequest {
                hostname: Some("dev".into()),
                authorized_keys: Some("ssh-ed25519 AAAA me\n".into()),
                host_key: Some(HostKey {
                    private: "-----BEGIN OPENSSH PRIVATE KEY-----\n".into(),
                    public: "ssh-ed25519 AAAA".into(),
                }),
                ..IdentityRequest::default()
            }),
            Call::Identity(IdentityRequest {
                machine_id: Some("0123456789abcdef0123456789abcdef".into()),
                network: Some(NetworkIdentity {
                    iface: "eth0".into(),
                    mac: "06:00:ac:10:00:03".into(),
                    address: "172.16.0.3/24".into(),
                    gateway: "172.16.0.1".into(),
                }),
                entropy: Some(crate::base64::encode(&[7; 32])),
                realtime_ns: Some(1_700_000_000_123_456_789),
                ..IdentityRequest::default()
            }),
        ];
        for call in calls {
            let request = Request::new(call);
            let line = request.encode();
            assert!(!line.contains(&b'\n'));
            assert_eq!(Request::decode(&line).unwrap(), request);
        }
    }

    #[test]
    fn wire_shape_matches_the_documented_one() {
        let line = Request::new(Call::Health).encode();
        let value: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value, serde_json::json!({"version": 1, "method": "health"}));

        let line = Request::new(Call::Exec(ExecRequest::new(["ls", "-l"]))).encode();
        let value: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"version": 1, "method": "exec", "params": {"argv": ["ls", "-l"]}})
        );

        // `stream` goes on the wire only when set, so a request that does
        // not stream is byte for byte what an older agent accepts.
        let mut streaming = ExecRequest::new(["ls"]);
        streaming.stream = true;
        let value: Value =
            serde_json::from_slice(&Request::new(Call::Exec(streaming)).encode()).unwrap();
        assert_eq!(
            value["params"],
            serde_json::json!({"argv": ["ls"], "stream": true})
        );
        // Likewise `stdin_stream`.
        let mut piped = ExecRequest::new(["tar", "-x"]);
        piped.stdin_stream = true;
        let value: Value =
            serde_json::from_slice(&Request::new(Call::Exec(piped)).encode()).unwrap();
        assert_eq!(
            value["params"],
            serde_json::json!({"argv": ["tar", "-x"], "stdin_stream": true})
        );
    }

    #[test]
    fn documented_requests_decode() {
        let r = decode_str(r#"{"version":1,"method":"health"}"#).unwrap();
        assert_eq!(r.call, Call::Health);
        let r = decode_str(r#"{"version":1,"method":"ports","params":{}}"#).unwrap();
        assert_eq!(r.call, Call::Ports);
        let r = decode_str(r#"{"version":1,"method":"poweroff","params":null}"#).unwrap();
        assert_eq!(r.call, Call::Poweroff);
        let r = decode_str(r#"{"version":1,"method":"freeze"}"#).unwrap();
        assert_eq!(r.call, Call::Freeze);
        let r = decode_str(r#"{"version":1,"method":"thaw","params":{}}"#).unwrap();
        assert_eq!(r.call, Call::Thaw);
        let r = decode_str(r#"{"version":1,"method":"freeze","params":null}"#).unwrap();
        assert_eq!(r.call, Call::Freeze);
        let r = decode_str(
            r#"{"version":1,"method":"exec","params":{"argv":["sh","-c","exit 7"],"cwd":"/root","env":{"X":"1"},"timeout_s":600}}"#,
        )
        .unwrap();
        let Call::Exec(exec) = r.call else {
            panic!("not exec")
        };
        assert_eq!(exec.argv, ["sh", "-c", "exit 7"]);
        assert_eq!(exec.timeout_s, Some(600.0));
        assert_eq!(exec.env["X"], "1");
    }

    #[test]
    fn each_mistake_gets_its_code() {
        let code = |s: &str| decode_str(s).unwrap_err().code;
        assert_eq!(code("not json"), ErrorCode::BadRequest);
        assert_eq!(code("[1]"), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"method":"health"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"version":2,"method":"health"}"#),
            ErrorCode::BadVersion
        );
        assert_eq!(
            code(r#"{"version":"1","method":"health"}"#),
            ErrorCode::BadVersion
        );
        // The version is checked before the method, so a future client
        // learns about the version mismatch first.
        assert_eq!(
            code(r#"{"version":9,"method":"nope"}"#),
            ErrorCode::BadVersion
        );
        assert_eq!(
            code(r#"{"version":1,"method":"nope"}"#),
            ErrorCode::UnknownMethod
        );
        assert_eq!(code(r#"{"version":1,"method":7}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"version":1}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"version":1,"method":"exec"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"version":1,"method":"exec","params":{"argv":["x"],"shell":true}}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"version":1,"method":"health","params":{"x":1}}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"version":1,"method":"freeze","params":{"x":1}}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"version":1,"method":"thaw","params":[]}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"version":1,"method":"health","op_id":"x"}"#),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn the_longest_ports_entry_fits_its_room() {
        let worst = ListeningPort {
            proto: Proto::Tcp,
            addr: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
            port: u16::MAX,
            inode: u64::MAX,
        };
        let entry = serde_json::to_vec(&worst).unwrap();
        assert!(entry.len() < MAX_PORT_ENTRY_BYTES, "{}", entry.len());
        let all = Response::success(&vec![worst; MAX_PORTS]).encode();
        assert!(all.len() <= MAX_PORTS_ANSWER_BYTES);
        assert!(all.len() <= Call::Ports.answer_limit());
    }

    #[test]
    fn the_largest_legitimate_exec_answer_fits_its_limit() {
        for encoding in [OutputEncoding::Utf8, OutputEncoding::Base64] {
            let cap = 3000;
            let mut request = ExecRequest::new(["x"]);
            request.max_output_bytes = Some(cap as u64);
            request.output = encoding;
            // Every byte a control byte: six on the wire as JSON text.
            let raw = vec![1u8; cap];
            let text = match encoding {
                OutputEncoding::Utf8 => String::from_utf8(raw).unwrap(),
                OutputEncoding::Base64 => crate::base64::encode(&raw),
            };
            let answer = Response::success(&ExecResult {
                status: Some(0),
                signal: None,
                timed_out: false,
                stdout: text.clone(),
                stderr: text,
                stdout_truncated: true,
                stderr_truncated: true,
                output_dropped: false,
                encoding,
                duration_s: 1.0,
            })
            .encode();
            let limit = Call::Exec(request.clone()).answer_limit();
            assert!(answer.len() <= limit, "{} > {limit}", answer.len());
            assert!(limit < 128 << 10, "{limit}");
        }
        // Without a cap: the protocol's own, and no more than the old
        // overall limit.
        let default = exec_answer_limit(&ExecRequest::new(["x"]));
        assert!(default <= MAX_RESPONSE_BYTES);
        assert!(default >= 12 * MAX_OUTPUT_BYTES);
        let mut streaming = ExecRequest::new(["x"]);
        streaming.stream = true;
        assert_eq!(Call::Exec(streaming).answer_limit(), MAX_FRAME_LINE_BYTES);
        for call in [Call::Health, Call::Freeze, Call::Thaw, Call::Poweroff] {
            assert_eq!(call.answer_limit(), MAX_SMALL_ANSWER_BYTES);
        }
    }

    #[test]
    fn an_older_agents_exec_result_has_dropped_nothing() {
        let old = br#"{"status":0,"signal":null,"timed_out":false,"stdout":"","stderr":"",
            "stdout_truncated":false,"stderr_truncated":false,"encoding":"utf8","duration_s":0.1}"#;
        let result: ExecResult = serde_json::from_slice(old).unwrap();
        assert!(!result.output_dropped);
    }

    #[test]
    fn method_names_match_the_serialized_tags() {
        let calls = [
            Call::Health,
            Call::Ports,
            Call::Exec(ExecRequest::new(["true"])),
            Call::Identity(IdentityRequest::default()),
            Call::Freeze,
            Call::Thaw,
            Call::Poweroff,
        ];
        for call in &calls {
            let value = serde_json::to_value(call).unwrap();
            assert_eq!(value["method"], call.method());
            assert!(METHODS.contains(&call.method()));
        }
        // Every method has its variant, and none is listed twice.
        let mut named: Vec<&str> = calls.iter().map(Call::method).collect();
        named.sort_unstable();
        let mut listed = METHODS.to_vec();
        listed.sort_unstable();
        assert_eq!(named, listed);
    }

    #[test]
    fn freeze_and_thaw_have_the_documented_shape() {
        for (call, method) in [(Call::Freeze, "freeze"), (Call::Thaw, "thaw")] {
            let value: Value = serde_json::from_slice(&Request::new(call).encode()).unwrap();
            assert_eq!(value, serde_json::json!({"version": 1, "method": method}));
        }
    }
}
