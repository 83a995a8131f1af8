//! History store: jobs, their events and findings in an SQLite file.
//!
//! [`Store`] is the synchronous, public face of the file: open it, write and
//! read jobs and events. The runtime does not call it from its async
//! threads: with [`RuntimeBuilder::history`](crate::RuntimeBuilder::history)
//! one dedicated writer thread owns a write connection and commits in
//! batches, and reads go through a second connection (see `writer`).
//!
//! # File format
//!
//! SQLite in WAL mode, [`SCHEMA_VERSION`] in `PRAGMA user_version` and on
//! every row (`schema_version`). Tables:
//!
//! - `jobs` — one row per job: `id` (the 16-byte uuid BLOB), `command`
//!   (JSON [`CommandSpec`](crate::CommandSpec), secrets already masked),
//!   `label`, `tags` (JSON array), `created_ms`/`started_ms` (Unix ms, with
//!   the sub-millisecond rest in `*_sub_ns`), `state`, `exit_code`,
//!   `exit_signal`, `outcome` (JSON), `progress` (JSON), `current_phase`,
//!   and crash-recovery bookkeeping (`pid`, `leader_start`, `boot_id`,
//!   `owner`, `host_pid`, `host_start`).
//! - `events` — one row per event except `output_appended` and
//!   `output_skipped` (raw output belongs in the raw logs): `job`, `at_ms`,
//!   `kind`, `payload` (the event as JSON).
//! - `findings` — a copy of every `finding_emitted`: `job`, `at_ms`, `code`,
//!   `severity`, `payload` (the finding as JSON).
//!
//! # Histories of execra 1.1
//!
//! A file written by the published `execra` 1.1 (same three tables, other
//! column names, `user_version` 0) is upgraded in place by the first open, in
//! one transaction: its columns are renamed to the ones above and the missing
//! ones added (`progress` unknown, sub-millisecond parts 0), 1.1's indexes are
//! replaced by ours, and every job, event and finding is kept as it was — its
//! JSON is 1.1's serde form, which this crate reads. Jobs 1.1 left `running`
//! (its host crashed) have no owner recorded and are finalized as stranded by
//! the next runtime or reader that reconciles (see
//! [`Store::resurrect_stranded_jobs`]). Any other SQLite database is refused
//! with [`StoreError::NotAHistory`] and left untouched.
//!
//! # Reading a history, and rows that cannot be read
//!
//! [`Store::list_jobs`] skips a row it cannot decode (malformed JSON, unknown
//! state, a row from a newer execra) with a `tracing` warning naming the job,
//! rather than failing the listing; [`Store::list_jobs_reporting`] returns the
//! skipped rows too. A reader that must not show a crashed host's job as
//! running calls [`Store::resurrect_stranded_jobs`] first, as `execra ls`,
//! `show` and `logs` do.
//!
//! # Durability
//!
//! Every write through [`Store`] is its own transaction and is on disk when
//! the call returns. With the runtime, a row is in the file (safe if the host
//! process dies) once the writer thread committed the batch holding it;
//! batches are committed as fast as the disk allows (the writer takes
//! everything queued, commits, repeats). Ordinary batches commit with
//! `synchronous = NORMAL`, so a power loss could still take the newest of
//! them; a batch that completes a job or a flush commits with
//! `synchronous = FULL`, fsyncing the write-ahead log and with it every
//! earlier commit. So a job's rows — every event and its final snapshot —
//! are committed *and fsynced* before its
//! [`JobHandle`](crate::JobHandle) resolves and before subscribers see
//! `finalized`; [`Runtime::flush`](crate::Runtime::flush) waits for
//! everything recorded so far. If the host process dies, what was not yet
//! committed (at most the last few milliseconds of a running job's
//! progress) is lost and the job is finalized as stranded by the next
//! runtime (see [`Store::resurrect_stranded_jobs`]).
//!
//! A background write that fails (disk full, file locked by another process
//! for more than 5 s) is retried once; if it fails again it is counted and
//! reported by the next [`Runtime::flush`](crate::Runtime::flush) as
//! [`StoreError::WriteFailed`], and the batch's terminal writes (final
//! snapshots, `finalized` events) are tried once more on their own. The job
//! itself is never held up or failed by its history.
//!
//! # Retention
//!
//! [`RetentionPolicy`] (defined with the rest of
//! retention in `crate::retention`) is enforced when a runtime with history is built,
//! hourly while it lives, and on [`Runtime::prune`](crate::Runtime::prune):
//! events and findings older than `keep_events_for` and raw logs older than
//! `keep_raw_for` are deleted, except for jobs tagged `pinned_tag` and jobs
//! not finished yet. **Job rows are kept**: they are small, and a job id an
//! application stored keeps resolving to its label, state, exit and
//! outcome.
//!
//! # Several runtimes, several processes
//!
//! Any number of runtimes and [`Store`]s (in one or several processes) may
//! use one file: WAL lets readers read while one writer writes, and writers
//! wait up to 5 s for each other. Each job row records which runtime (and
//! host process, with its start time) owns it, so a runtime opening the file
//! only finalizes jobs whose owner is gone, never those of a live neighbour.

mod control;
mod proc;
mod schema;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row, Statement};
use uuid::Uuid;

use crate::event::Event;
use crate::job::{Job, JobId, JobState};
use crate::outcome::{ExitCode, FailureReason, Outcome};
use crate::phase::PhaseId;
use crate::retention::RetentionPolicy;

pub use crate::retention::PruneReport;
pub use control::TreeHolder;
pub(crate) use writer::HistoryRecorder;

/// The schema version this build writes and the newest it can read.
pub const SCHEMA_VERSION: i64 = 2;

/// The error message of jobs finalized because their host process died.
pub const STRANDED_ERROR: &str = "host process exited";

/// Errors from the history store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (locked for too long, disk full, not a database, …).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON value could not be encoded or decoded.
    #[error("malformed JSON in the history: {0}")]
    Serde(#[from] serde_json::Error),
    /// An I/O error (creating directories, opening files).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The file (or a row in it) was written by a newer execra whose schema
    /// this build does not know.
    #[error("history schema version {found} is newer than this build supports ({supported}); upgrade execra to read it")]
    UnsupportedSchemaVersion {
        /// The version found in the file or row.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// The file is an SQLite database but not an execra history (nor one
    /// of the published execra 1.1); nothing in it was changed.
    #[error("not an execra history file: {detail}")]
    NotAHistory {
        /// What was found instead.
        detail: String,
    },
    /// Background writes of the runtime's history failed (reported by
    /// [`Runtime::flush`](crate::Runtime::flush)).
    #[error("{failures} history write batch(es) failed; last error: {last}")]
    WriteFailed {
        /// Failed batches since the last report.
        failures: u64,
        /// The last error.
        last: String,
    },
}

/// Filters for [`Store::list_jobs`]. `Default` matches every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsFilter {
    /// Only jobs carrying this tag.
    pub tag: Option<String>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs created strictly after this time.
    pub created_after: Option<SystemTime>,
    /// Only jobs created strictly before this time.
    pub created_before: Option<SystemTime>,
}

impl JobsFilter {
    /// `true` if `job` passes the filters (what [`Store::list_jobs`] selects,
    /// applied to a job in memory).
    pub fn matches(&self, job: &Job) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|t| job.command.tags.contains(t))
            && self.state.is_none_or(|s| job.state == s)
            && self.created_after.is_none_or(|a| job.created_at > a)
            && self.created_before.is_none_or(|b| job.created_at < b)
    }
}

/// Whether history stores this event. Raw output (`output_appended`,
/// `output_skipped`) belongs in the raw logs, never in history; this is the
/// one place that decides it.
pub(crate) fn kept_in_history(event: &Event) -> bool {
    !matches!(
        event,
        Event::OutputAppended { .. } | Event::OutputSkipped { .. }
    )
}

/// What [`Store::list_jobs_reporting`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct JobListing {
    /// The jobs that could be read, newest first.
    pub jobs: Vec<Job>,
    /// The rows that could not be read, in the same order.
    pub skipped: Vec<SkippedJob>,
}

/// A job row that could not be decoded.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedJob {
    /// The row's job id (as a uuid, or the raw bytes in hex if the id
    /// itself is malformed).
    pub id: String,
    /// Why it could not be read.
    pub error: StoreError,
}

/// Who writes a job: the runtime's recorder id and its host process.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub id: Uuid,
    pub host: proc::ProcId,
}

/// A connection to a history file.
///
/// Every method is synchronous and blocks the calling thread on SQLite
/// (waiting up to 5 s for another process's write lock); call it from a
/// blocking context in async code.
///
/// ```no_run
/// use execra::store::{JobsFilter, Store};
/// # fn demo() -> Result<(), execra::store::StoreError> {
/// let store = Store::open("history.db")?;
/// for job in store.list_jobs(10, &JobsFilter::default())? {
///     println!("{} {} {:?}", job.id, job.state, job.label);
/// }
/// # Ok(()) }
/// ```
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

const JOB_COLUMNS: &str = "id, command, label, created_ms, created_sub_ns, started_ms, \
     started_sub_ns, state, exit_code, exit_signal, outcome, progress, current_phase, \
     schema_version";

const TERMINAL: &str = "('finalized', 'cancelled')";

impl Store {
    /// Open (or create) the history file at `path`, creating its parent
    /// directories, switching it to WAL and upgrading an older schema. On
    /// Unix a new file (and its `-wal`/`-shm` companions) is readable by its
    /// owner only (`0600`), and directories created for it are `0700`.
    ///
    /// Errors: the path is a directory or cannot be created
    /// ([`StoreError::Io`]), the file is not an SQLite database
    /// ([`StoreError::Sqlite`]), it is some other SQLite database
    /// ([`StoreError::NotAHistory`], the file is left unchanged), it was
    /// written by a newer execra ([`StoreError::UnsupportedSchemaVersion`]).
    ///
    /// A history written by the published execra 1.1 is upgraded in place
    /// (see [Histories of execra 1.1](self#histories-of-execra-11)).
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        if path.is_dir() {
            return Err(io_err(
                std::io::ErrorKind::InvalidInput,
                format!("history path {} is a directory", path.display()),
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::private::create_dir_all(parent).map_err(|e| {
                io_err(
                    e.kind(),
                    format!(
                        "cannot create the directory of history file {}: {e}",
                        path.display()
                    ),
                )
            })?;
        }
        // Owner-only from the start (it holds command lines); if this fails
        // (a read-only directory…), opening below reports it. SQLite's own
        // names (`:memory:`, `file:` URIs) are not files to create.
        let special = path
            .to_str()
            .is_some_and(|p| p == ":memory:" || p.starts_with("file:"));
        if !special {
            let _ = crate::private::touch(path);
        }
        let mut conn = Connection::open(path).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::CannotOpen) => io_err(
                std::io::ErrorKind::PermissionDenied,
                format!("cannot open history file {}: {e}", path.display()),
            ),
            _ => StoreError::Sqlite(e),
        })?;
        schema::prepare(&mut conn, false)?;
        Ok(Store {
            conn,
            path: Some(path.to_path_buf()),
        })
    }

    /// A history that lives in memory only (for tests and tools).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        schema::prepare(&mut conn, true)?;
        Ok(Store { conn, path: None })
    }

    /// The file this store reads and writes (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Insert or replace a job's snapshot. A terminal job (finalized or
    /// cancelled) is never turned back into a live one by an older snapshot.
    pub fn upsert_job(&self, job: &Job) -> Result<(), StoreError> {
        Writes::new(&self.conn)?.upsert_job(job, None)
    }

    /// Append one event. `output_appended` and `output_skipped` are not
    /// stored (`Ok`, nothing written); a `finding_emitted` also goes to the
    /// `findings` table.
    pub fn insert_event(&self, event: &Event) -> Result<(), StoreError> {
        let tx = ImmediateTx::begin(&self.conn)?;
        Writes::new(&self.conn)?.insert_event(event)?;
        tx.commit()
    }

    /// A job by id.
    pub fn load_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1");
        self.conn
            .query_row(&sql, [id.0.as_bytes()], |r| Ok(decode_job(r)))
            .optional()?
            .transpose()
    }

    /// Up to `limit` jobs matching `filter`, newest first.
    ///
    /// A row that cannot be decoded (malformed JSON, an unknown state, a
    /// row written by a newer execra) does not fail the listing: it is
    /// skipped with a `tracing` warning naming the job id (it still counts
    /// towards `limit`). Use [`Store::list_jobs_reporting`] to get the
    /// skipped rows too.
    pub fn list_jobs(&self, limit: usize, filter: &JobsFilter) -> Result<Vec<Job>, StoreError> {
        Ok(self.list_jobs_reporting(limit, filter)?.jobs)
    }

    /// Like [`Store::list_jobs`], and also returns the rows it skipped
    /// because they could not be decoded, each with its job id and error
    /// (for tools that tell the user, such as `execra ls`).
    pub fn list_jobs_reporting(
        &self,
        limit: usize,
        filter: &JobsFilter,
    ) -> Result<JobListing, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?1))
               AND (?2 IS NULL OR state = ?2)
               AND (?3 IS NULL OR (created_ms >= ?3 / 1000000
                    AND created_ms * 1000000 + created_sub_ns > ?3))
               AND (?4 IS NULL OR (created_ms <= ?4 / 1000000
                    AND created_ms * 1000000 + created_sub_ns < ?4))
             ORDER BY created_ms DESC, created_sub_ns DESC, id DESC
             LIMIT ?5"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![
                filter.tag,
                filter.state.map(JobState::as_str),
                filter.created_after.map(nanos),
                filter.created_before.map(nanos),
                limit_param(limit),
            ],
            |r| Ok((raw_id(r), decode_job(r))),
        )?;
        let mut listing = JobListing::default();
        for row in rows {
            match row? {
                (_, Ok(job)) => listing.jobs.push(job),
                (id, Err(error)) => {
                    tracing::warn!(job = %id, %error, "skipping a history row that cannot be read");
                    listing.skipped.push(SkippedJob { id, error });
                }
            }
        }
        Ok(listing)
    }

    /// Up to `limit` of a job's stored events, oldest first.
    pub fn list_events(&self, id: JobId, limit: usize) -> Result<Vec<Event>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT payload, schema_version FROM events WHERE job = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![id.0.as_bytes(), limit_param(limit)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (payload, version) = row?;
            check_version(version)?;
            events.push(serde_json::from_str(&payload)?);
        }
        Ok(events)
    }

    /// Finalize jobs left `queued`, `running` or `exited` by a host process
    /// that is gone: state `finalized`, outcome
    /// `Failed{SpawnFailed{error: "host process exited"}}`, and a
    /// `finalized` event row. Jobs of a runtime that is still alive (in this
    /// or another process) are left alone.
    ///
    /// What is left of a stranded job's process tree is killed, even when
    /// its main process is already dead: its cgroup (Linux, found by the
    /// job id) is killed and removed; without one, `SIGKILL` goes to its
    /// process group — but only when the recorded leader identity (start
    /// time and boot, Linux) shows the group id was not reused; one that
    /// cannot be verified is never signalled.
    ///
    /// Returns how many jobs were finalized.
    pub fn resurrect_stranded_jobs(&self) -> Result<usize, StoreError> {
        let tx = ImmediateTx::begin(&self.conn)?;
        let stranded = {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT id, pid, leader_start, boot_id, owner, host_pid, host_start \
                 FROM jobs WHERE state NOT IN {TERMINAL} AND schema_version <= ?1"
            ))?;
            let rows = stmt.query_map([SCHEMA_VERSION], |r| {
                let boot: Option<String> = r.get(3)?;
                let leader = r.get::<_, Option<i64>>(1)?.map(|pid| proc::ProcId {
                    pid: u32::try_from(pid).unwrap_or(0),
                    start: r.get(2).ok().flatten(),
                    boot: boot.clone(),
                });
                let host = r.get::<_, Option<i64>>(5)?.map(|pid| proc::ProcId {
                    pid: u32::try_from(pid).unwrap_or(0),
                    start: r.get(6).ok().flatten(),
                    boot: boot.clone(),
                });
                let owner = r
                    .get::<_, Option<Vec<u8>>>(4)?
                    .and_then(|b| Uuid::from_slice(&b).ok());
                Ok((r.get::<_, Vec<u8>>(0)?, leader, owner, host))
            })?;
            let mut v = Vec::new();
            for row in rows {
                let (id, leader, owner, host) = row?;
                if !proc::owner_alive(owner, host.as_ref()) {
                    v.push((id, leader));
                }
            }
            v
        };
        let outcome = Outcome::Failed {
            reason: FailureReason::SpawnFailed {
                error: STRANDED_ERROR.to_string(),
            },
            summary: None,
            findings: Vec::new(),
        };
        let outcome_json = serde_json::to_string(&outcome)?;
        let mut finalize = self.conn.prepare(
            "UPDATE jobs SET state = 'finalized', outcome = ?2, current_phase = NULL,
                 updated_ms = ?3
             WHERE id = ?1",
        )?;
        let mut writes = Writes::new(&self.conn)?;
        let mut count = 0;
        for (id, leader) in stranded {
            let Ok(uuid) = Uuid::from_slice(&id) else {
                continue;
            };
            crate::process::kill_stranded(JobId(uuid), leader.as_ref());
            finalize.execute(params![id, outcome_json, millis(SystemTime::now())])?;
            writes.insert_event(&Event::Finalized {
                job: JobId(uuid),
                outcome: outcome.clone(),
                at: SystemTime::now(),
            })?;
            count += 1;
        }
        drop((finalize, writes));
        tx.commit()?;
        Ok(count)
    }

    /// Delete events and findings older than `policy.keep_events_for` of
    /// finished jobs not tagged `policy.pinned_tag`. Job rows are kept: a
    /// job's snapshot (label, state, exit, outcome) stays in the history
    /// after its detail is pruned. Raw logs are not touched here (see
    /// [`Runtime::prune`](crate::Runtime::prune)).
    pub fn prune(&self, policy: &RetentionPolicy) -> Result<PruneReport, StoreError> {
        let cutoff = millis(
            SystemTime::now()
                .checked_sub(policy.keep_events_for)
                .unwrap_or(UNIX_EPOCH),
        );
        let tx = ImmediateTx::begin(&self.conn)?;
        let mut report = PruneReport::default();
        for (table, slot) in [
            ("events", &mut report.events),
            ("findings", &mut report.findings),
        ] {
            *slot = self.conn.execute(
                &format!(
                    "DELETE FROM {table} WHERE at_ms < ?1 AND (
                       job IN (SELECT id FROM jobs WHERE created_ms < ?1
                               AND state IN {TERMINAL}
                               AND NOT EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?2))
                       OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = {table}.job))"
                ),
                params![cutoff, policy.pinned_tag],
            )?;
        }
        tx.commit()?;
        Ok(report)
    }

    /// Jobs whose raw logs retention must keep: pinned or not finished.
    pub(crate) fn protected_jobs(&self, pinned_tag: &str) -> Result<HashSet<JobId>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id FROM jobs WHERE state NOT IN {TERMINAL}
             OR EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?1)"
        ))?;
        let rows = stmt.query_map([pinned_tag], |r| r.get::<_, Vec<u8>>(0))?;
        let mut set = HashSet::new();
        for row in rows {
            if let Ok(u) = Uuid::from_slice(&row?) {
                set.insert(JobId(u));
            }
        }
        Ok(set)
    }
}

fn io_err(kind: std::io::ErrorKind, msg: String) -> StoreError {
    StoreError::Io(std::io::Error::new(kind, msg))
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn check_version(found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        Err(StoreError::UnsupportedSchemaVersion {
            found,
            supported: SCHEMA_VERSION,
        })
    } else {
        Ok(())
    }
}

/// Nanoseconds since the Unix epoch (negative before it).
fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Milliseconds since the Unix epoch, and the nanoseconds within that ms.
fn split_ms(t: SystemTime) -> (i64, i64) {
    let n = nanos(t);
    (n.div_euclid(1_000_000), n.rem_euclid(1_000_000))
}

pub(crate) fn millis(t: SystemTime) -> i64 {
    split_ms(t).0
}

fn from_parts(ms: i64, sub_ns: i64) -> SystemTime {
    let n = i128::from(ms) * 1_000_000 + i128::from(sub_ns);
    let d = Duration::from_nanos(n.unsigned_abs().min(u128::from(u64::MAX)) as u64);
    if n >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// BEGIN IMMEDIATE … COMMIT on a shared connection; rolls back on drop.
pub(crate) struct ImmediateTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> ImmediateTx<'c> {
    /// Take the write lock now (waiting up to the busy timeout), so a
    /// transaction never fails half-way on a lock upgrade.
    pub(crate) fn begin(conn: &'c Connection) -> Result<Self, StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(ImmediateTx { conn, open: true })
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }
}

impl Drop for ImmediateTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The write statements, prepared once per batch.
pub(crate) struct Writes<'c> {
    upsert: Statement<'c>,
    event: Statement<'c>,
    finding: Statement<'c>,
    leader: Statement<'c>,
}

impl<'c> Writes<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Writes {
            upsert: conn.prepare(
                "INSERT INTO jobs (id, command, label, tags, created_ms, created_sub_ns,
                     started_ms, started_sub_ns, state, exit_code, exit_signal, outcome,
                     progress, current_phase, updated_ms, schema_version, owner, host_pid,
                     host_start, boot_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                     ?16, ?17, ?18, ?19, ?20)
                 ON CONFLICT (id) DO UPDATE SET
                     command = excluded.command, label = excluded.label, tags = excluded.tags,
                     created_ms = excluded.created_ms, created_sub_ns = excluded.created_sub_ns,
                     started_ms = excluded.started_ms, started_sub_ns = excluded.started_sub_ns,
                     state = excluded.state, exit_code = excluded.exit_code,
                     exit_signal = excluded.exit_signal, outcome = excluded.outcome,
                     progress = excluded.progress, current_phase = excluded.current_phase,
                     updated_ms = excluded.updated_ms, schema_version = excluded.schema_version,
                     owner = coalesce(excluded.owner, jobs.owner),
                     host_pid = coalesce(excluded.host_pid, jobs.host_pid),
                     host_start = coalesce(excluded.host_start, jobs.host_start),
                     boot_id = coalesce(excluded.boot_id, jobs.boot_id)
                 WHERE jobs.state NOT IN ('finalized', 'cancelled')
                    OR excluded.state IN ('finalized', 'cancelled')",
            )?,
            event: conn.prepare(
                "INSERT INTO events (job, at_ms, kind, payload, schema_version)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            finding: conn.prepare(
                "INSERT INTO findings (job, at_ms, code, severity, payload, schema_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            leader: conn.prepare(
                "UPDATE jobs SET pid = ?2, leader_start = ?3, boot_id = coalesce(?4, boot_id)
                 WHERE id = ?1",
            )?,
        })
    }

    /// Insert or update a job's snapshot (`owner`: the runtime recording it).
    pub(crate) fn upsert_job(
        &mut self,
        job: &Job,
        owner: Option<&Owner>,
    ) -> Result<(), StoreError> {
        let (created_ms, created_sub) = split_ms(job.created_at);
        let started = job.started_at.map(split_ms);
        self.upsert.execute(params![
            job.id.0.as_bytes(),
            serde_json::to_string(&job.command)?,
            job.label,
            serde_json::to_string(&job.command.tags)?,
            created_ms,
            created_sub,
            started.map(|s| s.0),
            started.map(|s| s.1),
            job.state.as_str(),
            job.exit.and_then(|e| e.code),
            job.exit.and_then(|e| e.signal),
            job.outcome
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            serde_json::to_string(&job.progress)?,
            job.current_phase.map(|p| p.0.as_bytes().to_vec()),
            millis(SystemTime::now()),
            SCHEMA_VERSION,
            owner.map(|o| o.id.as_bytes().to_vec()),
            owner.map(|o| i64::from(o.host.pid)),
            owner.and_then(|o| o.host.start),
            owner.and_then(|o| o.host.boot.clone()),
        ])?;
        Ok(())
    }

    /// Record the leader process of a started job (for crash recovery).
    pub(crate) fn record_leader(
        &mut self,
        id: JobId,
        leader: &proc::ProcId,
    ) -> Result<(), StoreError> {
        self.leader.execute(params![
            id.0.as_bytes(),
            i64::from(leader.pid),
            leader.start,
            leader.boot
        ])?;
        Ok(())
    }

    /// Append an event (skipping output events); findings also go to
    /// `findings`.
    pub(crate) fn insert_event(&mut self, event: &Event) -> Result<(), StoreError> {
        if !kept_in_history(event) {
            return Ok(());
        }
        let job = event.job_id();
        self.event.execute(params![
            job.0.as_bytes(),
            millis(event.at()),
            event.kind(),
            serde_json::to_string(event)?,
            SCHEMA_VERSION
        ])?;
        if let Event::FindingEmitted { finding, .. } = event {
            self.finding.execute(params![
                job.0.as_bytes(),
                millis(event.at()),
                finding.code,
                finding.severity.as_str(),
                serde_json::to_string(finding)?,
                SCHEMA_VERSION
            ])?;
        }
        Ok(())
    }
}

fn bad(msg: String) -> StoreError {
    StoreError::Serde(<serde_json::Error as serde::de::Error>::custom(msg))
}

/// The id of a job row, for messages: the uuid, or hex if it is not one.
fn raw_id(r: &Row<'_>) -> String {
    match r.get::<_, Vec<u8>>(0) {
        Ok(b) => Uuid::from_slice(&b)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| b.iter().map(|x| format!("{x:02x}")).collect()),
        Err(e) => format!("<unreadable id: {e}>"),
    }
}

fn decode_job(r: &Row<'_>) -> Result<Job, StoreError> {
    let version: i64 = r.get(13)?;
    check_version(version)?;
    let id: Vec<u8> = r.get(0)?;
    let id = Uuid::from_slice(&id).map_err(|e| bad(format!("job id: {e}")))?;
    let state: String = r.get(7)?;
    let state: JobState = state.parse().map_err(bad)?;
    let code: Option<i32> = r.get(8)?;
    let signal: Option<i32> = r.get(9)?;
    let exit = (code.is_some() || signal.is_some()).then_some(ExitCode { code, signal });
    let outcome: Option<String> = r.get(10)?;
    let phase: Option<Vec<u8>> = r.get(12)?;
    let started_ms: Option<i64> = r.get(5)?;
    let started_sub: Option<i64> = r.get(6)?;
    Ok(Job {
        id: JobId(id),
        command: serde_json::from_str(&r.get::<_, String>(1)?)?,
        label: r.get(2)?,
        created_at: from_parts(r.get(3)?, r.get::<_, Option<i64>>(4)?.unwrap_or(0)),
        started_at: started_ms.map(|ms| from_parts(ms, started_sub.unwrap_or(0))),
        state,
        current_phase: phase
            .map(|b| Uuid::from_slice(&b).map(PhaseId))
            .transpose()
            .map_err(|e| bad(format!("phase id: {e}")))?,
        progress: serde_json::from_str(&r.get::<_, String>(11)?)?,
        exit,
        outcome: outcome.map(|o| serde_json::from_str(&o)).transpose()?,
    })
}

#[cfg(test)]
mod tests;
