//! The on-disk schema and its migrations.
//!
//! The schema version lives in `PRAGMA user_version` and on every row
//! (`schema_version`). Opening a file runs the migrations it lacks, in one
//! transaction; a file (or row) newer than [`SCHEMA_VERSION`] is refused
//! with [`StoreError::UnsupportedSchemaVersion`] rather than misread.
//!
//! History of versions:
//! - 1: `jobs`, `events`, `findings` as described in SPEC §6.
//! - 2: process bookkeeping for crash recovery on `jobs` (leader pid,
//!   leader start time, boot id, and which runtime/host owns the job).

use rusqlite::{Connection, TransactionBehavior};

use super::{StoreError, SCHEMA_VERSION};

/// Version 1: the three tables of SPEC §6.
pub(crate) const V1: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id             BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    command        TEXT NOT NULL,
    label          TEXT,
    tags           TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    created_sub_ns INTEGER NOT NULL DEFAULT 0,
    started_ms     INTEGER,
    started_sub_ns INTEGER,
    state          TEXT NOT NULL,
    exit_code      INTEGER,
    exit_signal    INTEGER,
    outcome        TEXT,
    progress       TEXT NOT NULL,
    current_phase  BLOB,
    updated_ms     INTEGER NOT NULL,
    schema_version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_ms);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY,
    job            BLOB NOT NULL,
    at_ms          INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    schema_version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job, seq);
CREATE TABLE IF NOT EXISTS findings (
    seq            INTEGER PRIMARY KEY,
    job            BLOB NOT NULL,
    at_ms          INTEGER NOT NULL,
    code           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    payload        TEXT NOT NULL,
    schema_version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_by_job ON findings (job, seq);
";

/// Version 2: crash-recovery bookkeeping.
const V2: &str = "
ALTER TABLE jobs ADD COLUMN pid INTEGER;
ALTER TABLE jobs ADD COLUMN leader_start INTEGER;
ALTER TABLE jobs ADD COLUMN boot_id TEXT;
ALTER TABLE jobs ADD COLUMN owner BLOB;
ALTER TABLE jobs ADD COLUMN host_pid INTEGER;
ALTER TABLE jobs ADD COLUMN host_start INTEGER;
";

/// `MIGRATIONS[i]` upgrades a file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2];

/// Set connection options and bring the schema up to date.
pub(crate) fn prepare(conn: &mut Connection, in_memory: bool) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Any read fails on a file that is not a database ("file is not a
    // database"): check that before touching anything.
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchemaVersion {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if !in_memory {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "could not switch the history file to WAL mode (got {mode:?})"
            ))));
        }
    }
    // FULL: a commit is fsynced, so a job whose handle resolved survives a
    // power loss too, not just a crash of the process.
    conn.pragma_update(None, "synchronous", "FULL")?;
    migrate(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening a fresh file at once migrate one
    // after the other; the second sees the new version and does nothing.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchemaVersion {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
