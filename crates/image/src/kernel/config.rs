//! The kernel's build configuration (`boot/config-<release>`): which
//! features are built in (`=y`), modules (`=m`) or absent.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tristate {
    BuiltIn,
    Module,
    No,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    values: HashMap<String, String>,
}

impl KernelConfig {
    /// Parses `CONFIG_X=value` lines; comments (including `# CONFIG_X is
    /// not set`) and anything else are ignored, as Kconfig does.
    pub fn parse(text: &str) -> Self {
        let values = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("CONFIG_"))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        Self { values }
    }

    /// How `symbol` (without the `CONFIG_` prefix) is configured.
    pub fn tristate(&self, symbol: &str) -> Tristate {
        match self.values.get(symbol).map(String::as_str) {
            Some("y") => Tristate::BuiltIn,
            Some("m") => Tristate::Module,
            _ => Tristate::No,
        }
    }

    pub fn get(&self, symbol: &str) -> Option<&str> {
        self.values.get(symbol).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_read_as_tristates() {
        let c = KernelConfig::parse(
            "#\n# comment\nCONFIG_EXT4_FS=y\nCONFIG_VIRTIO=m\n\
             # CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set\nCONFIG_MODULE_SIG_HASH=\"sha256\"\n",
        );
        assert_eq!(c.tristate("EXT4_FS"), Tristate::BuiltIn);
        assert_eq!(c.tristate("VIRTIO"), Tristate::Module);
        assert_eq!(c.tristate("VIRTIO_MMIO_CMDLINE_DEVICES"), Tristate::No);
        assert_eq!(c.tristate("NOT_THERE"), Tristate::No);
        assert_eq!(c.get("MODULE_SIG_HASH"), Some("sha256"));
    }
}
