//! A binary package as a `Packages` index describes it, and its `Depends`
//! relations.

use std::cmp::Ordering;
use std::fmt;

use super::deb822::Stanza;
use super::fetch::Expected;
use super::version;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// All groups must hold; within a group any one alternative will do.
    pub depends: Vec<Vec<Relation>>,
    /// Path of the `.deb` relative to the mirror's base URL.
    pub filename: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// The suite whose index listed it.
    pub suite: String,
}

impl Package {
    /// Reads the fields banger needs from one stanza; the error names the
    /// missing or bad field.
    pub(crate) fn from_stanza(stanza: &Stanza<'_>, suite: &str) -> Result<Self, String> {
        let field = |name: &str| stanza.get(name).ok_or_else(|| format!("no {name} field"));
        let name = field("Package")?;
        let size = field("Size")?;
        let sha256 = field("SHA256")?;
        Ok(Self {
            name: name.to_owned(),
            version: field("Version")?.to_owned(),
            depends: stanza.get("Depends").map(parse_depends).unwrap_or_default(),
            filename: field("Filename")?.to_owned(),
            size: size
                .parse()
                .map_err(|_| format!("bad Size {size:?} of {name}"))?,
            sha256: hex::FromHex::from_hex(sha256)
                .map_err(|_| format!("bad SHA256 {sha256:?} of {name}"))?,
            suite: suite.to_owned(),
        })
    }

    pub(crate) fn expected(&self) -> Expected {
        Expected {
            size: self.size,
            sha256: self.sha256,
        }
    }
}

/// `name [(op version)]` in a `Depends` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    pub constraint: Option<(Op, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Relation {
    /// Whether `version` satisfies this relation's constraint.
    pub fn accepts(&self, version: &str) -> bool {
        let Some((op, wanted)) = &self.constraint else {
            return true;
        };
        let ord = version::compare(version, wanted);
        match op {
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::Ge => ord != Ordering::Less,
            Op::Gt => ord == Ordering::Greater,
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some((op, v)) = &self.constraint {
            let op = match op {
                Op::Lt => "<<",
                Op::Le => "<=",
                Op::Eq => "=",
                Op::Ge => ">=",
                Op::Gt => ">>",
            };
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

/// Parses `a (>= 1), b | c:any [amd64] <!nocheck>`; architecture lists and
/// build profiles are dropped (they only matter to source packages), an
/// architecture qualifier on the name too.
pub fn parse_depends(field: &str) -> Vec<Vec<Relation>> {
    field
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(parse_relation)
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

fn parse_relation(text: &str) -> Option<Relation> {
    // The version constraint is the only parenthesised part; take it out
    // first, since its operators use the same `<` `>` as build profiles.
    let (outside, inside) = match (text.find('('), text.find(')')) {
        (Some(open), Some(close)) if open < close => (
            format!("{}{}", &text[..open], &text[close + 1..]),
            Some(&text[open + 1..close]),
        ),
        _ => (text.to_owned(), None),
    };
    let name = strip_bracketed(&strip_bracketed(&outside, '[', ']'), '<', '>');
    let name = name.trim();
    let name = name.split_once(':').map_or(name, |(n, _)| n);
    if name.is_empty() {
        return None;
    }
    let constraint = inside.and_then(|inner| {
        let inner = inner.trim();
        let (op, ver) = [
            ("<<", Op::Lt),
            ("<=", Op::Le),
            (">=", Op::Ge),
            (">>", Op::Gt),
            ("=", Op::Eq),
            // Obsolete spellings dpkg still reads as <= and >=.
            ("<", Op::Le),
            (">", Op::Ge),
        ]
        .iter()
        .find_map(|(p, op)| inner.strip_prefix(p).map(|v| (*op, v.trim())))?;
        (!ver.is_empty()).then(|| (op, ver.to_owned()))
    });
    Some(Relation {
        name: name.to_owned(),
        constraint,
    })
}

fn strip_bracketed(text: &str, open: char, close: char) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.saturating_sub(1);
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::deb822;

    #[test]
    fn depends_are_groups_of_alternatives_with_constraints() {
        let d = parse_depends(
            "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
             libc6:any [amd64] <!nocheck>, x (<< 2)",
        );
        assert_eq!(d.len(), 5);
        assert_eq!(d[0][0].name, "kmod");
        assert_eq!(d[0][0].constraint, None);
        assert_eq!(d[1][0].constraint, Some((Op::Ge, "4.3~".to_owned())));
        assert_eq!(d[2].len(), 2);
        assert_eq!(d[2][1].name, "linux-initramfs-tool");
        assert_eq!(d[3][0].name, "libc6");
        assert_eq!(d[4][0].to_string(), "x (<< 2)");
    }

    #[test]
    fn constraints_compare_debian_versions() {
        let rel = |s: &str| parse_depends(s).remove(0).remove(0);
        assert!(rel("a (= 6.1.176-1)").accepts("6.1.176-1"));
        assert!(!rel("a (= 6.1.176-1)").accepts("6.1.176-2"));
        assert!(rel("a (>= 4.3~)").accepts("4.3"));
        assert!(!rel("a (>> 4.3)").accepts("4.3"));
        assert!(rel("a (<< 4.3)").accepts("4.3~rc1"));
        assert!(rel("a (<= 4.3)").accepts("4.3"));
        assert!(rel("a").accepts("anything"));
    }

    #[test]
    fn a_stanza_becomes_a_package_or_names_what_is_missing() {
        let text = "Package: linux-image-cloud-amd64\nVersion: 6.1.176-1\n\
            Depends: linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)\n\
            Filename: pool/main/l/x.deb\nSize: 1500\n\
            SHA256: 6f32a25a6ee7b58852de01577ba261fda873c3002c736a2148bf0a6593bd93c8\n";
        let stanza = deb822::stanzas(text).next().unwrap().unwrap();
        let p = Package::from_stanza(&stanza, "bookworm").unwrap();
        assert_eq!(p.name, "linux-image-cloud-amd64");
        assert_eq!(p.size, 1500);
        assert_eq!(p.sha256[0], 0x6f);
        assert_eq!(p.depends[0][0].name, "linux-image-6.1.0-50-cloud-amd64");
        assert_eq!(p.suite, "bookworm");

        let no_size = text.replace("Size: 1500\n", "");
        let stanza = deb822::stanzas(&no_size).next().unwrap().unwrap();
        let err = Package::from_stanza(&stanza, "bookworm").unwrap_err();
        assert!(err.contains("Size"), "{err}");
    }
}
