//! The one narrow layer through which banger touches the operating system:
//! external processes ([`process`]), processes by pid ([`proc`]: liveness,
//! identity, reaping, signals) and syscalls ([`os`]).
//!
//! Every external program runs through [`process::Cmd`], which logs the argv,
//! captures stderr and returns a typed error naming the argv. Syscalls use
//! `rustix`'s safe wrappers; the few calls without one are in [`ffi`], the
//! one module with `unsafe`, each block with a `// SAFETY:` comment.
#![deny(unsafe_code)]

pub mod ffi;
pub mod netns;
pub mod os;
pub mod proc;
pub mod process;

pub use process::{Cmd, Detached, Output, ProcessError, ReadingChild, find_program, pipe};
