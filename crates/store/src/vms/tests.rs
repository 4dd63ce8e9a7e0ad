use std::net::Ipv4Addr;

use banger_api::model::{VmName, VmState};
use banger_api::protocol::Workspace;

use crate::error::StoreError;
use crate::record::{NewVm, RootDiskFormat, RootDiskRecord, RootDiskStrategy, RuntimeRecord};
use crate::store::Store;
use crate::test_support::{raw, temp_db, vm};

fn store() -> (tempfile::TempDir, Store) {
    let (dir, path) = temp_db();
    (dir, Store::open(&path).unwrap())
}

#[test]
fn vms_round_trip_and_list_by_creation_then_name() {
    let (_dir, store) = store();
    let mut full = vm("aaaa000000000001", "zeta");
    full.created_at = "2024-01-01T00:00:00Z".to_owned();
    full.state = VmState::Running;
    full.spec.nat = true;
    full.runtime = Some(RuntimeRecord {
        ip: Ipv4Addr::new(172, 30, 0, 2),
        vsock_cid: 3,
        tap: Some("bg-tap0".to_owned()),
        root_disk: Some(RootDiskRecord {
            strategy: RootDiskStrategy::Reflink,
            path: "/v/root.ext4".into(),
            format: RootDiskFormat::Raw,
            snapshot: None,
            cow_file: None,
        }),
        kernel: "k".to_owned(),
        restored_from: None,
    });
    full.workspace = Some(Workspace {
        guest_path: "/root/repo".to_owned(),
        host_path: "/home/me/repo".to_owned(),
        base_commit: "abc123".to_owned(),
    });
    full.last_error = Some("earlier trouble".to_owned());
    let later_b = vm("bbbb000000000002", "beta");
    let later_a = vm("cccc000000000003", "alpha");
    for v in [&later_b, &full, &later_a] {
        store.insert_vm(v).unwrap();
    }
    assert_eq!(store.list_vms().unwrap(), [full.clone(), later_a, later_b]);
    assert_eq!(store.find_vm("zeta").unwrap(), full);
}

#[test]
fn find_by_exact_name_or_unique_id_prefix() {
    let (_dir, store) = store();
    let dev = vm("0a1b2c3d4e5f6071", "dev");
    let web = vm("0a9900000000ffff", "web");
    store.insert_vm(&dev).unwrap();
    store.insert_vm(&web).unwrap();
    assert_eq!(store.find_vm("dev").unwrap(), dev);
    assert_eq!(store.find_vm("0a1").unwrap(), dev);
    assert_eq!(store.find_vm("0a99").unwrap(), web);
    assert_eq!(store.find_vm(&web.id).unwrap(), web);
}

#[test]
fn exact_name_wins_over_an_id_prefix() {
    let (_dir, store) = store();
    let by_id = vm("beef000000000001", "first");
    let by_name = vm("0000000000000002", "beef");
    store.insert_vm(&by_id).unwrap();
    store.insert_vm(&by_name).unwrap();
    assert_eq!(store.find_vm("beef").unwrap(), by_name);
}

#[test]
fn ambiguous_prefix_lists_the_candidates() {
    let (_dir, store) = store();
    store.insert_vm(&vm("abcd000000000001", "web")).unwrap();
    store.insert_vm(&vm("abce000000000002", "api")).unwrap();
    store.insert_vm(&vm("ffff000000000003", "db")).unwrap();
    let err = store.find_vm("abc").unwrap_err();
    match &err {
        StoreError::VmAmbiguous {
            reference,
            candidates,
        } => {
            assert_eq!(reference, "abc");
            assert_eq!(candidates, &["api", "web"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("api, web"), "{err}");
}

#[test]
fn unknown_references_are_not_found() {
    let (_dir, store) = store();
    store.insert_vm(&vm("abcd000000000001", "web")).unwrap();
    // Only non-empty lower-case hex is taken as an id prefix: "ABCD" and the
    // LIKE wildcards would otherwise reach the id, and "" would match all.
    for reference in ["nope", "1234", "ABCD", "ab_d", "ab%", ""] {
        match store.find_vm(reference) {
            Err(StoreError::VmNotFound { reference: r }) => assert_eq!(r, reference),
            other => panic!("{reference:?}: {other:?}"),
        }
    }
}

#[test]
fn names_are_unique() {
    let (_dir, store) = store();
    let name = VmName::new("dev").unwrap();
    assert!(!store.vm_name_taken(&name).unwrap());
    store.insert_vm(&vm("1000000000000001", "dev")).unwrap();
    assert!(store.vm_name_taken(&name).unwrap());
    assert!(!store.vm_name_taken(&VmName::new("other").unwrap()).unwrap());

    let err = store.insert_vm(&vm("2000000000000002", "dev")).unwrap_err();
    assert!(
        matches!(&err, StoreError::VmNameTaken { name } if name == "dev"),
        "{err:?}"
    );
    let err = store
        .insert_vm(&vm("1000000000000001", "other"))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::VmIdTaken { id } if id == "1000000000000001"),
        "{err:?}"
    );
    assert_eq!(store.list_vms().unwrap().len(), 1);
}

#[test]
fn set_vm_state_records_state_error_and_time() {
    let (_dir, store) = store();
    let original = vm("1000000000000001", "dev");
    store.insert_vm(&original).unwrap();

    store
        .set_vm_state(&original.id, VmState::Error, Some("boot timed out"))
        .unwrap();
    let failed = store.find_vm("dev").unwrap();
    assert_eq!(failed.state, VmState::Error);
    assert_eq!(failed.last_error.as_deref(), Some("boot timed out"));
    assert_ne!(failed.updated_at, original.updated_at);
    assert_eq!(failed.created_at, original.created_at);

    store
        .set_vm_state(&original.id, VmState::Starting, None)
        .unwrap();
    let restarted = store.find_vm("dev").unwrap();
    assert_eq!(restarted.state, VmState::Starting);
    assert_eq!(restarted.last_error, None);

    assert!(matches!(
        store.set_vm_state("ffff", VmState::Running, None),
        Err(StoreError::VmNotFound { reference }) if reference == "ffff"
    ));
}

#[test]
fn corrupt_rows_are_typed_errors_naming_the_vm() {
    let (_dir, store) = store();
    store.insert_vm(&vm("1000000000000001", "dev")).unwrap();
    let conn = raw(store.path());
    let corrupt = |setup: &str, reason_part: &str| {
        conn.execute_batch(setup).unwrap();
        let err = store.list_vms().unwrap_err();
        match &err {
            StoreError::CorruptRow {
                table: "vms",
                id,
                reason,
                ..
            } => {
                assert_eq!(id, "1000000000000001");
                assert!(reason.contains(reason_part), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .contains(&store.path().display().to_string())
        );
    };
    corrupt("UPDATE vms SET spec = 'not json'", "spec");
    corrupt(
        "UPDATE vms SET spec = '{\"vcpu\":1,\"memory_mib\":1,\"disk_size\":\"1G\"}', runtime = '[1]'",
        "runtime",
    );
    corrupt(
        "UPDATE vms SET runtime = '{\"ip\":\"10.0.0.2\"}'",
        "without the address, vsock CID and kernel",
    );
    corrupt(
        "UPDATE vms SET runtime = '{}', workspace = '{\"guest_path\":1}'",
        "workspace",
    );
    corrupt(
        "UPDATE vms SET workspace = NULL, name = 'Bad Name'",
        "Bad Name",
    );
    // The CHECK constraint keeps unknown states out; a database edited with
    // checks off (or by another tool) can still hold one.
    corrupt(
        "PRAGMA ignore_check_constraints = ON; UPDATE vms SET name = 'dev', state = 'exploded'",
        "exploded",
    );
}

#[test]
fn create_vm_records_the_vm_its_cid_and_its_lease_at_once() {
    let (_dir, store) = store();
    let addresses = || (2..=3).map(|h| Ipv4Addr::new(10, 0, 0, h));
    let new = |id: &str, name: &str| NewVm {
        id: id.to_owned(),
        name: VmName::new(name).unwrap(),
        image: "debian-12".to_owned(),
        spec: vm(id, name).spec,
        kernel: "k".to_owned(),
    };
    let a = store
        .create_vm(new("a000000000000001", "a"), addresses())
        .unwrap();
    assert_eq!(a.state, VmState::Created);
    assert_eq!(
        a.runtime,
        Some(RuntimeRecord::new(
            Ipv4Addr::new(10, 0, 0, 2),
            3,
            "k".into()
        ))
    );
    assert_eq!(store.find_vm("a").unwrap(), a);
    let b = store
        .create_vm(new("b000000000000002", "b"), addresses())
        .unwrap();
    let rt = b.runtime.unwrap();
    assert_eq!((rt.ip, rt.vsock_cid), (Ipv4Addr::new(10, 0, 0, 3), 4));

    // A taken name or a full subnet records nothing: no row, no lease.
    let err = store
        .create_vm(new("c000000000000003", "a"), addresses())
        .unwrap_err();
    assert!(matches!(err, StoreError::VmNameTaken { .. }), "{err:?}");
    let err = store
        .create_vm(new("c000000000000003", "c"), addresses())
        .unwrap_err();
    assert!(matches!(err, StoreError::NoFreeAddress { .. }), "{err:?}");
    assert_eq!(store.list_vms().unwrap().len(), 2);
    let holders: Vec<String> = store
        .list_leases()
        .unwrap()
        .into_iter()
        .map(|l| l.holder)
        .collect();
    assert_eq!(holders, ["a000000000000001", "b000000000000002"]);
}

/// Rows as earlier versions wrote them load: a complete runtime with the
/// root disk as `banger_image` serialised it, a released one, and the half
/// one a crash inside an old create could leave.
#[test]
fn rows_written_by_earlier_versions_load() {
    let (_dir, store) = store();
    let conn = raw(store.path());
    let row = |id: &str, name: &str, runtime: &str| {
        conn.execute(
            "INSERT INTO vms (id, name, image, state, spec, runtime, workspace, created_at, updated_at, last_error)
             VALUES (?1, ?2, 'debian-12', 'stopped', '{\"vcpu\":2,\"memory_mib\":2048,\"disk_size\":\"8G\",\"nat\":false}',
                     ?3, NULL, 't', 't', NULL)",
            [id, name, runtime],
        )
        .unwrap();
    };
    row(
        "1000000000000001",
        "full",
        r#"{"ip":"172.16.0.2","vsock_cid":3,"root_disk":{"strategy":"sparse-copy","path":"/v/root.ext4","format":"raw","snapshot":null,"cow_file":null},"kernel":"debian-cloud-amd64"}"#,
    );
    row("2000000000000002", "unwound", "{}");
    row(
        "3000000000000003",
        "half",
        r#"{"kernel":"debian-cloud-amd64","vsock_cid":4}"#,
    );
    let full = store.find_vm("full").unwrap().runtime.unwrap();
    assert_eq!(
        (full.ip, full.vsock_cid, full.kernel.as_str(), full.tap),
        (Ipv4Addr::new(172, 16, 0, 2), 3, "debian-cloud-amd64", None)
    );
    assert_eq!(
        full.root_disk.unwrap().strategy,
        RootDiskStrategy::SparseCopy
    );
    assert_eq!(store.find_vm("unwound").unwrap().runtime, None);
    assert_eq!(store.find_vm("half").unwrap().runtime, None);
    // Only a VM that holds its CID keeps it from others.
    assert_eq!(store.free_vsock_cid().unwrap(), 4);
}
