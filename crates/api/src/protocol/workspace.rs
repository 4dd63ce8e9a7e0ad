//! Parameters and results of the workspace methods (SPEC §10):
//! `vm.workspace.plan`, `vm.workspace.prepare`, `vm.workspace.export`.

use serde::{Deserialize, Serialize};

use super::Workspace;

/// A commit id shortened for messages (12 hex digits, as git would).
pub fn short_commit(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Which repository and what of it to ship: shared by plan and prepare.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSource {
    /// Absolute path of the repository (or a directory inside it) on the host.
    pub path: String,
    /// Also ship untracked files that are not ignored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_untracked: bool,
    /// Base commit (commit-ish); the checked-out HEAD when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Branch the guest's checkout is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// `vm.workspace.plan`'s answer: what would ship, nothing created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspacePlan {
    /// The repository's top level on the host.
    pub root: String,
    pub base_commit: String,
    /// The guest's branch; absent means a detached checkout.
    pub branch: Option<String>,
    /// The host's uncommitted work is laid over the base commit.
    pub overlay: bool,
    /// Every file of the guest's working tree, relative to the repository.
    pub files: Vec<String>,
    /// Untracked, non-ignored files left out (no `include_untracked`).
    pub untracked_skipped: usize,
    /// `.mise.toml` or `.tool-versions`, when the repository has one.
    pub tooling: Option<String>,
    /// Where the workspace goes in the guest unless told otherwise.
    pub default_guest_path: String,
}

/// `vm.workspace.prepare`: ship a repository into a running VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePrepareParams {
    pub vm: String,
    pub source: WorkspaceSource,
    /// Absolute path under `/root/`; `/root/<repository directory name>`
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_path: Option<String>,
    /// Skip installing the tools `.mise.toml`/`.tool-versions` ask for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_bootstrap: bool,
}

/// `vm.workspace.prepare`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspacePrepared {
    pub workspace: Workspace,
    /// Files in the guest's working tree.
    pub files: usize,
    /// Size of the archive sent.
    pub bytes: u64,
    pub untracked_skipped: usize,
    /// What the tooling bootstrap did, when the repository asked for one.
    pub bootstrap: Option<String>,
    pub duration_s: f64,
}

/// `vm.workspace.export`: the guest workspace's changes as a binary git
/// patch, sent as stdout [`super::Outcome::Output`] lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceExportParams {
    pub vm: String,
    /// Diff against this commit instead of the workspace's base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
}

/// `vm.workspace.export`'s answer, after the patch itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceExported {
    pub base_commit: String,
    pub guest_path: String,
    /// Size of the patch; 0 means nothing changed.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_commit_keeps_twelve_digits_or_the_whole_id() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(super::short_commit(id), "0123456789ab");
        assert_eq!(super::short_commit("abc"), "abc");
    }
}
