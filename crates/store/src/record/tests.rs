use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::*;

/// A running dm-snapshot VM's runtime exactly as the daemon wrote it before
/// the store had its own record type (`banger_api::protocol::VmRuntime` with
/// `banger_image::cow::RootDisk` as raw JSON).
const OLD_DM_RUNTIME: &str = r#"{"ip":"172.16.0.2","vsock_cid":3,"tap":"fctap0","root_disk":{"strategy":"dm-snapshot","path":"/dev/mapper/banger-aaaa000000000001","format":"raw","snapshot":{"name":"banger-aaaa000000000001","device":"/dev/mapper/banger-aaaa000000000001","base_loop":"/dev/loop0","cow_loop":"/dev/loop1"},"cow_file":"/v/root.cow"},"kernel":"debian-cloud-amd64"}"#;

#[test]
fn an_old_complete_runtime_loads_typed() {
    let runtime = decode_runtime(OLD_DM_RUNTIME).unwrap().unwrap();
    assert_eq!(
        runtime,
        RuntimeRecord {
            ip: Ipv4Addr::new(172, 16, 0, 2),
            vsock_cid: 3,
            tap: Some("fctap0".into()),
            root_disk: Some(RootDiskRecord {
                strategy: RootDiskStrategy::DmSnapshot,
                path: "/dev/mapper/banger-aaaa000000000001".into(),
                format: RootDiskFormat::Raw,
                snapshot: Some(SnapshotRecord {
                    name: "banger-aaaa000000000001".into(),
                    device: "/dev/mapper/banger-aaaa000000000001".into(),
                    base_loop: "/dev/loop0".into(),
                    cow_loop: "/dev/loop1".into(),
                }),
                cow_file: Some(PathBuf::from("/v/root.cow")),
            }),
            kernel: "debian-cloud-amd64".into(),
            restored_from: None,
        }
    );
    // Written back, it is the same JSON: an older banger reads it as before.
    let back: serde_json::Value = serde_json::from_str(&encode_runtime(Some(&runtime))).unwrap();
    let old: serde_json::Value = serde_json::from_str(OLD_DM_RUNTIME).unwrap();
    assert_eq!(back, old);
}

#[test]
fn old_file_disks_and_a_stopped_vm_load() {
    let text = r#"{"ip":"172.16.0.9","vsock_cid":12,"root_disk":{"strategy":"qcow2-overlay","path":"/v/root.qcow2","format":"qcow2","snapshot":null,"cow_file":null},"kernel":"k"}"#;
    let runtime = decode_runtime(text).unwrap().unwrap();
    assert_eq!(runtime.tap, None);
    let disk = runtime.root_disk.unwrap();
    assert_eq!(
        (disk.strategy, disk.format, disk.snapshot, disk.cow_file),
        (
            RootDiskStrategy::Qcow2Overlay,
            RootDiskFormat::Qcow2,
            None,
            None
        )
    );
}

#[test]
fn released_and_half_written_runtimes_hold_nothing() {
    // `{}`: an unwound create, or the baseline's default.
    assert_eq!(decode_runtime("{}").unwrap(), None);
    // A crash between the old insert and its lease.
    assert_eq!(
        decode_runtime(r#"{"vsock_cid":3,"kernel":"k"}"#).unwrap(),
        None
    );
    assert_eq!(encode_runtime(None), "{}");
}

#[test]
fn holding_something_without_an_address_is_corrupt() {
    for text in [
        r#"{"ip":"172.16.0.2"}"#,
        r#"{"ip":"172.16.0.2","vsock_cid":3}"#,
        r#"{"vsock_cid":3,"kernel":"k","tap":"fctap0"}"#,
        r#"{"vsock_cid":3,"kernel":"k","root_disk":{"strategy":"reflink","path":"/v/r","format":"raw"}}"#,
    ] {
        let err = decode_runtime(text).unwrap_err();
        assert!(err.contains("without the address"), "{text}: {err}");
    }
    let err = decode_runtime(r#"{"root_disk":{"strategy":"zfs","path":"/p","format":"raw"}}"#)
        .unwrap_err();
    assert!(err.contains("column runtime is not valid"), "{err}");
}

#[test]
fn names_match_the_serialised_ones() {
    for s in [
        RootDiskStrategy::Reflink,
        RootDiskStrategy::DmSnapshot,
        RootDiskStrategy::Qcow2Overlay,
        RootDiskStrategy::SparseCopy,
    ] {
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    for f in [RootDiskFormat::Raw, RootDiskFormat::Qcow2] {
        assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
    }
}
