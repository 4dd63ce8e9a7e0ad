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
    for note in incomplete_output(&result) {
        eprintln!("banger: {note}");
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

/// What the user did not see of the command's output, one line each
/// (SPEC §12: a cut result is never passed off as whole). The command's
/// status is still passed through.
fn incomplete_output(result: &VmExecResult) -> Vec<String> {
    let mut notes = Vec::new();
    for (name, cut_at) in [
        ("stdout", result.stdout_cut_at),
        ("stderr", result.stderr_cut_at),
    ] {
        if let Some(bytes) = cut_at {
            notes.push(format!(
                "the command's {name} was cut at {bytes} bytes by the guest agent"
            ));
        }
    }
    if result.output_dropped {
        notes.push(
            "part of the command's output was lost on the way (the guest agent could not \
             send it in time), so what was shown is incomplete"
                .to_owned(),
        );
    }
    notes
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
            stdout_cut_at: None,
            stderr_cut_at: None,
            output_dropped: false,
        }
    }

    #[test]
    fn cut_and_lost_output_is_reported() {
        let mut whole = result(Some(0), None);
        assert!(incomplete_output(&whole).is_empty());
        whole.stdout_cut_at = Some(16 << 20);
        whole.output_dropped = true;
        let notes = incomplete_output(&whole);
        assert_eq!(
            notes[0],
            "the command's stdout was cut at 16777216 bytes by the guest agent"
        );
        assert!(notes[1].contains("lost on the way"), "{notes:?}");
        assert_eq!(exit_status(&whole), 0, "the command's status is kept");
    }

    #[test]
    fn status_is_the_exit_code_or_128_plus_the_signal() {
        assert_eq!(exit_status(&result(Some(7), None)), 7);
        assert_eq!(exit_status(&result(Some(300), None)), 255);
        assert_eq!(exit_status(&result(None, Some(9))), 137);
        assert_eq!(exit_status(&result(None, None)), 1);
    }
}
