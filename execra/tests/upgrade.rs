//! Histories from elsewhere: a file written by the published execra 1.1
//! (`tests/fixtures/history-1.1.sqlite`, made by
//! `cargo run -p execra-bench --bin make-v1-fixture -- <file>`) opens and is
//! upgraded in place with nothing lost; some other SQLite database is a
//! clear error and is left untouched; a corrupt row does not hide the
//! others.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use execra::store::{JobsFilter, Store, StoreError, SCHEMA_VERSION, STRANDED_ERROR};
use execra::{
    Command, Event, FailureReason, JobId, JobState, Outcome, Progress, ProgressMetric, Runtime,
    Severity,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/history-1.1.sqlite"
);

/// 2025-01-01T00:00:00Z, the generator's time origin.
fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_735_689_600_000 + ms)
}

fn id(n: u128) -> JobId {
    JobId(uuid::Uuid::from_u128(
        0x0194_1a2b_0000_7000_8000_0000_0000_0000 | n,
    ))
}

/// A private copy of the fixture (the upgrade rewrites the file).
fn copy_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("history.sqlite");
    std::fs::copy(FIXTURE, &path).expect("copy the 1.1 fixture");
    path
}

fn sql(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open with rusqlite")
}

fn count(path: &Path, query: &str) -> i64 {
    sql(path)
        .query_row(query, [], |r| r.get(0))
        .expect("count query")
}

/// What the generator wrote, checked through our `Store` (which is what
/// `Runtime`, the CLI and the Tauri plugin read with).
fn assert_fixture_intact(store: &Store) {
    let jobs = store
        .list_jobs(100, &JobsFilter::default())
        .expect("list jobs");
    assert_eq!(jobs.len(), 9, "every 1.1 job is listed: {jobs:#?}");

    let everything = store.load_job(id(1)).expect("load").expect("job 1");
    assert_eq!(everything.label.as_deref(), Some("Install ripgrep 14"));
    assert_eq!(everything.command.program, "scoop");
    assert_eq!(everything.command.args, ["install", "ripgrep"]);
    assert_eq!(everything.command.tags, ["install", "pinned"]);
    assert_eq!(everything.command.cwd.as_deref(), Some(Path::new("/tmp")));
    assert_eq!(everything.command.timeout, Some(Duration::from_secs(30)));
    assert_eq!(everything.created_at, at(1000));
    assert_eq!(everything.started_at, Some(at(1001)));
    assert_eq!(everything.state, JobState::Finalized);
    assert_eq!(everything.exit.and_then(|e| e.code), Some(0));
    let outcome = everything.outcome.expect("outcome");
    assert!(
        matches!(&outcome, Outcome::Succeeded { summary: Some(s), .. } if s == "ripgrep installed")
    );
    let severities: Vec<Severity> = outcome.findings().iter().map(|f| f.severity).collect();
    assert_eq!(
        severities,
        [
            Severity::Info,
            Severity::Recommendation,
            Severity::Warning,
            Severity::Error
        ]
    );
    // 1.1 did not store progress on the job row: it reads as unknown.
    assert_eq!(everything.progress, Progress::Unknown);

    let events = store.list_events(id(1), usize::MAX).expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "job_created",
            "job_started",
            "phase_entered",
            "phase_updated",
            "progress_updated",
            "progress_updated",
            "progress_updated",
            "progress_updated",
            "label_updated",
            "warning_detected",
            "warning_detected",
            "known_error_detected",
            "prompt_detected",
            "interpreter_error",
            "phase_exited",
            "finding_emitted",
            "finding_emitted",
            "finding_emitted",
            "finding_emitted",
            "exited",
            "finalized",
        ]
    );
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ProgressUpdated {
            progress: Progress::Determinate(ProgressMetric::Bytes {
                done: 1024,
                total: Some(2048)
            }),
            ..
        }
    )));
    assert!(events.iter().all(|e| e.job_id() == id(1)));

    let reason = |n| {
        store
            .load_job(id(n))
            .expect("load")
            .and_then(|j| j.outcome)
            .and_then(|o| o.failure().cloned())
    };
    assert!(matches!(
        reason(2),
        Some(FailureReason::NonZeroExit { code: 2 })
    ));
    assert!(matches!(
        reason(3),
        Some(FailureReason::Signal { signal: 9 })
    ));
    assert!(
        matches!(reason(4), Some(FailureReason::KnownError { code, .. }) if code == "not_found")
    );
    assert!(matches!(reason(5), Some(FailureReason::SpawnFailed { .. })));
    assert!(matches!(reason(6), Some(FailureReason::Timeout)));
    let cancelled = store.load_job(id(7)).expect("load").expect("job 7");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(matches!(cancelled.outcome, Some(Outcome::Cancelled { .. })));
    let cancelled_kinds: Vec<&str> = store
        .list_events(id(7), usize::MAX)
        .expect("events")
        .iter()
        .map(|e| e.kind())
        .collect();
    assert!(
        cancelled_kinds.contains(&"cancelled"),
        "{cancelled_kinds:?}"
    );

    let tagged = store
        .list_jobs(
            100,
            &JobsFilter {
                tag: Some("ci".into()),
                ..JobsFilter::default()
            },
        )
        .expect("tag filter");
    let mut ids: Vec<JobId> = tagged.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(ids, [id(2), id(6)]);

    let real = jobs
        .iter()
        .find(|j| j.label.as_deref() == Some("Real 1.1 job"))
        .expect("the job the 1.1 runtime ran");
    assert_eq!(real.state, JobState::Finalized);
    assert!(real.outcome.as_ref().is_some_and(Outcome::is_success));
}

#[test]
fn a_1_1_history_is_upgraded_in_place_with_nothing_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = copy_fixture(dir.path());
    assert_eq!(count(&path, "PRAGMA user_version"), 0);
    let (events, findings) = (
        count(&path, "SELECT count(*) FROM events"),
        count(&path, "SELECT count(*) FROM findings"),
    );

    let store = Store::open(&path).expect("a 1.1 history opens");
    assert_fixture_intact(&store);
    // Opening read nothing but upgraded the file: our version, every row.
    assert_eq!(count(&path, "PRAGMA user_version"), SCHEMA_VERSION);
    assert_eq!(count(&path, "SELECT count(*) FROM jobs"), 9);
    assert_eq!(count(&path, "SELECT count(*) FROM events"), events);
    assert_eq!(count(&path, "SELECT count(*) FROM findings"), findings);
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM findings WHERE severity IN ('info','recommendation','warning','error')"
        ),
        findings
    );
    // The crashed 1.1 host's job is still as 1.1 left it until reconciled.
    assert_eq!(
        store.load_job(id(8)).expect("load").map(|j| j.state),
        Some(JobState::Running)
    );
    drop(store);

    // A later open sees the current version and changes nothing.
    let again = Store::open(&path).expect("reopen");
    assert_fixture_intact(&again);
    assert_eq!(count(&path, "PRAGMA user_version"), SCHEMA_VERSION);
}

#[tokio::test]
async fn a_runtime_opens_a_1_1_history_and_appends_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = copy_fixture(dir.path());
    let rt = Runtime::builder()
        .history(&path)
        .build()
        .expect("a runtime opens a 1.1 history");

    // The runtime reads the old jobs...
    let old = rt.job(id(4)).expect("job 4 via the runtime");
    assert_eq!(old.label.as_deref(), Some("Install nope"));
    // ...and finalized the one the crashed 1.1 host left running.
    let stranded = rt.job(id(8)).expect("job 8 via the runtime");
    assert_eq!(stranded.state, JobState::Finalized);
    assert!(matches!(
        stranded.outcome.as_ref().and_then(|o| o.failure()),
        Some(FailureReason::SpawnFailed { error }) if error == STRANDED_ERROR
    ));

    // A new job is appended normally.
    let h = rt
        .spawn(Command::sh("echo after-upgrade").label("after").tag("new"))
        .expect("spawn");
    let new_id = h.id();
    assert!(h.await.is_success());
    rt.shutdown().await.expect("shutdown");
    drop(rt);

    let store = Store::open(&path).expect("reopen");
    let jobs = store
        .list_jobs(100, &JobsFilter::default())
        .expect("list jobs");
    assert_eq!(jobs.len(), 10, "9 old jobs + the new one");
    assert_eq!(jobs[0].id, new_id, "the new job is the newest");
    assert_eq!(jobs[0].command.tags, ["new"]);
    let kinds: Vec<&str> = store
        .list_events(new_id, usize::MAX)
        .expect("events")
        .iter()
        .map(|e| e.kind())
        .collect();
    assert_eq!(kinds.first(), Some(&"job_created"));
    assert_eq!(kinds.last(), Some(&"finalized"));
    // Everything else of the fixture is still there (job 8 now finalized).
    assert_eq!(
        store.list_events(id(1), usize::MAX).expect("events").len(),
        21
    );
}

#[test]
fn another_sqlite_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.sqlite");
    {
        let conn = sql(&path);
        conn.execute_batch(
            "CREATE TABLE jobs (name TEXT, salary INTEGER);
             INSERT INTO jobs VALUES ('baker', 3);",
        )
        .expect("make another database");
    }
    let before = std::fs::read(&path).expect("read");
    let err = Store::open(&path).expect_err("not a history");
    assert!(
        matches!(&err, StoreError::NotAHistory { detail } if detail.contains("jobs")),
        "{err:?}"
    );
    assert!(err.to_string().contains("not an execra history"), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the file is unchanged"
    );
    assert!(!dir.path().join("other.sqlite-wal").exists());

    // Same through the runtime.
    let err = Runtime::builder()
        .history(&path)
        .build()
        .expect_err("not a history");
    assert!(err.to_string().contains("not an execra history"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), before);

    // A database at one of our versions whose tables are someone else's.
    let path = dir.path().join("versioned.sqlite");
    sql(&path)
        .execute_batch("CREATE TABLE t (x); PRAGMA user_version = 2;")
        .expect("make");
    let err = Store::open(&path).expect_err("not a history");
    assert!(matches!(err, StoreError::NotAHistory { .. }), "{err:?}");
}

#[test]
fn a_corrupt_row_is_skipped_with_its_id_and_the_rest_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    let store = Store::open(&path).expect("open");
    let mut ids = Vec::new();
    for n in 0..4 {
        let mut job = execra::Job::queued(JobId::new(), execra::CommandSpec::new("echo"));
        job.label = Some(format!("job {n}"));
        job.created_at = at(n * 10);
        job.state = JobState::Finalized;
        store.upsert_job(&job).expect("upsert");
        ids.push(job.id);
    }
    let conn = sql(&path);
    conn.execute(
        "UPDATE jobs SET command = '{not json' WHERE id = ?1",
        [ids[1].0.as_bytes()],
    )
    .expect("corrupt the JSON");
    conn.execute(
        "UPDATE jobs SET state = 'exploded' WHERE id = ?1",
        [ids[2].0.as_bytes()],
    )
    .expect("corrupt the state");

    let jobs = store
        .list_jobs(100, &JobsFilter::default())
        .expect("a corrupt row does not fail the listing");
    let listed: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(listed, [ids[3], ids[0]]);

    let listing = store
        .list_jobs_reporting(100, &JobsFilter::default())
        .expect("listing");
    let skipped: Vec<&str> = listing.skipped.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        skipped,
        [ids[2].to_string().as_str(), ids[1].to_string().as_str()]
    );
    assert!(listing.skipped[0].error.to_string().contains("exploded"));
    assert_eq!(listing.jobs.len(), 2);
    // The job itself, asked for by id, is an error (not a silent None).
    assert!(store.load_job(ids[1]).is_err());
}

#[test]
fn a_failed_upgrade_leaves_the_1_1_file_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = copy_fixture(dir.path());
    // A 1.1 file with a column the upgrade wants to add: the upgrade fails
    // half-way through its statements.
    sql(&path)
        .execute_batch("ALTER TABLE jobs ADD COLUMN progress TEXT")
        .expect("prepare a clashing column");
    let columns = |path: &Path| -> Vec<String> {
        let conn = sql(path);
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('jobs')")
            .expect("prepare");
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("names");
        names
    };
    let before = columns(&path);
    let err = Store::open(&path).expect_err("the clash fails the upgrade");
    assert!(err.to_string().contains("progress"), "{err}");
    // Nothing of the upgrade stayed: same columns, same version, same rows.
    assert_eq!(columns(&path), before);
    assert!(before.iter().any(|c| c == "command_json"));
    assert_eq!(count(&path, "PRAGMA user_version"), 0);
    assert_eq!(count(&path, "SELECT count(*) FROM jobs"), 9);
}
