//! Test releases for `banger update`: copies of the installed programs with
//! their commit stamp rewritten (a real, different build identity; same
//! length, so nothing else in the file moves), a signed manifest, and a
//! small HTTP server that serves them from a directory.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// The key the test signs with; `--release-key` gives its public half.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

pub fn public_key_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(signing_key().verifying_key().to_bytes())
}

/// The commit `program --version` reports.
pub fn commit_of(program: &Path) -> String {
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no commit in {text:?}"))
        .to_owned()
}

/// `from` with every occurrence of `old` replaced by `new` (same length).
pub fn restamp(from: &Path, to: &Path, old: &str, new: &str) {
    assert_eq!(old.len(), new.len());
    let mut bytes = std::fs::read(from).unwrap();
    let (old, new) = (old.as_bytes(), new.as_bytes());
    let mut hits = 0;
    let mut i = 0;
    while i + old.len() <= bytes.len() {
        if &bytes[i..i + old.len()] == old {
            bytes[i..i + old.len()].copy_from_slice(new);
            hits += 1;
            i += old.len();
        } else {
            i += 1;
        }
    }
    assert!(
        hits > 0,
        "{} has no {:?}",
        from.display(),
        String::from_utf8_lossy(old)
    );
    std::fs::write(to, bytes).unwrap();
}

/// A release of `version`/`commit` whose programs are the files in `dir`
/// named `banger`, `bangerd`, `banger-agent`, under `prefix`; returns the
/// manifest entry.
pub fn entry(dir: &Path, prefix: &str, version: &str, commit: &str) -> serde_json::Value {
    let file = |name: &str| {
        let bytes = std::fs::read(dir.join(format!("{prefix}{name}"))).unwrap();
        serde_json::json!({
            "url": format!("{prefix}{name}"),
            "size": bytes.len(),
            "sha256": hex::encode(Sha256::digest(&bytes)),
        })
    };
    serde_json::json!({
        "version": version,
        "commit": commit,
        "built": "2026-12-03T00:00:00Z",
        "files": {"banger": file("banger"), "bangerd": file("bangerd"), "banger-agent": file("banger-agent")},
    })
}

/// Writes `manifest.json` (latest = `latest`) and its signature.
pub fn publish(dir: &Path, latest: &str, releases: Vec<serde_json::Value>) {
    let manifest = serde_json::json!({"schema": 1, "latest": latest, "releases": releases});
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let sig = signing_key().sign(&bytes);
    std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
    std::fs::write(
        dir.join("manifest.json.sig"),
        base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
    )
    .unwrap();
}

/// Serves the files of `dir` over HTTP/1.0 on 127.0.0.1 until the test
/// process ends; returns the base URL.
pub fn serve(dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                // The rest of the request head.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let name = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let mut out = &stream;
                match std::fs::read(dir.join(name))
                    .ok()
                    .filter(|_| !name.contains('/'))
                {
                    Some(body) => {
                        let _ = write!(
                            out,
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = out.write_all(&body);
                    }
                    None => {
                        let _ = write!(out, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    }
                }
            });
        }
    });
    url
}
