//! How an error is shown to a person: at the bottom of the crate so every
//! module can print errors without importing the command runner.

/// An error and its causes as printed after `banger: `. The daemon's
/// messages can carry guest text (a console tail, an agent's error), so the
/// line is cleaned of escape sequences and controls; newlines stay.
pub(crate) fn error_line(e: &dyn std::error::Error) -> String {
    banger_api::text::clean_guest_text(&banger_api::error_chain(e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_lines_are_inert_and_keep_their_newlines() {
        let e = std::io::Error::other(
            "agent error (failed): \u{1b}]52;c;cm0gLXJmIH4K\u{7}boom\u{1b}[2J\nconsole: x\u{9b}31m",
        );
        assert_eq!(
            super::error_line(&e),
            "agent error (failed): boom\nconsole: x"
        );
    }
}
