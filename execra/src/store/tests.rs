//! Unit tests of the store: round trips, filters, schema versions,
//! migrations, stranded jobs, retention.

use std::time::{Duration, SystemTime};

use rusqlite::params;

use super::*;
use crate::command::Command;
use crate::finding::Finding;
use crate::progress::Progress;

fn job(tags: &[&str], label: &str) -> Job {
    let spec = Command::new("echo")
        .arg("hi")
        .label(label)
        .tags(tags.iter().map(|t| t.to_string()))
        .spec()
        .clone();
    Job::queued(JobId::new(), spec)
}

fn finished(mut j: Job) -> Job {
    j.state = JobState::Finalized;
    j.started_at = Some(j.created_at + Duration::from_millis(3));
    j.exit = Some(ExitCode::from_code(2));
    j.progress = Progress::fraction(0.5);
    j.outcome = Some(Outcome::Failed {
        reason: FailureReason::NonZeroExit { code: 2 },
        summary: Some("boom".into()),
        findings: vec![Finding::warning("w1", "careful")],
    });
    j
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn job_round_trips_with_every_field() {
    let store = Store::open_in_memory().expect("open");
    let mut j = finished(job(&["a", "b"], "lbl"));
    j.current_phase = Some(PhaseId::new());
    store.upsert_job(&j).expect("upsert");
    let back = store.load_job(j.id).expect("load").expect("some");
    assert_eq!(back.id, j.id);
    assert_eq!(back.command, j.command);
    assert_eq!(back.created_at, j.created_at);
    assert_eq!(back.started_at, j.started_at);
    assert_eq!(back.state, j.state);
    assert_eq!(back.current_phase, j.current_phase);
    assert_eq!(back.progress, j.progress);
    assert_eq!(back.label, j.label);
    assert_eq!(back.exit, j.exit);
    assert_eq!(back.outcome, j.outcome);
    assert!(store.load_job(JobId::new()).expect("load").is_none());
}

#[test]
fn terminal_snapshot_is_not_overwritten_by_an_older_live_one() {
    let store = Store::open_in_memory().expect("open");
    let live = job(&[], "x");
    let done = finished(live.clone());
    store.upsert_job(&done).expect("upsert");
    store.upsert_job(&live).expect("upsert");
    let back = store.load_job(live.id).expect("load").expect("some");
    assert_eq!(back.state, JobState::Finalized);
}

#[test]
fn list_jobs_filters_and_orders_newest_first() {
    let store = Store::open_in_memory().expect("open");
    let mut jobs = Vec::new();
    for i in 0..5 {
        let mut j = job(
            if i % 2 == 0 { &["even"] } else { &["odd"] },
            &format!("j{i}"),
        );
        j.created_at =
            SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + i * 10);
        if i == 4 {
            j = finished(j);
        }
        store.upsert_job(&j).expect("upsert");
        jobs.push(j);
    }
    let all = store.list_jobs(100, &JobsFilter::default()).expect("list");
    let labels: Vec<_> = all
        .iter()
        .map(|j| j.label.clone().unwrap_or_default())
        .collect();
    assert_eq!(labels, ["j4", "j3", "j2", "j1", "j0"]);

    let even = JobsFilter {
        tag: Some("even".into()),
        ..Default::default()
    };
    assert_eq!(store.list_jobs(100, &even).expect("list").len(), 3);
    assert_eq!(store.list_jobs(2, &even).expect("list").len(), 2);

    let fin = JobsFilter {
        state: Some(JobState::Finalized),
        ..Default::default()
    };
    let got = store.list_jobs(100, &fin).expect("list");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, jobs[4].id);

    // Sub-millisecond precision: jobs 10 µs apart are told apart.
    let window = JobsFilter {
        created_after: Some(jobs[1].created_at),
        created_before: Some(jobs[3].created_at),
        ..Default::default()
    };
    let got = store.list_jobs(100, &window).expect("list");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, jobs[2].id);

    let none = JobsFilter {
        tag: Some("ev".into()),
        ..Default::default()
    };
    assert!(store.list_jobs(100, &none).expect("list").is_empty());
}

#[test]
fn events_are_stored_in_order_without_output_and_findings_are_copied() {
    let store = Store::open_in_memory().expect("open");
    let j = job(&[], "e");
    store.upsert_job(&j).expect("upsert");
    let at = SystemTime::now();
    let evs = vec![
        Event::JobCreated {
            job: j.id,
            command: j.command.clone(),
            at,
        },
        Event::OutputAppended {
            job: j.id,
            stream: crate::Stream::Stdout,
            line: "x".into(),
            redraw: false,
            at,
        },
        Event::FindingEmitted {
            job: j.id,
            finding: Finding::info("c1", "m"),
            at,
        },
        Event::ProgressUpdated {
            job: j.id,
            progress: Progress::count(1, 2),
            at,
        },
    ];
    for e in &evs {
        store.insert_event(e).expect("insert");
    }
    let back = store.list_events(j.id, 100).expect("events");
    assert_eq!(back, vec![evs[0].clone(), evs[2].clone(), evs[3].clone()]);
    assert_eq!(store.list_events(j.id, 1).expect("events").len(), 1);
    let n: i64 = store
        .conn
        .query_row("SELECT count(*) FROM findings WHERE code = 'c1'", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(n, 1);
}

#[test]
fn ids_are_16_byte_blobs_and_rows_carry_the_schema_version() {
    let store = Store::open_in_memory().expect("open");
    let j = job(&[], "b");
    store.upsert_job(&j).expect("upsert");
    let (len, ty, v): (i64, String, i64) = store
        .conn
        .query_row(
            "SELECT length(id), typeof(id), schema_version FROM jobs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("row");
    assert_eq!((len, ty.as_str(), v), (16, "blob", SCHEMA_VERSION));
}

#[test]
fn a_row_from_a_newer_schema_is_an_error_not_a_misread() {
    let store = Store::open_in_memory().expect("open");
    let j = job(&[], "new");
    store.upsert_job(&j).expect("upsert");
    store
        .conn
        .execute("UPDATE jobs SET schema_version = 99", [])
        .expect("update");
    match store.load_job(j.id) {
        Err(StoreError::UnsupportedSchemaVersion { found, supported }) => {
            assert_eq!((found, supported), (99, SCHEMA_VERSION));
        }
        other => panic!("expected UnsupportedSchemaVersion, got {other:?}"),
    }
    // Listing skips it (it is not misread) and says which one it skipped.
    assert!(store
        .list_jobs(10, &JobsFilter::default())
        .expect("list")
        .is_empty());
    let listing = store
        .list_jobs_reporting(10, &JobsFilter::default())
        .expect("list");
    assert_eq!(listing.skipped.len(), 1);
    assert_eq!(listing.skipped[0].id, j.id.to_string());
    assert!(matches!(
        listing.skipped[0].error,
        StoreError::UnsupportedSchemaVersion { found: 99, .. }
    ));
    // A newer row is left alone by recovery.
    assert_eq!(store.resurrect_stranded_jobs().expect("resurrect"), 0);
}

#[test]
fn a_file_from_a_future_schema_is_refused() {
    let dir = tmp();
    let path = dir.path().join("h.db");
    {
        let c = Connection::open(&path).expect("open");
        c.pragma_update(None, "user_version", 7).expect("pragma");
    }
    let err = Store::open(&path).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::UnsupportedSchemaVersion { found: 7, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade execra"), "{err}");
}

#[test]
fn a_version_1_file_is_migrated_and_its_rows_stay_readable() {
    let dir = tmp();
    let path = dir.path().join("old.db");
    let j = finished(job(&["t"], "old"));
    {
        let c = Connection::open(&path).expect("open");
        c.execute_batch(schema::V1).expect("v1");
        c.pragma_update(None, "user_version", 1).expect("pragma");
        let (ms, sub) = split_ms(j.created_at);
        c.execute(
            "INSERT INTO jobs (id, command, label, tags, created_ms, created_sub_ns, state,
                 outcome, progress, updated_ms, schema_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'finalized', ?7, ?8, 0, 1)",
            params![
                j.id.0.as_bytes(),
                serde_json::to_string(&j.command).expect("json"),
                j.label,
                "[\"t\"]",
                ms,
                sub,
                serde_json::to_string(&j.outcome).expect("json"),
                serde_json::to_string(&j.progress).expect("json"),
            ],
        )
        .expect("insert");
    }
    let store = Store::open(&path).expect("migrates");
    let v: i64 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION);
    let back = store.load_job(j.id).expect("load").expect("some");
    assert_eq!(back.outcome, j.outcome);
    assert_eq!(back.label.as_deref(), Some("old"));
    // The new columns are usable.
    store.upsert_job(&back).expect("upsert after migration");
}

#[test]
fn garbage_and_directories_are_clear_errors() {
    let dir = tmp();
    let err = Store::open(dir.path()).expect_err("a directory");
    assert!(err.to_string().contains("is a directory"), "{err}");

    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0xA5u8; 8192]).expect("write");
    let err = Store::open(&path).expect_err("garbage");
    assert!(matches!(err, StoreError::Sqlite(_)), "{err}");
    assert!(err.to_string().contains("not a database"), "{err}");
    // Nothing was lost: the file is untouched.
    assert_eq!(std::fs::read(&path).expect("read"), vec![0xA5u8; 8192]);
}

#[test]
fn stranded_jobs_are_finalized_with_an_event() {
    let store = Store::open_in_memory().expect("open");
    let mut running = job(&[], "r");
    running.state = JobState::Running;
    let done = finished(job(&[], "d"));
    store.upsert_job(&running).expect("upsert");
    store.upsert_job(&done).expect("upsert");
    assert_eq!(store.resurrect_stranded_jobs().expect("resurrect"), 1);
    let back = store.load_job(running.id).expect("load").expect("some");
    assert_eq!(back.state, JobState::Finalized);
    let expected = Outcome::Failed {
        reason: FailureReason::SpawnFailed {
            error: STRANDED_ERROR.into(),
        },
        summary: None,
        findings: Vec::new(),
    };
    assert_eq!(back.outcome.as_ref(), Some(&expected));
    let evs = store.list_events(running.id, 10).expect("events");
    assert!(matches!(evs.last(), Some(Event::Finalized { outcome, .. }) if *outcome == expected));
    assert_eq!(store.resurrect_stranded_jobs().expect("again"), 0);
    assert_eq!(
        store
            .load_job(done.id)
            .expect("load")
            .expect("some")
            .outcome,
        done.outcome
    );
}

#[test]
fn prune_removes_old_events_of_unpinned_finished_jobs_only() {
    let store = Store::open_in_memory().expect("open");
    let old = SystemTime::now() - Duration::from_secs(40 * 24 * 3600);
    let mk = |tags: &[&str], state_done: bool| {
        let mut j = job(tags, "p");
        j.created_at = old;
        if state_done {
            j = finished(j);
        } else {
            j.state = JobState::Running;
        }
        store.upsert_job(&j).expect("upsert");
        for e in [
            Event::ProgressUpdated {
                job: j.id,
                progress: Progress::fraction(0.1),
                at: old,
            },
            Event::FindingEmitted {
                job: j.id,
                finding: Finding::info("f", "m"),
                at: old,
            },
            Event::LabelUpdated {
                job: j.id,
                label: "recent".into(),
                at: SystemTime::now(),
            },
        ] {
            store.insert_event(&e).expect("event");
        }
        j
    };
    let plain = mk(&[], true);
    let pinned = mk(&["pinned"], true);
    let live = mk(&[], false);
    let report = store.prune(&RetentionPolicy::default()).expect("prune");
    assert_eq!((report.events, report.findings), (2, 1));
    assert_eq!(store.list_events(plain.id, 10).expect("ev").len(), 1);
    assert_eq!(store.list_events(pinned.id, 10).expect("ev").len(), 3);
    assert_eq!(store.list_events(live.id, 10).expect("ev").len(), 3);
    // The job row itself is kept.
    assert!(store.load_job(plain.id).expect("load").is_some());
}

#[cfg(target_os = "linux")]
#[test]
fn a_stranded_group_is_killed_only_when_its_leader_is_verified() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    let store = Store::open_in_memory().expect("open");
    for verified in [false, true] {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .expect("sleep");
        let mut j = job(&[], "k");
        j.state = JobState::Running;
        store.upsert_job(&j).expect("upsert");
        let mut leader = proc::ProcId::of(child.id());
        assert!(leader.start.is_some());
        if !verified {
            // As if the pid had been reused by another process since.
            leader.start = leader.start.map(|s| s - 1);
        }
        Writes::new(&store.conn)
            .expect("writes")
            .record_leader(j.id, &leader)
            .expect("leader");
        assert_eq!(store.resurrect_stranded_jobs().expect("resurrect"), 1);
        if verified {
            let status = child.wait().expect("wait");
            assert_eq!(status.signal(), Some(libc::SIGKILL));
        } else {
            assert!(child.try_wait().expect("try_wait").is_none(), "not killed");
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }
}

/// Crash recovery kills a stranded job's cgroup — every process in it —
/// even when no leader identity was recorded (or the leader is dead), and
/// removes the cgroup. Path: cgroup (set EXECRA_TEST_NO_CGROUP=1 where no
/// cgroup2 is writable; the test then says so and checks nothing).
#[cfg(target_os = "linux")]
#[test]
fn a_stranded_cgroup_is_killed_and_removed_even_without_a_leader() {
    use std::os::unix::process::ExitStatusExt;

    let store = Store::open_in_memory().expect("open");
    let mut j = job(&[], "cg");
    j.state = JobState::Running;
    store.upsert_job(&j).expect("upsert");
    let Some(cg) = crate::process::cgroup::JobCgroup::create(j.id) else {
        assert!(
            std::env::var_os("EXECRA_TEST_NO_CGROUP").is_some(),
            "no job cgroup could be created (run as root, or set EXECRA_TEST_NO_CGROUP=1)"
        );
        eprintln!("WARNING: EXECRA_TEST_NO_CGROUP set: cgroup recovery not checked");
        return;
    };
    let dir = crate::process::cgroup::find(j.id).expect("the job cgroup is found");
    let mut child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("sleep");
    std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).expect("enter cgroup");
    // The host "crashed": its cgroup handle is gone without cleanup.
    std::mem::forget(cg);
    assert_eq!(store.resurrect_stranded_jobs().expect("resurrect"), 1);
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!dir.exists(), "the cgroup was not removed");
}
