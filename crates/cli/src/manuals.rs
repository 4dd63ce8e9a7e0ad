//! What an installation ships besides the binaries: a man page per command
//! and the shell completion scripts, both made from the clap declaration so
//! they cannot drift from what `banger` accepts.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::env::EnvCompleter;

use crate::args::{Cli, Shell};

/// The variable the completion scripts set when they call `banger` back for
/// candidates; `run::main` answers when it is set (clap_complete's default
/// name, kept explicit so both sides name the same one).
pub(crate) const COMPLETE_VAR: &str = "COMPLETE";

/// Writes `banger.1` and one page per visible subcommand, recursively
/// (`banger-vm.1`, `banger-vm-run.1`, ...) into `dir` (created if missing),
/// replacing pages already there. Returns the files written, parents first.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    std::fs::create_dir_all(dir)?;
    // Without clap's `help` subcommand: it is not a command of its own, and
    // every page already is its help. Built once here so each subcommand
    // knows its full name (`banger vm run`) for its page's title and synopsis.
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut written = Vec::new();
    write_tree(&root, dir, &mut written)?;
    Ok(written)
}

fn write_tree(
    cmd: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), std::io::Error> {
    // Subcommands carry no version of their own; every page names the release.
    let page = clap_mangen::Man::new(cmd.clone())
        .source(format!("banger {}", banger_api::build_info::VERSION))
        .manual("banger manual");
    written.push(page.generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub, dir, written)?;
    }
    Ok(())
}

/// The script a shell sources to complete `banger`: what `banger completion
/// SHELL` prints. It calls `banger` (from PATH) back with [`COMPLETE_VAR`]
/// set on every Tab, so candidates (live VM, image and kernel names among
/// them) always come from the installed binary, never from a stale copy.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
    };
    let mut script = Vec::new();
    completer
        .write_registration(COMPLETE_VAR, "banger", "banger", "banger", &mut script)
        .expect("writing into a Vec cannot fail");
    script
}

#[cfg(test)]
mod tests;
