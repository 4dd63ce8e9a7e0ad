//! The shape of `config.toml` exactly as written: every key optional, every
//! value already validated by its type, unknown keys refused. `bridge_ip`,
//! `cidr` and file_sync hosts keep their spans for the checks that need more
//! than one value or the owner's home.

use serde::Deserialize;
use toml::Spanned;

use crate::duration::HumanDuration;
use crate::file_sync::RawFileSync;
use crate::level::{LogLevel, Vmm};
use crate::network::{BridgeName, CidrPrefix, Ipv4, ListenAddr, TapPoolSize};
use crate::values::{AbsolutePath, ArtifactName, CatalogUrl, MirrorUrl, PollInterval, ProgramPath};
use crate::vm_defaults::VmDefaultsConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub log_level: Option<LogLevel>,
    pub vmm: Option<Vmm>,
    pub firecracker_bin: Option<ProgramPath>,
    pub jailer_bin: Option<ProgramPath>,
    pub qemu_bin: Option<ProgramPath>,
    pub jailer_enabled: Option<bool>,
    pub jailer_chroot_base: Option<AbsolutePath>,
    pub ssh_key_path: Option<AbsolutePath>,
    pub default_image_name: Option<ArtifactName>,
    pub default_kernel_name: Option<ArtifactName>,
    pub catalog_url: Option<CatalogUrl>,
    pub debian_mirror: Option<MirrorUrl>,
    pub auto_stop_stale_after: Option<HumanDuration>,
    pub stats_poll_interval: Option<PollInterval>,
    pub bridge_name: Option<BridgeName>,
    pub bridge_ip: Option<Spanned<Ipv4>>,
    pub cidr: Option<Spanned<CidrPrefix>>,
    pub tap_pool_size: Option<TapPoolSize>,
    pub default_dns: Option<Ipv4>,
    pub dns_listen: Option<ListenAddr>,
    pub vm_defaults: Option<VmDefaultsConfig>,
    pub file_sync: Option<Vec<RawFileSync>>,
    pub warm_cache: Option<bool>,
    pub warm_cache_size: Option<banger_api::model::ByteSize>,
}
