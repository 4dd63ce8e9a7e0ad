//! The API client: one request per connection over Firecracker's Unix
//! socket. A fresh connection each time keeps a request that timed out from
//! leaving a half-read answer for the next one.

use std::io::{BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::api::{ApiRequest, InstanceInfo};
use super::error::FirecrackerError;
use super::http::{self, HttpError, HttpResponse};

/// A client of one Firecracker's API socket.
#[derive(Debug, Clone)]
pub struct ApiClient {
    socket: PathBuf,
    timeout: Duration,
}

impl ApiClient {
    /// `timeout` bounds each request's write and each read of its answer.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> ApiClient {
        ApiClient {
            socket: socket.into(),
            timeout,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `request`; a 2xx answer's JSON body (if any) is returned, any
    /// other status is [`FirecrackerError::Fault`] with Firecracker's
    /// `fault_message`.
    pub fn send(&self, request: &ApiRequest) -> Result<Option<Value>, FirecrackerError> {
        let name = request.describe();
        tracing::debug!(socket = %self.socket.display(), request = %name, "firecracker api");
        let body = request
            .body()
            .map(|b| serde_json::to_vec(&b).expect("a JSON value always serializes"));
        let response = self.exchange(&name, request.method(), &request.path(), body.as_deref())?;
        interpret(name, response)
    }

    /// `GET /`: the instance's id, state and Firecracker version.
    pub fn instance_info(&self) -> Result<InstanceInfo, FirecrackerError> {
        let request = ApiRequest::GetInstanceInfo;
        let value = self
            .send(&request)?
            .ok_or_else(|| FirecrackerError::Malformed {
                request: request.describe(),
                reason: "no body".into(),
            })?;
        serde_json::from_value(value).map_err(|e| FirecrackerError::Malformed {
            request: request.describe(),
            reason: e.to_string(),
        })
    }

    fn exchange(
        &self,
        name: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<HttpResponse, FirecrackerError> {
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|source| FirecrackerError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let transport = |source: std::io::Error| {
            if matches!(source.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                FirecrackerError::Timeout {
                    request: name.to_owned(),
                    timeout: self.timeout,
                }
            } else {
                FirecrackerError::Transport {
                    request: name.to_owned(),
                    socket: self.socket.clone(),
                    source,
                }
            }
        };
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(transport)?;
        stream
            .write_all(&http::render_request(method, path, body))
            .map_err(transport)?;
        http::read_response(&mut BufReader::new(stream), method == "HEAD").map_err(|e| match e {
            HttpError::Io(source) => transport(source),
            HttpError::Malformed(reason) => FirecrackerError::Malformed {
                request: name.to_owned(),
                reason,
            },
        })
    }
}

/// Turns an HTTP answer into the body or the typed refusal.
fn interpret(request: String, response: HttpResponse) -> Result<Option<Value>, FirecrackerError> {
    let json: Option<Value> = if response.body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice(&response.body) {
            Ok(value) => Some(value),
            Err(e) if (200..300).contains(&response.status) => {
                return Err(FirecrackerError::Malformed {
                    request,
                    reason: format!("body is not JSON: {e}"),
                });
            }
            // An error page that is not JSON still explains the refusal.
            Err(_) => None,
        }
    };
    if (200..300).contains(&response.status) {
        return Ok(json);
    }
    let fault_message = json
        .as_ref()
        .and_then(|v| v.get("fault_message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&response.body).trim().to_owned();
            if text.is_empty() {
                response.reason.clone()
            } else {
                text
            }
        });
    Err(FirecrackerError::Fault {
        request,
        status: response.status,
        fault_message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read};
    use std::os::unix::net::UnixListener;
    use std::thread;

    use crate::firecracker::api::{ActionType, InstanceAction};

    /// Serves one connection: records the request, answers `reply`.
    fn one_shot(reply: String) -> (tempfile::TempDir, PathBuf, thread::JoinHandle<String>) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |n| n.trim().parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            reader.get_mut().write_all(reply.as_bytes()).unwrap();
            head + &String::from_utf8(body).unwrap()
        });
        (dir, socket, server)
    }

    fn answer(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn start() -> ApiRequest {
        ApiRequest::Action(InstanceAction {
            action_type: ActionType::InstanceStart,
        })
    }

    #[test]
    fn sends_the_body_and_accepts_no_content() {
        let (_dir, socket, server) = one_shot("HTTP/1.1 204 \r\n\r\n".into());
        let client = ApiClient::new(&socket, Duration::from_secs(5));
        assert_eq!(client.send(&start()).unwrap(), None);
        let seen = server.join().unwrap();
        assert!(seen.starts_with("PUT /actions HTTP/1.1\r\n"), "{seen}");
        assert!(
            seen.ends_with("\r\n\r\n{\"action_type\":\"InstanceStart\"}"),
            "{seen}"
        );
    }

    #[test]
    fn fault_message_becomes_a_typed_error_naming_the_request() {
        let (_dir, socket, _server) = one_shot(answer(
            "400 ",
            r#"{"fault_message":"Cannot start microvm ..."}"#,
        ));
        let err = ApiClient::new(&socket, Duration::from_secs(5))
            .send(&start())
            .unwrap_err();
        match &err {
            FirecrackerError::Fault {
                request,
                status,
                fault_message,
            } => {
                assert_eq!(request, "PUT /actions (InstanceStart)");
                assert_eq!(*status, 400);
                assert_eq!(fault_message, "Cannot start microvm ...");
            }
            other => panic!("{other:?}"),
        }
        let vmm: crate::VmmError = err.into();
        assert!(
            matches!(vmm, crate::VmmError::Refused { ref what, .. } if what == "PUT /actions (InstanceStart)")
        );
    }

    #[test]
    fn instance_info_is_decoded() {
        let (_dir, socket, server) = one_shot(answer(
            "200 OK",
            r#"{"id":"vm1","state":"Not started","vmm_version":"1.7.0","app_name":"Firecracker"}"#,
        ));
        let info = ApiClient::new(&socket, Duration::from_secs(5))
            .instance_info()
            .unwrap();
        assert_eq!(info.state, "Not started");
        assert_eq!(info.vmm_version, "1.7.0");
        assert!(server.join().unwrap().starts_with("GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn a_silent_server_times_out_and_a_missing_socket_is_connect() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let err = ApiClient::new(&socket, Duration::from_secs(1))
            .send(&start())
            .unwrap_err();
        assert!(matches!(err, FirecrackerError::Connect { .. }), "{err:?}");

        let _listener = UnixListener::bind(&socket).unwrap();
        let err = ApiClient::new(&socket, Duration::from_millis(200))
            .send(&start())
            .unwrap_err();
        assert!(matches!(err, FirecrackerError::Timeout { .. }), "{err:?}");
    }

    #[test]
    fn success_with_a_non_json_body_is_malformed() {
        let (_dir, socket, _server) = one_shot(answer("200 OK", "xyz"));
        let err = ApiClient::new(&socket, Duration::from_secs(5))
            .send(&ApiRequest::GetInstanceInfo)
            .unwrap_err();
        assert!(matches!(err, FirecrackerError::Malformed { .. }), "{err:?}");
    }
}
