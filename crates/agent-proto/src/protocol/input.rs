//! Input frames of an `exec` with `stdin_stream`: lines the host sends after
//! its request, each carrying one piece of the command's standard input,
//! then one frame saying the input is complete.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::output::{MAX_FRAME_DATA, MAX_FRAME_LINE_BYTES};
use crate::base64::{self, Base64Error};

/// `{"input":{"data":"<base64>"}}` or `{"input":{"end":true}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFrame {
    pub input: InputChunk,
}

/// One piece of input, or the end of it. Exactly one of the two fields is
/// set; [`InputFrame::decode`] refuses anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputChunk {
    /// Padded base64 of at most [`MAX_FRAME_DATA`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The input is complete: the command's stdin is closed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}

/// What a valid input frame says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// Bytes for the command's stdin (at most [`MAX_FRAME_DATA`]).
    Data(Vec<u8>),
    /// No more input.
    End,
}

/// Why a line is not a valid input frame.
#[derive(Debug, Error)]
pub enum BadInputFrame {
    #[error("input frame line longer than {MAX_FRAME_LINE_BYTES} bytes")]
    TooLong,
    #[error("not an input frame: {0}")]
    Json(serde_json::Error),
    #[error("an input frame carries either \"data\" or \"end\":true")]
    Shape,
    #[error("input data is not valid base64: {0}")]
    Base64(Base64Error),
    #[error("input frame carries {0} bytes, more than {MAX_FRAME_DATA}")]
    TooBig(usize),
}

impl InputFrame {
    /// A frame carrying `data` (at most [`MAX_FRAME_DATA`] bytes).
    pub fn data(data: &[u8]) -> Self {
        InputFrame {
            input: InputChunk {
                data: Some(base64::encode(data)),
                end: false,
            },
        }
    }

    /// The frame that ends the input.
    pub fn end() -> Self {
        InputFrame {
            input: InputChunk {
                data: None,
                end: true,
            },
        }
    }

    /// The frame as one JSON line, without the trailing newline.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a frame always serializes")
    }

    /// The bytes the frame carries (none for the end frame).
    pub fn bytes(&self) -> Result<Vec<u8>, Base64Error> {
        match &self.input.data {
            Some(data) => base64::decode(data),
            None => Ok(Vec::new()),
        }
    }

    /// Parses and checks one line. The agent acts on nothing a malformed
    /// frame says, so every rule is checked here, before any byte of it
    /// reaches the command.
    pub fn decode(line: &[u8]) -> Result<InputEvent, BadInputFrame> {
        if line.len() > MAX_FRAME_LINE_BYTES {
            return Err(BadInputFrame::TooLong);
        }
        let frame: InputFrame = serde_json::from_slice(line).map_err(BadInputFrame::Json)?;
        match (&frame.input.data, frame.input.end) {
            (None, true) => Ok(InputEvent::End),
            (Some(_), false) => {
                let bytes = frame.bytes().map_err(BadInputFrame::Base64)?;
                if bytes.len() > MAX_FRAME_DATA {
                    return Err(BadInputFrame::TooBig(bytes.len()));
                }
                Ok(InputEvent::Data(bytes))
            }
            _ => Err(BadInputFrame::Shape),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_matches_the_documented_one() {
        let frame = InputFrame::data(b"hi\n");
        let value: serde_json::Value = serde_json::from_slice(&frame.encode()).unwrap();
        assert_eq!(value, serde_json::json!({"input": {"data": "aGkK"}}));
        assert_eq!(
            InputFrame::decode(&frame.encode()).unwrap(),
            InputEvent::Data(b"hi\n".to_vec())
        );
        let end = InputFrame::end().encode();
        assert_eq!(end, br#"{"input":{"end":true}}"#);
        assert_eq!(InputFrame::decode(&end).unwrap(), InputEvent::End);
    }

    #[test]
    fn a_full_frame_fits_the_line_cap() {
        let frame = InputFrame::data(&[0xff; MAX_FRAME_DATA]).encode();
        assert!(frame.len() < MAX_FRAME_LINE_BYTES);
        assert_eq!(
            InputFrame::decode(&frame).unwrap(),
            InputEvent::Data(vec![0xff; MAX_FRAME_DATA])
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        let bad = |line: &[u8]| InputFrame::decode(line).unwrap_err();
        assert!(matches!(bad(b"nope"), BadInputFrame::Json(_)));
        assert!(matches!(
            bad(br#"{"input":{"data":"aGk=","x":1}}"#),
            BadInputFrame::Json(_)
        ));
        assert!(matches!(
            bad(br#"{"output":{"stream":"stdout","data":""}}"#),
            BadInputFrame::Json(_)
        ));
        assert!(matches!(bad(br#"{"input":{}}"#), BadInputFrame::Shape));
        assert!(matches!(
            bad(br#"{"input":{"end":false}}"#),
            BadInputFrame::Shape
        ));
        assert!(matches!(
            bad(br#"{"input":{"data":"aGk=","end":true}}"#),
            BadInputFrame::Shape
        ));
        assert!(matches!(
            bad(br#"{"input":{"data":"!!"}}"#),
            BadInputFrame::Base64(_)
        ));
        let big = InputFrame::data(&[0; MAX_FRAME_DATA + 1]).encode();
        assert!(matches!(bad(&big), BadInputFrame::TooBig(n) if n == MAX_FRAME_DATA + 1));
        let mut long = br#"{"input":{"data":""#.to_vec();
        long.extend(std::iter::repeat_n(b'A', MAX_FRAME_LINE_BYTES));
        long.extend_from_slice(br#""}}"#);
        assert!(matches!(bad(&long), BadInputFrame::TooLong));
    }
}
