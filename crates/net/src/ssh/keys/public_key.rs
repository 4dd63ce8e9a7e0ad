//! OpenSSH public key lines (`<type> <base64 blob> [comment]`), validated
//! before banger writes one into known_hosts or a guest's authorized_keys,
//! where a stray newline or a garbled key would do damage or fail late.

use std::fmt;
use std::str::FromStr;

/// A parsed public key. Two keys are the same key when their
/// [`key_material`](PublicKey::key_material) is equal; the comment is a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: String,
    blob: String,
    comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("no key found; expected one line `<type> <base64 data> [comment]`")]
    Empty,
    #[error("expected one line `<type> <base64 data> [comment]`, found several lines")]
    MultipleLines,
    #[error("key type {algorithm:?} is not a valid OpenSSH key type name")]
    BadAlgorithm { algorithm: String },
    #[error("the {algorithm} key has no base64 data after its type")]
    MissingBlob { algorithm: String },
    #[error("the data of the {algorithm} key is not valid base64")]
    BadBase64 { algorithm: String },
    #[error("the line says {algorithm} but the key data is of type {inner:?}")]
    TypeMismatch { algorithm: String, inner: String },
    #[error("the comment of the {algorithm} key contains control characters")]
    BadComment { algorithm: String },
}

impl PublicKey {
    pub fn parse(line: &str) -> Result<PublicKey, PublicKeyError> {
        let line = line.trim();
        if line.is_empty() {
            return Err(PublicKeyError::Empty);
        }
        if line.contains(['\n', '\r']) {
            return Err(PublicKeyError::MultipleLines);
        }
        let mut parts = line.splitn(3, [' ', '\t']);
        let algorithm = parts.next().unwrap_or_default().to_owned();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "@._+-".contains(c);
        if !algorithm.chars().all(valid_char) {
            return Err(PublicKeyError::BadAlgorithm { algorithm });
        }
        let blob = match parts.next().map(str::trim) {
            Some(b) if !b.is_empty() => b.to_owned(),
            _ => return Err(PublicKeyError::MissingBlob { algorithm }),
        };
        let comment = parts.next().unwrap_or_default().trim().to_owned();
        if comment.chars().any(char::is_control) {
            return Err(PublicKeyError::BadComment { algorithm });
        }
        // The blob starts with its own type name (RFC 4253 §6.6); checking it
        // catches truncated or swapped keys here rather than at connect time.
        let Some(decoded) = decode_base64(&blob) else {
            return Err(PublicKeyError::BadBase64 { algorithm });
        };
        let inner = embedded_type(&decoded);
        if inner != Some(algorithm.as_bytes()) {
            return Err(PublicKeyError::TypeMismatch {
                inner: String::from_utf8_lossy(inner.unwrap_or_default()).into_owned(),
                algorithm,
            });
        }
        Ok(PublicKey {
            algorithm,
            blob,
            comment,
        })
    }

    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, …
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The base64 key data.
    pub fn blob(&self) -> &str {
        &self.blob
    }

    /// The free-text label after the key (empty if none).
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// `<type> <base64>`: the key without its comment.
    pub fn key_material(&self) -> String {
        format!("{} {}", self.algorithm, self.blob)
    }
}

/// The authorized_keys/`.pub` form, without a trailing newline.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm, self.blob)?;
        if !self.comment.is_empty() {
            write!(f, " {}", self.comment)?;
        }
        Ok(())
    }
}

impl FromStr for PublicKey {
    type Err = PublicKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The leading SSH `string` of a key blob: a big-endian u32 length, then
/// that many bytes.
fn embedded_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?);
    blob.get(4..4 + usize::try_from(len).ok()?)
}

/// Standard, padded base64 (what OpenSSH writes). `None` if malformed.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in &bytes[..bytes.len() - padding] {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real key made by ssh-keygen.
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsXVPj+U3bwuhGfkbrbVVzjSgW0YJFLGhE/tfQuSpo3";

    #[test]
    fn parses_type_blob_and_comment() {
        let key: PublicKey = format!("{ED25519}  my laptop\n").parse().unwrap();
        assert_eq!(key.algorithm(), "ssh-ed25519");
        assert!(key.blob().starts_with("AAAAC3NzaC1lZDI1NTE5"));
        assert_eq!(key.comment(), "my laptop");
        assert_eq!(key.key_material(), ED25519);
        assert_eq!(key.to_string(), format!("{ED25519} my laptop"));
        let bare: PublicKey = ED25519.parse().unwrap();
        assert_eq!(
            bare.to_string(),
            ED25519,
            "no trailing space without comment"
        );
    }

    #[test]
    fn rejects_what_would_corrupt_a_key_file() {
        let err = |s: &str| PublicKey::parse(s).unwrap_err();
        assert_eq!(err("  \n"), PublicKeyError::Empty);
        assert_eq!(
            err(&format!("{ED25519}\n{ED25519}")),
            PublicKeyError::MultipleLines
        );
        assert!(matches!(
            err("ssh-ed25519"),
            PublicKeyError::MissingBlob { .. }
        ));
        assert!(matches!(
            err("ssh,ed25519 AAAA"),
            PublicKeyError::BadAlgorithm { .. }
        ));
        assert!(matches!(
            err("ssh-ed25519 AAAA*AAA"),
            PublicKeyError::BadBase64 { .. }
        ));
        assert!(matches!(
            err("ssh-ed25519 AAAAC3Nza"),
            PublicKeyError::BadBase64 { .. }
        ));
        assert!(matches!(
            err(&format!("{ED25519} a\u{1b}b")),
            PublicKeyError::BadComment { .. }
        ));
        let swapped = ED25519.replace("ssh-ed25519", "ssh-rsa");
        assert_eq!(
            err(&swapped),
            PublicKeyError::TypeMismatch {
                algorithm: "ssh-rsa".into(),
                inner: "ssh-ed25519".into()
            }
        );
    }

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(decode_base64("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(decode_base64("Zm9=vYmE"), None);
        assert_eq!(decode_base64("Zg==="), None);
    }
}
