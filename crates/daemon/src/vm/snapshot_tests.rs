//! Snapshots, restores, the warm cache and forks through the fakes of
//! `lifecycle_tests` (a recording host, a fake VMM and guest).

use banger_api::model::VmState;
use banger_api::protocol::{VmCreateParams, VmRef};

use super::lifecycle_tests::{Step, World, ctx, run_step, seen, world, world_with};

/// Restored root disks are qcow2 overlays made by `qemu-img`.
fn qemu_img_missing() -> bool {
    let missing = banger_sys::find_program("qemu-img").is_none();
    if missing {
        eprintln!("skipped: qemu-img is not installed");
    }
    missing
}

/// A world with the running VM `dev`, or `None` when these tests cannot run.
async fn world_with_dev() -> Option<World> {
    if qemu_img_missing() {
        return None;
    }
    let w = world();
    let create = Step::Create {
        nat: false,
        fail: None,
    };
    run_step(&w, &create).await.unwrap();
    Some(w)
}

/// A snapshot of a running VM restores into a new running VM with its own
/// address; the snapshot cannot be deleted while that VM exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_into_a_new_vm_and_outlives_it() {
    use banger_api::protocol::{NameParams, VmRestoreParams, VmSnapshotParams};
    let Some(w) = world_with_dev().await else {
        return;
    };
    let snapshot_dev = || async {
        let params = VmSnapshotParams {
            vm: "dev".into(),
            name: Some("base".into()),
        };
        crate::vm::snapshot(&w.daemon, &ctx(), params).await
    };
    let taken = snapshot_dev().await.unwrap();
    assert_eq!(
        (taken.name.as_str(), taken.source_vm.as_str()),
        ("base", "dev")
    );
    assert_eq!(seen(&w, "dev").await.state, Some(VmState::Running));
    // A second snapshot under the same name is refused before any work.
    let again = snapshot_dev().await.unwrap_err();
    assert!(again.to_string().contains("exists"), "{again}");

    let copy = crate::vm::restore(
        &w.daemon,
        &ctx(),
        VmRestoreParams {
            snapshot: "base".into(),
            name: Some("copy".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(copy.state, VmState::Running);
    let parent = crate::vm::record::find(&w.daemon, "dev").await.unwrap();
    let restored = crate::vm::record::find(&w.daemon, "copy").await.unwrap();
    assert_ne!(
        crate::vm::record::held(&parent).unwrap().ip,
        crate::vm::record::held(&restored).unwrap().ip
    );
    assert_eq!(
        crate::vm::record::held(&restored)
            .unwrap()
            .restored_from
            .as_deref(),
        Some("base")
    );

    let refused = crate::snapshots::delete(
        &w.daemon,
        NameParams {
            name: "base".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("delete them first"),
        "{refused}"
    );
    crate::vm::delete(&w.daemon, &ctx(), VmRef { vm: "copy".into() })
        .await
        .unwrap();
    crate::snapshots::delete(
        &w.daemon,
        NameParams {
            name: "base".into(),
        },
    )
    .await
    .unwrap();
    assert!(crate::snapshots::list(&w.daemon).await.unwrap().is_empty());
}

/// With the warm cache on, the first create of a kind boots and bakes; the
/// next restores the warm snapshot; `cold` boots again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_create_of_a_kind_restores_the_warm_snapshot() {
    if qemu_img_missing() {
        return;
    }
    let w = world_with("");
    let create = |name: &str, cold: bool| {
        let p = VmCreateParams {
            name: Some(name.into()),
            image: Some("fake-image".into()),
            vcpu: Some(1),
            memory_mib: Some(256),
            disk_size: Some("128M".parse().unwrap()),
            nat: false,
            no_start: false,
            cold,
        };
        let (daemon, ctx) = (&w.daemon, ctx());
        async move { crate::vm::create(daemon, &ctx, p).await }
    };
    create("first", false).await.unwrap();
    let warm = crate::snapshots::list(&w.daemon).await.unwrap();
    assert_eq!(warm.len(), 1, "{warm:?}");
    assert!(
        warm[0].warm && warm[0].name.starts_with("warm-"),
        "{warm:?}"
    );

    create("second", false).await.unwrap();
    let second = crate::vm::record::find(&w.daemon, "second").await.unwrap();
    let from = crate::vm::record::held(&second)
        .unwrap()
        .restored_from
        .clone();
    assert_eq!(from.as_deref(), Some(warm[0].name.as_str()));

    create("third", true).await.unwrap();
    let third = crate::vm::record::find(&w.daemon, "third").await.unwrap();
    assert_eq!(crate::vm::record::held(&third).unwrap().restored_from, None);
    assert_eq!(crate::snapshots::list(&w.daemon).await.unwrap().len(), 1);
}

/// `vm fork -n 2`: two running children with their own addresses; the
/// fork's snapshot is internal and goes with the last child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_makes_running_children_and_its_snapshot_goes_with_them() {
    use banger_api::protocol::VmForkParams;
    let Some(w) = world_with_dev().await else {
        return;
    };
    let params = VmForkParams {
        vm: "dev".into(),
        count: 2,
        name_prefix: None,
    };
    let children = crate::vm::fork(&w.daemon, &ctx(), params).await.unwrap();
    let names: Vec<String> = children.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["dev-1", "dev-2"]);
    assert!(children.iter().all(|c| c.state == VmState::Running));
    assert_ne!(children[0].runtime.ip, children[1].runtime.ip);
    assert_eq!(seen(&w, "dev").await.state, Some(VmState::Running));
    let forks = crate::snapshots::list(&w.daemon).await.unwrap();
    assert_eq!(forks.len(), 1);
    let mut used = forks[0].used_by.clone();
    used.sort();
    assert_eq!(used, ["dev-1", "dev-2"]);
    // Names are checked before anything is made.
    let taken = VmForkParams {
        vm: "dev".into(),
        count: 1,
        name_prefix: None,
    };
    assert!(crate::vm::fork(&w.daemon, &ctx(), taken).await.is_err());
    for child in ["dev-1", "dev-2"] {
        crate::vm::delete(&w.daemon, &ctx(), VmRef { vm: child.into() })
            .await
            .unwrap();
    }
    assert!(crate::snapshots::list(&w.daemon).await.unwrap().is_empty());
}
