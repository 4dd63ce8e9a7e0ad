//! VM spec defaults in three layers (SPEC §6): `[vm_defaults]` in config,
//! then values derived from the host, then built-in floors. Each resolved
//! value says which layer it came from so `doctor` and `vm create` can show
//! why a VM got the size it did.

use std::fmt;

use banger_api::model::ByteSize;
use serde::Serialize;

use crate::config::Config;

const FLOOR_VCPU: u32 = 1;
const MAX_AUTO_VCPU: u32 = 4;
const FLOOR_MEMORY_MIB: u64 = 1024;
const MAX_AUTO_MEMORY_MIB: u64 = 8192;
/// Auto memory is rounded down to this so guests get tidy sizes.
const MEMORY_STEP_MIB: u64 = 256;
const BUILT_IN_DISK_MIB: u64 = 8 * 1024;
const BUILT_IN_OVERLAY_MIB: u64 = 8 * 1024;

/// What the defaults are derived from. `memory_mib == 0` or `cpus == 0`
/// means "unknown", which falls through to the built-in floors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    pub cpus: u32,
    pub memory_mib: u64,
}

impl HostFacts {
    /// Reads this host: available parallelism and `/proc/meminfo`. Failures
    /// yield "unknown" (0) rather than an error: defaults must always resolve.
    pub fn detect() -> HostFacts {
        let cpus = std::thread::available_parallelism()
            .map_or(0, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self::detect_from(&meminfo, cpus)
    }

    /// Builds facts from `/proc/meminfo` text (its `MemTotal:` line, in kB).
    pub fn detect_from(meminfo_text: &str, cpus: u32) -> HostFacts {
        HostFacts {
            cpus,
            memory_mib: mem_total_kib(meminfo_text).map_or(0, |kib| kib / 1024),
        }
    }
}

/// `MemTotal:       32768000 kB` -> 32768000.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let mut parts = line.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Source {
    #[serde(rename = "config")]
    Config,
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "built-in")]
    BuiltIn,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Config => "config",
            Self::Auto => "auto",
            Self::BuiltIn => "built-in",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resolved<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Resolved<T> {
    fn new(value: T, source: Source) -> Self {
        Self { value, source }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VmDefaults {
    pub vcpu: Resolved<u32>,
    pub memory_mib: Resolved<u64>,
    pub disk_size: Resolved<ByteSize>,
    pub system_overlay_size: Resolved<ByteSize>,
}

impl VmDefaults {
    /// One line for humans, e.g.
    /// `vcpu 1 (built-in), memory 3072 MiB (auto), disk 8G (built-in), overlay 8G (built-in)`.
    pub fn summary(&self) -> String {
        format!(
            "vcpu {} ({}), memory {} MiB ({}), disk {} ({}), overlay {} ({})",
            self.vcpu.value,
            self.vcpu.source,
            self.memory_mib.value,
            self.memory_mib.source,
            self.disk_size.value,
            self.disk_size.source,
            self.system_overlay_size.value,
            self.system_overlay_size.source,
        )
    }
}

pub fn resolve_vm_defaults(cfg: &Config, host: &HostFacts) -> VmDefaults {
    let layer = cfg.vm_defaults();
    VmDefaults {
        vcpu: pick(layer.vcpu(), auto_vcpu(host), FLOOR_VCPU),
        memory_mib: pick(layer.memory_mib(), auto_memory_mib(host), FLOOR_MEMORY_MIB),
        disk_size: pick(layer.disk_size(), None, built_in_size(BUILT_IN_DISK_MIB)),
        system_overlay_size: pick(
            layer.system_overlay_size(),
            None,
            built_in_size(BUILT_IN_OVERLAY_MIB),
        ),
    }
}

fn pick<T>(config: Option<T>, auto: Option<T>, built_in: T) -> Resolved<T> {
    match (config, auto) {
        (Some(v), _) => Resolved::new(v, Source::Config),
        (None, Some(v)) => Resolved::new(v, Source::Auto),
        (None, None) => Resolved::new(built_in, Source::BuiltIn),
    }
}

/// A quarter of the host's CPUs, at most 4, so a few VMs fit side by side.
fn auto_vcpu(host: &HostFacts) -> Option<u32> {
    let v = (host.cpus / 4).min(MAX_AUTO_VCPU);
    (v >= FLOOR_VCPU).then_some(v)
}

/// An eighth of the host's RAM, at most 8 GiB; below the floor the host
/// gives no useful hint and the floor applies.
fn auto_memory_mib(host: &HostFacts) -> Option<u64> {
    let m = (host.memory_mib / 8).min(MAX_AUTO_MEMORY_MIB) / MEMORY_STEP_MIB * MEMORY_STEP_MIB;
    (m >= FLOOR_MEMORY_MIB).then_some(m)
}

fn built_in_size(mib: u64) -> ByteSize {
    ByteSize::from_mib(mib).expect("built-in sizes are positive and small")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const GIB: u64 = 1024;

    fn host(cpus: u32, memory_gib: u64) -> HostFacts {
        HostFacts {
            cpus,
            memory_mib: memory_gib * GIB,
        }
    }

    fn no_config() -> Config {
        Config::default()
    }

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("/t/config.toml")).unwrap()
    }

    #[test]
    fn vcpu_from_each_layer() {
        let d = resolve_vm_defaults(&no_config(), &host(2, 24));
        assert_eq!(d.vcpu, Resolved::new(1, Source::BuiltIn));
        let d = resolve_vm_defaults(&no_config(), &host(8, 24));
        assert_eq!(d.vcpu, Resolved::new(2, Source::Auto));
        let d = resolve_vm_defaults(&no_config(), &host(64, 24));
        assert_eq!(d.vcpu, Resolved::new(4, Source::Auto));
        let cfg = config("[vm_defaults]\nvcpu = 3\n");
        for cpus in [2, 8, 64] {
            let d = resolve_vm_defaults(&cfg, &host(cpus, 24));
            assert_eq!(d.vcpu, Resolved::new(3, Source::Config));
        }
    }

    #[test]
    fn memory_from_each_layer() {
        let d = resolve_vm_defaults(&no_config(), &host(8, 1));
        assert_eq!(d.memory_mib, Resolved::new(1024, Source::BuiltIn));
        let d = resolve_vm_defaults(&no_config(), &host(8, 24));
        assert_eq!(d.memory_mib, Resolved::new(3072, Source::Auto));
        let d = resolve_vm_defaults(&no_config(), &host(8, 256));
        assert_eq!(d.memory_mib, Resolved::new(8192, Source::Auto));
        let cfg = config("[vm_defaults]\nmemory_mib = 512\n");
        for gib in [1, 24, 256] {
            let d = resolve_vm_defaults(&cfg, &host(8, gib));
            assert_eq!(d.memory_mib, Resolved::new(512, Source::Config));
        }
    }

    #[test]
    fn auto_memory_rounds_down_to_256_mib() {
        // 10000 MiB / 8 = 1250 -> 1024.
        let h = HostFacts {
            cpus: 8,
            memory_mib: 10_000,
        };
        assert_eq!(
            resolve_vm_defaults(&no_config(), &h).memory_mib,
            Resolved::new(1024, Source::Auto)
        );
        // 15000 MiB / 8 = 1875 -> 1792.
        let h = HostFacts {
            cpus: 8,
            memory_mib: 15_000,
        };
        assert_eq!(resolve_vm_defaults(&no_config(), &h).memory_mib.value, 1792);
    }

    #[test]
    fn unknown_host_falls_to_floors() {
        let d = resolve_vm_defaults(&no_config(), &HostFacts::detect_from("", 0));
        assert_eq!(d.vcpu.source, Source::BuiltIn);
        assert_eq!(d.memory_mib.source, Source::BuiltIn);
    }

    #[test]
    fn sizes_from_config_or_built_in() {
        let d = resolve_vm_defaults(&no_config(), &host(8, 24));
        assert_eq!(d.disk_size.value.to_string(), "8G");
        assert_eq!(d.disk_size.source, Source::BuiltIn);
        assert_eq!(d.system_overlay_size.source, Source::BuiltIn);
        let cfg = config("[vm_defaults]\ndisk_size = \"20G\"\nsystem_overlay_size = \"512M\"\n");
        let d = resolve_vm_defaults(&cfg, &host(8, 24));
        assert_eq!(
            d.disk_size,
            Resolved::new(ByteSize::from_mib(20 * 1024).unwrap(), Source::Config)
        );
        assert_eq!(d.system_overlay_size.value.mib(), 512);
        assert_eq!(d.system_overlay_size.source, Source::Config);
    }

    #[test]
    fn summary_and_json_name_the_sources() {
        let d = resolve_vm_defaults(&no_config(), &host(2, 24));
        assert_eq!(
            d.summary(),
            "vcpu 1 (built-in), memory 3072 MiB (auto), disk 8G (built-in), overlay 8G (built-in)"
        );
        // toml's serializer stands in for JSON: same serde data model.
        let v = toml::Value::try_from(d).unwrap();
        assert_eq!(v["vcpu"]["source"].as_str(), Some("built-in"));
        assert_eq!(v["memory_mib"]["source"].as_str(), Some("auto"));
        assert_eq!(v["memory_mib"]["value"].as_integer(), Some(3072));
        assert_eq!(v["disk_size"]["value"].as_str(), Some("8G"));
        assert_eq!(Source::Config.to_string(), "config");
    }

    #[test]
    fn meminfo_parsing() {
        let text = "MemTotal:       32768000 kB\nMemFree:         1000 kB\n";
        assert_eq!(
            HostFacts::detect_from(text, 8),
            HostFacts {
                cpus: 8,
                memory_mib: 32_000
            }
        );
        let later = "MemFree: 1 kB\nMemTotal: 2097152 kB\n";
        assert_eq!(HostFacts::detect_from(later, 1).memory_mib, 2048);
        assert_eq!(HostFacts::detect_from("MemTotal: lots kB", 1).memory_mib, 0);
        assert_eq!(HostFacts::detect_from("MemTotal: 5 MB", 1).memory_mib, 0);
        assert_eq!(HostFacts::detect_from("", 1).memory_mib, 0);
    }
}
