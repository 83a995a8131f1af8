//! The on-disk schema and its migrations.
//!
//! The schema version lives in `PRAGMA user_version` and on every row
//! (`schema_version`). Opening a file runs the migrations it lacks, in one
//! transaction; a file (or row) newer than [`SCHEMA_VERSION`] is refused
//! with [`StoreError::UnsupportedSchemaVersion`] rather than misread, and a
//! file that is some other SQLite database is refused with
//! [`StoreError::NotAHistory`] before anything in it is changed.
//!
//! History of versions:
//! - 0: an empty file, or a history written by the published `execra` 1.1
//!   (which never set `user_version`; see below).
//! - 1: `jobs`, `events`, `findings` as described in SPEC §6.
//! - 2: process bookkeeping for crash recovery on `jobs` (leader pid,
//!   leader start time, boot id, and which runtime/host owns the job).
//!
//! # Histories of execra 1.1
//!
//! The published 1.1 wrote the same three tables under other column names
//! (`command_json`, `tags_json`, `created_at_ms`, `started_at_ms`,
//! `outcome_json` on `jobs`; `id`, `job_id` on `events`; `id`, `job_id`,
//! `finding_json` and no `schema_version` on `findings`) and left
//! `user_version` at 0. Such a file (recognised by those columns) is
//! upgraded by [`FROM_1_1`] and then by the ordinary migrations, all in
//! the one transaction: columns are renamed to ours and the missing ones
//! added with defaults (`progress` `{"kind":"unknown"}`, sub-millisecond
//! parts 0, `updated_ms` = start or creation time), 1.1's indexes are
//! replaced by ours, and every row stays where it is. Its JSON (command,
//! outcome, events, findings) is 1.1's serde form, which this crate reads
//! unchanged (everything added since has a serde default).
//!
//! Why rename in place rather than make 1.1's column names our version 1:
//! files at our versions 1 and 2 already exist (written by this crate's
//! development builds, and by the test suites), so renumbering would make
//! `user_version = 1` mean two different layouts. And why rename rather
//! than copy into new tables: `RENAME COLUMN` and `ADD COLUMN` with a
//! constant default only rewrite the schema, not the rows, so the upgrade
//! of a large history is instant and cannot run out of disk half-way; the
//! one `UPDATE` (`updated_ms`) touches the small `jobs` table only. The
//! price is that an upgraded file differs from a fresh one in details no
//! query depends on: `events.seq` keeps 1.1's `AUTOINCREMENT`, and the
//! added `NOT NULL` columns carry a default.

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

/// Upgrade of a history written by the published execra 1.1 to a layout
/// that [`V1`] (a no-op on its tables then, it only adds our indexes) and
/// the later migrations complete.
pub(crate) const FROM_1_1: &str = r#"
ALTER TABLE jobs RENAME COLUMN command_json TO command;
ALTER TABLE jobs RENAME COLUMN tags_json TO tags;
ALTER TABLE jobs RENAME COLUMN created_at_ms TO created_ms;
ALTER TABLE jobs RENAME COLUMN started_at_ms TO started_ms;
ALTER TABLE jobs RENAME COLUMN outcome_json TO outcome;
ALTER TABLE jobs ADD COLUMN created_sub_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN started_sub_ns INTEGER;
ALTER TABLE jobs ADD COLUMN progress TEXT NOT NULL DEFAULT '{"kind":"unknown"}';
ALTER TABLE jobs ADD COLUMN current_phase BLOB;
ALTER TABLE jobs ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET updated_ms = coalesce(started_ms, created_ms);
ALTER TABLE events RENAME COLUMN id TO seq;
ALTER TABLE events RENAME COLUMN job_id TO job;
ALTER TABLE findings RENAME COLUMN id TO seq;
ALTER TABLE findings RENAME COLUMN job_id TO job;
ALTER TABLE findings RENAME COLUMN finding_json TO payload;
ALTER TABLE findings ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS jobs_created_idx;
DROP INDEX IF EXISTS jobs_state_idx;
DROP INDEX IF EXISTS events_job_idx;
DROP INDEX IF EXISTS findings_job_idx;
DROP INDEX IF EXISTS findings_severity_idx;
"#;

/// The columns by which a file is recognised as execra 1.1's history.
const LAYOUT_1_1: &[(&str, &[&str])] = &[
    (
        "jobs",
        &[
            "id",
            "command_json",
            "label",
            "tags_json",
            "created_at_ms",
            "started_at_ms",
            "state",
            "exit_code",
            "exit_signal",
            "outcome_json",
            "schema_version",
        ],
    ),
    (
        "events",
        &["id", "job_id", "at_ms", "kind", "payload", "schema_version"],
    ),
    (
        "findings",
        &["id", "job_id", "at_ms", "code", "severity", "finding_json"],
    ),
];

/// The columns of ours that every version from 1 on has.
const LAYOUT_OURS: &[(&str, &[&str])] = &[
    (
        "jobs",
        &["id", "command", "tags", "created_ms", "state", "outcome"],
    ),
    ("events", &["seq", "job", "at_ms", "kind", "payload"]),
    ("findings", &["seq", "job", "severity", "payload"]),
];

/// `MIGRATIONS[i]` upgrades a file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2];

/// What a file's version and tables say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No tables yet: create everything.
    Empty,
    /// Written by the published execra 1.1.
    Published1_1,
    /// Ours, at the version in `user_version`.
    Ours,
}

/// The column names of `table` (empty when there is no such table).
fn columns(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let rows = stmt.query_map([table], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn has_layout(conn: &Connection, layout: &[(&str, &[&str])]) -> Result<bool, StoreError> {
    for (table, wanted) in layout {
        let found = columns(conn, table)?;
        if !wanted.iter().all(|c| found.iter().any(|f| f == c)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Recognise the file (read-only): ours, 1.1's, empty — or something else,
/// which is refused with [`StoreError::NotAHistory`] naming what was found.
fn classify(conn: &Connection, version: i64) -> Result<Kind, StoreError> {
    let tables: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let kind = if version == 0 && tables.is_empty() {
        Kind::Empty
    } else if version == 0 && has_layout(conn, LAYOUT_1_1)? {
        Kind::Published1_1
    } else if version > 0 && has_layout(conn, LAYOUT_OURS)? {
        Kind::Ours
    } else {
        let found = if tables.is_empty() {
            "no tables".to_string()
        } else {
            format!("tables {}", tables.join(", "))
        };
        return Err(StoreError::NotAHistory {
            detail: format!(
                "user_version {version} with {found}; expected an execra history \
                 (tables jobs, events, findings) or an empty file"
            ),
        });
    };
    Ok(kind)
}

/// Set connection options and bring the schema up to date.
pub(crate) fn prepare(conn: &mut Connection, in_memory: bool) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Any read fails on a file that is not a database ("file is not a
    // database"): check that before touching anything.
    // One read transaction, so the version and the tables are seen as of
    // one moment (another process may be migrating the same fresh file).
    {
        let tx = conn.transaction()?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::UnsupportedSchemaVersion {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        // Refuse some other database before switching its journal mode.
        classify(&tx, found)?;
        tx.commit()?;
    }
    if !in_memory {
        // Switching a fresh file to WAL needs an exclusive lock, and SQLite
        // answers "database is locked" at once (no busy handler) while
        // another process opens the same fresh file: retry within the busy
        // timeout.
        let mode: String =
            retry_busy(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)))?;
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

/// Run `f` again while SQLite reports the database busy or locked, for up
/// to the 5 s the busy timeout allows elsewhere.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match f() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
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
    // Again inside the transaction: another process may have upgraded the
    // file since `prepare` looked.
    if classify(&tx, found)? == Kind::Published1_1 {
        tx.execute_batch(FROM_1_1)?;
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
