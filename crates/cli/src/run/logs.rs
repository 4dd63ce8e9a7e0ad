//! `vm logs [-f]`: the VMM's log, then the serial console, each under a
//! `==> ... <==` header (as `tail` prints several files). With `-f` the
//! daemon is asked for what follows every [`POLL`] until Ctrl-C; a new
//! header is printed whenever the log that grew changes.
//!
//! The text comes from the guest, so it is cleaned before it reaches the
//! terminal: control characters and escape sequences are dropped, except
//! colour (SGR) sequences when stdout is a terminal and `NO_COLOR` is unset.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use banger_api::protocol::{LogChunk, MAX_LOG_CHUNK, Request, VmLogs, VmLogsParams};

use crate::client::Client;
use crate::error::CliError;

const POLL: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Vmm,
    Console,
}

struct Printer {
    colour: bool,
    current: Option<Source>,
    /// Whether the last text printed ended a line.
    at_line_start: bool,
}

impl Printer {
    /// `first_read`: the chunk is the log's tail (no offset was asked for),
    /// not the continuation of an earlier read.
    fn section(&mut self, source: Source, chunk: &LogChunk, first_read: bool) -> String {
        let mut out = String::new();
        if self.current != Some(source) {
            if !self.at_line_start {
                out.push('\n');
            }
            out.push_str(&header(source, chunk));
            self.current = Some(source);
            self.at_line_start = true;
        }
        if chunk.restarted {
            out.push_str(&self.line("[the log started again: a new boot replaced it]"));
        }
        if first_read && chunk.discarded > 0 {
            out.push_str(&self.line(&format!(
                "==> {}: older output was discarded (kept the last {}) <==",
                source.name(),
                human_bytes(chunk.size - chunk.discarded)
            )));
        } else if !first_read && chunk.skipped > 0 {
            out.push_str(&self.line(&format!(
                "==> {}: {} of output were discarded by the log's cap before they could be shown <==",
                source.name(),
                human_bytes(chunk.skipped)
            )));
        }
        if first_read && chunk.skipped > 0 {
            out.push_str(&self.line(&format!(
                "[{} earlier bytes not shown: only the last {} KiB are printed; the whole log is {}]",
                chunk.skipped,
                MAX_LOG_CHUNK / 1024,
                chunk.path.as_deref().unwrap_or("-")
            )));
        }
        if !chunk.text.is_empty() {
            let text = sanitize(&chunk.text, self.colour);
            self.at_line_start = text.ends_with('\n');
            out.push_str(&text);
        }
        out
    }

    fn line(&mut self, text: &str) -> String {
        let lead = if self.at_line_start { "" } else { "\n" };
        self.at_line_start = true;
        format!("{lead}{text}\n")
    }
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Vmm => "VMM log",
            Source::Console => "serial console",
        }
    }
}

/// `8 MiB`, `12.5 KiB`, `300 bytes`.
fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    let scaled = |unit: u64, name: &str| {
        if n % unit == 0 {
            format!("{} {name}", n / unit)
        } else {
            format!("{:.1} {name}", n as f64 / unit as f64)
        }
    };
    if n >= MIB {
        scaled(MIB, "MiB")
    } else if n >= KIB {
        scaled(KIB, "KiB")
    } else {
        format!("{n} bytes")
    }
}

fn header(source: Source, chunk: &LogChunk) -> String {
    let what = source.name();
    match &chunk.path {
        Some(path) => format!("==> {what}: {path} <==\n"),
        None => format!("==> {what}: none yet (the VM has not been started) <==\n"),
    }
}

pub fn vm_logs(client: &Client, vm: String, follow: bool) -> Result<(), CliError> {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut printer = Printer {
        colour,
        current: None,
        at_line_start: true,
    };
    let mut params = VmLogsParams {
        vm,
        console_offset: None,
        vmm_offset: None,
    };
    let mut first = true;
    loop {
        let logs: VmLogs = client.call(Request::VmLogs(params.clone()))?;
        let mut out = String::new();
        for (source, chunk) in [(Source::Vmm, &logs.vmm), (Source::Console, &logs.console)] {
            // The first answer shows both headers, even for empty logs.
            if first || !chunk.text.is_empty() || chunk.restarted || chunk.skipped > 0 {
                out.push_str(&printer.section(source, chunk, first));
            }
        }
        if !follow && !printer.at_line_start {
            out.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(CliError::Stdout)?;
        if !follow {
            return Ok(());
        }
        first = false;
        params.vmm_offset = Some(logs.vmm.next_offset);
        params.console_offset = Some(logs.console.next_offset);
        // A capped answer means more is waiting: ask again at once.
        if !(logs.vmm.more || logs.console.more) {
            std::thread::sleep(POLL);
        }
    }
}

/// Text from a guest, made safe for a terminal: tabs and newlines stay,
/// `\r\n` becomes `\n`, colour sequences stay if `colour`, every other
/// control character and escape sequence goes (`banger_api::text`, the one
/// cleaning function for guest text; whether to keep colour is decided
/// here).
pub fn sanitize(text: &str, colour: bool) -> String {
    banger_api::text::clean_guest_text_keeping_colour(text, colour)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(path: Option<&str>, text: &str, skipped: u64) -> LogChunk {
        LogChunk {
            path: path.map(str::to_owned),
            size: 0,
            offset: skipped,
            next_offset: 0,
            skipped,
            discarded: 0,
            restarted: false,
            more: false,
            text: text.to_owned(),
        }
    }

    #[test]
    fn plain_text_and_colour_survive() {
        assert_eq!(sanitize("boot ok\r\n\tnext\n", false), "boot ok\n\tnext\n");
        let green = "\u{1b}[0;32m OK \u{1b}[0m";
        assert_eq!(sanitize(green, true), green);
        assert_eq!(sanitize(green, false), " OK ");
    }

    #[test]
    fn terminal_tricks_are_dropped() {
        // The 8-bit CSI takes its sequence with it (`2J`), as `ESC [` does.
        let evil = "a\u{1b}]0;pwned title\u{7}b\u{1b}[2Jc\u{1b}]52;c;ZXZpbA==\u{1b}\\d\u{7}\u{8}e\u{9b}2Jf\u{1b}Pdcs\u{1b}\\g\u{1b}(B\rh";
        assert_eq!(sanitize(evil, true), "abcdefgh");
    }

    #[test]
    fn sections_have_headers_and_say_what_was_cut() {
        let mut p = Printer {
            colour: false,
            current: None,
            at_line_start: true,
        };
        let vmm = p.section(
            Source::Vmm,
            &chunk(Some("/v/qemu.log"), "qemu started", 0),
            true,
        );
        assert_eq!(vmm, "==> VMM log: /v/qemu.log <==\nqemu started");
        let console = p.section(
            Source::Console,
            &chunk(Some("/v/console.log"), "login:\n", 4096),
            true,
        );
        assert!(
            console.starts_with("\n==> serial console: /v/console.log <==\n"),
            "{console}"
        );
        assert!(
            console.contains("[4096 earlier bytes not shown"),
            "{console}"
        );
        assert!(console.ends_with("]\nlogin:\n"), "{console}");
        // Following: more of the same log gets no new header; the other log does.
        let more = p.section(
            Source::Console,
            &chunk(Some("/v/console.log"), "x\n", 0),
            false,
        );
        assert_eq!(more, "x\n");
        let back = p.section(Source::Vmm, &chunk(Some("/v/qemu.log"), "y\n", 0), false);
        assert_eq!(back, "==> VMM log: /v/qemu.log <==\ny\n");
        let none = header(Source::Vmm, &chunk(None, "", 0));
        assert!(none.contains("none yet"), "{none}");
    }

    #[test]
    fn a_log_cut_by_its_cap_says_so_first_and_when_a_follower_missed_output() {
        let mut p = Printer {
            colour: false,
            current: None,
            at_line_start: true,
        };
        let mut cut = chunk(Some("/v/console.log"), "newest\n", 0);
        cut.discarded = 40 << 20;
        cut.size = (40 << 20) + (8 << 20);
        let out = p.section(Source::Console, &cut, true);
        assert_eq!(
            out,
            "==> serial console: /v/console.log <==\n\
             ==> serial console: older output was discarded (kept the last 8 MiB) <==\n\
             newest\n"
        );
        // Following: nothing more about the old cut, but a gap is named.
        let mut next = chunk(Some("/v/console.log"), "more\n", 0);
        next.discarded = cut.discarded;
        assert_eq!(p.section(Source::Console, &next, false), "more\n");
        let mut gap = chunk(Some("/v/console.log"), "after\n", 3 << 20);
        gap.discarded = 48 << 20;
        let out = p.section(Source::Console, &gap, false);
        assert_eq!(
            out,
            "==> serial console: 3 MiB of output were discarded by the log's cap before they \
             could be shown <==\nafter\n"
        );
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}
