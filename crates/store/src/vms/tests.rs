use std::net::Ipv4Addr;

use banger_api::model::{VmName, VmState};
use banger_api::protocol::{VmRuntime, Workspace};

use crate::error::StoreError;
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
    full.runtime = VmRuntime {
        ip: Some(Ipv4Addr::new(172, 30, 0, 2)),
        vsock_cid: Some(3),
        tap: Some("bg-tap0".to_owned()),
        root_disk: Some(serde_json::json!({"strategy": "reflink", "path": "/v/root.ext4"})),
        kernel: Some("k".to_owned()),
    };
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
