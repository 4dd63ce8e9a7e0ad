use super::*;
use crate::store::Store;
use crate::test_support::{raw, temp_db};

#[test]
fn connection_pragmas_are_set() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let conn = &store.conn;
    let fk: i64 = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let timeout: i64 = conn
        .pragma_query_value(None, "busy_timeout", |r| r.get(0))
        .unwrap();
    assert_eq!(timeout, 5000);
}

#[test]
fn read_only_connections_get_the_session_settings() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).unwrap());
    let conn = open_read_only(&path).unwrap();
    let fk: i64 = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    let timeout: i64 = conn
        .pragma_query_value(None, "busy_timeout", |r| r.get(0))
        .unwrap();
    assert_eq!((fk, timeout), (1, 5000));
}

/// The fallback taken when the WAL index cannot be created; it must read the
/// right file whatever characters its path holds.
#[test]
fn immutable_open_reads_paths_with_uri_characters() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("odd ?#%&=name");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("banger.db");
    drop(Store::open(&path).unwrap());
    raw(&path)
        .execute_batch("CREATE TABLE marker (x); INSERT INTO marker VALUES (42);")
        .unwrap();
    let conn = open_immutable(&path).unwrap();
    let x: i64 = conn
        .query_row("SELECT x FROM marker", [], |r| r.get(0))
        .unwrap();
    assert_eq!(x, 42);
    // Writes are refused on it.
    assert!(conn.execute("INSERT INTO marker VALUES (1)", []).is_err());
}

#[test]
fn read_only_failures_of_the_wal_index_trigger_the_fallback() {
    let err = |code| {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("x".to_owned()))
    };
    assert!(needs_immutable(&err(rusqlite::ffi::SQLITE_READONLY)));
    assert!(needs_immutable(&err(rusqlite::ffi::SQLITE_CANTOPEN)));
    assert!(needs_immutable(&err(
        rusqlite::ffi::SQLITE_READONLY_CANTINIT
    )));
    assert!(!needs_immutable(&err(rusqlite::ffi::SQLITE_CORRUPT)));
    assert!(!needs_immutable(&err(rusqlite::ffi::SQLITE_BUSY)));
}

#[test]
fn uri_paths_escape_everything_but_plain_characters() {
    assert_eq!(
        percent_encode(Path::new("/var/lib/banger-1/state_db.v2~")),
        "/var/lib/banger-1/state_db.v2~"
    );
    assert_eq!(
        percent_encode(Path::new("/a b?c#d%e")),
        "/a%20b%3Fc%23d%25e"
    );
}
