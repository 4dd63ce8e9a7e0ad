//! `bangerd --check-migrations` and `--migrate` on real database files.

mod common;

use common::{Home, assert_success, stdout};

#[test]
fn check_migrations_exit_codes() {
    let home = Home::new();

    // No database yet: everything is pending, and checking creates nothing.
    let out = home.bangerd(&["--check-migrations"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("pending"), "{}", stdout(&out));
    assert!(
        !home.db().exists(),
        "the check must not create the database"
    );

    // An empty SQLite file (no schema_migrations table): pending.
    std::fs::create_dir_all(home.db().parent().unwrap()).unwrap();
    rusqlite::Connection::open(home.db())
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x)")
        .unwrap();
    assert_eq!(home.bangerd(&["--check-migrations"]).status.code(), Some(1));

    // Migrated by the binary itself: up to date.
    assert_success(&home.bangerd(&["--migrate"]));
    let out = home.bangerd(&["--check-migrations"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));

    // A migration this binary does not know: the database is newer.
    let conn = rusqlite::Connection::open(home.db()).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (id, name, applied_at) VALUES (9999, 'from the future', '2030-01-01T00:00:00Z')",
        [],
    )
    .unwrap();
    drop(conn);
    let out = home.bangerd(&["--check-migrations"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("newer"), "{}", stdout(&out));

    // And the daemon refuses to run on it rather than guess.
    let out = home.bangerd(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out).contains("upgrade banger"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn check_migrations_on_a_partially_migrated_database() {
    let home = Home::new();
    assert_success(&home.bangerd(&["--migrate"]));
    // Forget the newest migration, as if the database came from an older
    // banger: it is pending again.
    let conn = rusqlite::Connection::open(home.db()).unwrap();
    let newest: u32 = conn
        .query_row("SELECT max(id) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    if newest < 2 {
        // With a single migration, "older database" means no migrations at all.
        conn.execute("DELETE FROM schema_migrations", []).unwrap();
    } else {
        conn.execute("DELETE FROM schema_migrations WHERE id = ?1", [newest])
            .unwrap();
    }
    drop(conn);
    let out = home.bangerd(&["--check-migrations"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&newest.to_string()),
        "names the pending id: {}",
        stdout(&out)
    );
}
