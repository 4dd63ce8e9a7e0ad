use super::*;
use crate::schema::MIGRATIONS;
use crate::store::Store;
use crate::test_support::{TEST_MIGRATIONS, migration_rows, raw, table_exists, temp_db};

#[test]
fn fresh_database_gets_every_migration() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let rows = migration_rows(&path);
    let recorded: Vec<(u32, &str)> = rows.iter().map(|(id, n, _)| (*id, n.as_str())).collect();
    let expected: Vec<(u32, &str)> = MIGRATIONS.iter().map(|m| (m.id, m.name)).collect();
    assert_eq!(recorded, expected);
    for table in ["vms", "ip_leases", "operations"] {
        assert!(table_exists(&path, table), "table {table} is missing");
    }
    for table in ["images", "kernels"] {
        assert!(!table_exists(&path, table), "table {table} was dropped");
    }
    assert_eq!(store.schema_version().unwrap(), latest(MIGRATIONS));
}

#[test]
fn every_listed_migration_runs_in_order_and_is_recorded() {
    let (_dir, path) = temp_db();
    let store = Store::open_with(&path, TEST_MIGRATIONS).unwrap();
    let ids: Vec<u32> = migration_rows(&path).iter().map(|r| r.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    for table in ["a", "b", "c"] {
        assert!(table_exists(&path, table), "table {table} is missing");
    }
    assert_eq!(store.schema_version().unwrap(), 3);
}

#[test]
fn reopening_is_idempotent() {
    let (_dir, path) = temp_db();
    drop(Store::open_with(&path, TEST_MIGRATIONS).unwrap());
    let before = migration_rows(&path);
    // The bodies would fail ("table a already exists") if they ran again.
    for _ in 0..2 {
        let store = Store::open_with(&path, TEST_MIGRATIONS).unwrap();
        assert_eq!(store.schema_version().unwrap(), 3);
    }
    assert_eq!(migration_rows(&path), before, "nothing is re-recorded");
    let runs: i64 = raw(&path)
        .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1);
    // The product list as well.
    let (_dir2, path2) = temp_db();
    drop(Store::open(&path2).unwrap());
    let before = migration_rows(&path2);
    drop(Store::open(&path2).unwrap());
    assert_eq!(migration_rows(&path2), before);
}

#[test]
fn applied_ids_are_skipped_and_the_rest_applied() {
    let (_dir, path) = temp_db();
    drop(Store::open_with(&path, &TEST_MIGRATIONS[..1]).unwrap());
    assert_eq!(migration_rows(&path).len(), 1);
    assert!(!table_exists(&path, "b"));

    let store = Store::open_with(&path, TEST_MIGRATIONS).unwrap();
    let ids: Vec<u32> = migration_rows(&path).iter().map(|r| r.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert!(table_exists(&path, "b") && table_exists(&path, "c"));
    let runs: i64 = raw(&path)
        .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1, "migration 1's body ran again");
    assert_eq!(store.schema_version().unwrap(), 3);
}

fn half_then_fail(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("CREATE TABLE half (x); INSERT INTO half VALUES (1);")?;
    tx.execute_batch("INSERT INTO no_such_table VALUES (1)")
}

fn half_fixed(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("CREATE TABLE half (x); INSERT INTO half VALUES (2);")
}

#[test]
fn failing_migration_rolls_back_and_is_retried_on_next_open() {
    let (_dir, path) = temp_db();
    let broken = [
        TEST_MIGRATIONS[0],
        Migration {
            id: 2,
            name: "half done",
            up: half_then_fail,
        },
        TEST_MIGRATIONS[2],
    ];
    let err = Store::open_with(&path, &broken).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MigrationFailed {
                id: 2,
                name: "half done",
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("migration 2") && msg.contains("half done"),
        "{msg}"
    );

    assert!(
        !table_exists(&path, "half"),
        "the failed body left its table"
    );
    let ids: Vec<u32> = migration_rows(&path).iter().map(|r| r.0).collect();
    assert_eq!(
        ids,
        [1],
        "only the migration before the failure is recorded"
    );
    assert!(table_exists(&path, "a"));
    assert!(!table_exists(&path, "c"), "nothing after the failure ran");

    let fixed = [
        TEST_MIGRATIONS[0],
        Migration {
            id: 2,
            name: "half done",
            up: half_fixed,
        },
        TEST_MIGRATIONS[2],
    ];
    Store::open_with(&path, &fixed).unwrap();
    let ids: Vec<u32> = migration_rows(&path).iter().map(|r| r.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    let half: i64 = raw(&path)
        .query_row("SELECT x FROM half", [], |r| r.get(0))
        .unwrap();
    assert_eq!(half, 2, "the retried migration is the fixed one");
}

#[test]
fn duplicate_ids_are_rejected_before_touching_the_database() {
    let (_dir, path) = temp_db();
    let list = [
        TEST_MIGRATIONS[0],
        TEST_MIGRATIONS[1],
        Migration {
            id: 2,
            name: "create b again",
            up: |_| Ok(()),
        },
    ];
    let err = Store::open_with(&path, &list).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::DuplicateMigration {
                id: 2,
                first: "create b",
                second: "create b again"
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("id 2"), "{err}");
    assert!(!path.exists(), "the database was created");
    assert!(matches!(
        crate::migration_status_with(&path, &list),
        Err(StoreError::DuplicateMigration { id: 2, .. })
    ));
}

#[test]
fn ids_must_ascend_from_one() {
    let swapped = [TEST_MIGRATIONS[1], TEST_MIGRATIONS[0]];
    assert!(matches!(
        validate(&swapped),
        Err(StoreError::MigrationOutOfOrder {
            id: 1,
            previous: 2,
            ..
        })
    ));
    let zero = [Migration {
        id: 0,
        name: "zero",
        up: |_| Ok(()),
    }];
    assert!(matches!(
        validate(&zero),
        Err(StoreError::MigrationOutOfOrder { id: 0, .. })
    ));
    validate(TEST_MIGRATIONS).unwrap();
    validate(&[]).unwrap();
}

#[test]
fn database_from_a_newer_binary_is_refused() {
    let (_dir, path) = temp_db();
    drop(Store::open_with(&path, TEST_MIGRATIONS).unwrap());
    let err = Store::open_with(&path, &TEST_MIGRATIONS[..2]).unwrap_err();
    match &err {
        StoreError::NewerThanBinary {
            path: p,
            db_version: 3,
            binary_version: 2,
        } => assert_eq!(p, &path),
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("schema 3") && msg.contains("up to 2") && msg.contains("upgrade banger"),
        "{msg}"
    );

    // An unknown higher id in a product database.
    let (_dir2, path2) = temp_db();
    drop(Store::open(&path2).unwrap());
    raw(&path2)
        .execute(
            "INSERT INTO schema_migrations VALUES (99, 'from the future', '2030-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    assert!(matches!(
        Store::open(&path2),
        Err(StoreError::NewerThanBinary { db_version: 99, .. })
    ));
}

#[test]
fn missing_directory_is_named_and_not_created() {
    let (dir, _) = temp_db();
    let path = dir.path().join("nope").join("banger.db");
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::DirectoryMissing { path: p } if p == &path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!dir.path().join("nope").exists());
}

static SLOW_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn slow_create_b(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("CREATE TABLE b (x)")?;
    SLOW_STARTED.store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(300));
    Ok(())
}

/// Two processes (here: threads) opening the same database at once: the
/// second one read the applied ids before the first committed, and must not
/// run the same migration again once it gets the write lock.
#[test]
fn concurrent_opens_apply_each_migration_once() {
    let (_dir, path) = temp_db();
    drop(Store::open_with(&path, &TEST_MIGRATIONS[..1]).unwrap());
    const SLOW: &[Migration] = &[
        TEST_MIGRATIONS[0],
        Migration {
            id: 2,
            name: "create b",
            up: slow_create_b,
        },
    ];
    let first = {
        let path = path.clone();
        std::thread::spawn(move || Store::open_with(&path, SLOW).map(drop))
    };
    while !SLOW_STARTED.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = Store::open_with(&path, SLOW);
    first.join().unwrap().unwrap();
    second.unwrap();
    let ids: Vec<u32> = migration_rows(&path).iter().map(|r| r.0).collect();
    assert_eq!(ids, [1, 2]);
}
