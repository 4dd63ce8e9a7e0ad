//! Asking npm where a package's tarball is. The ordinary npm client knows
//! the registry (and any mirror or proxy the host configured), so banger
//! names none; what it answers is only a location, checked by the pin.

use std::path::PathBuf;

use banger_sys::Cmd;

use super::error::MiseError;
use super::{MISE, ResolveTarball};

/// `npm view --json PACKAGE@VERSION dist.tarball`.
#[derive(Debug, Clone)]
pub struct NpmView {
    pub program: PathBuf,
}

impl Default for NpmView {
    fn default() -> Self {
        Self {
            program: PathBuf::from("npm"),
        }
    }
}

impl NpmView {
    pub fn command(&self, spec: &str) -> Cmd {
        Cmd::new(&self.program).args(["view", "--json", spec, "dist.tarball"])
    }

    /// Whether the npm program is there, checked before anything slow runs.
    pub fn check_ready(&self) -> Result<(), MiseError> {
        match banger_sys::find_program(&self.program.to_string_lossy()) {
            Some(_) => Ok(()),
            None => Err(MiseError::NpmMissing {
                package: MISE.package,
            }),
        }
    }
}

impl ResolveTarball for NpmView {
    fn tarball_url(&self, package: &str, version: &str) -> Result<String, MiseError> {
        self.check_ready()?;
        let spec = format!("{package}@{version}");
        let out = self
            .command(&spec)
            .run()
            .map_err(|source| MiseError::Resolve {
                spec: spec.clone(),
                source,
            })?;
        parse_answer(&spec, &out.stdout)
    }
}

/// The URL in npm's JSON answer (one string). An exact version that does
/// not exist makes npm fail, but an empty answer is refused here too.
pub(super) fn parse_answer(spec: &str, stdout: &[u8]) -> Result<String, MiseError> {
    let url = serde_json::from_slice::<String>(stdout).ok().filter(|url| {
        (url.starts_with("https://") || url.starts_with("http://"))
            && url.bytes().all(|b| b.is_ascii_graphic())
    });
    url.ok_or_else(|| {
        let answer = String::from_utf8_lossy(stdout);
        MiseError::BadUrl {
            spec: spec.to_owned(),
            answer: answer.trim().chars().take(200).collect(),
        }
    })
}
