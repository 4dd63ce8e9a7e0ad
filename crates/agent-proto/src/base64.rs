//! Standard base64 (RFC 4648 §4, with padding) for binary payloads in the
//! JSON protocol: `exec` stdin, and output when the caller asks for it.
//!
//! Written here rather than pulled in as a dependency because the agent is
//! injected into every image and this is all of it we need.

use thiserror::Error;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a string is not valid padded base64.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Base64Error {
    #[error("base64 length {0} is not a multiple of 4")]
    Length(usize),
    #[error("invalid base64 byte {byte:#04x} at offset {offset}")]
    Byte { byte: u8, offset: usize },
    #[error("misplaced base64 padding at offset {0}")]
    Padding(usize),
}

/// Encodes `data` as padded base64.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// Sextet values by byte; [`INVALID`] for bytes outside the alphabet.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const INVALID: u8 = 0xff;

/// Decodes padded base64; whitespace is not accepted.
///
/// Every quad but the last goes through a table with one validity check
/// (a guest under emulation decodes megabytes of workspace archive this
/// way); a bad quad, and the last one with its padding, take the careful
/// path that names the offending byte.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return Err(Base64Error::Length(bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let last_quad = bytes.len().saturating_sub(4);
    for (quad_index, quad) in bytes[..last_quad].chunks_exact(4).enumerate() {
        let [a, b, c, d] = [quad[0], quad[1], quad[2], quad[3]].map(|x| DECODE[x as usize]);
        // Valid sextets are below 64, so a high bit means an invalid byte.
        if (a | b | c | d) & 0x80 != 0 {
            decode_quad(quad, quad_index * 4, false, &mut out)?;
            continue;
        }
        let n = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
        let [_, b0, b1, b2] = n.to_be_bytes();
        out.extend_from_slice(&[b0, b1, b2]);
    }
    if !bytes.is_empty() {
        decode_quad(&bytes[last_quad..], last_quad, true, &mut out)?;
    }
    Ok(out)
}

/// One quad starting at `base`, checked byte by byte; padding is allowed
/// only in the last two places of the `last` quad.
fn decode_quad(quad: &[u8], base: usize, last: bool, out: &mut Vec<u8>) -> Result<(), Base64Error> {
    let mut n: u32 = 0;
    let mut pad = 0;
    for (i, &byte) in quad.iter().enumerate() {
        let offset = base + i;
        let value = if byte == b'=' {
            if !last || i < 2 {
                return Err(Base64Error::Padding(offset));
            }
            pad += 1;
            0
        } else {
            if pad > 0 {
                return Err(Base64Error::Padding(offset));
            }
            sextet_value(byte).ok_or(Base64Error::Byte { byte, offset })?
        };
        n = (n << 6) | u32::from(value);
    }
    let [_, b0, b1, b2] = n.to_be_bytes();
    out.push(b0);
    if pad < 2 {
        out.push(b1);
    }
    if pad < 1 {
        out.push(b2);
    }
    Ok(())
}

fn sextet_value(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn round_trips_every_byte_value() {
        let data: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in 0..data.len() {
            assert_eq!(decode(&encode(&data[..len])).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(decode("Zm9"), Err(Base64Error::Length(3)));
        assert_eq!(
            decode("Zm9*"),
            Err(Base64Error::Byte {
                byte: b'*',
                offset: 3
            })
        );
        assert_eq!(decode("Z==="), Err(Base64Error::Padding(1)));
        assert_eq!(decode("Zg==Zm9v"), Err(Base64Error::Padding(2)));
        assert_eq!(decode("Zm=v"), Err(Base64Error::Padding(3)));
        assert!(decode("Zm9v\n").is_err());
        // A bad byte in the fast path is named like anywhere else.
        assert_eq!(
            decode("Zm9v*m9vZm9v"),
            Err(Base64Error::Byte {
                byte: b'*',
                offset: 4
            })
        );
        assert_eq!(decode("Zm9vZg==Zm9v"), Err(Base64Error::Padding(6)));
    }
}
