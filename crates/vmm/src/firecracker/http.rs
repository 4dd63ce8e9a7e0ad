//! The smallest HTTP/1.1 Firecracker needs: requests with `Content-Length`
//! bodies, responses with a length, chunked, or closing the connection.
//! Written here rather than pulled in because the whole API is a dozen PUTs
//! over a Unix socket, and a full HTTP stack would be most of this crate's
//! dependency tree.

use std::io::{self, BufRead, Read};

/// The longest status line or header line accepted.
const MAX_LINE: usize = 8 * 1024;
/// The most header lines accepted.
const MAX_HEADERS: usize = 100;
/// The largest response body accepted; Firecracker's biggest answer
/// (`GET /vm/config`) is a few KiB.
pub(crate) const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("{0}")]
    Malformed(String),
}

fn malformed(reason: impl Into<String>) -> HttpError {
    HttpError::Malformed(reason.into())
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpResponse {
    pub status: u16,
    pub reason: String,
    /// Header names lower-cased; values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Renders one request. `Host` is required by HTTP/1.1; Firecracker ignores
/// its value.
pub(crate) fn render_request(method: &str, path: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut out =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n");
    if let Some(body) = body {
        out.push_str("Content-Type: application/json\r\n");
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// Reads one CRLF- (or LF-) terminated line of at most [`MAX_LINE`] bytes,
/// without its terminator. `Ok(None)`: EOF before any byte.
pub(crate) fn read_line<R: BufRead>(r: &mut R) -> Result<Option<String>, HttpError> {
    let mut line = Vec::new();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_LINE {
            malformed(format!("line longer than {MAX_LINE} bytes"))
        } else {
            malformed("connection closed in the middle of a line")
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| malformed("line is not UTF-8"))
}

/// Reads header lines up to the empty line; names lower-cased.
pub(crate) fn read_headers<R: BufRead>(r: &mut R) -> Result<Vec<(String, String)>, HttpError> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| malformed("connection closed in the headers"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() == MAX_HEADERS {
            return Err(malformed(format!("more than {MAX_HEADERS} headers")));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed(format!("header without a colon: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
}

/// Parses a `Content-Length` value, capped at [`MAX_BODY`].
pub(crate) fn content_length(value: &str) -> Result<usize, HttpError> {
    let length: usize = value
        .parse()
        .map_err(|_| malformed(format!("bad Content-Length {value:?}")))?;
    if length > MAX_BODY {
        return Err(malformed(format!(
            "body of {length} bytes is over the {MAX_BODY}-byte limit"
        )));
    }
    Ok(length)
}

/// Reads exactly `length` body bytes.
pub(crate) fn read_exact_body<R: Read>(r: &mut R, length: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = vec![0; length];
    r.read_exact(&mut body).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            malformed(format!(
                "connection closed before the {length}-byte body ended"
            ))
        } else {
            HttpError::Io(e)
        }
    })?;
    Ok(body)
}

/// Reads one response. `head_only`: the request was `HEAD`, so no body
/// follows whatever the headers say.
pub(crate) fn read_response<R: BufRead>(
    r: &mut R,
    head_only: bool,
) -> Result<HttpResponse, HttpError> {
    let status_line =
        read_line(r)?.ok_or_else(|| malformed("connection closed without a response"))?;
    let (status, reason) = parse_status_line(&status_line)?;
    let headers = read_headers(r)?;
    let mut response = HttpResponse {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    // These never carry a body (RFC 9112 §6.3); reading on would wait for
    // bytes a keep-alive server never sends.
    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(response);
    }
    let chunked = response.header("transfer-encoding").is_some_and(|te| {
        te.to_ascii_lowercase()
            .split(',')
            .any(|t| t.trim() == "chunked")
    });
    response.body = if chunked {
        read_chunked(r)?
    } else if let Some(length) = response.header("content-length") {
        let length = content_length(length)?;
        read_exact_body(r, length)?
    } else {
        read_to_close(r)?
    };
    Ok(response)
}

fn parse_status_line(line: &str) -> Result<(u16, String), HttpError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(format!("not an HTTP/1.x status line: {line:?}")));
    }
    let status = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| malformed(format!("bad status in {line:?}")))?;
    Ok((status, parts.next().unwrap_or_default().to_owned()))
}

fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| malformed("connection closed before a chunk"))?;
        // Chunk extensions (`;name=value`) carry nothing we use.
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| malformed(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            read_headers(r)?;
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(malformed(format!(
                "chunked body over the {MAX_BODY}-byte limit"
            )));
        }
        body.extend(read_exact_body(r, size)?);
        let end = read_line(r)?;
        if end.as_deref() != Some("") {
            return Err(malformed("chunk not followed by CRLF"));
        }
    }
}

fn read_to_close<R: Read>(r: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    r.take(MAX_BODY as u64 + 1).read_to_end(&mut body)?;
    if body.len() > MAX_BODY {
        return Err(malformed(format!("body over the {MAX_BODY}-byte limit")));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(raw: &str) -> Result<HttpResponse, HttpError> {
        read_response(&mut Cursor::new(raw.as_bytes().to_vec()), false)
    }

    #[test]
    fn renders_put_with_length_and_get_without_body() {
        let put = render_request(
            "PUT",
            "/actions",
            Some(br#"{"action_type":"InstanceStart"}"#),
        );
        assert_eq!(
            String::from_utf8(put).unwrap(),
            "PUT /actions HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: 31\r\n\r\n\
             {\"action_type\":\"InstanceStart\"}"
        );
        let get = render_request("GET", "/", None);
        assert_eq!(
            String::from_utf8(get).unwrap(),
            "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n"
        );
    }

    #[test]
    fn content_length_body_stops_at_the_length() {
        let r = parse("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}trailing").unwrap();
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        assert_eq!(r.body, b"{}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    #[test]
    fn no_content_has_no_body_even_on_an_open_connection() {
        // Nothing after the headers: reading a body would hit EOF here, or
        // hang on a real keep-alive socket.
        let r = parse("HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        assert_eq!(r.status, 204);
        assert!(r.body.is_empty());
        let head = read_response(
            &mut Cursor::new(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec()),
            true,
        )
        .unwrap();
        assert!(head.body.is_empty());
    }

    #[test]
    fn chunked_bodies_are_reassembled() {
        let r = parse(
            "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n\
             4;ext=1\r\n{\"fa\r\n19\r\nult_message\":\"no kernel\"}\r\n0\r\nX-Trailer: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"fault_message":"no kernel"}"#
        );
    }

    #[test]
    fn body_without_length_runs_to_close() {
        let r = parse("HTTP/1.0 200 OK\r\n\r\n{\"state\":\"Running\"}").unwrap();
        assert_eq!(r.body, br#"{"state":"Running"}"#);
    }

    #[test]
    fn lf_only_line_endings_are_tolerated() {
        let r = parse("HTTP/1.1 200 OK\nContent-Length: 2\n\n{}").unwrap();
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn malformed_responses_are_errors() {
        let cases = [
            ("", "without a response"),
            ("SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "bad status"),
            ("HTTP/1.1 OK\r\n\r\n", "bad status"),
            (
                "HTTP/1.1 200 OK\r\nbroken header\r\n\r\n",
                "without a colon",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
                "before the 10-byte body",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "bad Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                "limit",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
                "not followed by CRLF",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2",
                "in the middle of a line",
            ),
        ];
        for (raw, expected) in cases {
            match parse(raw) {
                Err(HttpError::Malformed(msg)) => {
                    assert!(msg.contains(expected), "{raw:?}: {msg}")
                }
                other => panic!("{raw:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn overlong_header_line_is_refused() {
        let raw = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_LINE + 10)
        );
        let err = parse(&raw).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}
