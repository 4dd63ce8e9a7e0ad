use banger_api::protocol::OperationState::{Cancelled, Failed, Running, Succeeded};

use super::INTERRUPTED_ERROR;
use crate::error::StoreError;
use crate::store::Store;
use crate::test_support::{operation, raw, temp_db};

fn store() -> (tempfile::TempDir, Store) {
    let (dir, path) = temp_db();
    (dir, Store::open(&path).unwrap())
}

#[test]
fn operations_round_trip() {
    let (_dir, store) = store();
    let mut op = operation("op-1", Failed, "2024-05-01T10:00:00Z");
    op.error = Some("disk full".to_owned());
    op.target = None;
    store.insert_operation(&op).unwrap();
    assert_eq!(store.list_operations(10).unwrap(), [op.clone()]);
    assert!(matches!(
        store.insert_operation(&op),
        Err(StoreError::OperationExists { id }) if id == "op-1"
    ));
}

#[test]
fn finishing_an_operation_sets_finished_at_and_keeps_its_stage() {
    let (_dir, store) = store();
    store
        .insert_operation(&operation("op-1", Running, "2024-05-01T10:00:00Z"))
        .unwrap();
    store
        .update_operation("op-1", Running, Some("resize"), None)
        .unwrap();
    let [op] = <[_; 1]>::try_from(store.list_operations(0).unwrap()).unwrap();
    assert_eq!((op.state, op.stage.as_deref()), (Running, Some("resize")));
    assert_eq!(op.finished_at, None, "still running");

    store
        .update_operation("op-1", Failed, None, Some("resize2fs failed"))
        .unwrap();
    let [op] = <[_; 1]>::try_from(store.list_operations(1).unwrap()).unwrap();
    assert_eq!(op.state, Failed);
    assert_eq!(op.stage.as_deref(), Some("resize"), "stage kept");
    assert_eq!(op.error.as_deref(), Some("resize2fs failed"));
    assert!(op.finished_at.is_some(), "finished_at not set");

    assert!(matches!(
        store.update_operation("op-9", Succeeded, None, None),
        Err(StoreError::OperationNotFound { id }) if id == "op-9"
    ));
}

#[test]
fn list_has_every_running_one_and_the_latest_finished_newest_first() {
    let (_dir, store) = store();
    let ops = [
        operation("old-done", Succeeded, "2024-05-01T10:00:00Z"),
        operation("old-running", Running, "2024-05-01T10:01:00Z"),
        operation("mid-failed", Failed, "2024-05-01T10:02:00Z"),
        operation("new-cancelled", Cancelled, "2024-05-01T10:03:00Z"),
        operation("new-running", Running, "2024-05-01T10:04:00Z"),
    ];
    for op in &ops {
        store.insert_operation(op).unwrap();
    }
    let ids = |limit| -> Vec<String> {
        store
            .list_operations(limit)
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect()
    };
    assert_eq!(ids(0), ["new-running", "old-running"]);
    assert_eq!(
        ids(2),
        ["new-running", "new-cancelled", "mid-failed", "old-running"]
    );
    assert_eq!(ids(usize::MAX).len(), 5);
}

#[test]
fn interrupted_operations_are_marked_failed() {
    let (_dir, store) = store();
    store
        .insert_operation(&operation("a", Running, "2024-05-01T10:00:00Z"))
        .unwrap();
    store
        .insert_operation(&operation("b", Running, "2024-05-01T10:01:00Z"))
        .unwrap();
    let done = operation("c", Succeeded, "2024-05-01T10:02:00Z");
    store.insert_operation(&done).unwrap();

    assert_eq!(store.mark_interrupted_operations().unwrap(), 2);
    for op in store.list_operations(10).unwrap() {
        if op.id == "c" {
            assert_eq!(op, done, "a finished operation is left alone");
        } else {
            assert_eq!(op.state, Failed, "{}", op.id);
            assert_eq!(op.error.as_deref(), Some(INTERRUPTED_ERROR));
            assert!(op.finished_at.is_some());
            assert_eq!(op.stage.as_deref(), Some("boot"));
        }
    }
    assert_eq!(store.mark_interrupted_operations().unwrap(), 0);
}

#[test]
fn unknown_operation_state_is_a_corrupt_row() {
    let (_dir, store) = store();
    store
        .insert_operation(&operation("op-1", Running, "2024-05-01T10:00:00Z"))
        .unwrap();
    raw(store.path())
        .execute_batch(
            "PRAGMA ignore_check_constraints = ON; UPDATE operations SET state = 'paused'",
        )
        .unwrap();
    assert!(matches!(
        store.list_operations(5),
        Err(StoreError::CorruptRow { table: "operations", id, reason, .. })
            if id == "op-1" && reason.contains("paused")
    ));
}

#[test]
fn an_operation_learns_its_target_later() {
    let (_dir, store) = store();
    let mut op = operation("op-1", Running, "2024-05-01T10:00:00Z");
    op.target = None;
    store.insert_operation(&op).unwrap();
    store.set_operation_target("op-1", "calm-otter").unwrap();
    let [op] = <[_; 1]>::try_from(store.list_operations(0).unwrap()).unwrap();
    assert_eq!(op.target.as_deref(), Some("calm-otter"));
    assert!(matches!(
        store.set_operation_target("op-9", "x"),
        Err(StoreError::OperationNotFound { id }) if id == "op-9"
    ));
}
