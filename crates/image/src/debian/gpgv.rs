//! Verifying a clear-signed `InRelease` with `gpgv` against a keyring.
//!
//! The text used afterwards is the one gpgv writes out (`--output`), not the
//! downloaded file: text outside the signed block, which gpgv would ignore,
//! can then never be mistaken for signed content.

use std::path::Path;

use banger_sys::Cmd;

use super::error::DebianError;

const CLEARSIGN_HEADER: &str = "-----BEGIN PGP SIGNED MESSAGE-----";

/// Verifies `signed` (downloaded from `url`) with the keys in `keyring` and
/// returns the signed text. `work` is an empty directory for gpgv's output.
pub fn verify_clearsigned(
    keyring: &Path,
    signed: &Path,
    url: &str,
    work: &Path,
) -> Result<String, DebianError> {
    if !keyring.is_file() {
        return Err(DebianError::KeyringMissing {
            keyring: keyring.to_owned(),
        });
    }
    let raw = std::fs::read(signed).map_err(|e| DebianError::io("read", signed, e))?;
    // Like apt, accept only a file that is one clear-signed message from its
    // first byte on.
    if !raw.starts_with(CLEARSIGN_HEADER.as_bytes()) {
        return Err(DebianError::NotClearSigned {
            url: url.to_owned(),
        });
    }
    let out_path = work.join("verified");
    let output = Cmd::new("gpgv")
        .arg("--keyring")
        .arg(keyring)
        .args(["--status-fd", "1", "--output"])
        .arg(&out_path)
        .arg("--")
        .arg(signed)
        .run()
        .map_err(|source| DebianError::BadSignature {
            url: url.to_owned(),
            keyring: keyring.to_owned(),
            source,
        })?;
    judge_status(&output.stdout_str()).map_err(|detail| DebianError::NoGoodSignature {
        url: url.to_owned(),
        keyring: keyring.to_owned(),
        detail,
    })?;
    let text = std::fs::read(&out_path).map_err(|e| DebianError::io("read", &out_path, e))?;
    String::from_utf8(text).map_err(|_| DebianError::Malformed {
        what: url.to_owned(),
        line: 1,
        detail: "the signed text is not UTF-8".into(),
    })
}

/// Reads gpgv's machine-readable status lines. Good means at least one
/// signature that is both good and valid (`GOODSIG` is only printed for a
/// key that is neither expired nor revoked) and no bad or uncheckable one.
fn judge_status(status: &str) -> Result<(), String> {
    let keywords: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("[GNUPG:] "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if let Some(bad) = keywords.iter().find(|k| matches!(**k, "BADSIG" | "ERRSIG")) {
        return Err(format!("gpgv said {bad}"));
    }
    let has = |k: &str| keywords.contains(&k);
    if has("GOODSIG") && has("VALIDSIG") {
        Ok(())
    } else {
        Err(format!(
            "no GOODSIG with VALIDSIG among [{}]",
            keywords.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::testing::SigningKey;

    #[test]
    fn status_needs_a_good_valid_signature_and_no_bad_one() {
        let good = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 6ED0 Debian\n[GNUPG:] VALIDSIG 4CB5 2026\n";
        judge_status(good).unwrap();
        assert!(judge_status("[GNUPG:] GOODSIG 6ED0 Debian\n").is_err());
        assert!(judge_status("[GNUPG:] EXPKEYSIG 6ED0 x\n[GNUPG:] VALIDSIG 4CB5\n").is_err());
        assert!(judge_status(&format!("{good}[GNUPG:] BADSIG 1234 x\n")).is_err());
        // A status keyword mentioned in a user id is not a status line.
        assert!(judge_status("gpgv: GOODSIG VALIDSIG\n").is_err());
    }

    #[test]
    fn a_signed_file_verifies_and_a_tampered_one_is_rejected() {
        let key = SigningKey::generate();
        let work = tempfile::tempdir().unwrap();
        let signed = work.path().join("InRelease");
        std::fs::write(&signed, key.clearsign("Codename: test\nSHA256:\n")).unwrap();

        let out = tempfile::tempdir().unwrap();
        let text = verify_clearsigned(key.keyring(), &signed, "u", out.path()).unwrap();
        assert_eq!(text, "Codename: test\nSHA256:\n");

        let tampered = std::fs::read_to_string(&signed)
            .unwrap()
            .replace("Codename: test", "Codename: evil");
        std::fs::write(&signed, tampered).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = verify_clearsigned(key.keyring(), &signed, "u", out.path()).unwrap_err();
        assert!(matches!(err, DebianError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn a_file_signed_by_another_key_is_rejected() {
        let (trusted, other) = (SigningKey::generate(), SigningKey::generate());
        let work = tempfile::tempdir().unwrap();
        let signed = work.path().join("InRelease");
        std::fs::write(&signed, other.clearsign("Codename: test\n")).unwrap();
        let err = verify_clearsigned(trusted.keyring(), &signed, "u", work.path()).unwrap_err();
        assert!(matches!(err, DebianError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn unsigned_text_before_the_signed_block_is_refused() {
        let key = SigningKey::generate();
        let work = tempfile::tempdir().unwrap();
        let signed = work.path().join("InRelease");
        let mut body = b"Codename: evil\n\n".to_vec();
        body.extend(key.clearsign("Codename: test\n"));
        std::fs::write(&signed, body).unwrap();
        let err = verify_clearsigned(key.keyring(), &signed, "u", work.path()).unwrap_err();
        assert!(matches!(err, DebianError::NotClearSigned { .. }), "{err}");
    }

    #[test]
    fn a_missing_keyring_says_which_package_to_install() {
        let work = tempfile::tempdir().unwrap();
        let err = verify_clearsigned(
            &work.path().join("none.gpg"),
            &work.path().join("InRelease"),
            "u",
            work.path(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("debian-archive-keyring"), "{err}");
    }
}
