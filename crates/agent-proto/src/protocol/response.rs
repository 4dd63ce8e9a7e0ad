//! The response envelope: `{"ok":true,"result":...}` or
//! `{"ok":false,"error":{"code":...,"message":...}}`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not a complete line, too long, too slow, or bad params.
    BadRequest,
    /// The method is not one of protocol v1's.
    UnknownMethod,
    /// The request's `version` is not [`super::PROTOCOL_VERSION`].
    BadVersion,
    /// The request was valid but carrying it out failed.
    Failed,
    /// A code this side does not know (a newer agent); kept so the client
    /// still reports the message instead of a decoding error.
    #[serde(other)]
    Unknown,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::BadVersion => "bad_version",
            ErrorCode::Failed => "failed",
            ErrorCode::Unknown => "unknown",
        })
    }
}

/// The `error` member of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Why a response does not carry the expected result.
#[derive(Debug, Error, PartialEq)]
pub enum ResponseError {
    #[error("agent error ({}): {}", .0.code, .0.message)]
    Agent(ErrorBody),
    #[error("malformed response: {0}")]
    Malformed(String),
}

impl Response {
    /// A successful response carrying `result`.
    pub fn success<T: Serialize>(result: &T) -> Self {
        match serde_json::to_value(result) {
            Ok(value) => Response {
                ok: true,
                result: Some(value),
                error: None,
            },
            Err(e) => Response::failure(ErrorBody::new(
                ErrorCode::Failed,
                format!("cannot encode the result: {e}"),
            )),
        }
    }

    /// A failed response.
    pub fn failure(error: ErrorBody) -> Self {
        Response {
            ok: false,
            result: None,
            error: Some(error),
        }
    }

    /// The response as one JSON line, without the trailing newline.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a response always serializes")
    }

    /// Parses one response line.
    pub fn decode(line: &[u8]) -> Result<Response, ResponseError> {
        let response: Response = serde_json::from_slice(line)
            .map_err(|e| ResponseError::Malformed(format!("not a response: {e}")))?;
        match (response.ok, &response.result, &response.error) {
            (true, Some(_), None) | (false, None, Some(_)) => Ok(response),
            _ => Err(ResponseError::Malformed(
                "\"ok\" must come with exactly \"result\" (true) or \"error\" (false)".into(),
            )),
        }
    }

    /// Parses one response line straight into its result as `T` (or the
    /// agent's error), with no intermediate `serde_json::Value`: the
    /// memory a line takes is about its own size whatever it holds. This is
    /// what the client uses; [`Response::decode`] keeps the result untyped.
    pub fn decode_result<T: DeserializeOwned>(line: &[u8]) -> Result<T, ResponseError> {
        let envelope: Envelope<T> = serde_json::from_slice(line).map_err(|e| {
            ResponseError::Malformed(format!("not a response of the expected shape: {e}"))
        })?;
        envelope.into_result()
    }

    /// The result decoded as `T`, or the agent's error.
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, ResponseError> {
        match (self.ok, self.result, self.error) {
            (true, Some(value), _) => serde_json::from_value(value)
                .map_err(|e| ResponseError::Malformed(format!("unexpected result: {e}"))),
            (false, _, Some(error)) => Err(ResponseError::Agent(error)),
            _ => Err(ResponseError::Malformed("neither result nor error".into())),
        }
    }
}

/// A response line as the client reads it: the result typed at once.
/// Unknown top-level fields are ignored, as by [`Response`].
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub(crate) struct Envelope<T> {
    pub ok: bool,
    #[serde(default = "Option::default")]
    pub result: Option<T>,
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

impl<T> Envelope<T> {
    /// The result, or the agent's error; `ok` must agree with which one
    /// came, and exactly one must.
    pub fn into_result(self) -> Result<T, ResponseError> {
        match (self.ok, self.result, self.error) {
            (true, Some(result), None) => Ok(result),
            (false, None, Some(error)) => Err(ResponseError::Agent(error)),
            _ => Err(ResponseError::Malformed(
                "\"ok\" must come with exactly \"result\" (true) or \"error\" (false)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Empty, HealthResult};

    #[test]
    fn success_and_failure_have_the_documented_shape() {
        let ok = Response::success(&Empty {});
        assert_eq!(
            serde_json::from_slice::<Value>(&ok.encode()).unwrap(),
            serde_json::json!({"ok": true, "result": {}})
        );
        let err = Response::failure(ErrorBody::new(ErrorCode::UnknownMethod, "nope"));
        assert_eq!(
            serde_json::from_slice::<Value>(&err.encode()).unwrap(),
            serde_json::json!({"ok": false, "error": {"code": "unknown_method", "message": "nope"}})
        );
    }

    fn health() -> HealthResult {
        HealthResult {
            agent: "0.1.0".into(),
            protocol: 1,
            hostname: "dev".into(),
            uptime_s: 1.5,
            boot_id: "abc".into(),
            frozen: false,
        }
    }

    #[test]
    fn round_trip_into_typed_results() {
        let health = health();
        let line = Response::success(&health).encode();
        let back: HealthResult = Response::decode(&line).unwrap().into_result().unwrap();
        assert_eq!(back, health);

        let line = Response::failure(ErrorBody::new(ErrorCode::Failed, "boom")).encode();
        let err = Response::decode(&line)
            .unwrap()
            .into_result::<HealthResult>()
            .unwrap_err();
        assert_eq!(
            err,
            ResponseError::Agent(ErrorBody::new(ErrorCode::Failed, "boom"))
        );
    }

    #[test]
    fn inconsistent_or_unexpected_responses_are_malformed() {
        for line in [
            r#"{"ok":true}"#,
            r#"{"ok":false,"result":{}}"#,
            r#"{"ok":true,"result":{},"error":{"code":"failed","message":""}}"#,
            r#"{"result":{}}"#,
            "garbage",
        ] {
            assert!(
                matches!(
                    Response::decode(line.as_bytes()),
                    Err(ResponseError::Malformed(_))
                ),
                "{line}"
            );
        }
        let wrong_shape = Response::decode(br#"{"ok":true,"result":{"agent":1}}"#).unwrap();
        assert!(matches!(
            wrong_shape.into_result::<HealthResult>(),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn typed_decoding_agrees_with_the_untyped_one() {
        let health = health();
        let line = Response::success(&health).encode();
        assert_eq!(
            Response::decode_result::<HealthResult>(&line).unwrap(),
            health
        );
        let line = Response::failure(ErrorBody::new(ErrorCode::Failed, "boom")).encode();
        assert_eq!(
            Response::decode_result::<HealthResult>(&line).unwrap_err(),
            ResponseError::Agent(ErrorBody::new(ErrorCode::Failed, "boom"))
        );
        for line in [
            r#"{"ok":true}"#,
            r#"{"ok":false,"result":{}}"#,
            r#"{"ok":true,"result":{},"error":{"code":"failed","message":""}}"#,
            r#"{"result":{}}"#,
            r#"{"ok":true,"result":{"agent":1}}"#,
            r#"{"ok":true,"result":null}"#,
            "garbage",
        ] {
            assert!(
                matches!(
                    Response::decode_result::<HealthResult>(line.as_bytes()),
                    Err(ResponseError::Malformed(_))
                ),
                "{line}"
            );
        }
        // Unknown fields, at the top and in results, are ignored.
        let line = br#"{"ok":true,"result":{"later":1},"trace":"x"}"#;
        assert_eq!(Response::decode_result::<Empty>(line).unwrap(), Empty {});
    }

    #[test]
    fn unknown_error_codes_are_kept_as_unknown() {
        let line = br#"{"ok":false,"error":{"code":"rate_limited","message":"slow down"}}"#;
        let err = Response::decode(line)
            .unwrap()
            .into_result::<Empty>()
            .unwrap_err();
        assert_eq!(
            err,
            ResponseError::Agent(ErrorBody::new(ErrorCode::Unknown, "slow down"))
        );
    }
}
