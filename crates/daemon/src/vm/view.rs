//! The one place a VM's durable record becomes what clients see: the
//! `Vm` that `vm.list`, `vm.show` and the lifecycle methods answer with
//! (and `--json` prints). The record's internals stay behind: a root disk
//! is shown by strategy, format and path, never its loop devices or
//! snapshot names.

use banger_api::protocol::{Vm, VmRootDisk, VmRuntime};
use banger_store::{RootDiskRecord, RuntimeRecord, VmRecord};

pub fn vm(record: VmRecord) -> Vm {
    Vm {
        id: record.id,
        name: record.name,
        image: record.image,
        state: record.state,
        spec: record.spec,
        runtime: record.runtime.map(runtime).unwrap_or_default(),
        workspace: record.workspace,
        created_at: record.created_at,
        updated_at: record.updated_at,
        last_error: record.last_error,
    }
}

fn runtime(record: RuntimeRecord) -> VmRuntime {
    VmRuntime {
        ip: Some(record.ip),
        vsock_cid: Some(record.vsock_cid),
        tap: record.tap,
        root_disk: record.root_disk.as_ref().map(root_disk),
        kernel: Some(record.kernel),
    }
}

fn root_disk(record: &RootDiskRecord) -> VmRootDisk {
    VmRootDisk {
        strategy: record.strategy.as_str().to_owned(),
        format: record.format.as_str().to_owned(),
        path: record.path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use banger_api::model::{VmName, VmState};
    use banger_api::protocol::VmSpec;
    use banger_store::{RootDiskFormat, RootDiskStrategy, SnapshotRecord};

    use super::*;

    fn record(runtime: Option<RuntimeRecord>) -> VmRecord {
        VmRecord {
            id: "0123456789abcdef".into(),
            name: VmName::new("dev").unwrap(),
            image: "img".into(),
            state: VmState::Running,
            spec: VmSpec {
                vcpu: 2,
                memory_mib: 2048,
                disk_size: "8G".parse().unwrap(),
                nat: false,
            },
            runtime,
            workspace: None,
            created_at: "c".into(),
            updated_at: "u".into(),
            last_error: None,
        }
    }

    /// The `runtime` of `--json`: a root disk by strategy, format and path,
    /// nothing of the snapshot teardown needs.
    #[test]
    fn the_wire_runtime_shows_no_internals() {
        let runtime = RuntimeRecord {
            tap: Some("fctap0".into()),
            root_disk: Some(RootDiskRecord {
                strategy: RootDiskStrategy::DmSnapshot,
                path: "/dev/mapper/banger-0123456789abcdef".into(),
                format: RootDiskFormat::Raw,
                snapshot: Some(SnapshotRecord {
                    name: "banger-0123456789abcdef".into(),
                    device: "/dev/mapper/banger-0123456789abcdef".into(),
                    base_loop: "/dev/loop0".into(),
                    cow_loop: "/dev/loop1".into(),
                }),
                cow_file: Some("/v/root.cow".into()),
            }),
            ..RuntimeRecord::new(Ipv4Addr::new(172, 16, 0, 2), 3, "k".into())
        };
        let shown = serde_json::to_value(vm(record(Some(runtime)))).unwrap();
        assert_eq!(
            shown["runtime"],
            serde_json::json!({
                "ip": "172.16.0.2",
                "vsock_cid": 3,
                "tap": "fctap0",
                "root_disk": {
                    "strategy": "dm-snapshot",
                    "format": "raw",
                    "path": "/dev/mapper/banger-0123456789abcdef",
                },
                "kernel": "k",
            })
        );
    }

    #[test]
    fn a_vm_holding_nothing_has_an_empty_runtime() {
        let shown = serde_json::to_value(vm(record(None))).unwrap();
        assert_eq!(shown["runtime"], serde_json::json!({}));
        assert_eq!(shown["name"], "dev");
    }
}
