//! Live names for shell completion: the VMs, images and kernels the daemon
//! knows right now, offered when a shell completes an argument that takes
//! one (`clap_complete`'s dynamic engine calls back into `banger`).
//!
//! A completion runs on every Tab, so the lookup must be harmless: it only
//! connects to a daemon that is already running (never starts one, unlike
//! the other commands in development mode), gives up after
//! [`LOOKUP_LIMIT`], prints nothing, and answers "no candidates" on any
//! error. The names are data a guest or another user could have chosen, and
//! the shell inserts them into the command line, so only plain names are
//! offered (see [`is_plain_name`]).

use std::path::Path;
use std::time::Duration;

use banger_api::protocol::{NoParams, Request};
use banger_config::{PathEnv, Paths};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::client::Client;

/// How long one lookup may take before the shell gets no candidates.
pub(crate) const LOOKUP_LIMIT: Duration = Duration::from_secs(1);

/// Longer names are not worth offering (and no banger name is that long).
const MAX_NAME: usize = 128;

/// Which list a candidate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Vm,
    Image,
    Kernel,
}

impl Kind {
    fn request(self) -> Request {
        match self {
            Kind::Vm => Request::VmList(NoParams {}),
            Kind::Image => Request::ImageList(NoParams {}),
            Kind::Kernel => Request::KernelList(NoParams {}),
        }
    }
}

/// Completes a VM argument with the names of the daemon's VMs.
pub(crate) fn vms() -> ArgValueCandidates {
    ArgValueCandidates::new(|| live(Kind::Vm))
}

/// Completes an image argument with the names of the daemon's images.
pub(crate) fn images() -> ArgValueCandidates {
    ArgValueCandidates::new(|| live(Kind::Image))
}

/// Completes a kernel argument with the names of the daemon's kernels.
pub(crate) fn kernels() -> ArgValueCandidates {
    ArgValueCandidates::new(|| live(Kind::Kernel))
}

/// Completes a fixed list of (name, what it is), for arguments whose values
/// the CLI itself knows; shells that show descriptions show the second.
pub(crate) fn fixed(names: &'static [(&'static str, &'static str)]) -> ArgValueCandidates {
    ArgValueCandidates::new(move || {
        names
            .iter()
            .map(|(name, help)| CompletionCandidate::new(*name).help(Some((*help).into())))
            .collect()
    })
}

/// The names for this process's daemon: the socket comes from the same
/// layout every command resolves, but nothing is created or started.
fn live(kind: Kind) -> Vec<CompletionCandidate> {
    let Ok(paths) = Paths::resolve(&PathEnv::from_process()) else {
        return Vec::new();
    };
    names(&paths.socket, kind, LOOKUP_LIMIT)
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// Only the `name` of each listed item is read, so a record this CLI reads
/// differently (another release's fields) still yields its name.
#[derive(serde::Deserialize)]
struct Named {
    name: String,
}

/// The plain names the daemon at `socket` lists for `kind`, in its order;
/// empty if nobody answers there within `limit` or the answer is not a list.
pub(crate) fn names(socket: &Path, kind: Kind, limit: Duration) -> Vec<String> {
    let client = Client::new(socket).with_limit(limit);
    // Stages would go to stderr in the middle of the user's prompt.
    let listed: Result<Vec<Named>, _> = client.call_with(kind.request(), &mut |_| {});
    let Ok(listed) = listed else {
        return Vec::new();
    };
    listed
        .into_iter()
        .map(|n| n.name)
        .filter(|n| is_plain_name(n))
        .collect()
}

/// `[A-Za-z0-9._-]`, not starting with `-`, at most [`MAX_NAME`] bytes.
/// Anything else could split into several words, expand, or end the line in
/// the shell's hands (bash separates candidates by `\v`, zsh reads `:` as a
/// description), or be taken for an option.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests;
