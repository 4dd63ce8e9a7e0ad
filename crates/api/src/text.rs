//! Text that came from a guest, made inert (SPEC §12): whatever a guest
//! writes (console output, agent error messages, command stderr, hostnames)
//! may reach a terminal or the store, and must do nothing there but read.
//!
//! [`clean_guest_text`] removes:
//!
//! - escape sequences: CSI (`ESC [` … final byte: cursor moves, screen
//!   clears), OSC (`ESC ]` … BEL or ST: window titles, hyperlinks, OSC 52
//!   clipboard writes), DCS, SOS, PM and APC strings (`ESC P`, `ESC X`,
//!   `ESC ^`, `ESC _` … ST), and every other `ESC` sequence (`ESC ( B`,
//!   `ESC c`, …), whole;
//! - the same introducers in their 8-bit (C1) form, U+009B CSI, U+009D OSC,
//!   U+0090 DCS, U+0098 SOS, U+009E PM, U+009F APC, with their sequences,
//!   and every other C1 control (U+0080–U+009F);
//! - C0 controls other than `\n` and `\t`, and DEL: `\r\n` becomes `\n`, a
//!   lone `\r` (which would let later text overwrite the line) goes;
//! - the Unicode bidi embeddings, overrides and isolates (U+202A–U+202E,
//!   U+2066–U+2069), which can make text read differently from what it is.
//!
//! A string sequence (OSC, DCS, …) that is never terminated ends at the
//! next newline or `ESC`, so one stray introducer cannot hide the rest of
//! the text. Nothing here does I/O.

/// `ESC`.
const ESC: char = '\u{1b}';
/// `BEL`, which also ends an OSC.
const BEL: char = '\u{7}';
/// The 8-bit String Terminator.
const ST8: char = '\u{9c}';

/// True for a character [`clean_guest_text`] never lets through on its
/// own: every control except `\n` and `\t` (C0, DEL, C1) and the bidi
/// embeddings, overrides and isolates.
pub fn is_unsafe_char(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// Text from a guest made inert for a terminal and for storage (see the
/// module documentation for what goes). Newlines and tabs stay.
pub fn clean_guest_text(s: &str) -> String {
    clean(s, false)
}

/// [`clean_guest_text`] keeping colour: SGR sequences (`ESC [` digits and
/// `;` `m`, which only set colours and attributes) stay when `keep_colour`,
/// and go like every other sequence otherwise. For a terminal the caller
/// knows renders colour (and where `NO_COLOR` is unset).
pub fn clean_guest_text_keeping_colour(s: &str, keep_colour: bool) -> String {
    clean(s, keep_colour)
}

/// Bytes from a guest as inert text: invalid UTF-8 becomes U+FFFD, then
/// [`clean_guest_text`].
pub fn clean_guest_bytes(bytes: &[u8]) -> String {
    clean_guest_text(&String::from_utf8_lossy(bytes))
}

/// [`clean_guest_text`], then at most `max_bytes` of it (cut on a character
/// boundary) followed, when anything was cut, by a visible marker
/// `… [cut: N more bytes]`, so a reader never takes a cut text for the
/// whole of it.
pub fn clean_guest_text_capped(s: &str, max_bytes: usize) -> String {
    cap(clean_guest_text(s), max_bytes)
}

/// [`clean_guest_bytes`] with the cap of [`clean_guest_text_capped`].
pub fn clean_guest_bytes_capped(bytes: &[u8], max_bytes: usize) -> String {
    cap(clean_guest_bytes(bytes), max_bytes)
}

/// `text` cut to at most `max_bytes` on a character boundary, with the
/// marker saying how much went.
fn cap(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&cut_marker(cut));
    text
}

/// The marker a capped text ends with: `… [cut: N more bytes]`.
pub fn cut_marker(cut_bytes: usize) -> String {
    format!("… [cut: {cut_bytes} more bytes]")
}

/// JSON text (as `serde_json` writes it) with every character
/// [`is_unsafe_char`] names written as a `\uXXXX` escape. `serde_json`
/// escapes C0 controls itself but not DEL, C1 controls or bidi controls;
/// outside strings JSON text is ASCII, so this only touches string
/// contents, and the value read back is unchanged: `--json` output stays
/// exact and still cannot drive a terminal.
pub fn escape_json_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_unsafe_char(c) && u32::from(c) >= 0x7f {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// What an escape introducer starts.
#[derive(Clone, Copy)]
enum Introduced {
    /// Control Sequence: parameters, intermediates, one final byte.
    Csi,
    /// A control string (OSC, DCS, SOS, PM, APC) ending at BEL or ST.
    String,
    /// Any other escape: intermediates, then one final byte.
    Other,
}

fn clean(s: &str, keep_colour: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(c) = at(i) {
        i += 1;
        let introduced = match c {
            '\n' | '\t' => {
                out.push(c);
                continue;
            }
            '\r' => continue, // `\r\n` keeps its `\n`; a lone `\r` goes.
            ESC => match at(i) {
                Some('[') => {
                    i += 1;
                    Introduced::Csi
                }
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    i += 1;
                    Introduced::String
                }
                _ => Introduced::Other,
            },
            '\u{9b}' => Introduced::Csi,
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => Introduced::String,
            c if is_unsafe_char(c) => continue,
            c => {
                out.push(c);
                continue;
            }
        };
        match introduced {
            Introduced::Csi => {
                // Parameters and intermediates (0x20–0x3F), then a final
                // byte (0x40–0x7E). Anything else aborts the sequence (as
                // in a terminal) and is then taken on its own.
                let start = i;
                while at(i).is_some_and(|n| (' '..='?').contains(&n)) {
                    i += 1;
                }
                let complete = at(i).is_some_and(|n| ('@'..='~').contains(&n));
                if complete {
                    i += 1;
                }
                let sgr = complete
                    && c == ESC
                    && chars[i - 1] == 'm'
                    && chars[start..i - 1]
                        .iter()
                        .all(|c| c.is_ascii_digit() || *c == ';');
                if keep_colour && sgr {
                    out.push(ESC);
                    out.push('[');
                    out.extend(&chars[start..i]);
                }
            }
            Introduced::String => {
                // Up to BEL or ST (ESC \ or U+009C). A newline, or an ESC
                // starting something else, ends an unterminated string
                // without being swallowed, so one stray introducer cannot
                // hide the rest of the text.
                while let Some(n) = at(i) {
                    match n {
                        BEL | ST8 => {
                            i += 1;
                            break;
                        }
                        ESC if at(i + 1) == Some('\\') => {
                            i += 2;
                            break;
                        }
                        ESC | '\n' => break,
                        _ => i += 1,
                    }
                }
            }
            Introduced::Other => {
                // ESC, intermediates (0x20–0x2F), one final (0x30–0x7E);
                // an ESC followed by anything else goes alone.
                let start = i;
                while at(i).is_some_and(|n| (' '..='/').contains(&n)) {
                    i += 1;
                }
                if at(i).is_some_and(|n| ('0'..='~').contains(&n)) {
                    i += 1;
                } else {
                    // No final byte: only the ESC goes.
                    i = start;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_newlines_and_tabs_pass() {
        let text = "boot ok\n\tnext line — ünïcødé 日本語 🙂\n";
        assert_eq!(clean_guest_text(text), text);
        assert_eq!(clean_guest_text("a\r\nb\r\n"), "a\nb\n");
    }

    #[test]
    fn a_lone_carriage_return_cannot_overwrite_a_line() {
        assert_eq!(clean_guest_text("rm -rf / \rls -l\n"), "rm -rf / ls -l\n");
    }

    #[test]
    fn osc_52_clipboard_writes_go() {
        // BEL-terminated and ST-terminated, 7-bit and 8-bit.
        assert_eq!(clean_guest_text("a\u{1b}]52;c;ZXZpbA==\u{7}b"), "ab");
        assert_eq!(clean_guest_text("a\u{1b}]52;c;ZXZpbA==\u{1b}\\b"), "ab");
        assert_eq!(clean_guest_text("a\u{9d}52;c;ZXZpbA==\u{9c}b"), "ab");
    }

    #[test]
    fn screen_clear_and_cursor_moves_go() {
        assert_eq!(clean_guest_text("a\u{1b}[2Jb\u{1b}[H\u{1b}[1;1Hc"), "abc");
        assert_eq!(clean_guest_text("x\u{1b}[?1049hy"), "xy");
    }

    #[test]
    fn title_changes_go() {
        assert_eq!(clean_guest_text("a\u{1b}]0;pwned title\u{7}b"), "ab");
        assert_eq!(clean_guest_text("a\u{1b}]2;t\u{1b}\\b"), "ab");
    }

    #[test]
    fn eight_bit_csi_goes_with_its_sequence() {
        assert_eq!(clean_guest_text("a\u{9b}2Jb"), "ab");
        assert_eq!(clean_guest_text("a\u{9b}31mred"), "ared");
        // Other C1 controls go alone.
        assert_eq!(clean_guest_text("a\u{85}b\u{80}c"), "abc");
    }

    #[test]
    fn dcs_apc_pm_sos_and_short_escapes_go() {
        assert_eq!(clean_guest_text("a\u{1b}Pq#0;2;0;0;0\u{1b}\\b"), "ab");
        assert_eq!(clean_guest_text("a\u{1b}_apc\u{1b}\\b"), "ab");
        assert_eq!(clean_guest_text("a\u{1b}^pm\u{1b}\\b"), "ab");
        assert_eq!(clean_guest_text("a\u{1b}Xsos\u{1b}\\b"), "ab");
        assert_eq!(clean_guest_text("a\u{1b}(Bb\u{1b}cc\u{1b}7d"), "abcd");
        assert_eq!(clean_guest_text("a\u{1b}"), "a");
    }

    #[test]
    fn an_unterminated_string_does_not_hide_the_next_lines() {
        assert_eq!(
            clean_guest_text("a\u{1b}]0;never ends\nsecond line\n"),
            "a\nsecond line\n"
        );
        assert_eq!(clean_guest_text("a\u{1b}]0;x\u{1b}[2Jshown"), "ashown");
    }

    #[test]
    fn bidi_controls_and_c0_go() {
        assert_eq!(
            clean_guest_text("file\u{202e}txt.exe\u{2066}x\u{2069}"),
            "filetxt.exex"
        );
        assert_eq!(clean_guest_text("a\u{7}\u{8}\u{0}\u{7f}b"), "ab");
    }

    #[test]
    fn colour_stays_only_when_asked() {
        let green = "\u{1b}[0;32m OK \u{1b}[0m";
        assert_eq!(clean_guest_text_keeping_colour(green, true), green);
        assert_eq!(clean_guest_text_keeping_colour(green, false), " OK ");
        assert_eq!(clean_guest_text(green), " OK ");
        // Not SGR, or not 7-bit: never kept.
        assert_eq!(
            clean_guest_text_keeping_colour("\u{1b}[2J\u{9b}31mx", true),
            "x"
        );
    }

    #[test]
    fn bytes_are_decoded_lossily_then_cleaned() {
        assert_eq!(
            clean_guest_bytes(b"ok\xff\x1b[2J\x9b!"),
            "ok\u{fffd}\u{fffd}!"
        );
    }

    #[test]
    fn capping_cuts_on_a_char_boundary_and_says_so() {
        assert_eq!(clean_guest_text_capped("short", 10), "short");
        assert_eq!(
            clean_guest_text_capped("0123456789", 4),
            "0123… [cut: 6 more bytes]"
        );
        // "é" is two bytes: a cap inside it backs off to before it.
        assert_eq!(clean_guest_text_capped("aé", 2), "a… [cut: 2 more bytes]");
        // The cap counts cleaned text.
        assert_eq!(clean_guest_text_capped("\u{1b}[2J\u{1b}[2Jabc", 3), "abc");
        assert_eq!(
            clean_guest_bytes_capped(b"abcdef", 3),
            "abc… [cut: 3 more bytes]"
        );
    }

    #[test]
    fn json_keeps_its_value_and_loses_its_controls() {
        let value = serde_json::json!({"m": "a\u{9b}2J\u{202e}b\u{7f}\u{1b}c"});
        let json = serde_json::to_string(&value).unwrap();
        let inert = escape_json_controls(&json);
        assert!(!inert.chars().any(is_unsafe_char), "{inert}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&inert).unwrap(),
            value
        );
    }

    /// Characters that make interesting input: introducers, terminators,
    /// controls, bidi, and ordinary text.
    fn tricky() -> impl Strategy<Value = String> {
        let alphabet: Vec<char> = vec![
            '\u{1b}', '[', ']', 'P', 'X', '^', '_', '\\', '\u{7}', '\u{9b}', '\u{9c}', '\u{9d}',
            '\u{90}', '\u{98}', '\u{9e}', '\u{9f}', '\u{85}', '\r', '\n', '\t', '\u{0}', '\u{7f}',
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '0', '2', ';', 'm', 'J', 'H', '(', 'B',
            ' ', 'a', 'é', '日',
        ];
        prop::collection::vec(prop::sample::select(alphabet), 0..64)
            .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #[test]
        fn nothing_unsafe_survives_tricky_input(s in tricky()) {
            let out = clean_guest_text(&s);
            prop_assert!(!out.chars().any(is_unsafe_char), "{:?} -> {:?}", s, out);
            // Cleaning is a fixed point: clean text passes unchanged.
            prop_assert_eq!(clean_guest_text(&out), out.clone());
        }

        #[test]
        fn nothing_unsafe_survives_any_input(s in any::<String>()) {
            let out = clean_guest_text(&s);
            prop_assert!(!out.chars().any(is_unsafe_char), "{:?} -> {:?}", s, out);
        }

        #[test]
        fn nothing_unsafe_survives_any_bytes(b in prop::collection::vec(any::<u8>(), 0..256)) {
            let out = clean_guest_bytes(&b);
            prop_assert!(!out.chars().any(is_unsafe_char), "{:?} -> {:?}", b, out);
        }

        #[test]
        fn colour_mode_lets_only_sgr_escapes_through(s in tricky()) {
            let out = clean_guest_text_keeping_colour(&s, true);
            // Every ESC left starts `ESC [` digits/`;` `m`.
            let mut rest = out.as_str();
            while let Some(at) = rest.find('\u{1b}') {
                let seq = &rest[at + 1..];
                prop_assert!(seq.starts_with('['), "{:?}", out);
                let end = seq.find('m');
                prop_assert!(end.is_some(), "{:?}", out);
                let end = end.unwrap();
                prop_assert!(seq[1..end].chars().all(|c| c.is_ascii_digit() || c == ';'), "{:?}", out);
                rest = &seq[end..];
            }
            let without_sgr: String = out.chars().filter(|c| *c != '\u{1b}').collect();
            prop_assert!(!without_sgr.chars().any(is_unsafe_char), "{:?}", out);
        }

        #[test]
        fn ordinary_text_is_unchanged(s in "[a-zA-Z0-9 .,:;!?()\\[\\]/\\\\\n\té日🙂-]{0,64}") {
            prop_assert_eq!(clean_guest_text(&s), s);
        }

        #[test]
        fn capped_text_is_bounded_and_marked(s in any::<String>(), max in 0usize..40) {
            let out = clean_guest_text_capped(&s, max);
            let full = clean_guest_text(&s);
            if full.len() <= max {
                prop_assert_eq!(out, full);
            } else {
                let marker = out.find("… [cut: ").unwrap();
                prop_assert!(marker <= max);
                prop_assert!(full.starts_with(&out[..marker]));
            }
        }
    }
}
