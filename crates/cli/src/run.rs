//! From parsed arguments to output and an exit code.

use std::io::Write;
use std::process::ExitCode;

use banger_api::protocol::{NoParams, Operation, OperationsListParams, Pong, Request, Vm, VmRef};
use banger_config::{PathEnv, Paths};
use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command, DaemonCommand, JsonFlag, Shell, VmCommand};
use crate::client::Client;
use crate::error::CliError;
use crate::{doctor, render};

/// The whole CLI: parse, run, print `banger: <message>` on failure.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::DoctorFailed(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("banger: {}", banger_api::error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

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
            if json.json {
                print_json(&vm)
            } else {
                print(&render::vm_detail(&vm))
            }
        }
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

fn client() -> Result<Client, CliError> {
    let paths = Paths::resolve(&PathEnv::from_process())?;
    Ok(Client::connect_or_start(&paths)?)
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
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "banger", &mut out);
    std::io::stdout().write_all(&out).map_err(CliError::Stdout)
}

fn print(text: &str) -> Result<(), CliError> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(CliError::Stdout)
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).expect("output types always serialise");
    print(&format!("{text}\n"))
}
