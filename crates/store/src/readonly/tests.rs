use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::*;
use crate::schema::MIGRATIONS;
use crate::status::{MigrationStatus, migration_status};
use crate::store::Store;
use crate::test_support::{raw, temp_db, vm};

/// Everything a write would change about the main database file.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    bytes: Vec<u8>,
    modified: SystemTime,
}

fn fingerprint(path: &Path) -> Fingerprint {
    Fingerprint {
        bytes: fs::read(path).unwrap(),
        modified: fs::metadata(path).unwrap().modified().unwrap(),
    }
}

/// Restores write permission on drop, so the temporary directory can be
/// removed even when an assertion fails.
struct ReadOnlyGuard(Vec<(PathBuf, u32)>);

impl ReadOnlyGuard {
    fn new(entries: &[(&Path, u32)]) -> Self {
        let saved = entries
            .iter()
            .map(|(p, mode)| {
                let old = fs::metadata(p).unwrap().permissions().mode();
                fs::set_permissions(p, fs::Permissions::from_mode(*mode)).unwrap();
                (p.to_path_buf(), old)
            })
            .collect();
        ReadOnlyGuard(saved)
    }
}

impl Drop for ReadOnlyGuard {
    fn drop(&mut self) {
        for (p, mode) in self.0.iter().rev() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(*mode));
        }
    }
}

#[test]
fn missing_file_is_reported_and_not_created() {
    let (_dir, path) = temp_db();
    match ReadOnlyStore::open(&path) {
        Err(StoreError::Missing { path: p }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    assert!(!path.exists());
}

#[test]
fn never_migrates_nor_writes() {
    let (_dir, path) = temp_db();
    // Only the bookkeeping table: every product migration is pending, so an
    // implementation that migrated here would change the file.
    drop(Store::open_with(&path, &[]).unwrap());
    let before = fingerprint(&path);

    let store = ReadOnlyStore::open(&path).unwrap();
    assert_eq!(store.applied_migrations().unwrap(), []);
    assert!(store.list_vms().is_err(), "there is no vms table yet");
    drop(store);
    assert!(matches!(
        migration_status(&path).unwrap(),
        MigrationStatus::Pending { applied: 0, .. }
    ));

    assert_eq!(fingerprint(&path), before);
    let still_pending = ReadOnlyStore::open(&path).unwrap();
    assert_eq!(still_pending.applied_migrations().unwrap(), []);
}

#[test]
fn reads_a_read_only_file_in_a_read_only_directory() {
    let (dir, path) = temp_db();
    {
        let store = Store::open(&path).unwrap();
        store.insert_vm(&vm("1000000000000001", "dev")).unwrap();
    }
    let before = fingerprint(&path);
    let _guard = ReadOnlyGuard::new(&[(&path, 0o444), (dir.path(), 0o555)]);

    let store = ReadOnlyStore::open(&path).unwrap();
    let names: Vec<String> = store
        .list_vms()
        .unwrap()
        .into_iter()
        .map(|v| v.name.to_string())
        .collect();
    assert_eq!(names, ["dev"]);
    let applied = store.applied_migrations().unwrap();
    assert_eq!(applied.len(), MIGRATIONS.len());
    assert_eq!(applied[0].id, 1);
    assert_eq!(applied[0].name, "baseline schema");
    drop(store);
    assert_eq!(
        migration_status(&path).unwrap(),
        MigrationStatus::UpToDate {
            version: crate::migrate::latest(MIGRATIONS)
        }
    );
    // Root ignores the permission bits, so also check nothing was written.
    assert_eq!(fingerprint(&path), before);
}

#[test]
fn applied_migrations_of_an_unmigrated_database_is_empty() {
    let (_dir, path) = temp_db();
    raw(&path).execute_batch("CREATE TABLE other (x)").unwrap();
    let store = ReadOnlyStore::open(&path).unwrap();
    assert_eq!(store.applied_migrations().unwrap(), []);
    assert_eq!(store.path(), path);
}

#[test]
fn applied_migrations_lists_the_recorded_rows() {
    let (_dir, path) = temp_db();
    drop(Store::open_with(&path, crate::test_support::TEST_MIGRATIONS).unwrap());
    let applied = ReadOnlyStore::open(&path)
        .unwrap()
        .applied_migrations()
        .unwrap();
    let got: Vec<(u32, &str)> = applied.iter().map(|m| (m.id, m.name.as_str())).collect();
    assert_eq!(got, [(1, "create a"), (2, "create b"), (3, "create c")]);
    assert!(applied.iter().all(|m| m.applied_at.ends_with('Z')));
}
