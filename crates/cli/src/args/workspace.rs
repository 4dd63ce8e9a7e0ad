//! `vm run [PATH]`, `vm workspace`, and the repository selection they share.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `vm run`'s arguments.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("workspace_flags").multiple(true).requires("path")
    .args(["include_untracked", "from", "branch", "no_bootstrap", "dry_run"])))]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: super::VmSpecArgs,
    /// A git repository (or a directory inside one) to copy into the VM.
    pub path: Option<PathBuf>,
    /// Delete the VM when the command or session ends (not if it never became reachable).
    #[arg(long)]
    pub rm: bool,
    /// Prepare the VM (and workspace) and leave it running, without a session.
    #[arg(short, long, conflicts_with_all = ["rm", "cmd"])]
    pub detach: bool,
    #[command(flatten)]
    pub source: WorkspaceArgs,
    /// Skip installing the tools .mise.toml/.tool-versions ask for.
    #[arg(long)]
    pub no_bootstrap: bool,
    /// List the files that would be copied, and create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The command to run (in the workspace with PATH, else in /root); without one, an
    /// interactive ssh session.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// What of a repository to copy (SPEC §10).
#[derive(Debug, Clone, Default, Args)]
pub struct WorkspaceArgs {
    /// Also copy untracked files that are not ignored (ignored files never are).
    #[arg(long)]
    pub include_untracked: bool,
    /// Base commit (commit-ish, default HEAD). Uncommitted changes are laid over it only
    /// when it is the commit checked out.
    #[arg(long, value_name = "COMMIT")]
    pub from: Option<String>,
    /// Branch the VM's checkout is on (default: your current branch, or detached).
    #[arg(long)]
    pub branch: Option<String>,
}

impl WorkspaceArgs {
    pub fn into_source(self, path: String) -> banger_api::protocol::WorkspaceSource {
        banger_api::protocol::WorkspaceSource {
            path,
            include_untracked: self.include_untracked,
            from: self.from,
            branch: self.branch,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Copy a git repository into a running VM: a shallow clone of the base commit with
    /// your uncommitted changes laid over it.
    #[command(after_help = "Example: banger vm workspace prepare dev ./repo\n\
                      Then: `banger vm exec dev -- make test` runs in it; \
                      `banger vm workspace export dev > changes.patch` brings changes back.")]
    Prepare {
        #[arg(add = crate::candidates::vms())]
        vm: String,
        path: PathBuf,
        #[command(flatten)]
        source: WorkspaceArgs,
        /// Where in the guest (under /root/; default /root/<repository directory name>).
        #[arg(long, value_name = "P")]
        guest_path: Option<String>,
        /// Skip installing the tools .mise.toml/.tool-versions ask for.
        #[arg(long)]
        no_bootstrap: bool,
        /// List the files that would be copied, and copy nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the VM workspace's changes (commits, edits, new files) as a binary git patch.
    #[command(after_help = "The guest's staging area is left as it is.\n\
                      Example: banger vm workspace export dev --output changes.patch\n\
                      Then: `git apply --index changes.patch` in your repository.")]
    Export {
        #[arg(add = crate::candidates::vms())]
        vm: String,
        /// Diff against this commit instead of the workspace's base.
        #[arg(long, value_name = "SHA")]
        base_commit: Option<String>,
        /// Write the patch here instead of stdout (replaced only once it is complete).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}
