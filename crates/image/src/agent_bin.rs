//! Finding the static `banger-agent` that kernels and images embed: it runs
//! as PID 1 of the initramfs, where there is no C library to load, so a
//! dynamically linked build is refused up front rather than failing at boot.

use std::path::{Path, PathBuf};

/// Where the system install puts the agent (SPEC §2).
const SYSTEM_AGENT: &str = "/usr/local/lib/banger/banger-agent";
/// Overrides the search (development builds, tests).
pub const AGENT_ENV: &str = "BANGER_AGENT_BIN";

#[derive(Debug, thiserror::Error)]
pub enum AgentBinError {
    #[error(
        "no banger-agent found (looked at ${AGENT_ENV}, {SYSTEM_AGENT}, next to bangerd and in ../lib/banger from it); \
         build one with crates/agent/build-static.sh and set {AGENT_ENV} to its path"
    )]
    NotFound,
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an x86-64 ELF executable")]
    NotElf { path: PathBuf },
    #[error(
        "{path} is dynamically linked, but the agent runs where no C library exists; \
         build it with crates/agent/build-static.sh"
    )]
    Dynamic { path: PathBuf },
}

/// The agent to embed: `$BANGER_AGENT_BIN`, the system install's copy, or
/// the one beside this executable; checked to be static.
pub fn find_agent() -> Result<PathBuf, AgentBinError> {
    // Beside bangerd (a build tree), or where an install under another
    // root puts it relative to bangerd (`bin/` and `lib/banger/`).
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let beside = exe_dir
        .iter()
        .flat_map(|d| [d.join("banger-agent"), d.join("../lib/banger/banger-agent")]);
    let path = std::env::var_os(AGENT_ENV)
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(SYSTEM_AGENT)])
        .chain(beside)
        .find(|p| p.is_file())
        .ok_or(AgentBinError::NotFound)?;
    check_static(&path)?;
    Ok(path)
}

/// A static executable has no `PT_INTERP` program header.
pub fn check_static(path: &Path) -> Result<(), AgentBinError> {
    let bytes = std::fs::read(path).map_err(|source| AgentBinError::Read {
        path: path.to_owned(),
        source,
    })?;
    let not_elf = || AgentBinError::NotElf {
        path: path.to_owned(),
    };
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    // ELF magic, 64-bit, little-endian, x86-64 (machine 62).
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") || u16_at(18) != Some(62) {
        return Err(not_elf());
    }
    let phoff = u64_at(32).ok_or_else(not_elf)? as usize;
    let phentsize = u16_at(54).ok_or_else(not_elf)? as usize;
    let phnum = u16_at(56).ok_or_else(not_elf)? as usize;
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).ok_or_else(not_elf)?;
        if p_type == PT_INTERP {
            return Err(AgentBinError::Dynamic {
                path: path.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_system_binary_is_refused() {
        // Debian's coreutils are dynamically linked.
        let err = check_static(Path::new("/bin/ls")).unwrap_err();
        assert!(matches!(err, AgentBinError::Dynamic { .. }), "{err}");
    }

    #[test]
    fn non_elf_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("script");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        assert!(matches!(
            check_static(&f),
            Err(AgentBinError::NotElf { .. })
        ));
    }

    #[test]
    fn a_static_binary_passes() {
        // ldconfig is static on Debian; skip quietly where it is not.
        let ldconfig = Path::new("/sbin/ldconfig");
        let out = std::process::Command::new("file").arg(ldconfig).output();
        match out {
            Ok(o) if String::from_utf8_lossy(&o.stdout).contains("static") => {
                check_static(ldconfig).unwrap();
            }
            _ => eprintln!("skipped: no static /sbin/ldconfig or no `file` here"),
        }
    }
}
