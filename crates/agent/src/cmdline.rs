//! The kernel command line, tokenized the way the kernel itself does it
//! (`next_arg` in `lib/cmdline.c`): whitespace separates parameters, double
//! quotes group whitespace into one value and are removed, and `--` ends the
//! kernel's parameters (what follows belongs to init).

/// Where the kernel command line is read from.
pub const PROC_CMDLINE: &str = "/proc/cmdline";

/// A parsed command line: `key[=value]` parameters in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    params: Vec<(String, Option<String>)>,
    init_args: Vec<String>,
}

impl Cmdline {
    /// Tokenizes `text` (the content of `/proc/cmdline`).
    pub fn parse(text: &str) -> Cmdline {
        let mut cmdline = Cmdline::default();
        let mut after_dashes = false;
        for token in tokens(text) {
            if after_dashes {
                cmdline.init_args.push(token.text);
                continue;
            }
            if token.text == "--" && !token.quoted {
                after_dashes = true;
                continue;
            }
            let (key, value) = match token.text.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (token.text, None),
            };
            cmdline.params.push((key, value));
        }
        cmdline
    }

    /// The value of the last `key=value`: like the kernel, a later
    /// occurrence wins. `None` when absent or given without `=`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// True when `key` appears as a bare flag (no `=`).
    pub fn has_flag(&self, key: &str) -> bool {
        self.params.iter().any(|(k, v)| k == key && v.is_none())
    }

    /// Which of the bare flags in `candidates` appears last, if any (for
    /// pairs like `ro`/`rw`).
    pub fn last_flag_of<'a>(&self, candidates: &[&'a str]) -> Option<&'a str> {
        self.params.iter().rev().find_map(|(k, v)| {
            if v.is_some() {
                return None;
            }
            candidates.iter().copied().find(|c| *c == k)
        })
    }

    /// All parameters in order.
    pub fn params(&self) -> &[(String, Option<String>)] {
        &self.params
    }

    /// The words after `--`, which the kernel passes to init.
    pub fn init_args(&self) -> &[String] {
        &self.init_args
    }
}

struct Token {
    text: String,
    quoted: bool,
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_token = false;
    let mut in_quote = false;
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            in_quote = !in_quote;
            in_token = true;
            quoted = true;
            continue;
        }
        if c.is_whitespace() && !in_quote {
            if in_token {
                out.push(Token {
                    text: std::mem::take(&mut current),
                    quoted,
                });
                in_token = false;
                quoted = false;
            }
            continue;
        }
        current.push(c);
        in_token = true;
    }
    if in_token {
        out.push(Token {
            text: current,
            quoted,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_values_and_flags() {
        let c = Cmdline::parse(
            "console=ttyS0 reboot=k panic=1 ro banger.ip=172.16.0.2/24 banger.gw=172.16.0.1 quiet\n",
        );
        assert_eq!(c.get("console"), Some("ttyS0"));
        assert_eq!(c.get("banger.ip"), Some("172.16.0.2/24"));
        assert_eq!(c.get("banger.gw"), Some("172.16.0.1"));
        assert!(c.has_flag("ro"));
        assert!(c.has_flag("quiet"));
        assert!(!c.has_flag("console"));
        assert_eq!(c.get("ro"), None);
        assert_eq!(c.get("missing"), None);
    }

    #[test]
    fn quotes_group_whitespace_and_are_removed() {
        let c = Cmdline::parse(r#"a="x y  z" "b=1 2" c=""  d"#);
        assert_eq!(c.get("a"), Some("x y  z"));
        assert_eq!(c.get("b"), Some("1 2"));
        assert_eq!(c.get("c"), Some(""));
        assert!(c.has_flag("d"));
    }

    #[test]
    fn value_keeps_later_equals_signs() {
        let c = Cmdline::parse("banger.init=/bin/env=x root=UUID=abc");
        assert_eq!(c.get("banger.init"), Some("/bin/env=x"));
        assert_eq!(c.get("root"), Some("UUID=abc"));
    }

    #[test]
    fn last_occurrence_wins() {
        let c = Cmdline::parse("banger.root=/dev/vda banger.root=/dev/vdc ro rw");
        assert_eq!(c.get("banger.root"), Some("/dev/vdc"));
        assert_eq!(c.last_flag_of(&["ro", "rw"]), Some("rw"));
        let c = Cmdline::parse("rw ro");
        assert_eq!(c.last_flag_of(&["ro", "rw"]), Some("ro"));
        assert_eq!(Cmdline::parse("x").last_flag_of(&["ro", "rw"]), None);
    }

    #[test]
    fn double_dash_ends_kernel_parameters() {
        let c = Cmdline::parse("a=1 -- banger.ip=1.2.3.4 single");
        assert_eq!(c.get("a"), Some("1"));
        assert_eq!(c.get("banger.ip"), None);
        assert_eq!(c.init_args(), ["banger.ip=1.2.3.4", "single"]);
        // A quoted "--" is an ordinary parameter.
        let c = Cmdline::parse(r#""--" a=1"#);
        assert_eq!(c.get("a"), Some("1"));
        assert!(c.init_args().is_empty());
    }

    #[test]
    fn empty_and_blank_lines_have_no_params() {
        assert!(Cmdline::parse("").params().is_empty());
        assert!(Cmdline::parse(" \n\t ").params().is_empty());
    }
}
