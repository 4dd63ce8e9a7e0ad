//! The deb822 control format of `Release` and `Packages` files: stanzas of
//! `Field: value` lines separated by blank lines, values continued on lines
//! that start with a space or tab.
//!
//! Values borrow from the input, so parsing a 50 MB `Packages` file does not
//! copy it; a multi-line value is returned raw (continuation lines included)
//! and its user splits it.

/// One stanza: its fields in file order, and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza<'a> {
    pub line: usize,
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Stanza<'a> {
    /// The value of `name` (field names are case-insensitive in deb822).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// A line that is not deb822.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub detail: String,
}

/// Iterates over the stanzas of `text`.
pub fn stanzas(text: &str) -> Stanzas<'_> {
    Stanzas {
        text,
        pos: 0,
        line: 0,
    }
}

pub struct Stanzas<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Stanzas<'a> {
    /// The next line with its 1-based number and byte range, without its
    /// newline.
    fn next_line(&mut self) -> Option<(usize, usize, usize)> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        self.pos = (end + 1).min(self.text.len());
        self.line += 1;
        Some((self.line, start, end))
    }
}

impl<'a> Iterator for Stanzas<'a> {
    type Item = Result<Stanza<'a>, SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.text;
        let mut stanza: Option<Stanza<'a>> = None;
        // The current field: name, and the byte range of its value so far.
        let mut open: Option<(&'a str, usize, usize)> = None;
        while let Some((line, start, end)) = self.next_line() {
            let raw = text[start..end].trim_end_matches('\r');
            if raw.trim().is_empty() {
                if stanza.is_some() {
                    break;
                }
                continue;
            }
            if raw.starts_with('#') {
                continue;
            }
            if raw.starts_with([' ', '\t']) {
                match open.as_mut() {
                    Some((_, _, value_end)) => *value_end = start + raw.len(),
                    None => {
                        return Some(Err(SyntaxError {
                            line,
                            detail: "continuation line without a field before it".into(),
                        }));
                    }
                }
                continue;
            }
            let Some((name, _)) = raw.split_once(':') else {
                return Some(Err(SyntaxError {
                    line,
                    detail: format!("expected `Field: value`, found {raw:?}"),
                }));
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Some(Err(SyntaxError {
                    line,
                    detail: format!("bad field name {name:?}"),
                }));
            }
            let stanza = stanza.get_or_insert_with(|| Stanza {
                line,
                fields: Vec::new(),
            });
            if let Some(field) = open.take() {
                stanza.fields.push(finish(text, field));
            }
            let value_start = start + name.len() + 1;
            open = Some((name, value_start, start + raw.len()));
        }
        let mut stanza = stanza?;
        if let Some(field) = open {
            stanza.fields.push(finish(text, field));
        }
        Some(Ok(stanza))
    }
}

fn finish<'a>(text: &'a str, (name, start, end): (&'a str, usize, usize)) -> (&'a str, &'a str) {
    (name, text[start..end].trim())
}

/// The lines of a multi-line value with their indentation removed, empty
/// lines (the first line of `SHA256:` in a Release file) skipped.
pub fn value_lines(value: &str) -> impl Iterator<Item = &str> {
    value.lines().map(str::trim).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_are_split_on_blank_lines_with_multiline_values() {
        let text = "Package: a\nVersion: 1\nDescription: short\n long line\n .\n more\n\n\n\
                    # comment\npackage: b\r\nDepends: x (>= 1), y | z\r\n";
        let all: Vec<_> = stanzas(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].line, 1);
        assert_eq!(all[0].get("package"), Some("a"));
        assert_eq!(all[0].get("VERSION"), Some("1"));
        assert_eq!(
            value_lines(all[0].get("Description").unwrap()).collect::<Vec<_>>(),
            ["short", "long line", ".", "more"]
        );
        assert_eq!(all[1].line, 10);
        assert_eq!(all[1].get("Package"), Some("b"));
        assert_eq!(all[1].get("Depends"), Some("x (>= 1), y | z"));
        assert_eq!(all[1].get("Missing"), None);
    }

    #[test]
    fn a_value_may_start_on_the_next_line() {
        let text = "SHA256:\n abc 12 main/x\n def 34 main/y\nDate: now\n";
        let all: Vec<_> = stanzas(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            value_lines(all[0].get("SHA256").unwrap()).collect::<Vec<_>>(),
            ["abc 12 main/x", "def 34 main/y"]
        );
        assert_eq!(all[0].get("Date"), Some("now"));
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let err = stanzas("A: 1\nnot a field\n").next().unwrap().unwrap_err();
        assert_eq!(err.line, 2);
        let err = stanzas(" orphan\n").next().unwrap().unwrap_err();
        assert_eq!(err.line, 1);
        let err = stanzas("Bad Name: 1\n").next().unwrap().unwrap_err();
        assert!(err.detail.contains("Bad Name"), "{err:?}");
    }

    #[test]
    fn empty_input_has_no_stanzas() {
        assert!(stanzas("\n\n  \n").next().is_none());
    }
}
