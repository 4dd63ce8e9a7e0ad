//! `config.toml`: reading it, validating it, and the settings with every
//! default filled in.
//!
//! Fields are private and read through accessors so a `Config` can only come
//! from [`Config::parse`] / [`Config::load`] / [`Config::default`], and is
//! therefore always valid. Keys the spec gives a default for return plain
//! values; keys without one (program paths, catalog URL, intervals) return
//! `Option`, leaving the choice to the component that uses them.

mod raw;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use crate::duration::HumanDuration;
use crate::error::{ConfigError, Location};
use crate::file_sync::{FileSync, ResolvedFileSync};
use crate::level::{LogLevel, Vmm};
use crate::locate;
use crate::network::{
    self, DEFAULT_BRIDGE_IP, DEFAULT_BRIDGE_NAME, DEFAULT_CIDR, DEFAULT_DNS, DEFAULT_DNS_LISTEN,
};
use crate::values::{DEFAULT_DEBIAN_MIRROR, DEFAULT_IMAGE_NAME, DEFAULT_KERNEL_NAME};
use crate::vm_defaults::VmDefaultsConfig;
use raw::RawConfig;

/// The environment variable that overrides `log_level`.
pub const LOG_LEVEL_ENV: &str = "BANGER_LOG_LEVEL";

/// Validated settings, defaults resolved. Serialises with the config file's
/// key names (for `doctor --json`).
/// `warm_cache_size` when unset: room for a few images' warm snapshots.
pub const DEFAULT_WARM_CACHE_SIZE: banger_api::model::ByteSize =
    banger_api::model::ByteSize::from_gib_const(8);

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    log_level: LogLevel,
    vmm: Vmm,
    firecracker_bin: Option<PathBuf>,
    jailer_bin: Option<PathBuf>,
    qemu_bin: Option<PathBuf>,
    jailer_enabled: bool,
    jailer_chroot_base: Option<PathBuf>,
    ssh_key_path: Option<PathBuf>,
    default_image_name: String,
    default_kernel_name: String,
    catalog_url: Option<String>,
    debian_mirror: String,
    auto_stop_stale_after: Option<HumanDuration>,
    stats_poll_interval: Option<HumanDuration>,
    bridge_name: String,
    bridge_ip: Ipv4Addr,
    cidr: u8,
    tap_pool_size: u32,
    default_dns: Ipv4Addr,
    dns_listen: SocketAddrV4,
    vm_defaults: VmDefaultsConfig,
    file_sync: Vec<FileSync>,
    warm_cache: bool,
    warm_cache_size: banger_api::model::ByteSize,
    #[serde(skip)]
    source: Option<PathBuf>,
}

impl Default for Config {
    /// The settings of an empty or missing config file.
    fn default() -> Self {
        Self {
            log_level: LogLevel::default(),
            vmm: Vmm::default(),
            firecracker_bin: None,
            jailer_bin: None,
            qemu_bin: None,
            jailer_enabled: false,
            jailer_chroot_base: None,
            ssh_key_path: None,
            default_image_name: DEFAULT_IMAGE_NAME.to_owned(),
            default_kernel_name: DEFAULT_KERNEL_NAME.to_owned(),
            catalog_url: None,
            debian_mirror: DEFAULT_DEBIAN_MIRROR.to_owned(),
            auto_stop_stale_after: None,
            stats_poll_interval: None,
            bridge_name: DEFAULT_BRIDGE_NAME.to_owned(),
            bridge_ip: DEFAULT_BRIDGE_IP,
            cidr: DEFAULT_CIDR,
            tap_pool_size: network::DEFAULT_TAP_POOL_SIZE,
            default_dns: DEFAULT_DNS,
            dns_listen: DEFAULT_DNS_LISTEN,
            vm_defaults: VmDefaultsConfig::default(),
            file_sync: Vec::new(),
            warm_cache: true,
            warm_cache_size: DEFAULT_WARM_CACHE_SIZE,
            source: None,
        }
    }
}

impl Config {
    /// Reads `path`. A missing file is not an error: every key is optional,
    /// so no file means all defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses `text`; `path` is only used to name the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // Parse to a spanned document first: it lets errors name the key, and
        // a syntax error never reaches the typed stage.
        let doc = DeTable::parse(text).map_err(|e| locate::from_parse_error(&e, text, path))?;
        let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| locate::from_de_error(&e, doc.get_ref(), text, path))?;
        Self::from_raw(raw, text, path)
    }

    fn from_raw(raw: RawConfig, text: &str, path: &Path) -> Result<Config, ConfigError> {
        let d = Config::default();
        check_bridge_subnet(&raw, text, path)?;
        let file_sync = raw
            .file_sync
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let line = locate::line_of(text, entry.host.span().start);
                FileSync::from_raw(entry, line)
            })
            .collect();
        Ok(Config {
            log_level: raw.log_level.unwrap_or(d.log_level),
            vmm: raw.vmm.unwrap_or(d.vmm),
            firecracker_bin: raw.firecracker_bin.map(|p| p.0),
            jailer_bin: raw.jailer_bin.map(|p| p.0),
            qemu_bin: raw.qemu_bin.map(|p| p.0),
            jailer_enabled: raw.jailer_enabled.unwrap_or(d.jailer_enabled),
            jailer_chroot_base: raw.jailer_chroot_base.map(|p| p.0),
            ssh_key_path: raw.ssh_key_path.map(|p| p.0),
            default_image_name: raw.default_image_name.map_or(d.default_image_name, |n| n.0),
            default_kernel_name: raw
                .default_kernel_name
                .map_or(d.default_kernel_name, |n| n.0),
            catalog_url: raw.catalog_url.map(|u| u.0),
            debian_mirror: raw.debian_mirror.map_or(d.debian_mirror, |m| m.0),
            auto_stop_stale_after: raw.auto_stop_stale_after,
            stats_poll_interval: raw.stats_poll_interval.map(|p| p.0),
            bridge_name: raw.bridge_name.map_or(d.bridge_name, |b| b.0),
            bridge_ip: raw.bridge_ip.map_or(d.bridge_ip, |ip| ip.into_inner().0),
            cidr: raw.cidr.map_or(d.cidr, |c| c.into_inner().0),
            tap_pool_size: raw.tap_pool_size.map_or(d.tap_pool_size, |t| t.0),
            default_dns: raw.default_dns.map_or(d.default_dns, |ip| ip.0),
            dns_listen: raw.dns_listen.map_or(d.dns_listen, |a| a.0),
            vm_defaults: raw.vm_defaults.unwrap_or_default(),
            file_sync,
            warm_cache: raw.warm_cache.unwrap_or(d.warm_cache),
            warm_cache_size: raw.warm_cache_size.unwrap_or(d.warm_cache_size),
            source: Some(path.to_path_buf()),
        })
    }

    /// Whether `vm create` and `vm run` restore from (and bake) warm
    /// snapshots (`warm_cache`, default true).
    pub fn warm_cache(&self) -> bool {
        self.warm_cache
    }

    /// The most disk the warm snapshots may take together
    /// (`warm_cache_size`, default 8G); the least recently used go first.
    pub fn warm_cache_size(&self) -> banger_api::model::ByteSize {
        self.warm_cache_size
    }

    /// The file this config came from; `None` when it is all defaults
    /// because the file did not exist.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// `log_level` from the file (default `info`), ignoring the environment.
    pub fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// The effective log level: `env_value` is the caller's reading of
    /// `BANGER_LOG_LEVEL` and wins over the file. Empty counts as unset,
    /// as shells make `VAR=` easy to leave behind.
    pub fn log_level_with_env(&self, env_value: Option<&str>) -> Result<LogLevel, ConfigError> {
        match env_value.map(str::trim) {
            None | Some("") => Ok(self.log_level),
            Some(value) => value.parse().map_err(|e| ConfigError::Env {
                var: LOG_LEVEL_ENV,
                message: format!("{e}"),
            }),
        }
    }

    pub fn vmm(&self) -> Vmm {
        self.vmm
    }

    pub fn firecracker_bin(&self) -> Option<&Path> {
        self.firecracker_bin.as_deref()
    }

    pub fn jailer_bin(&self) -> Option<&Path> {
        self.jailer_bin.as_deref()
    }

    pub fn qemu_bin(&self) -> Option<&Path> {
        self.qemu_bin.as_deref()
    }

    pub fn jailer_enabled(&self) -> bool {
        self.jailer_enabled
    }

    pub fn jailer_chroot_base(&self) -> Option<&Path> {
        self.jailer_chroot_base.as_deref()
    }

    pub fn ssh_key_path(&self) -> Option<&Path> {
        self.ssh_key_path.as_deref()
    }

    pub fn default_image_name(&self) -> &str {
        &self.default_image_name
    }

    pub fn default_kernel_name(&self) -> &str {
        &self.default_kernel_name
    }

    /// Starts with `https://` or `file://`.
    pub fn catalog_url(&self) -> Option<&str> {
        self.catalog_url.as_deref()
    }

    /// The Debian mirror kernels and images are built from.
    pub fn debian_mirror(&self) -> &str {
        &self.debian_mirror
    }

    /// `None` when unset or zero: auto-stop is off.
    pub fn auto_stop_stale_after(&self) -> Option<Duration> {
        self.auto_stop_stale_after
            .filter(|d| !d.is_zero())
            .map(HumanDuration::get)
    }

    /// Never zero when set.
    pub fn stats_poll_interval(&self) -> Option<Duration> {
        self.stats_poll_interval.map(HumanDuration::get)
    }

    pub fn bridge_name(&self) -> &str {
        &self.bridge_name
    }

    /// A host address (not network or broadcast) of `bridge_ip/cidr_prefix`.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.bridge_ip
    }

    /// In 8..=32.
    pub fn cidr_prefix(&self) -> u8 {
        self.cidr
    }

    /// In 0..=64.
    pub fn tap_pool_size(&self) -> u32 {
        self.tap_pool_size
    }

    pub fn default_dns(&self) -> Ipv4Addr {
        self.default_dns
    }

    /// Where the `.vm` DNS server listens; default 127.0.0.1:42069.
    pub fn dns_listen(&self) -> SocketAddrV4 {
        self.dns_listen
    }

    /// The config layer of VM defaults; see [`crate::resolve_vm_defaults`].
    pub fn vm_defaults(&self) -> &VmDefaultsConfig {
        &self.vm_defaults
    }

    pub fn file_sync(&self) -> &[FileSync] {
        &self.file_sync
    }

    /// The file_sync entries with host paths made absolute for the owner
    /// whose home is `home`. An absolute host path outside that home is a
    /// config error pointing at its line; it can only be caught here because
    /// the owner's home is not known when the file is parsed.
    pub fn resolve_file_sync(&self, home: &Path) -> Result<Vec<ResolvedFileSync>, ConfigError> {
        self.file_sync
            .iter()
            .map(|entry| match entry.host_path(home) {
                Some(host) => Ok(ResolvedFileSync {
                    host,
                    guest: entry.guest().to_path_buf(),
                    mode: entry.mode(),
                }),
                None => Err(ConfigError::InvalidValue {
                    location: Location {
                        path: self.source.clone().unwrap_or_default(),
                        line: Some(entry.line()),
                    },
                    key: "file_sync.host".to_owned(),
                    message: format!(
                        "host path {} is outside the owner's home {}",
                        entry.host(),
                        home.display()
                    ),
                }),
            })
            .collect()
    }

    /// Problems with file_sync entries that should not stop the daemon: a
    /// host file that does not exist (yet) is skipped with a warning.
    pub fn file_sync_warnings(&self, home: &Path) -> Vec<String> {
        let file = self
            .source
            .as_deref()
            .map_or_else(String::new, |p| p.display().to_string());
        self.file_sync
            .iter()
            .filter_map(|entry| {
                let at = format!("{file}:{}", entry.line());
                let Some(host) = entry.host_path(home) else {
                    return Some(format!(
                        "{at}: file_sync host {} is outside the owner's home {}; it will not be copied",
                        entry.host(),
                        home.display()
                    ));
                };
                match std::fs::metadata(&host) {
                    Ok(_) => None,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Some(format!(
                        "{at}: file_sync host file {} does not exist; it will not be copied",
                        host.display()
                    )),
                    Err(e) => Some(format!(
                        "{at}: cannot check file_sync host file {}: {e}",
                        host.display()
                    )),
                }
            })
            .collect()
    }
}

/// `bridge_ip` must be a host address of `bridge_ip/cidr`. The error points
/// at whichever of the two keys is written (preferring `bridge_ip`), since a
/// default cannot be the culprit on its own.
fn check_bridge_subnet(raw: &RawConfig, text: &str, path: &Path) -> Result<(), ConfigError> {
    let ip = raw
        .bridge_ip
        .as_ref()
        .map_or(DEFAULT_BRIDGE_IP, |s| s.get_ref().0);
    let prefix = raw.cidr.as_ref().map_or(DEFAULT_CIDR, |s| s.get_ref().0);
    let Err(message) = network::check_bridge_ip(ip, prefix) else {
        return Ok(());
    };
    let (key, span) = match (&raw.bridge_ip, &raw.cidr) {
        (Some(ip), _) => ("bridge_ip", Some(ip.span())),
        (None, Some(cidr)) => ("cidr", Some(cidr.span())),
        (None, None) => ("bridge_ip", None),
    };
    Err(ConfigError::InvalidValue {
        location: locate::location(text, path, span),
        key: key.to_owned(),
        message,
    })
}
