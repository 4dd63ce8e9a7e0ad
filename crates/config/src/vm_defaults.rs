//! The `[vm_defaults]` table: the config layer of the VM spec defaults.

use banger_api::model::ByteSize;
use serde::{Deserialize, Serialize};

const MAX_VCPU: i64 = 64;
const MIN_MEMORY_MIB: i64 = 128;
/// 16 TiB: far past any host, and small enough that MiB -> bytes never
/// overflows a u64.
const MAX_MEMORY_MIB: i64 = 16 * 1024 * 1024;

/// What `[vm_defaults]` says; `None` means "not set, use the next layer"
/// (see [`crate::resolve_vm_defaults`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmDefaultsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vcpu: Option<Vcpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_mib: Option<MemoryMib>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disk_size: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system_overlay_size: Option<ByteSize>,
}

impl VmDefaultsConfig {
    pub fn vcpu(&self) -> Option<u32> {
        self.vcpu.map(|v| v.0)
    }

    pub fn memory_mib(&self) -> Option<u64> {
        self.memory_mib.map(|m| m.0)
    }

    pub fn disk_size(&self) -> Option<ByteSize> {
        self.disk_size
    }

    pub fn system_overlay_size(&self) -> Option<ByteSize> {
        self.system_overlay_size
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
struct Vcpu(u32);

impl TryFrom<i64> for Vcpu {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u32::try_from(n) {
            Ok(v) if (1..=MAX_VCPU).contains(&n) => Ok(Self(v)),
            _ => Err(format!("vcpu {n} is out of range 1..={MAX_VCPU}")),
        }
    }
}

impl From<Vcpu> for u32 {
    fn from(v: Vcpu) -> u32 {
        v.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u64")]
struct MemoryMib(u64);

impl TryFrom<i64> for MemoryMib {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u64::try_from(n) {
            Ok(m) if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&n) => Ok(Self(m)),
            _ if n < MIN_MEMORY_MIB => Err(format!(
                "memory_mib {n} is below the minimum of {MIN_MEMORY_MIB} MiB"
            )),
            _ => Err(format!(
                "memory_mib {n} is above the maximum of {MAX_MEMORY_MIB} MiB"
            )),
        }
    }
}

impl From<MemoryMib> for u64 {
    fn from(m: MemoryMib) -> u64 {
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_range() {
        assert!(Vcpu::try_from(0).is_err());
        assert_eq!(Vcpu::try_from(1).unwrap().0, 1);
        assert_eq!(Vcpu::try_from(64).unwrap().0, 64);
        assert!(Vcpu::try_from(65).is_err());
    }

    #[test]
    fn memory_range() {
        assert!(MemoryMib::try_from(127).unwrap_err().contains("below"));
        assert_eq!(MemoryMib::try_from(128).unwrap().0, 128);
        assert!(
            MemoryMib::try_from(MAX_MEMORY_MIB + 1)
                .unwrap_err()
                .contains("above")
        );
    }
}
