//! Test support, not a product binary: a stand-in for `firecracker` that
//! serves the Firecracker API on `--api-sock`, validates every request
//! against the published API description, records them next to the socket,
//! and answers the hybrid-vsock `health` call. See
//! `banger_vmm::firecracker::standin`. Built only with the `test-support`
//! feature, which the crate's own tests enable; the root package builds the
//! same file as `fc-standin-e2e` (feature `fc-standin`) for its daemon tests.
#![forbid(unsafe_code)]

use std::error::Error;
use std::process::ExitCode;

fn main() -> ExitCode {
    match banger_vmm::firecracker::standin::run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = format!("fc-standin: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
