//! From parsed arguments to output and an exit code.

use std::io::Write;
use std::process::ExitCode;

use banger_api::protocol::{
    ImageBuildParams, ImageBuilt, ImageInfo, ImageRegisterParams, ImageVariant, KernelImportParams,
    KernelInfo, NameParams, NoParams, Operation, OperationsListParams, Pong, Request, Vm,
    VmCreateParams, VmExecParams, VmRef, VmSetParams,
};
use banger_config::{PathEnv, Paths};
use clap::{CommandFactory, Parser};

use crate::args::{
    Cli, Command, DaemonCommand, ImageCommand, JsonFlag, KernelCommand, PULLABLE_KERNELS, Shell,
    Variant, VmCommand, WorkspaceCommand,
};
use crate::client::Client;
use crate::error::CliError;
use crate::{doctor, manuals, render};

mod exec;
mod logs;
mod manage;
mod multi;
mod snapshot;
mod vm_run;
mod workspace;

use exec::vm_exec;

use manage::Done;

/// The whole CLI: parse, run, print `banger: <message>` on failure.
pub fn main() -> ExitCode {
    // A shell asking for completions (its script set the variable) is
    // answered and the process exits here, before anything else runs or is
    // printed: clap_complete changes the environment and owns stdout.
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(manuals::COMPLETE_VAR)
        .complete();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::DoctorFailed(_)) => ExitCode::FAILURE,
        Err(CliError::GuestExit(status)) => ExitCode::from(status),
        Err(e) => {
            eprintln!("banger: {}", error_line(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

pub(crate) use crate::error_line::error_line;

/// Help and version go to stdout with status 0; real usage errors are
/// reported like every other error, with status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let message = rendered.trim_start_matches("error: ").trim_end();
            eprintln!("banger: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Version => print(&format!(
            "{}\n",
            banger_api::build_info::version_line("banger")
        )),
        Command::Completion { shell } => completion(shell),
        Command::System(cmd) => crate::system::run(cmd).map_err(CliError::System),
        Command::Update(args) => {
            crate::update::update(&args).map_err(|e| CliError::Update(Box::new(e)))
        }
        Command::Doctor(JsonFlag { json }) => {
            let report = doctor::run(&PathEnv::from_process());
            if json {
                print_json(&report)?;
            } else {
                print(&report.render())?;
            }
            match report.failures() {
                0 => Ok(()),
                n => Err(CliError::DoctorFailed(n)),
            }
        }
        Command::Vm(VmCommand::List(flag)) | Command::Ps(flag) => vm_list(flag),
        Command::Vm(VmCommand::Show { vm, json }) => {
            let vm: Vm = client()?.call(Request::VmShow(VmRef { vm }))?;
            show(&vm, json, render::vm_detail)
        }
        Command::Vm(VmCommand::Create {
            spec,
            no_start,
            json,
        }) => vm_create(
            VmCreateParams {
                no_start,
                ..spec.into_params()
            },
            json,
        ),
        Command::Vm(VmCommand::Start { vms }) => {
            manage::lifecycle(&client()?, &vms, Done::State, |vm| {
                Request::VmStart(VmRef { vm })
            })
        }
        Command::Vm(VmCommand::Stop { vms }) => {
            manage::lifecycle(&client()?, &vms, Done::State, |vm| {
                Request::VmStop(VmRef { vm })
            })
        }
        Command::Vm(VmCommand::Restart { vms }) => {
            manage::lifecycle(&client()?, &vms, Done::Word("restarted"), |vm| {
                Request::VmRestart(VmRef { vm })
            })
        }
        Command::Vm(VmCommand::Kill { vms }) => {
            manage::lifecycle(&client()?, &vms, Done::Word("killed"), |vm| {
                Request::VmKill(VmRef { vm })
            })
        }
        Command::Vm(VmCommand::Delete { vms }) => {
            manage::lifecycle(&client()?, &vms, Done::Word("deleted"), |vm| {
                Request::VmDelete(VmRef { vm })
            })
        }
        Command::Vm(VmCommand::Prune { force }) => manage::prune(&client()?, force),
        Command::Vm(VmCommand::Set {
            vms,
            vcpu,
            memory,
            disk_size,
            nat,
            no_nat,
        }) => {
            let change = VmSetParams {
                vm: String::new(),
                vcpu,
                memory_mib: memory,
                disk_size,
                nat: (nat || no_nat).then_some(nat),
            };
            manage::set(&client()?, &vms, change)
        }
        Command::Vm(VmCommand::Logs { vm, follow }) => logs::vm_logs(&client()?, vm, follow),
        Command::Vm(VmCommand::Stats { vm, json }) => manage::stats(&client()?, vm, json),
        Command::Vm(VmCommand::Ports { vms, json }) => manage::ports(&client()?, &vms, json),
        Command::Vm(VmCommand::Snapshot { vm, name, json }) => snapshot::take(vm, name, json),
        Command::Vm(VmCommand::Restore {
            snapshot: from,
            name,
            json,
        }) => snapshot::restore(from, name, json),
        Command::Snapshot(cmd) => snapshot::command(cmd),
        Command::Vm(VmCommand::Fork {
            vm,
            count,
            name_prefix,
            json,
        }) => snapshot::fork(vm, count, name_prefix, json),
        Command::Vm(VmCommand::Exec {
            vm,
            guest_path,
            auto_prepare,
            timeout,
            cmd,
        }) => {
            if auto_prepare {
                vm_run::prepare_if_missing(&vm)?;
            }
            vm_exec(VmExecParams {
                vm,
                argv: cmd,
                cwd: guest_path,
                timeout_s: timeout,
                stream: true,
            })
        }
        Command::Vm(VmCommand::Ssh { vm, args }) => vm_ssh(&vm, &args),
        Command::Vm(VmCommand::Run(args)) => vm_run::vm_run(args),
        Command::Vm(VmCommand::Workspace(WorkspaceCommand::Prepare {
            vm,
            path,
            source,
            guest_path,
            no_bootstrap,
            dry_run,
        })) => {
            let client = client()?;
            if dry_run {
                let plan = workspace::preflight(&client, &path, &source, true, true)?;
                return workspace::print_plan(&plan);
            }
            workspace::prepare(&client, &vm, &path, &source, guest_path, no_bootstrap).map(|_| ())
        }
        Command::Vm(VmCommand::Workspace(WorkspaceCommand::Export {
            vm,
            base_commit,
            output,
        })) => workspace::export(&client()?, vm, base_commit, output.as_deref()),
        Command::SshConfig { install, uninstall } => ssh_config(install, uninstall),
        Command::Kernel(cmd) => kernel(cmd),
        Command::Image(cmd) => image(cmd),
        Command::Daemon(DaemonCommand::Ping(flag)) => {
            let pong: Pong = client()?.call(Request::Ping(NoParams {}))?;
            if flag.json {
                print_json(&pong)
            } else {
                print(&format!(
                    "bangerd v{} (commit {}) answers: pid {}, protocol {}\n",
                    pong.version, pong.commit, pong.pid, pong.protocol
                ))
            }
        }
        Command::Daemon(DaemonCommand::Operations { limit, json }) => {
            let ops: Vec<Operation> =
                client()?.call(Request::OperationsList(OperationsListParams {
                    limit: Some(limit),
                }))?;
            if json.json {
                print_json(&ops)
            } else {
                let header = ["OP", "KIND", "TARGET", "STATE", "STAGE", "STARTED", "ERROR"];
                print(&render::table(
                    &header,
                    &ops.iter().map(render::operation_row).collect::<Vec<_>>(),
                ))
            }
        }
    }
}

/// Writes banger's ssh config (and the user key it names), then prints it
/// or (un)installs the Include block in the user's own config.
fn ssh_config(install: bool, uninstall: bool) -> Result<(), CliError> {
    use banger_net::ssh;
    let paths = Paths::resolve(&PathEnv::from_process())?;
    let ssh_paths = ssh::SshPaths::new(&paths);
    let user_config = || {
        std::env::var_os("HOME")
            .map(|h| ssh::user_ssh_config(std::path::Path::new(&h)))
            .ok_or(CliError::NoHome)
    };
    if uninstall {
        let config = user_config()?;
        let removed = ssh::uninstall_include(&config)?;
        let what = if removed {
            "removed banger's Include block from"
        } else {
            "no banger block in"
        };
        return print(&format!("{what} {}\n", config.display()));
    }
    ssh_paths.ensure_dir()?;
    ssh::ensure_user_key(&ssh_paths)?;
    ssh::write_ssh_config(&ssh_paths)?;
    if install {
        let config = user_config()?;
        let change = ssh::install_include(&config, &ssh_paths.config_file)?;
        let what = match change {
            ssh::IncludeChange::Installed => "added an Include of",
            ssh::IncludeChange::Updated => "updated the Include of",
            ssh::IncludeChange::Unchanged => "already includes",
        };
        return print(&format!(
            "{}: {what} {}\n",
            config.display(),
            ssh_paths.config_file.display()
        ));
    }
    print(&ssh::render_ssh_config(&ssh_paths)?)
}

fn kernel(cmd: KernelCommand) -> Result<(), CliError> {
    let name = |name: String| NameParams { name };
    match cmd {
        KernelCommand::List {
            available: true,
            json,
        } => {
            if json.json {
                let list: Vec<_> = PULLABLE_KERNELS
                    .iter()
                    .map(|(n, d)| serde_json::json!({"name": n, "description": d}))
                    .collect();
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = PULLABLE_KERNELS
                .iter()
                .map(|(n, d)| vec![n.to_string(), d.to_string()])
                .collect();
            print(&render::table(&["NAME", "DESCRIPTION"], &rows))
        }
        KernelCommand::List {
            available: false,
            json,
        } => {
            let kernels: Vec<KernelInfo> = client()?.call(Request::KernelList(NoParams {}))?;
            if json.json {
                return print_json(&kernels);
            }
            if kernels.is_empty() {
                return print(
                    "No kernels. Fetch the default one with `banger kernel pull debian-cloud-amd64`.\n",
                );
            }
            let rows: Vec<Vec<String>> = kernels.iter().map(render::kernel_row).collect();
            print(&render::table(&render::KERNEL_COLUMNS, &rows))
        }
        KernelCommand::Show { name: n, json } => {
            let k: KernelInfo = client()?.call(Request::KernelShow(name(n)))?;
            show(&k, json, render::kernel_detail)
        }
        KernelCommand::Pull { name: n, json } => {
            let k: KernelInfo = client()?.call(Request::KernelPull(name(n)))?;
            show(&k, json, render::kernel_detail)
        }
        KernelCommand::Rm { name: n } => {
            client()?.call::<serde_json::Value>(Request::KernelRemove(name(n.clone())))?;
            print(&format!("removed kernel {n}\n"))
        }
        KernelCommand::Import {
            name: n,
            from,
            json,
        } => {
            let from = absolute(&from)?;
            let k: KernelInfo =
                client()?.call(Request::KernelImport(KernelImportParams { name: n, from }))?;
            show(&k, json, render::kernel_detail)
        }
    }
}

fn image(cmd: ImageCommand) -> Result<(), CliError> {
    let name = |name: String| NameParams { name };
    match cmd {
        ImageCommand::List(json) => {
            let images: Vec<ImageInfo> = client()?.call(Request::ImageList(NoParams {}))?;
            if json.json {
                return print_json(&images);
            }
            if images.is_empty() {
                return print("No images. Build the default one with `sudo banger image build`.\n");
            }
            let rows: Vec<Vec<String>> = images.iter().map(render::image_row).collect();
            print(&render::table(&render::IMAGE_COLUMNS, &rows))
        }
        ImageCommand::Show { name: n, json } => {
            let i: ImageInfo = client()?.call(Request::ImageShow(name(n)))?;
            show(&i, json, render::image_detail)
        }
        ImageCommand::Build {
            name: n,
            variant,
            force,
            json,
        } => {
            let variant = match variant {
                Variant::Full => ImageVariant::Full,
                Variant::Minimal => ImageVariant::Minimal,
            };
            let done: ImageBuilt = client()?.call(Request::ImageBuild(ImageBuildParams {
                name: n,
                variant,
                force,
            }))?;
            if json.json {
                return print_json(&done);
            }
            let what = if done.built {
                "built"
            } else {
                "up to date (recipe unchanged)"
            };
            print(&format!(
                "{} {what} in {:.1} s\n{}",
                done.image.name,
                done.seconds,
                render::image_detail(&done.image)
            ))
        }
        ImageCommand::Delete { name: n } => {
            client()?.call::<serde_json::Value>(Request::ImageDelete(name(n.clone())))?;
            print(&format!("deleted image {n}\n"))
        }
        ImageCommand::Register {
            name: n,
            rootfs,
            kernel_ref,
        } => {
            let rootfs = absolute(&rootfs)?;
            let i: ImageInfo = client()?.call(Request::ImageRegister(ImageRegisterParams {
                name: n,
                rootfs,
                kernel_ref,
            }))?;
            print(&render::image_detail(&i))
        }
        ImageCommand::Promote { name: n } => {
            let i: ImageInfo = client()?.call(Request::ImagePromote(name(n)))?;
            print(&render::image_detail(&i))
        }
    }
}

/// The daemon runs elsewhere: paths travel absolute.
fn absolute(path: &std::path::Path) -> Result<String, CliError> {
    std::path::absolute(path)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|source| CliError::Path {
            path: path.to_owned(),
            source,
        })
}

fn client() -> Result<Client, CliError> {
    let paths = Paths::resolve(&PathEnv::from_process())?;
    Ok(Client::connect_or_start(&paths)?)
}

/// Prints the resolved spec first (as the daemon will resolve it, from the
/// same config and host), then the daemon's stages, then the VM.
/// The one-line resolved spec (SPEC §3), from the same config and host
/// facts the daemon resolves with.
pub(crate) fn print_spec(paths: &Paths, params: &VmCreateParams) {
    if let Ok(config) = banger_config::Config::load(&paths.config_file) {
        let d = banger_config::resolve_vm_defaults(&config, &banger_config::HostFacts::detect());
        eprintln!(
            "spec: {} vcpu | {} MiB | {} disk",
            params.vcpu.unwrap_or(d.vcpu.value),
            params.memory_mib.unwrap_or(d.memory_mib.value),
            params.disk_size.unwrap_or(d.disk_size.value)
        );
    }
}

fn vm_create(params: VmCreateParams, json: JsonFlag) -> Result<(), CliError> {
    let paths = Paths::resolve(&PathEnv::from_process())?;
    print_spec(&paths, &params);
    let started = std::time::Instant::now();
    let vm: Vm = Client::connect_or_start(&paths)?.call(Request::VmCreate(params))?;
    if json.json {
        return print_json(&vm);
    }
    eprintln!(
        "created {} in {:.1} s",
        vm.name,
        started.elapsed().as_secs_f64()
    );
    print(&render::vm_detail(&vm))
}

/// Hands the terminal to the system ssh client with banger's config, key
/// and pinned host key; ssh's status becomes ours. A host-key mismatch is
/// explained rather than left to ssh's wording.
pub(crate) fn vm_ssh(reference: &str, args: &[String]) -> Result<(), CliError> {
    use banger_net::ssh;
    let paths = Paths::resolve(&PathEnv::from_process())?;
    let vm: Vm = client()?.call(Request::VmShow(VmRef {
        vm: reference.to_owned(),
    }))?;
    let ip = vm.runtime.ip.ok_or_else(|| CliError::NotRunning {
        vm: vm.name.to_string(),
    })?;
    let ssh_paths = ssh::SshPaths::new(&paths);
    ssh::write_ssh_config(&ssh_paths)?;
    // The IP is pinned too, so reaching the guest by address keeps the
    // host-key check even where `.vm` names do not resolve.
    let host = format!("{}.{}", vm.name, ssh::VM_DOMAIN);
    let cmd = |extra: &[&str]| {
        banger_sys::Cmd::new("ssh")
            .arg("-F")
            .arg(&ssh_paths.config_file)
            .args(["-o", &format!("HostName={ip}")])
            .args(extra)
            .arg(&host)
    };
    let status = cmd(&[])
        .args(args)
        .run_interactive()
        .map_err(CliError::Process)?;
    if status == 255 {
        // ssh's own failure: ask once more, quietly, to see why.
        if let Err(banger_sys::ProcessError::Failed { stderr, .. }) =
            cmd(&["-o", "BatchMode=yes"]).arg("true").run()
        {
            if let Some(why) = ssh::explain_ssh_failure(&stderr, &vm.name) {
                eprintln!("banger: {why}");
            }
        }
    }
    match status {
        0 => Ok(()),
        code => Err(CliError::GuestExit(code.clamp(1, 255) as u8)),
    }
}

fn vm_list(flag: JsonFlag) -> Result<(), CliError> {
    let vms: Vec<Vm> = client()?.call(Request::VmList(NoParams {}))?;
    if flag.json {
        return print_json(&vms);
    }
    if vms.is_empty() {
        return print("No VMs. Create one with `banger vm create --name dev`.\n");
    }
    print(&render::table(
        &render::VM_COLUMNS,
        &vms.iter().map(render::vm_row).collect::<Vec<_>>(),
    ))
}

fn completion(shell: Shell) -> Result<(), CliError> {
    std::io::stdout()
        .write_all(&manuals::completion_script(shell))
        .map_err(CliError::Stdout)
}

pub(crate) fn print(text: &str) -> Result<(), CliError> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(CliError::Stdout)
}

/// One value, as JSON with `--json`, else in its human form.
fn show<T: serde::Serialize>(
    value: &T,
    json: JsonFlag,
    human: fn(&T) -> String,
) -> Result<(), CliError> {
    if json.json {
        print_json(value)
    } else {
        print(&human(value))
    }
}

/// The value as pretty JSON. `serde_json` escapes C0 controls but not DEL,
/// C1 or bidi controls; those are escaped too, so the output reads back to
/// the same value and still cannot drive a terminal.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).expect("output types always serialise");
    let text = banger_api::text::escape_json_controls(&text);
    print(&format!("{text}\n"))
}
