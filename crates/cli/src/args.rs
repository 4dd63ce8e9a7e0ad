//! The command line, declared once. Shell completion and the man pages
//! come from the same declaration; arguments that name a VM, image or
//! kernel carry a live candidate list (`add = candidates::...`).

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::candidates;

mod workspace;
pub use workspace::{RunArgs, WorkspaceArgs, WorkspaceCommand};

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
        after_help = "The script calls `banger` back to complete, VM, image and kernel names included.\n\
                      Example: banger completion bash > ~/.local/share/bash-completion/completions/banger"
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
    /// List, show and delete VM snapshots (`banger vm snapshot` takes one).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Manage root filesystem images: build the default one from Debian, register your own.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Update a system install to a newer release (signed, verified, rolled back on failure).
    #[command(
        after_help = "Example: sudo banger update --check, then sudo banger update\n\
                            Running VMs keep running; the previous programs stay as *.previous."
    )]
    Update(UpdateArgs),
    /// Install banger system-wide (two services), or check, restart or remove that install.
    #[command(subcommand)]
    System(SystemCommand),
}

/// `banger update`'s options.
#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// Only say whether a newer release is available.
    #[arg(long)]
    pub check: bool,
    /// Install this version instead of the latest.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Download, verify and try the new programs, then stop without installing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Update even while operations are in flight (they are cancelled).
    #[arg(long)]
    pub force: bool,
    /// Tests only: verify the manifest with this ed25519 key (base64) instead of the pinned one.
    #[arg(long, hide = true, value_name = "BASE64")]
    pub release_key: Option<String>,
    /// Tests only: the install lives under DIR instead of /.
    #[arg(long, hide = true, value_name = "DIR")]
    pub install_root: Option<std::path::PathBuf>,
}

/// `banger system install`'s options.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// The account the daemon runs as, the only one besides root that may use it.
    #[arg(long, value_name = "USER")]
    pub owner: String,
    /// The static guest agent to install (default: $BANGER_AGENT_BIN, else the one beside bangerd).
    #[arg(long, value_name = "PATH")]
    pub agent: Option<std::path::PathBuf>,
    /// Where `banger update` finds the signed release manifest.
    #[arg(long, value_name = "URL")]
    pub release_url: Option<String>,
    /// Write the files under DIR instead of / and start nothing (for packaging).
    #[arg(long, value_name = "DIR")]
    pub destdir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Install for USER: programs, the bangerd and bangerd-root services, completions, man pages.
    #[command(after_help = "Example: sudo banger system install --owner \"$USER\"\n\
                            Then, as that user and without sudo: banger doctor; banger vm run -- uname -a\n\
                            Running it again updates the install in place; running VMs keep running.")]
    Install(InstallArgs),
    /// Stop the VMs and both services and remove the install.
    #[command(
        after_help = "Without --purge, VMs, images, kernels and config stay in /var/lib/banger \
                            and /etc/banger for a later install."
    )]
    Uninstall {
        /// Also remove every VM, image and kernel, the cache, config and the owner's banger files.
        #[arg(long)]
        purge: bool,
    },
    /// Show the installed version, both services, the sockets and whether the daemon answers.
    #[command(after_help = "Exit status 1 when something is not as it should be.")]
    Status(JsonFlag),
    /// Restart both services; running VMs keep running and are adopted.
    Restart,
}

/// Kernels `kernel pull` knows how to fetch, with what each is.
pub const PULLABLE_KERNELS: [(&str, &str); 1] = [(
    "debian-cloud-amd64",
    "Debian bookworm linux-image-cloud-amd64, from the configured Debian mirror",
)];

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List snapshots with their size on disk and the VMs restored from them.
    #[command(visible_alias = "ls")]
    List(JsonFlag),
    /// Show one snapshot.
    Show {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete a snapshot (refused while VMs restored from it exist).
    #[command(visible_alias = "rm")]
    Delete { name: String },
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
        #[arg(add = candidates::kernels())]
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Fetch a kernel: `debian-cloud-amd64` comes from Debian's signed archive.
    #[command(
        after_help = "Example: banger kernel pull debian-cloud-amd64\nThen: `banger kernel show debian-cloud-amd64`."
    )]
    Pull {
        #[arg(add = candidates::fixed(&PULLABLE_KERNELS))]
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a kernel from the store.
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(add = candidates::kernels())]
        name: String,
    },
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
        #[arg(add = candidates::images())]
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
    Delete {
        #[arg(add = candidates::images())]
        name: String,
    },
    /// Register an existing ext4 root filesystem in place, without copying it.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "FILE")]
        rootfs: std::path::PathBuf,
        #[arg(long, value_name = "KERNEL", add = candidates::kernels())]
        kernel_ref: Option<String>,
    },
    /// Copy a registered (unmanaged) image into banger's managed storage.
    Promote {
        #[arg(add = candidates::images())]
        name: String,
    },
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
        #[arg(add = candidates::vms())]
        vm: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Create a VM and boot it until ssh answers (or only prepare it, with --no-start).
    #[command(
        after_help = "Example: banger vm create --name dev --memory 2048 --nat\n\
                      Then: `banger vm ssh dev`, `banger vm exec dev -- uname -a`, `banger vm stop dev`, `banger vm delete dev`."
    )]
    Create {
        #[command(flatten)]
        spec: VmSpecArgs,
        /// Prepare the disks and record the VM without booting it; `banger vm start` boots it.
        #[arg(long)]
        no_start: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Boot stopped VMs again (their disks are kept).
    #[command(after_help = SEVERAL_VMS)]
    Start {
        #[arg(required = true, value_name = "VM", add = candidates::vms())]
        vms: Vec<String>,
    },
    /// Power VMs off through the guest; data written before is on disk.
    #[command(after_help = SEVERAL_VMS)]
    Stop {
        #[arg(required = true, value_name = "VM", add = candidates::vms())]
        vms: Vec<String>,
    },
    /// Stop VMs, then boot them again (a VM that is not running is just started).
    #[command(after_help = SEVERAL_VMS)]
    Restart {
        #[arg(required = true, value_name = "VM", add = candidates::vms())]
        vms: Vec<String>,
    },
    /// Stop VMs at once, without asking the guest.
    #[command(after_help = SEVERAL_VMS)]
    Kill {
        #[arg(required = true, value_name = "VM", add = candidates::vms())]
        vms: Vec<String>,
    },
    /// Delete VMs (stopping them first) with their disks, address and host keys.
    #[command(visible_alias = "rm", after_help = SEVERAL_VMS)]
    Delete {
        #[arg(required = true, value_name = "VM", add = candidates::vms())]
        vms: Vec<String>,
    },
    /// Delete every VM that is not running (created, stopped or failed).
    #[command(
        after_help = "Lists the VMs and asks before deleting them; without a terminal to ask on, \
                      it refuses unless -f is given.\nThen: `banger vm list` shows what is left."
    )]
    Prune {
        /// Delete without asking.
        #[arg(short, long)]
        force: bool,
    },
    /// Change VMs' vCPUs, memory, work disk size or NAT.
    #[command(
        group(clap::ArgGroup::new("change").required(true).multiple(true)
            .args(["vcpu", "memory", "disk_size", "nat", "no_nat"])),
        override_usage = "banger vm set <VM>... [--vcpu N] [--memory MIB] [--disk-size SIZE] [--nat|--no-nat]",
        after_help = "vCPUs, memory and disk size change only while the VM is stopped (run \
                      `banger vm stop VM` first); they apply at its next start. The work disk \
                      only grows: its filesystem is grown with it. NAT switches at once, also on \
                      a running VM.\nExample: banger vm set dev --memory 4096 --disk-size 16G"
    )]
    Set {
        #[arg(required = true, value_name = "VM", add = candidates::vms())]
        vms: Vec<String>,
        /// Number of virtual CPUs.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        vcpu: Option<u32>,
        /// Memory in MiB.
        #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
        memory: Option<u64>,
        /// New work disk size, e.g. 16G; larger than the current one.
        #[arg(long, value_name = "SIZE")]
        disk_size: Option<banger_api::model::ByteSize>,
        /// Let the guest reach beyond the host.
        #[arg(long, conflicts_with = "no_nat")]
        nat: bool,
        /// Only the host is reachable from the guest.
        #[arg(long)]
        no_nat: bool,
    },
    /// Print a VM's logs: the VMM's own log, then the guest's serial console.
    #[command(
        after_help = "Each log is printed under a `==> ... <==` header. Only the last 512 KiB \
                      of each is printed (a guest can fill its console); the rest is in the \
                      file the header names. With -f, new lines follow until Ctrl-C, under a \
                      new header whenever the log they come from changes."
    )]
    Logs {
        #[arg(add = candidates::vms())]
        vm: String,
        /// Keep printing what is appended.
        #[arg(short, long)]
        follow: bool,
    },
    /// Show a VM's resource use: VMM CPU time and memory, guest uptime, disk usage.
    Stats {
        #[arg(add = candidates::vms())]
        vm: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List the sockets VMs listen on, as NAME.vm:PORT, with an http:// link where one answers HTTP.
    #[command(
        after_help = "Sockets on loopback only are listed but cannot be reached from the host.\n\
                      --json prints an array with one entry per VM, in the order given.\n\
                      Then: `curl http://NAME.vm:PORT/`."
    )]
    Ports {
        #[arg(required = true, value_name = "VM", add = candidates::vms())]
        vms: Vec<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Save a running VM's memory, devices and disks as a snapshot; the VM keeps running.
    #[command(after_help = "Example: banger vm snapshot dev --name base
                      Then: `banger vm restore base --name dev2` starts a copy with its own name,                       address, MAC, machine-id and host key.")]
    Snapshot {
        #[arg(add = candidates::vms())]
        vm: String,
        /// The snapshot's name (a DNS label); generated when omitted.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Make N running copies of a running VM, each with its own identity; the VM runs on.
    #[command(
        after_help = "Example: banger vm fork dev -n 3   (children dev-1, dev-2, dev-3)\n\
                      Each child has the VM's memory, disks and workspace as they are now, its own \
                      name, address, MAC, machine-id and host key, and answers as NAME.vm."
    )]
    Fork {
        #[arg(add = candidates::vms())]
        vm: String,
        /// How many children.
        #[arg(short = 'n', long = "count", value_name = "N")]
        count: u32,
        /// Children are PREFIX-1 to PREFIX-N (default: the VM's name).
        #[arg(long, value_name = "PREFIX")]
        name_prefix: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Start a new VM from a snapshot, with a fresh identity.
    #[command(after_help = "Example: banger vm restore base --name dev2")]
    Restore {
        /// The snapshot (`banger snapshot list`).
        snapshot: String,
        /// The new VM's name; generated when omitted.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Open a shell in a VM (or run ssh ARGS) with banger's key and the pinned host key.
    #[command(after_help = "Example: banger vm ssh dev -- uname -a")]
    Ssh {
        #[arg(add = candidates::vms())]
        vm: String,
        /// Passed to ssh after the host (a remote command, for example).
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Create a VM and open a shell in it, or run CMD in it and exit with its status.
    #[command(
        after_help = "With PATH, the git repository there is copied into the VM (a shallow clone of \
                      its HEAD with your uncommitted changes laid over it) and CMD runs in it.\n\
                      Examples:\n  banger vm run --rm -- make test\n  banger vm run ./repo -- make test\n  \
                      banger vm run --name scratch\n\
                      Then: `banger vm workspace export NAME > changes.patch` brings the VM's changes back."
    )]
    Run(RunArgs),
    /// Run a command in a VM; exits with the command's status.
    #[command(
        after_help = "In a VM with a workspace the command runs there, through a login shell.\n\
                      Example: banger vm exec dev -- sh -c 'echo hi; exit 7'"
    )]
    Exec {
        #[arg(add = candidates::vms())]
        vm: String,
        /// Working directory in the guest (default: the workspace, else /root).
        #[arg(long, visible_alias = "cwd", value_name = "P")]
        guest_path: Option<String>,
        /// Without a workspace in the VM, first copy the repository of the current directory.
        #[arg(long)]
        auto_prepare: bool,
        /// Seconds before the command is killed.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Copy a git repository into a VM, or get the VM's changes back as a patch.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
}

const SEVERAL_VMS: &str = "Give several VMs (names or unique ID prefixes) to act on them at once; \
                           each gets one line, in the order given, and the exit status is 1 if any failed.";

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

/// What a new VM should be: shared by `vm create` and `vm run`.
#[derive(Debug, Clone, Args)]
pub struct VmSpecArgs {
    /// A DNS label ([a-z0-9-], 1-63 chars); generated when absent.
    #[arg(long)]
    pub name: Option<String>,
    /// Image name (default: `default_image_name` from config).
    #[arg(long, add = candidates::images())]
    pub image: Option<String>,
    /// Virtual CPUs.
    #[arg(long)]
    pub vcpu: Option<u32>,
    /// Memory in MiB.
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u64>,
    /// Work disk size, e.g. 8G.
    #[arg(long, value_name = "SIZE")]
    pub disk_size: Option<banger_api::model::ByteSize>,
    /// Let the guest reach beyond the host (masquerade through the host).
    #[arg(long)]
    pub nat: bool,
    /// Boot even when a warm snapshot of this kind of VM exists (and bake none).
    #[arg(long)]
    pub cold: bool,
}

impl VmSpecArgs {
    pub fn into_params(self) -> banger_api::protocol::VmCreateParams {
        banger_api::protocol::VmCreateParams {
            name: self.name,
            image: self.image,
            vcpu: self.vcpu,
            memory_mib: self.memory,
            disk_size: self.disk_size,
            nat: self.nat,
            no_start: false,
            cold: self.cold,
        }
    }
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
    fn parses_vm_create_and_exec() {
        let cli = Cli::try_parse_from([
            "banger",
            "vm",
            "create",
            "--name",
            "dev",
            "--memory",
            "1024",
            "--disk-size",
            "4G",
            "--nat",
        ])
        .unwrap();
        let Command::Vm(VmCommand::Create { spec, .. }) = cli.command else {
            panic!("not create");
        };
        let VmSpecArgs {
            name,
            memory,
            disk_size,
            nat,
            vcpu,
            ..
        } = spec;
        assert_eq!(name.as_deref(), Some("dev"));
        assert_eq!((memory, vcpu, nat), (Some(1024), None, true));
        assert_eq!(disk_size.unwrap().to_string(), "4G");
        let cli = Cli::try_parse_from(["banger", "vm", "exec", "dev", "--", "sh", "-c", "exit 7"])
            .unwrap();
        let Command::Vm(VmCommand::Exec { vm, cmd, .. }) = cli.command else {
            panic!("not exec");
        };
        assert_eq!(vm, "dev");
        assert_eq!(cmd, ["sh", "-c", "exit 7"]);
        assert!(Cli::try_parse_from(["banger", "vm", "exec", "dev"]).is_err());
        assert!(Cli::try_parse_from(["banger", "vm", "stop"]).is_err());
        let cli =
            Cli::try_parse_from(["banger", "vm", "run", "--rm", "--image", "i", "--", "true"])
                .unwrap();
        let Command::Vm(VmCommand::Run(RunArgs {
            spec,
            rm,
            cmd,
            path,
            ..
        })) = cli.command
        else {
            panic!("not run");
        };
        assert!(rm && cmd == ["true"] && spec.image.as_deref() == Some("i") && path.is_none());
    }

    #[test]
    fn run_takes_a_repository_and_its_flags_only_with_one() {
        let cli = Cli::try_parse_from([
            "banger",
            "vm",
            "run",
            "./repo",
            "--include-untracked",
            "--from",
            "HEAD~1",
            "--branch",
            "fix",
            "--",
            "make",
            "test",
        ])
        .unwrap();
        let Command::Vm(VmCommand::Run(RunArgs {
            path, source, cmd, ..
        })) = cli.command
        else {
            panic!("not run");
        };
        assert_eq!(path.as_deref(), Some(std::path::Path::new("./repo")));
        assert!(source.include_untracked);
        assert_eq!(source.from.as_deref(), Some("HEAD~1"));
        assert_eq!(source.branch.as_deref(), Some("fix"));
        assert_eq!(cmd, ["make", "test"]);
        for flags in [
            &["--dry-run"][..],
            &["--include-untracked"],
            &["--from", "HEAD"],
            &["--no-bootstrap"],
        ] {
            let argv = ["banger", "vm", "run"].iter().chain(flags);
            assert!(Cli::try_parse_from(argv).is_err(), "{flags:?} without PATH");
        }
        for bad in [
            &["banger", "vm", "run", "-d", "--rm"][..],
            &["banger", "vm", "run", "-d", "--", "true"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        assert!(Cli::try_parse_from(["banger", "vm", "run", ".", "-d"]).is_ok());
    }

    #[test]
    fn parses_set_and_refuses_what_it_cannot_be() {
        let cli = Cli::try_parse_from([
            "banger",
            "vm",
            "set",
            "a",
            "b",
            "--vcpu",
            "4",
            "--disk-size",
            "16G",
            "--no-nat",
        ])
        .unwrap();
        let Command::Vm(VmCommand::Set {
            vms,
            vcpu,
            memory,
            disk_size,
            nat,
            no_nat,
        }) = cli.command
        else {
            panic!("not set");
        };
        assert_eq!(vms, ["a", "b"]);
        assert_eq!((vcpu, memory, nat, no_nat), (Some(4), None, false, true));
        assert_eq!(disk_size.unwrap().to_string(), "16G");
        for bad in [
            &["banger", "vm", "set", "a"][..],
            &["banger", "vm", "set", "a", "--vcpu", "0"],
            &["banger", "vm", "set", "a", "--memory", "-5"],
            &["banger", "vm", "set", "a", "--disk-size", "0G"],
            &["banger", "vm", "set", "a", "--nat", "--no-nat"],
            &["banger", "vm", "set", "--vcpu", "2"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_prune_logs_stats_ports_restart() {
        let force = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Vm(VmCommand::Prune { force }) => force,
            other => panic!("{other:?}"),
        };
        assert!(force(&["banger", "vm", "prune", "-f"]));
        assert!(force(&["banger", "vm", "prune", "--force"]));
        assert!(!force(&["banger", "vm", "prune"]));
        let cli = Cli::try_parse_from(["banger", "vm", "logs", "dev", "-f"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Vm(VmCommand::Logs { follow: true, .. })
        ));
        let cli = Cli::try_parse_from(["banger", "vm", "ports", "a", "b", "--json"]).unwrap();
        assert!(
            matches!(cli.command, Command::Vm(VmCommand::Ports { ref vms, json: JsonFlag { json: true } }) if vms.len() == 2)
        );
        let cli = Cli::try_parse_from(["banger", "vm", "stats", "dev"]).unwrap();
        assert!(matches!(cli.command, Command::Vm(VmCommand::Stats { .. })));
        assert!(Cli::try_parse_from(["banger", "vm", "restart"]).is_err());
        assert!(Cli::try_parse_from(["banger", "vm", "logs", "a", "b"]).is_err());
    }

    #[test]
    fn rejects_unknown_shell() {
        assert!(Cli::try_parse_from(["banger", "completion", "powershell"]).is_err());
    }
}
