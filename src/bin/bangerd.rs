//! `bangerd`: parse the command line, build the configuration, call the
//! daemon library, map the outcome to an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use banger_config::{Config, PathEnv, Paths};
use banger_store::MigrationStatus;
use clap::Parser;

/// The banger daemon. The `banger` CLI starts it on demand in development
/// mode; a system install runs it as a systemd service.
#[derive(Parser)]
#[command(name = "bangerd", version = banger_api::build_info::VERSION_DETAIL)]
struct Args {
    /// Report whether the state store's schema is current, then exit:
    /// 0 up to date, 1 migrations pending, 2 the database is newer than this
    /// binary, 3 the check itself failed.
    #[arg(long, conflicts_with = "migrate")]
    check_migrations: bool,
    /// Apply pending migrations to the state store, then exit.
    #[arg(long)]
    migrate: bool,
    /// Run as banger's root helper (as root): serve validated host
    /// operations to the owner daemon of `--owner-uid` over `--socket`.
    #[arg(long, requires = "owner_uid", conflicts_with_all = ["check_migrations", "migrate"])]
    root_helper: bool,
    /// The uid whose daemon the root helper serves (root always may).
    #[arg(long, value_name = "UID", requires = "root_helper")]
    owner_uid: Option<u32>,
    /// A directory the owner daemon manages (its state, cache and run
    /// directories); request paths must lie under one. Repeatable.
    #[arg(long, value_name = "DIR", requires = "root_helper")]
    managed_root: Vec<std::path::PathBuf>,
    /// The root helper's socket.
    #[arg(long, value_name = "PATH", requires = "root_helper",
          default_value = banger_daemon::HELPER_SOCKET)]
    socket: std::path::PathBuf,
}

fn main() -> ExitCode {
    // Hidden modes, not part of the documented command line: the log
    // capper the VMM drivers start for each VM log (`banger_vmm::logcap`),
    // and the agent's serial-channel sidecar beside QEMU
    // (`banger_vmm::agent_mux`).
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some((flag, rest)) = raw.split_first() {
        if flag == banger_daemon::CAP_LOG_FLAG {
            return ExitCode::from(u8::try_from(banger_daemon::cap_log_main(rest)).unwrap_or(1));
        }
        if flag == banger_daemon::AGENT_MUX_FLAG {
            return ExitCode::from(u8::try_from(banger_daemon::agent_mux_main(rest)).unwrap_or(1));
        }
    }
    let args = Args::parse();
    if args.root_helper {
        banger_daemon::init_logging(
            &std::env::var("BANGER_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
        );
        let opts = banger_daemon::HelperOptions {
            socket: args.socket,
            owner_uid: args.owner_uid.expect("clap requires --owner-uid"),
            managed_roots: args.managed_root,
        };
        return match banger_daemon::run_root_helper(opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let paths = match Paths::resolve(&PathEnv::from_process()) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if args.check_migrations {
        return check_migrations(&paths);
    }
    if args.migrate {
        if let Err(e) = paths.ensure_private_dirs() {
            return fail(&e);
        }
        return match banger_store::Store::open(&paths.db_file) {
            Ok(store) => {
                println!(
                    "{}: schema at version {}",
                    paths.db_file.display(),
                    store.schema_version().unwrap_or(0)
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    let config = match Config::load(&paths.config_file) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let level = match config.log_level_with_env(std::env::var("BANGER_LOG_LEVEL").ok().as_deref()) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    banger_daemon::init_logging(&level.to_string());
    let opts = banger_daemon::DaemonOptions {
        paths,
        config,
        owner_uid: banger_sys::os::effective_uid(),
        owner_home: std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(std::path::PathBuf::from),
    };
    match banger_daemon::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn check_migrations(paths: &Paths) -> ExitCode {
    let db = paths.db_file.display();
    match banger_store::migration_status(&paths.db_file) {
        Ok(MigrationStatus::UpToDate { version }) => {
            println!("{db}: up to date (schema {version})");
            ExitCode::SUCCESS
        }
        Ok(MigrationStatus::Pending {
            applied,
            latest,
            pending,
        }) => {
            let ids: Vec<String> = pending.iter().map(u32::to_string).collect();
            println!(
                "{db}: schema {applied}, {} pending up to {latest}: {}",
                ids.len(),
                ids.join(", ")
            );
            ExitCode::from(1)
        }
        Ok(MigrationStatus::NewerThanBinary {
            db_version,
            binary_version,
        }) => {
            println!(
                "{db}: schema {db_version} is newer than this binary (knows up to {binary_version}); upgrade banger"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            print_error(&e);
            ExitCode::from(3)
        }
    }
}

fn print_error(err: &dyn std::error::Error) {
    eprintln!("bangerd: {}", banger_api::error_chain(err));
}

fn fail(err: &dyn std::error::Error) -> ExitCode {
    print_error(err);
    ExitCode::FAILURE
}
