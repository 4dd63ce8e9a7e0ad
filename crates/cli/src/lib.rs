//! The `banger` command-line interface. Every command except `doctor`,
//! `version` and `completion` talks to the daemon through [`client`]; in
//! development mode the client starts a daemon when none answers (shell
//! completion's name lookups excepted: [`candidates`] never starts one).
#![forbid(unsafe_code)]

mod args;
mod candidates;
mod client;
mod doctor;
mod error;
mod error_line;
mod interrupt;
mod manuals;
mod render;
mod run;
mod system;
mod update;

pub use args::{Cli, Shell};
pub use client::{Client, ClientError};
pub use error::CliError;
pub use manuals::{completion_script, write_man_pages};
pub use run::main;
