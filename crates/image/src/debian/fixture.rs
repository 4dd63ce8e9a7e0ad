//! A fake Debian mirror on disk for tests: packages in `pool/`, an xz
//! `Packages` index per suite (also under `by-hash/`), and an `InRelease`
//! signed with a throwaway key that the mirror's keyring trusts.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use super::mirror::DebianMirror;
use super::testing::{DirFetch, SigningKey};

pub(crate) struct FixtureMirror {
    pub dir: TempDir,
    pub key: SigningKey,
    pub fetch: DirFetch,
    pub mirror: DebianMirror,
    stanzas: BTreeMap<String, String>,
}

impl FixtureMirror {
    pub fn new(suites: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("banger-mirror-")
            .tempdir()
            .unwrap();
        let key = SigningKey::generate();
        let fetch = DirFetch::new(dir.path());
        let mirror = DebianMirror {
            base_url: DirFetch::base(),
            suites: suites.iter().map(|s| s.to_string()).collect(),
            keyring: key.keyring().to_owned(),
            ..DebianMirror::default()
        };
        Self {
            dir,
            key,
            fetch,
            mirror,
            stanzas: BTreeMap::new(),
        }
    }

    /// Puts a package in the pool and lists it in `suite`'s index.
    pub fn add_deb(&mut self, suite: &str, name: &str, version: &str, depends: &str, deb: &[u8]) {
        let filename = format!("pool/main/{name}_{version}_amd64.deb");
        let path = self.dir.path().join(&filename);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, deb).unwrap();
        let depends = if depends.is_empty() {
            String::new()
        } else {
            format!("Depends: {depends}\n")
        };
        let stanza = format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{depends}\
             Filename: {filename}\nSize: {}\nSHA256: {}\nDescription: test\n multi-line\n\n",
            deb.len(),
            hex::encode(Sha256::digest(deb)),
        );
        self.stanzas
            .entry(suite.to_owned())
            .or_default()
            .push_str(&stanza);
    }

    /// Writes every suite's index and signed release file.
    pub fn publish(&self) {
        for suite in &self.mirror.suites {
            let text = self.stanzas.get(suite).cloned().unwrap_or_default();
            let mut xz = Vec::new();
            lzma_rs::xz_compress(&mut text.as_bytes(), &mut xz).unwrap();
            let sha = hex::encode(Sha256::digest(&xz));
            let dists = self.dir.path().join("dists").join(suite);
            let bin = dists.join("main/binary-amd64");
            std::fs::create_dir_all(bin.join("by-hash/SHA256")).unwrap();
            std::fs::write(bin.join("Packages.xz"), &xz).unwrap();
            std::fs::write(bin.join("by-hash/SHA256").join(&sha), &xz).unwrap();
            let release = format!(
                "Origin: Test\nCodename: {suite}\nAcquire-By-Hash: yes\nSHA256:\n \
                 {sha} {} main/binary-amd64/Packages.xz\n",
                xz.len()
            );
            std::fs::write(dists.join("InRelease"), self.key.clearsign(&release)).unwrap();
        }
    }
}
