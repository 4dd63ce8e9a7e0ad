//! `vm exec` and `vm run -- CMD`: the guest command's output as it comes,
//! then its status as ours.

use std::io::Write;

use banger_api::protocol::{OutputStream, Request, VmExecParams, VmExecResult};

use super::client;
use crate::error::CliError;

/// Runs the command with streamed output, writing each piece to our own
/// stdout or stderr at once, and passes its status through: the exit code,
/// or 128 + the signal that killed it.
pub(super) fn vm_exec(mut params: VmExecParams) -> Result<(), CliError> {
    params.stream = true;
    let result: VmExecResult =
        client()?.call_streaming(Request::VmExec(params), &mut write_output)?;
    // Empty when streamed; kept so the answer of any daemon is printed whole.
    write_output(OutputStream::Stdout, result.stdout.as_bytes()).map_err(CliError::Stdout)?;
    write_output(OutputStream::Stderr, result.stderr.as_bytes()).map_err(CliError::Stdout)?;
    if result.timed_out {
        eprintln!("banger: the command timed out in the guest and was killed");
    }
    match exit_status(&result) {
        0 => Ok(()),
        status => Err(CliError::GuestExit(status)),
    }
}

/// Writes and flushes at once, so a line the guest printed shows up now
/// rather than when a buffer fills. A closed stdout ends the command's
/// output; a closed stderr is not worth failing for.
fn write_output(stream: OutputStream, data: &[u8]) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    match stream {
        OutputStream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(data).and_then(|()| out.flush())
        }
        OutputStream::Stderr => {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(data).and_then(|()| err.flush());
            Ok(())
        }
    }
}

fn exit_status(result: &VmExecResult) -> u8 {
    match (result.status, result.signal) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Option<i32>, signal: Option<i32>) -> VmExecResult {
        VmExecResult {
            status,
            signal,
            timed_out: false,
            stdout: String::new(),
            stderr: String::new(),
            duration_s: 0.0,
        }
    }

    #[test]
    fn status_is_the_exit_code_or_128_plus_the_signal() {
        assert_eq!(exit_status(&result(Some(7), None)), 7);
        assert_eq!(exit_status(&result(Some(300), None)), 255);
        assert_eq!(exit_status(&result(None, Some(9))), 137);
        assert_eq!(exit_status(&result(None, None)), 1);
    }
}
