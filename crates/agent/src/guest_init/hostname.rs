//! The kernel hostname from `/etc/hostname`.

use std::fs;
use std::path::Path;

/// The host name a hostname file names: its first non-empty line, trimmed.
pub fn parse(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Sets the kernel hostname from `file`; problems are logged.
pub fn apply_from_file(file: &Path) {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            crate::warn!("cannot read {}: {e}", file.display());
            return;
        }
    };
    let Some(name) = parse(&text) else {
        crate::warn!("{} names no host", file.display());
        return;
    };
    match nix::unistd::sethostname(name) {
        Ok(()) => crate::info!("hostname {name}"),
        Err(e) => crate::error!("sethostname({name:?}) failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_meaningful_line() {
        assert_eq!(parse("dev\n"), Some("dev"));
        assert_eq!(parse("\n  # comment\n  box-1  \nother\n"), Some("box-1"));
        assert_eq!(parse(""), None);
        assert_eq!(parse("\n\n"), None);
    }
}
