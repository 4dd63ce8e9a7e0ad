//! The `banger` command-line interface. Every command except `doctor`,
//! `version` and `completion` talks to the daemon through [`client`]; in
//! development mode the client starts a daemon when none answers.
#![forbid(unsafe_code)]

mod args;
mod client;
mod doctor;
mod error;
mod interrupt;
mod render;
mod run;
mod system;

pub use args::Cli;
pub use client::{Client, ClientError};
pub use error::CliError;
pub use run::main;
