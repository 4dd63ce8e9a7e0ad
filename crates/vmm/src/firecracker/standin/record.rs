//! The stand-in's record of what it was asked, for tests to assert on:
//! one JSON object per request in `<api socket>.requests.jsonl`, and the
//! argv it was started with in `<api socket>.args.json`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The body as JSON, or as a string when it was not JSON.
    pub body: Option<Value>,
    pub status: u16,
    pub fault_message: Option<String>,
}

impl RecordedRequest {
    /// `PUT /drives/rootfs`, or `PUT /actions (InstanceStart)` like
    /// [`crate::firecracker::ApiRequest::describe`].
    pub fn describe(&self) -> String {
        match self
            .body
            .as_ref()
            .and_then(|b| b.get("action_type"))
            .and_then(Value::as_str)
        {
            Some(action) if self.path == "/actions" => format!("PUT /actions ({action})"),
            _ => format!("{} {}", self.method, self.path),
        }
    }
}

pub fn requests_path(api_socket: &Path) -> PathBuf {
    suffixed(api_socket, ".requests.jsonl")
}

pub fn args_path(api_socket: &Path) -> PathBuf {
    suffixed(api_socket, ".args.json")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads the record next to `api_socket`; no file means no requests.
pub fn read_requests(api_socket: &Path) -> std::io::Result<Vec<RecordedRequest>> {
    let text = match std::fs::read_to_string(requests_path(api_socket)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .map(|line| serde_json::from_str(line).map_err(std::io::Error::other))
        .collect()
}

/// Appends requests, one line each, flushed so a reader sees every request
/// whose answer was sent.
pub struct Recorder {
    file: File,
}

impl Recorder {
    pub fn create(api_socket: &Path, argv: &[String]) -> std::io::Result<Recorder> {
        std::fs::write(args_path(api_socket), serde_json::to_vec(argv)?)?;
        let file = File::options()
            .create(true)
            .append(true)
            .open(requests_path(api_socket))?;
        Ok(Recorder { file })
    }

    pub fn record(&mut self, request: &RecordedRequest) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_next_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        assert!(read_requests(&socket).unwrap().is_empty());
        let mut recorder = Recorder::create(&socket, &["--id".into(), "x".into()]).unwrap();
        let request = RecordedRequest {
            method: "PUT".into(),
            path: "/actions".into(),
            body: Some(serde_json::json!({"action_type": "InstanceStart"})),
            status: 204,
            fault_message: None,
        };
        recorder.record(&request).unwrap();
        assert_eq!(
            read_requests(&socket).unwrap(),
            std::slice::from_ref(&request)
        );
        assert_eq!(request.describe(), "PUT /actions (InstanceStart)");
        assert_eq!(
            dir.path().join("api.sock.requests.jsonl"),
            requests_path(&socket)
        );
        let args: Vec<String> =
            serde_json::from_slice(&std::fs::read(args_path(&socket)).unwrap()).unwrap();
        assert_eq!(args, ["--id", "x"]);
    }
}
