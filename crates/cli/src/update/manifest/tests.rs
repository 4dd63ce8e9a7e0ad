use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};

use super::*;

fn signing() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn key_b64(k: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(k.verifying_key().to_bytes())
}

fn sign(k: &SigningKey, bytes: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(k.sign(bytes).to_bytes())
        .into_bytes()
}

const SHA: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn manifest_json() -> String {
    let file = |n: &str| format!(r#"{{"url":"{n}","size":10,"sha256":"{SHA}"}}"#);
    format!(
        r#"{{"schema":1,"latest":"0.2.0","releases":[{{"version":"0.2.0","commit":"c0ffee","built":"2026-12-01T00:00:00Z","files":{{"banger":{},"bangerd":{},"banger-agent":{}}}}}]}}"#,
        file("banger"),
        file("bangerd"),
        file("banger-agent")
    )
}

#[test]
fn the_pinned_key_parses() {
    key(None).unwrap();
}

#[test]
fn a_signed_manifest_verifies_and_selects() {
    let k = signing();
    let bytes = manifest_json().into_bytes();
    let m = verify(&bytes, &sign(&k, &bytes), &key(Some(&key_b64(&k))).unwrap()).unwrap();
    assert_eq!(m.select(None).unwrap().commit, "c0ffee");
    assert_eq!(m.select(Some("0.2.0")).unwrap().version, "0.2.0");
    let err = m.select(Some("9.9.9")).unwrap_err().to_string();
    assert!(
        err.contains("no release 9.9.9") && err.contains("0.2.0"),
        "{err}"
    );
    let e = m.releases[0].files.by_name("bangerd").expected().unwrap();
    assert_eq!(e.size, 10);
}

#[test]
fn tampering_or_another_key_is_refused_before_parsing() {
    let k = signing();
    let bytes = manifest_json().into_bytes();
    let sig = sign(&k, &bytes);
    let mut tampered = bytes.clone();
    let at = tampered.iter().position(|b| *b == b'c').unwrap();
    tampered[at] = b'd';
    let ours = key(Some(&key_b64(&k))).unwrap();
    assert!(matches!(
        verify(&tampered, &sig, &ours),
        Err(UpdateError::Signature(_))
    ));
    // The pinned key did not sign it.
    assert!(matches!(
        verify(&bytes, &sig, &key(None).unwrap()),
        Err(UpdateError::Signature(_))
    ));
    assert!(matches!(
        verify(&bytes, b"not base64!", &ours),
        Err(UpdateError::Signature(_))
    ));
    // Signed garbage is still refused, as a manifest error.
    let garbage = b"{\"schema\":1}".to_vec();
    let err = verify(&garbage, &sign(&k, &garbage), &ours).unwrap_err();
    assert!(matches!(err, UpdateError::Manifest(_)), "{err}");
}

#[test]
fn file_entries_are_checked() {
    let entry = |size, sha: &str| FileEntry {
        url: "x".into(),
        size,
        sha256: sha.into(),
    };
    assert!(entry(0, SHA).expected().is_err());
    assert!(entry(MAX_PROGRAM + 1, SHA).expected().is_err());
    assert!(entry(1, "zz").expected().is_err());
    assert!(entry(1, &SHA[..10]).expected().is_err());
}

#[test]
fn relative_urls_are_plain_file_names() {
    let base = "http://127.0.0.1:8000/rel/manifest.json";
    assert_eq!(
        resolve_url(base, "banger-0.2.0").unwrap(),
        "http://127.0.0.1:8000/rel/banger-0.2.0"
    );
    assert_eq!(
        resolve_url(base, "https://x.invalid/b").unwrap(),
        "https://x.invalid/b"
    );
    for bad in ["../etc/passwd", "a/b", "", "file:///etc/shadow", "a b"] {
        assert!(resolve_url(base, bad).is_err(), "{bad}");
    }
}
