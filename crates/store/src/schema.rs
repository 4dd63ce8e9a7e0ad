//! banger's own migrations. Append only: a released migration never changes,
//! a schema change is a new entry with the next id.

use rusqlite::Transaction;

use crate::migrate::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: 1,
        name: "baseline schema",
        up: baseline,
    },
    Migration {
        id: 2,
        name: "drop the images and kernels tables",
        up: drop_image_and_kernel_tables,
    },
];

/// Images and kernels are described by their manifests on disk, next to
/// their files (SPEC §5 allows either); the baseline's tables for them
/// were never written, and a second source of truth would only drift.
fn drop_image_and_kernel_tables(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("DROP TABLE images; DROP TABLE kernels;")
}

// The `vms.runtime` comment below predates the store's own record type:
// the column now holds `crate::record::RuntimeRecord`'s JSON, which has the
// same keys as the api crate's old `VmRuntime` (so no migration was needed).
fn baseline(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "
        CREATE TABLE images (
            id TEXT PRIMARY KEY,
            name TEXT UNIQUE NOT NULL,
            managed INTEGER NOT NULL,
            rootfs_path TEXT NOT NULL,
            kernel_ref TEXT,
            size_bytes INTEGER,
            source TEXT,
            manifest TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );

        CREATE TABLE kernels (
            id TEXT PRIMARY KEY,
            name TEXT UNIQUE NOT NULL,
            version TEXT,
            sha256 TEXT,
            source TEXT,
            path TEXT NOT NULL,
            imported_at TEXT NOT NULL
        );

        -- spec, runtime and workspace hold the JSON of the api crate's
        -- VmSpec, VmRuntime and Workspace.
        CREATE TABLE vms (
            id TEXT PRIMARY KEY,
            name TEXT UNIQUE NOT NULL,
            image TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('created', 'starting', 'running', 'stopping', 'stopped', 'error')),
            spec TEXT NOT NULL,
            runtime TEXT NOT NULL DEFAULT '{}',
            workspace TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            last_error TEXT
        );

        -- The holder is normally a VM id, but deliberately not a foreign key:
        -- host plumbing tests lease addresses without VMs, and teardown must
        -- be able to release a lease from the record alone.
        CREATE TABLE ip_leases (
            ip TEXT PRIMARY KEY,
            holder TEXT NOT NULL UNIQUE,
            leased_at TEXT NOT NULL
        );

        CREATE TABLE operations (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            target TEXT,
            state TEXT NOT NULL CHECK (state IN
                ('running', 'succeeded', 'failed', 'cancelled')),
            stage TEXT,
            error TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX operations_started_at ON operations (started_at);
        ",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::validate;

    #[test]
    fn product_migrations_pass_validation() {
        validate(MIGRATIONS).unwrap();
        assert_eq!(MIGRATIONS[0].id, 1, "migration 1 is the baseline");
        assert_eq!(MIGRATIONS[0].name, "baseline schema");
    }

    /// The constraints the rest of the code relies on are in the schema.
    /// A database made by a binary that knew only the baseline: the unused
    /// tables go, everything else stays as it was.
    #[test]
    fn migration_2_drops_the_unused_tables_and_keeps_the_rest() {
        let (_dir, path) = crate::test_support::temp_db();
        {
            let mut conn = crate::test_support::raw(&path);
            crate::migrate::apply(&mut conn, &path, &MIGRATIONS[..1]).unwrap();
            conn.execute(
                "INSERT INTO vms (id, name, image, state, spec, created_at, updated_at)
                 VALUES ('1', 'dev', 'img', 'stopped', '{}', 't', 't')",
                [],
            )
            .unwrap();
        }
        drop(crate::Store::open(&path).unwrap());
        let conn = crate::test_support::raw(&path);
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            tables,
            ["ip_leases", "operations", "schema_migrations", "vms"]
        );
        let name: String = conn
            .query_row("SELECT name FROM vms WHERE id = '1'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "dev");
    }

    #[test]
    fn baseline_enforces_its_constraints() {
        let (_dir, path) = crate::test_support::temp_db();
        drop(crate::Store::open(&path).unwrap());
        let conn = crate::test_support::raw(&path);
        let vm = |id: &str, name: &str, state: &str| {
            conn.execute(
                "INSERT INTO vms (id, name, image, state, spec, created_at, updated_at)
                 VALUES (?1, ?2, 'img', ?3, '{}', 't', 't')",
                [id, name, state],
            )
        };
        vm("1", "dev", "running").unwrap();
        assert!(vm("2", "other", "exploded").is_err(), "unknown VM state");
        assert!(vm("3", "dev", "stopped").is_err(), "duplicate VM name");
        let runtime: String = conn
            .query_row("SELECT runtime FROM vms WHERE id = '1'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runtime, "{}");

        let op = |id: &str, state: &str| {
            conn.execute(
                "INSERT INTO operations (id, kind, state, started_at) VALUES (?1, 'k', ?2, 't')",
                [id, state],
            )
        };
        op("a", "cancelled").unwrap();
        assert!(op("b", "paused").is_err(), "unknown operation state");

        let lease = |ip: &str, holder: &str| {
            conn.execute(
                "INSERT INTO ip_leases (ip, holder, leased_at) VALUES (?1, ?2, 't')",
                [ip, holder],
            )
        };
        // No VM "nobody" exists: leases are deliberately not foreign keys.
        lease("172.30.0.2", "nobody").unwrap();
        assert!(
            lease("172.30.0.3", "nobody").is_err(),
            "one lease per holder"
        );
        assert!(
            lease("172.30.0.2", "else").is_err(),
            "one holder per address"
        );

        let indexed: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_index_list('operations') WHERE name = 'operations_started_at')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(indexed);
    }
}
