//! Turning a TOML error's byte span into the line and key a person can find.
//!
//! `toml::de::Error` knows the dotted key internally but does not expose it,
//! so we keep the parsed document (which records the span of every key and
//! value) and look up which key the error span falls on.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, Location};

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub(crate) fn location(text: &str, path: &Path, span: Option<Range<usize>>) -> Location {
    Location {
        path: path.to_path_buf(),
        line: span.map(|s| line_of(text, s.start)),
    }
}

/// The dotted path of the deepest key whose name or value covers `offset`,
/// e.g. `vm_defaults.vcpu`. Array elements add no segment: the line already
/// says which `[[file_sync]]` entry is meant.
pub(crate) fn key_at(root: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut path = Vec::new();
    table_key_at(root, offset, &mut path).then(|| path.join("."))
}

fn table_key_at(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        if key.span().contains(&offset) || value_key_at(value, offset, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// Containers are searched whatever their own span says: a `[table]`
/// header's span need not cover the keys written below it.
fn value_key_at(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<String>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => {
            table_key_at(table, offset, path) || value.span().contains(&offset)
        }
        DeValue::Array(items) => {
            items.iter().any(|item| value_key_at(item, offset, path))
                || value.span().contains(&offset)
        }
        _ => value.span().contains(&offset),
    }
}

/// Converts a serde error from deserialising `doc` into our error, keeping the
/// line and naming the key. Errors raised by our own value types arrive here
/// too, so their messages are passed through unchanged.
pub(crate) fn from_de_error(
    err: &toml::de::Error,
    doc: &DeTable<'_>,
    text: &str,
    path: &Path,
) -> ConfigError {
    let span = err.span();
    let location = location(text, path, span.clone());
    let key = span.and_then(|s| key_at(doc, s.start));
    let message = err.message().trim_end().to_string();
    match key {
        None => ConfigError::Syntax { location, message },
        Some(key) => match unknown_field_hint(&message) {
            Some(expected) => ConfigError::UnknownKey {
                location,
                key,
                expected,
            },
            None => ConfigError::InvalidValue {
                location,
                key,
                message,
            },
        },
    }
}

/// serde words an unknown field as "unknown field `x`, expected one of `a`,
/// `b`" (or "..., there are no fields"); we keep the part after the name.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (_, hint) = rest.split_once("`, ")?;
    Some(hint.to_string())
}

/// A parse (syntax) error: no document exists yet to find a key in.
pub(crate) fn from_parse_error(err: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    ConfigError::Syntax {
        location: location(text, path, err.span()),
        message: err.message().trim_end().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_from_one() {
        let text = "a = 1\nb = 2\n\nc = 3";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 6), 2);
        assert_eq!(line_of(text, text.find('c').unwrap()), 4);
        assert_eq!(line_of(text, 10_000), 4);
    }

    #[test]
    fn key_at_finds_nested_keys_and_values() {
        let text = "a = 1\n[t]\nb = \"x\"\n[[arr]]\nc = 2\n[[arr]]\nd = 3\n";
        let doc = DeTable::parse(text).unwrap();
        let at = |needle: &str| key_at(doc.get_ref(), text.find(needle).unwrap());
        assert_eq!(at("a =").as_deref(), Some("a"));
        assert_eq!(at("b =").as_deref(), Some("t.b"));
        assert_eq!(at("\"x\"").as_deref(), Some("t.b"));
        assert_eq!(at("c =").as_deref(), Some("arr.c"));
        assert_eq!(at("d =").as_deref(), Some("arr.d"));
        assert_eq!(at("3").as_deref(), Some("arr.d"));
    }

    #[test]
    fn unknown_field_hint_keeps_the_expected_list() {
        assert_eq!(
            unknown_field_hint("unknown field `x`, expected one of `a`, `b`").as_deref(),
            Some("expected one of `a`, `b`")
        );
        assert_eq!(unknown_field_hint("invalid type: integer"), None);
    }
}
