use super::*;
use crate::store::Store;
use crate::test_support::{TEST_MIGRATIONS, raw, temp_db};

#[test]
fn missing_file_is_all_pending_and_stays_missing() {
    let (_dir, path) = temp_db();
    assert_eq!(
        migration_status_with(&path, TEST_MIGRATIONS).unwrap(),
        MigrationStatus::Pending {
            applied: 0,
            latest: 3,
            pending: vec![1, 2, 3]
        }
    );
    assert!(matches!(
        migration_status(&path).unwrap(),
        MigrationStatus::Pending {
            applied: 0,
            latest: 2,
            ..
        }
    ));
    assert!(!path.exists());
}

#[test]
fn fresh_database_is_pending() {
    let (_dir, path) = temp_db();
    // An empty SQLite file, as left by a daemon that died before migrating.
    raw(&path).execute_batch("PRAGMA user_version = 0").unwrap();
    assert!(path.exists());
    assert_eq!(
        migration_status_with(&path, TEST_MIGRATIONS).unwrap(),
        MigrationStatus::Pending {
            applied: 0,
            latest: 3,
            pending: vec![1, 2, 3]
        }
    );
}

#[test]
fn partly_migrated_database_lists_what_is_left() {
    let (_dir, path) = temp_db();
    drop(Store::open_with(&path, &TEST_MIGRATIONS[..1]).unwrap());
    assert_eq!(
        migration_status_with(&path, TEST_MIGRATIONS).unwrap(),
        MigrationStatus::Pending {
            applied: 1,
            latest: 3,
            pending: vec![2, 3]
        }
    );
}

#[test]
fn up_to_date_after_open() {
    let (_dir, path) = temp_db();
    drop(Store::open_with(&path, TEST_MIGRATIONS).unwrap());
    assert_eq!(
        migration_status_with(&path, TEST_MIGRATIONS).unwrap(),
        MigrationStatus::UpToDate { version: 3 }
    );
    let (_dir2, path2) = temp_db();
    drop(Store::open(&path2).unwrap());
    assert_eq!(
        migration_status(&path2).unwrap(),
        MigrationStatus::UpToDate {
            version: crate::migrate::latest(MIGRATIONS)
        }
    );
}

#[test]
fn extra_higher_id_is_newer_than_binary() {
    let (_dir, path) = temp_db();
    drop(Store::open_with(&path, TEST_MIGRATIONS).unwrap());
    assert_eq!(
        migration_status_with(&path, &TEST_MIGRATIONS[..2]).unwrap(),
        MigrationStatus::NewerThanBinary {
            db_version: 3,
            binary_version: 2
        }
    );
    let (_dir2, path2) = temp_db();
    drop(Store::open(&path2).unwrap());
    raw(&path2)
        .execute(
            "INSERT INTO schema_migrations VALUES (7, 'future', '2030-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    assert_eq!(
        migration_status(&path2).unwrap(),
        MigrationStatus::NewerThanBinary {
            db_version: 7,
            binary_version: crate::migrate::latest(MIGRATIONS)
        }
    );
}
