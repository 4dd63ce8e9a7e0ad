//! Network namespaces, for tests that create bridges, taps and firewall rules:
//! they run inside a namespace they create and remove, never on the host's
//! own interfaces or rules.

use std::fs::File;
use std::path::PathBuf;

use crate::process::{Cmd, ProcessError};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot switch the current thread into network namespace {name}")]
    Enter {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// A named network namespace (`ip netns add`), deleted on drop. While a
/// [`NetnsGuard::enter`] guard lives, the calling thread and every process or
/// thread it starts live in the namespace; other threads are unaffected.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `banger-<tag>-<pid>` with its loopback up.
    pub fn create(tag: &str) -> Result<Netns, NetnsError> {
        let name = format!("banger-{tag}-{}", std::process::id());
        // A namespace left by a crashed earlier run of the same pid is stale.
        let _ = Cmd::new("ip").args(["netns", "del", &name]).run();
        Cmd::new("ip").args(["netns", "add", &name]).run()?;
        let ns = Netns { name };
        Cmd::new("ip")
            .args(["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])
            .run()?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs inside the namespace (`ip netns exec`).
    pub fn cmd(&self, program: &str) -> Cmd {
        Cmd::new("ip").args(["netns", "exec", &self.name, program])
    }

    /// Moves the calling thread into the namespace until the guard drops.
    pub fn enter(&self) -> Result<NetnsGuard, NetnsError> {
        let open =
            |path: PathBuf| File::open(&path).map_err(|source| NetnsError::Open { path, source });
        let tid = rustix::thread::gettid().as_raw_nonzero();
        let original = open(PathBuf::from(format!("/proc/self/task/{tid}/ns/net")))?;
        let target = open(PathBuf::from(format!("/run/netns/{}", self.name)))?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&target),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| NetnsError::Enter {
            name: self.name.clone(),
            source: e.into(),
        })?;
        Ok(NetnsGuard { original })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = Cmd::new("ip").args(["netns", "del", &self.name]).run() {
            tracing::warn!(error = %e, "cannot delete test network namespace");
        }
    }
}

/// Returns the thread to its original namespace on drop.
pub struct NetnsGuard {
    original: File,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let back = rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&self.original),
            Some(rustix::thread::LinkNameSpaceType::Network),
        );
        if let Err(e) = back {
            tracing::error!(error = %e, "cannot return to the original network namespace");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> String {
        Cmd::new("ip")
            .args(["-o", "link"])
            .run()
            .unwrap()
            .stdout_str()
    }

    #[test]
    fn entering_isolates_the_thread_and_its_children() {
        if !crate::os::is_root() {
            eprintln!("skipped: network namespaces need root");
            return;
        }
        let ns = Netns::create("sys-test").unwrap();
        let host = links();
        {
            let _in = ns.enter().unwrap();
            Cmd::new("ip")
                .args(["link", "add", "bgtest0", "type", "bridge"])
                .run()
                .unwrap();
            let inside = links();
            assert!(inside.contains("bgtest0"), "{inside}");
            assert!(
                inside.lines().count() == 2,
                "only lo and the bridge: {inside}"
            );
        }
        assert!(!links().contains("bgtest0"), "the host never saw it");
        assert_eq!(links(), host);
        assert!(ns.cmd("ip").args(["link", "show", "bgtest0"]).run().is_ok());
        let name = ns.name().to_owned();
        drop(ns);
        assert!(!std::path::Path::new(&format!("/run/netns/{name}")).exists());
    }
}
