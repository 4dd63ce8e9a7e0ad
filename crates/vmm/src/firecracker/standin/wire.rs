//! The server half of the stand-in's HTTP: read a request with a
//! `Content-Length` body (Firecracker's own server takes nothing else),
//! write an answer the way Firecracker does.

use std::io::{BufRead, Write};

use crate::firecracker::http::{self, HttpError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Reads one request; `Ok(None)` when the client closed the connection
/// between requests.
pub fn read_request<R: BufRead>(r: &mut R) -> Result<Option<HttpRequest>, HttpError> {
    let Some(line) = http::read_line(r)? else {
        return Ok(None);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed(format!("bad request line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") || !path.starts_with('/') {
        return Err(HttpError::Malformed(format!("bad request line {line:?}")));
    }
    let headers = http::read_headers(r)?;
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if header("transfer-encoding").is_some() {
        return Err(HttpError::Malformed(
            "Transfer-Encoding is not supported; send Content-Length".into(),
        ));
    }
    let body = match header("content-length") {
        Some(length) => http::read_exact_body(r, http::content_length(length)?)?,
        None => Vec::new(),
    };
    Ok(Some(HttpRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        body,
    }))
}

/// Writes one answer; 204 carries no body, like Firecracker's.
pub fn write_response<W: Write>(
    w: &mut W,
    status: u16,
    body: Option<&[u8]>,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
    );
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if let Some(body) = body {
        w.write_all(body)?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_what_the_client_renders() {
        let raw = http::render_request("PUT", "/vsock", Some(br#"{"guest_cid":3}"#));
        let mut cursor = Cursor::new(raw);
        let request = read_request(&mut cursor).unwrap().unwrap();
        assert_eq!(request.method, "PUT");
        assert_eq!(request.path, "/vsock");
        assert_eq!(request.body, br#"{"guest_cid":3}"#);
        assert_eq!(read_request(&mut cursor).unwrap(), None, "clean EOF");
    }

    #[test]
    fn refuses_chunked_and_bad_request_lines() {
        let chunked = "PUT /vsock HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(read_request(&mut Cursor::new(chunked)).is_err());
        assert!(read_request(&mut Cursor::new("GARBAGE\r\n\r\n")).is_err());
        assert!(read_request(&mut Cursor::new("GET nope HTTP/1.1\r\n\r\n")).is_err());
    }

    #[test]
    fn answers_parse_with_the_client_parser() {
        let mut out = Vec::new();
        write_response(&mut out, 400, Some(br#"{"fault_message":"x"}"#)).unwrap();
        write_response(&mut out, 204, None).unwrap();
        let mut cursor = Cursor::new(out);
        let first = http::read_response(&mut cursor, false).unwrap();
        assert_eq!(
            (first.status, first.body.as_slice()),
            (400, &br#"{"fault_message":"x"}"#[..])
        );
        let second = http::read_response(&mut cursor, false).unwrap();
        assert_eq!(second.status, 204);
        assert!(second.body.is_empty());
    }
}
