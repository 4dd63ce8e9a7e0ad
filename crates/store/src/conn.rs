//! Opening SQLite connections with the settings every banger connection
//! needs (SPEC §5): WAL, a busy timeout, foreign keys on.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::StoreError;

/// The daemon, `doctor` and tests may hold the database at the same time; a
/// writer waits this long for the others instead of failing with SQLITE_BUSY.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating the file if needed) the database for reading and writing.
pub(crate) fn open_read_write(path: &Path) -> Result<Connection, StoreError> {
    // SQLite reports a missing directory as a bare "unable to open database
    // file"; say which directory instead. Creating it is the installer's job,
    // because its owner and mode matter.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if dir
        .is_some_and(|d| matches!(std::fs::metadata(d), Err(e) if e.kind() == ErrorKind::NotFound))
    {
        return Err(StoreError::DirectoryMissing {
            path: path.to_path_buf(),
        });
    }
    // No SQLITE_OPEN_URI: a path is a path, even one starting with "file:".
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(StoreError::sqlite(path, "opening the database"))?;
    session_settings(&conn, path)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(StoreError::sqlite(path, "switching to WAL journaling"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some filesystems (network mounts) cannot do WAL; SQLite then keeps
        // the rollback journal, which is slower under contention but correct.
        tracing::warn!(path = %path.display(), mode, "database is not in WAL mode");
    }
    Ok(conn)
}

/// Opens an existing database without ever writing to it or creating it.
///
/// A WAL database normally needs its `-shm` file even for reading. When that
/// cannot be created (read-only directory or file), the database is reopened
/// as immutable: SQLite then reads the main file alone, which is exact as long
/// as no daemon is writing to it at the same time.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if matches!(std::fs::metadata(path), Err(e) if e.kind() == ErrorKind::NotFound) {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(StoreError::sqlite(path, "opening the database read-only"))?;
    session_settings(&conn, path)?;
    // Opening is lazy: the WAL index is only set up by the first read.
    match probe(&conn) {
        Ok(()) => Ok(conn),
        Err(e) if needs_immutable(&e) => {
            tracing::debug!(path = %path.display(), error = %e, "reopening the database as immutable");
            drop(conn);
            open_immutable(path)
        }
        Err(e) => Err(StoreError::sqlite(path, "reading the database")(e)),
    }
}

/// The read-only fallback: see [`open_read_only`].
pub(crate) fn open_immutable(path: &Path) -> Result<Connection, StoreError> {
    let action = "opening the database as immutable";
    // Only an empty path or an unreadable working directory fail here.
    let absolute = std::path::absolute(path).map_err(|_| StoreError::Sqlite {
        path: path.to_path_buf(),
        action,
        source: rusqlite::Error::InvalidPath(path.to_path_buf()),
    })?;
    let uri = format!("file://{}?immutable=1", percent_encode(&absolute));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri, flags).map_err(StoreError::sqlite(path, action))?;
    session_settings(&conn, path)?;
    probe(&conn).map_err(StoreError::sqlite(path, "reading the database"))?;
    Ok(conn)
}

/// Per-connection settings that hold for readers and writers alike.
fn session_settings(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(StoreError::sqlite(path, "setting the busy timeout"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(StoreError::sqlite(path, "enabling foreign keys"))
}

fn probe(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(drop)
}

/// The errors a read-only open of a WAL database gets when its `-shm`/`-wal`
/// files cannot be created.
fn needs_immutable(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen)
    )
}

/// SQLite URIs treat `?`, `#` and `%` specially; escape everything that is not
/// plainly safe so any path survives the trip.
fn percent_encode(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests;
