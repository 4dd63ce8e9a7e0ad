//! Output frames of a streaming `exec`: lines sent before the final
//! response, each carrying one piece of the command's stdout or stderr.

use serde::{Deserialize, Serialize};

use crate::base64::{self, Base64Error};

/// The most command output one frame carries. Its base64 form (4/3 of it)
/// plus the envelope stays well under [`MAX_FRAME_LINE_BYTES`].
pub const MAX_FRAME_DATA: usize = 64 * 1024;

/// The longest line a client accepts while an `exec` streams. Frames are
/// at most about 88 KiB and the final result carries no output, so a longer
/// line means a broken or hostile guest, not a big answer.
pub const MAX_FRAME_LINE_BYTES: usize = 128 * 1024;

/// Which of the command's streams a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// `{"output":{"stream":"stdout","data":"<base64>"}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFrame {
    pub output: OutputChunk,
}

/// One piece of output, in the order the command wrote it to that stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputChunk {
    pub stream: OutputStream,
    /// Padded base64 of the exact bytes.
    pub data: String,
}

impl OutputFrame {
    /// A frame carrying `data` (at most [`MAX_FRAME_DATA`] bytes).
    pub fn new(stream: OutputStream, data: &[u8]) -> Self {
        OutputFrame {
            output: OutputChunk {
                stream,
                data: base64::encode(data),
            },
        }
    }

    /// The frame as one JSON line, without the trailing newline.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a frame always serializes")
    }

    /// The bytes the frame carries.
    pub fn bytes(&self) -> Result<Vec<u8>, Base64Error> {
        base64::decode(&self.output.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_matches_the_documented_one() {
        let frame = OutputFrame::new(OutputStream::Stderr, b"hi\n");
        let value: serde_json::Value = serde_json::from_slice(&frame.encode()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"output": {"stream": "stderr", "data": "aGkK"}})
        );
        let back: OutputFrame = serde_json::from_value(value).unwrap();
        assert_eq!(back.bytes().unwrap(), b"hi\n");
    }

    #[test]
    fn a_full_frame_fits_the_line_cap() {
        let frame = OutputFrame::new(OutputStream::Stdout, &[0xff; MAX_FRAME_DATA]);
        assert!(frame.encode().len() < MAX_FRAME_LINE_BYTES);
    }
}
