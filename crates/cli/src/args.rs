//! The command line, declared once; `completion` generates shell scripts
//! from the same declaration.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "banger",
    version = banger_api::build_info::VERSION_DETAIL,
    about = "One-command development sandboxes on microVMs",
    long_about = "banger gives you a fresh Linux machine in one command: a microVM with its own \
                  kernel, systemd, sshd and Docker, on your own host.",
    after_help = "Start with `banger doctor` to check this host, then `banger vm list`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version, commit and build time.
    Version,
    /// Check whether this host is ready to run banger VMs (read-only).
    #[command(
        after_help = "Each row is PASS, WARN or FAIL; the exit status is 1 if any row is FAIL.\n\
                            Fix FAIL rows first; WARN rows say what works in a degraded way."
    )]
    Doctor(JsonFlag),
    /// Create, inspect and manage VMs.
    #[command(subcommand)]
    Vm(VmCommand),
    /// List VMs (the same as `banger vm list`).
    Ps(JsonFlag),
    /// Print a shell completion script.
    #[command(
        after_help = "Example: banger completion bash > ~/.local/share/bash-completion/completions/banger"
    )]
    Completion { shell: Shell },
    /// Inspect the daemon.
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Print banger's ssh config (`Host *.vm`), or add it to ~/.ssh/config.
    #[command(
        name = "ssh-config",
        after_help = "With --install, plain `ssh NAME.vm` uses banger's key and pinned host keys.\n\
                      --uninstall removes exactly the block --install added."
    )]
    SshConfig {
        /// Add a marked Include block to ~/.ssh/config (idempotent).
        #[arg(long, conflicts_with = "uninstall")]
        install: bool,
        /// Remove that block, and nothing else.
        #[arg(long)]
        uninstall: bool,
    },
    /// Manage kernels: pull the default one from Debian, import your own.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Manage root filesystem images: build the default one from Debian, register your own.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// List kernels in the store (name, version, size, source).
    #[command(visible_alias = "ls")]
    List {
        /// List the kernels `kernel pull` can fetch instead.
        #[arg(long)]
        available: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show one kernel.
    Show {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Fetch a kernel: `debian-cloud-amd64` comes from Debian's signed archive.
    #[command(
        after_help = "Example: banger kernel pull debian-cloud-amd64\nThen: `banger kernel show debian-cloud-amd64`."
    )]
    Pull {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a kernel from the store.
    #[command(visible_alias = "remove")]
    Rm { name: String },
    /// Import a kernel from a directory (vmlinux or bzImage, optional initrd and modules/).
    Import {
        name: String,
        #[arg(long, value_name = "DIR")]
        from: std::path::PathBuf,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images in the store (name, kind, size, source).
    #[command(visible_alias = "ls")]
    List(JsonFlag),
    /// Show one image.
    Show {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Build the default image from a Debian mirror (needs root). An unchanged recipe is not rebuilt.
    #[command(
        after_help = "Example: banger image build --variant minimal\nThen: `banger image show debian-bookworm`."
    )]
    Build {
        /// Image name.
        #[arg(default_value = "debian-bookworm")]
        name: String,
        /// `full`: systemd, sshd, Docker; `minimal`: no systemd, the agent is init (fast boots).
        #[arg(long, value_enum, default_value_t = Variant::Full)]
        variant: Variant,
        /// Rebuild even if the recipe is unchanged.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete an image (a registered image's files stay where they are).
    #[command(visible_alias = "rm")]
    Delete { name: String },
    /// Register an existing ext4 root filesystem in place, without copying it.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "FILE")]
        rootfs: std::path::PathBuf,
        #[arg(long, value_name = "KERNEL")]
        kernel_ref: Option<String>,
    },
    /// Copy a registered (unmanaged) image into banger's managed storage.
    Promote { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Variant {
    Full,
    Minimal,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// List VMs: ID NAME STATE IMAGE IP VCPU MEM DISK WORKSPACE CREATED.
    #[command(
        visible_alias = "ls",
        after_help = "Then: `banger vm show <name>` for one VM's details."
    )]
    List(JsonFlag),
    /// Show one VM in detail.
    #[command(after_help = "VM is a name or a unique prefix of the VM's ID.")]
    Show {
        /// Name or unique ID prefix.
        vm: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Check that the daemon answers, and print its version and pid.
    Ping(JsonFlag),
    /// List in-flight and recently finished long operations with their stage.
    Operations {
        /// How many finished operations to include.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    /// Print JSON (a stable, documented shape) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn declaration_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_vm_show() {
        let cli = Cli::try_parse_from(["banger", "vm", "show", "dev", "--json"]).unwrap();
        assert!(
            matches!(cli.command, Command::Vm(VmCommand::Show { ref vm, json: JsonFlag { json: true } }) if vm == "dev")
        );
    }

    #[test]
    fn rejects_unknown_shell() {
        assert!(Cli::try_parse_from(["banger", "completion", "powershell"]).is_err());
    }
}
